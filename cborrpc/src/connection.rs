//! Frames over an async byte stream.
//!
//! A [`Connection`] owns a read buffer and a write buffer. Replies are
//! queued with [`Connection::queue_response`] and written by
//! [`Connection::flush`]; a server flushes when no further complete
//! request is already buffered, so a pipelining client gets its replies in
//! one write instead of one syscall each, while a client that waits for
//! every reply is never kept waiting. It also flushes once
//! [`Connection::pending_bytes`] passes its budget, so a client that
//! pipelines without reading holds a bounded amount of the daemon's memory.
//!
//! The framing scanner keeps its place between reads, so a frame trickling
//! in is walked once. Buffers grown for one large frame go back to a small
//! size once it is consumed, so an idle connection pins little memory.

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::message::{decode_request, decode_response, encode_response, Request, RequestError, Response};
use crate::scan::{Scan, ScanError, Scanner};
use crate::value::Value;

/// Default cap on one frame: 64 MiB, well above any sane batch of 1,000
/// work units and far below what would hurt the daemon.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// Capacity buffers start with and shrink back to.
const SMALL_BUFFER: usize = 8 << 10;
/// Buffers grown past this are released once empty (or mostly so).
const SHRINK_ABOVE: usize = 256 << 10;

/// Why a frame could not be read. Each of these ends the connection,
/// because the stream can no longer be trusted to be in sync.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed.
    Io(std::io::Error),
    /// The bytes are not a CBOR item, or too large a one.
    Frame(ScanError),
    /// The peer closed the stream in the middle of a frame.
    Truncated,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "read failed: {e}"),
            ReadError::Frame(e) => write!(f, "{e}"),
            ReadError::Truncated => write!(f, "connection closed in the middle of a frame"),
        }
    }
}

impl std::error::Error for ReadError {}

/// A CBOR-RPC stream with buffering in both directions.
pub struct Connection<S> {
    stream: S,
    rbuf: Vec<u8>,
    /// Where the frame being read starts in `rbuf`.
    start: usize,
    /// The framing scan of the frame at `start`, kept across reads.
    scanner: Scanner,
    wbuf: Vec<u8>,
    scratch: Vec<u8>,
    max_frame: usize,
    last_frame: usize,
}

impl<S: tokio::io::AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a stream; frames larger than `max_frame` bytes are refused.
    pub fn new(stream: S, max_frame: usize) -> Self {
        Connection {
            stream,
            rbuf: Vec::with_capacity(SMALL_BUFFER),
            start: 0,
            scanner: Scanner::new(),
            wbuf: Vec::with_capacity(SMALL_BUFFER),
            scratch: Vec::with_capacity(1024),
            max_frame,
            last_frame: 0,
        }
    }

    /// Reads the next complete frame and returns its length in the buffer
    /// (at `self.start`), or `None` on a clean end of stream.
    async fn next_frame(&mut self) -> Result<Option<usize>, ReadError> {
        loop {
            match self.scanner.scan(&self.rbuf[self.start..], self.max_frame).map_err(ReadError::Frame)? {
                Scan::Complete(n) => return Ok(Some(n)),
                Scan::Incomplete => {}
            }
            self.compact();
            self.rbuf.reserve(SMALL_BUFFER);
            let n = self.stream.read_buf(&mut self.rbuf).await.map_err(ReadError::Io)?;
            if n == 0 {
                return if self.rbuf.len() == self.start { Ok(None) } else { Err(ReadError::Truncated) };
            }
        }
    }

    /// Moves the partial frame to the front of the read buffer, and gives
    /// back memory the buffer no longer needs.
    fn compact(&mut self) {
        if self.start > 0 {
            self.rbuf.drain(..self.start);
            self.start = 0;
        }
        shrink(&mut self.rbuf);
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.scanner.reset();
        if self.start == self.rbuf.len() {
            self.rbuf.clear();
            self.start = 0;
            shrink(&mut self.rbuf);
        }
    }

    /// Reads and decodes the next request. The outer `Result` fails when
    /// the stream is broken; the inner one when the frame is intact but is
    /// not a valid request (the caller answers it if it has an id).
    pub async fn read_request(&mut self) -> Result<Option<Result<Request, RequestError>>, ReadError> {
        let Some(n) = self.next_frame().await? else { return Ok(None) };
        let req = decode_request(&self.rbuf[self.start..self.start + n]);
        self.consume(n);
        self.last_frame = n;
        Ok(Some(req))
    }

    /// Reads and decodes the next response (client side).
    pub async fn read_response(&mut self) -> Result<Option<Result<Response, String>>, ReadError> {
        let Some(n) = self.next_frame().await? else { return Ok(None) };
        let resp = decode_response(&self.rbuf[self.start..self.start + n]);
        self.consume(n);
        Ok(Some(resp))
    }

    /// Size in bytes of the last request read.
    pub fn last_frame_len(&self) -> usize {
        self.last_frame
    }

    /// True if another complete frame is already buffered. The scan done
    /// here is kept: the next read does not repeat it.
    pub fn has_buffered_frame(&mut self) -> bool {
        matches!(self.scanner.scan(&self.rbuf[self.start..], self.max_frame), Ok(Scan::Complete(_)))
    }

    /// Bytes of replies queued and not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.wbuf.len()
    }

    /// Queues a response; [`Connection::flush`] sends it.
    pub fn queue_response(&mut self, id: &Value, outcome: Result<&Value, &str>) {
        encode_response(id, outcome, &mut self.scratch, &mut self.wbuf);
        if self.scratch.capacity() > SHRINK_ABOVE {
            self.scratch = Vec::new();
        }
    }

    /// Queues raw bytes (a request, for clients).
    pub fn queue_bytes(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            shrink(&mut self.wbuf);
        }
        self.stream.flush().await
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

/// Gives a buffer grown for a large frame back to the allocator when it
/// holds little: emptied, or using under a quarter of its capacity.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > SHRINK_ABOVE && buf.len() <= buf.capacity() / 4 {
        if buf.is_empty() {
            // A fresh allocation, so the large block is freed outright.
            *buf = Vec::with_capacity(SMALL_BUFFER);
        } else {
            buf.shrink_to(buf.len().max(SMALL_BUFFER) * 2);
        }
    }
}
