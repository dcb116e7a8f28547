//! The Redis peer: the reliable-queue pattern Redis documents for work
//! queues. A worker takes a job with `LMOVE pending processing LEFT RIGHT`
//! (non-blocking: nil means the queue is empty, as an empty `get_work`
//! does), so a taken job is never only in the worker's hands, and marks it
//! done with `LREM processing 1 JOB`. J jobs are J pipelined LMOVEs in one
//! round trip (LMPOP would take several at once but drops the processing
//! list, which is the point of the pattern).
//!
//! RESP by hand rather than a client crate: the drain needs six commands
//! whose replies are one line or one bulk string, and a generic client
//! would spend CPU the server's figures compete with on a small machine.

use std::io::Write;

use crate::client::Error;
use crate::peers::{num, Job, Peer, Wire};

pub struct Redis {
    w: Wire,
    pending: Vec<u8>,
    processing: Vec<u8>,
}

/// A reply, as far as these commands need.
enum Reply {
    Int(i64),
    Bulk(Option<Vec<u8>>),
}

/// Appends one command as a RESP array of bulk strings.
fn cmd(out: &mut Vec<u8>, args: &[&[u8]]) {
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl Redis {
    async fn reply(&mut self) -> Result<Reply, Error> {
        let line = self.w.line().await?;
        let (kind, rest) = line.split_first().ok_or("redis: empty reply line")?;
        match kind {
            b':' => Ok(Reply::Int(num(Self::NAME, rest)?)),
            b'$' => match num::<i64>(Self::NAME, rest)? {
                n if n < 0 => Ok(Reply::Bulk(None)),
                n => Ok(Reply::Bulk(Some(self.w.block(n as usize).await?))),
            },
            b'-' => Err(format!("redis: {}", String::from_utf8_lossy(rest))),
            _ => Err(format!("redis: unexpected reply {:?}", String::from_utf8_lossy(line))),
        }
    }

    async fn int(&mut self, what: &str) -> Result<i64, Error> {
        match self.reply().await? {
            Reply::Int(n) => Ok(n),
            Reply::Bulk(_) => Err(format!("redis: {what}: expected an integer, got a bulk string")),
        }
    }

    /// `LLEN pending`, `LLEN processing` in one round trip.
    async fn lengths(&mut self) -> Result<(i64, i64), Error> {
        cmd(&mut self.w.out, &[b"LLEN", &self.pending]);
        cmd(&mut self.w.out, &[b"LLEN", &self.processing]);
        self.w.flush().await?;
        Ok((self.int("LLEN").await?, self.int("LLEN").await?))
    }
}

impl Peer for Redis {
    const NAME: &'static str = "redis";
    const DEFAULT_PORT: u16 = 6379;
    const TAKE_LABEL: &'static str = "LMOVE pending processing";
    const DONE_LABEL: &'static str = "LREM processing 1 job";

    async fn connect(addr: &str, queue: &str) -> Result<Self, Error> {
        Ok(Redis {
            w: Wire::connect(addr, Self::NAME).await?,
            pending: format!("{queue}:pending").into_bytes(),
            processing: format!("{queue}:processing").into_bytes(),
        })
    }

    async fn check_fresh(&mut self) -> Result<(), Error> {
        cmd(&mut self.w.out, &[b"EXISTS", &self.pending, &self.processing]);
        self.w.flush().await?;
        match self.int("EXISTS").await? {
            0 => Ok(()),
            _ => Err(format!(
                "redis: {} or {} already exists; choose another --spec",
                String::from_utf8_lossy(&self.pending),
                String::from_utf8_lossy(&self.processing)
            )),
        }
    }

    /// One `RPUSH pending` of all the bodies.
    async fn add(&mut self, bodies: &[Vec<u8>]) -> Result<(), Error> {
        let mut args: Vec<&[u8]> = vec![b"RPUSH", &self.pending];
        args.extend(bodies.iter().map(Vec::as_slice));
        cmd(&mut self.w.out, &args);
        self.w.flush().await?;
        self.int("RPUSH").await.map(drop)
    }

    async fn take(&mut self, j: usize, out: &mut Vec<Job>) -> Result<(), Error> {
        out.clear();
        for _ in 0..j {
            cmd(&mut self.w.out, &[b"LMOVE", &self.pending, &self.processing, b"LEFT", b"RIGHT"]);
        }
        self.w.flush().await?;
        for _ in 0..j {
            match self.reply().await? {
                Reply::Bulk(Some(body)) => out.push(Job { id: 0, body }),
                Reply::Bulk(None) => {}
                Reply::Int(n) => return Err(format!("redis: LMOVE answered the integer {n}")),
            }
        }
        Ok(())
    }

    async fn done(&mut self, job: &Job) -> Result<bool, Error> {
        cmd(&mut self.w.out, &[b"LREM", &self.processing, b"1", &job.body]);
        self.w.flush().await?;
        Ok(self.int("LREM").await? == 1)
    }

    async fn remaining(&mut self) -> Result<(u64, String), Error> {
        let (p, q) = self.lengths().await?;
        Ok(((p + q).max(0) as u64, format!("redis LLEN pending {p}, processing {q}")))
    }

    async fn cleanup(&mut self) -> Result<(), Error> {
        cmd(&mut self.w.out, &[b"DEL", &self.pending, &self.processing]);
        self.w.flush().await?;
        self.int("DEL").await.map(drop)
    }
}
