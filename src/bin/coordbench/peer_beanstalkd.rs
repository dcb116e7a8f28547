//! The beanstalkd peer: a worker takes a job with `reserve-with-timeout 0`
//! (answered `TIMED_OUT` at once when the tube is empty, as an empty
//! `get_work` is) and marks it done with `delete ID`. A reserved job is
//! leased for its time-to-run, like a work unit; ours is 900 s, longer than
//! any run. J jobs are J pipelined reserves in one round trip.
//!
//! Each run uses its own tube (`use` for the producer, `watch` + `ignore
//! default` for workers) so a shared server's other jobs are never touched.
//! The text protocol by hand rather than a client crate: every reply is one
//! line, sometimes followed by a counted body, and a generic client would
//! spend CPU the server's figures compete with on a small machine.

use std::io::Write;

use crate::client::Error;
use crate::peers::{num, Job, Peer, Wire};

/// Time-to-run of every job, in seconds: far longer than any run.
const TTR: u32 = 900;

pub struct Beanstalkd {
    w: Wire,
    tube: String,
}

/// The job counts `stats-tube` reports, with its words for them.
struct TubeCounts {
    total: u64,
    says: String,
}

impl Beanstalkd {
    /// The next reply line, which must start with `want`; returns the rest.
    async fn expect(&mut self, want: &str) -> Result<String, Error> {
        let line = self.w.line().await?;
        match line.strip_prefix(want.as_bytes()) {
            Some(rest) => Ok(String::from_utf8_lossy(rest).trim().to_owned()),
            None => Err(format!("beanstalkd: expected {want}, got {:?}", String::from_utf8_lossy(line))),
        }
    }

    /// `stats-tube`: ready, reserved, delayed and buried jobs of our tube
    /// (a tube nobody uses or watches any more is gone, and empty).
    async fn counts(&mut self) -> Result<TubeCounts, Error> {
        let _ = write!(self.w.out, "stats-tube {}\r\n", self.tube);
        self.w.flush().await?;
        let line = self.w.line().await?;
        if line == b"NOT_FOUND" {
            return Ok(TubeCounts { total: 0, says: format!("beanstalkd: tube {} gone (empty)", self.tube) });
        }
        let Some(len) = line.strip_prefix(b"OK ") else {
            return Err(format!("beanstalkd: stats-tube answered {:?}", String::from_utf8_lossy(line)));
        };
        let len: usize = num(Self::NAME, len)?;
        let yaml = String::from_utf8_lossy(&self.w.block(len).await?).into_owned();
        let mut total = 0;
        let mut parts = Vec::new();
        for state in ["ready", "reserved", "delayed", "buried"] {
            let field = format!("current-jobs-{state}:");
            let v: u64 = yaml
                .lines()
                .find_map(|l| l.strip_prefix(&field))
                .ok_or_else(|| format!("beanstalkd: stats-tube has no {field}"))
                .and_then(|v| num(Self::NAME, v.trim().as_bytes()))?;
            total += v;
            parts.push(format!("{state} {v}"));
        }
        Ok(TubeCounts { total, says: format!("beanstalkd stats-tube: jobs {}", parts.join(", ")) })
    }
}

impl Peer for Beanstalkd {
    const NAME: &'static str = "beanstalkd";
    const DEFAULT_PORT: u16 = 11300;
    const TAKE_LABEL: &'static str = "reserve-with-timeout 0";
    const DONE_LABEL: &'static str = "delete";

    async fn connect(addr: &str, queue: &str) -> Result<Self, Error> {
        let mut b = Beanstalkd { w: Wire::connect(addr, Self::NAME).await?, tube: queue.to_owned() };
        let _ = write!(b.w.out, "use {queue}\r\nwatch {queue}\r\nignore default\r\n");
        b.w.flush().await?;
        b.expect("USING ").await?;
        b.expect("WATCHING ").await?;
        b.expect("WATCHING ").await?;
        Ok(b)
    }

    async fn check_fresh(&mut self) -> Result<(), Error> {
        let c = self.counts().await?;
        if c.total != 0 {
            return Err(format!("beanstalkd: tube {} is not empty ({}); choose another --spec", self.tube, c.says));
        }
        Ok(())
    }

    /// One pipelined `put` per body.
    async fn add(&mut self, bodies: &[Vec<u8>]) -> Result<(), Error> {
        for body in bodies {
            let _ = write!(self.w.out, "put 1024 0 {TTR} {}\r\n", body.len());
            self.w.out.extend_from_slice(body);
            self.w.out.extend_from_slice(b"\r\n");
        }
        self.w.flush().await?;
        for _ in bodies {
            self.expect("INSERTED ").await?;
        }
        Ok(())
    }

    async fn take(&mut self, j: usize, out: &mut Vec<Job>) -> Result<(), Error> {
        out.clear();
        for _ in 0..j {
            self.w.out.extend_from_slice(b"reserve-with-timeout 0\r\n");
        }
        self.w.flush().await?;
        for _ in 0..j {
            let line = self.w.line().await?;
            if line == b"TIMED_OUT" {
                continue;
            }
            let head = line.strip_prefix(b"RESERVED ").and_then(|rest| {
                let mut it = rest.split(|&b| b == b' ');
                Some((num::<u64>(Self::NAME, it.next()?).ok()?, num::<usize>(Self::NAME, it.next()?).ok()?))
            });
            let Some((id, len)) = head else {
                return Err(format!("beanstalkd: reserve answered {:?}", String::from_utf8_lossy(line)));
            };
            out.push(Job { id, body: self.w.block(len).await? });
        }
        Ok(())
    }

    async fn done(&mut self, job: &Job) -> Result<bool, Error> {
        let _ = write!(self.w.out, "delete {}\r\n", job.id);
        self.w.flush().await?;
        match self.w.line().await? {
            b"DELETED" => Ok(true),
            b"NOT_FOUND" => Ok(false),
            other => Err(format!("beanstalkd: delete answered {:?}", String::from_utf8_lossy(other))),
        }
    }

    async fn remaining(&mut self) -> Result<(u64, String), Error> {
        let c = self.counts().await?;
        Ok((c.total, c.says))
    }

    /// Deletes what is still ready in the tube (after a failed run).
    async fn cleanup(&mut self) -> Result<(), Error> {
        let mut got = Vec::new();
        loop {
            self.take(1, &mut got).await?;
            let Some(job) = got.pop() else { return Ok(()) };
            self.done(&job).await?;
        }
    }
}
