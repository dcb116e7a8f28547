//! The CBOR-RPC listener: one task per connection, requests on a
//! connection served in order, replies to pipelined requests written
//! together.
//!
//! Bad input never takes the daemon down: a frame that is intact but is
//! not a valid request gets an error reply when its id can be read, and
//! anything that leaves the stream out of sync (malformed CBOR, a frame
//! over the size cap, a peer that vanishes mid-frame) closes that one
//! connection. Shutdown stops accepting, lets each connection finish the
//! request it is executing and flush its replies, then returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::Coordinate;
use cborrpc::Connection;
use jobserver::JobServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// Requests at least this large run under `block_in_place`.
const HEAVY_REQUEST: usize = 32 * 1024;

/// Settings of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Largest accepted frame, in bytes.
    pub max_frame: usize,
    /// Log every request at info level.
    pub log_requests: bool,
}

/// Serves `listener` until `shutdown` completes, then drains connections.
pub async fn serve<C: Coordinate>(
    listener: TcpListener,
    jobs: Arc<JobServer<C>>,
    cfg: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    debug!(%peer, "connection opened");
                    conns.spawn(handle(stream, jobs.clone(), cfg, stop_rx.clone()));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    info!(connections = conns.len(), "shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain).await.is_err() {
        warn!("connections still busy after 30 s; closing them");
        conns.shutdown().await;
    }
}

async fn handle<C: Coordinate>(
    stream: TcpStream,
    jobs: Arc<JobServer<C>>,
    cfg: ServerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut conn = Connection::new(stream, cfg.max_frame);
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = conn.read_request() => r,
        };
        match next {
            Ok(None) => break,
            Err(e) => {
                warn!(?peer, error = %e, "closing connection");
                break;
            }
            Ok(Some(Err(bad))) => match bad.id {
                Some(id) => {
                    warn!(?peer, error = %bad.message, "bad request");
                    conn.queue_response(&id, Err(&bad.message));
                }
                None => {
                    warn!(?peer, error = %bad.message, "unidentifiable request; closing connection");
                    break;
                }
            },
            Ok(Some(Ok(req))) => {
                let started = cfg.log_requests.then(Instant::now);
                let outcome = if conn.last_frame_len() >= HEAVY_REQUEST {
                    // A big request (say, 1,000 units to add) takes
                    // milliseconds of CPU; run it off the async workers so
                    // small requests on other connections keep flowing.
                    tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current().block_on(jobs.call(&req.method, req.params))
                    })
                } else {
                    jobs.call(&req.method, req.params).await
                };
                let error = outcome.as_ref().err().map(|e| (e.to_string(), e.is_server_fault()));
                if let Some(t) = started {
                    let error = error.as_ref().map(|e| e.0.as_str());
                    info!(method = %req.method, id = ?req.id, ok = error.is_none(), error, micros = t.elapsed().as_micros() as u64, "request");
                }
                match &error {
                    Some((msg, true)) => warn!(method = %req.method, error = %msg, "request failed"),
                    Some((msg, false)) => debug!(method = %req.method, error = %msg, "request refused"),
                    None => {}
                }
                conn.queue_response(&req.id, outcome.as_ref().map_err(|_| error.as_ref().map_or("", |e| e.0.as_str())));
            }
        }
        if !conn.has_buffered_frame() && conn.flush().await.is_err() {
            return;
        }
    }
    let _ = conn.flush().await;
    debug!(?peer, "connection closed");
}
