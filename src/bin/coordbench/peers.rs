//! `drain --peer KIND ADDR`: the drain scenario against another queue
//! server, so our daemon's per-unit cost can be compared with servers a
//! user would otherwise pick. Each peer is reached through its natural
//! two-round-trip pattern (take a job, then mark it done), exactly like
//! `get_work` + `update_work_unit`, from the same closed loop: N jobs of
//! about `--data-bytes` bytes preloaded (untimed), then W connections
//! take J jobs in one round trip and finish each in its own until the
//! queue is empty. Every job's body starts with its key (`k0000000042:`),
//! so the client checks that each of the N was done exactly once; the
//! server must then say that nothing is left.
//!
//! The protocol clients live in `peer_redis.rs` and `peer_beanstalkd.rs`
//! behind the small [`Peer`] trait; this file is the loop they share and
//! the buffered socket ([`Wire`]) both line-based protocols read through.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use rand::distr::Alphanumeric;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;

use crate::client::Error;
use crate::peer_beanstalkd::Beanstalkd;
use crate::peer_redis::Redis;
use crate::scenarios::{batches, join_all, spec_name, unit_key, Cfg, Merged, WorkerOut};
use crate::stats::{daemon_mem, CpuMeter, Report};

/// One job handed out by a peer: the server's handle for it (beanstalkd's
/// job id; unused by Redis) and its body.
pub struct Job {
    pub id: u64,
    pub body: Vec<u8>,
}

/// A connection to a peer, bound to one queue (a pair of Redis lists, a
/// beanstalkd tube) named at connect time.
pub trait Peer: Sized + Send + 'static {
    /// The peer's name in reports and in `--peer`.
    const NAME: &'static str;
    /// The port the server listens on unless told otherwise.
    const DEFAULT_PORT: u16;
    /// The take command, as its latency row names it (for J > 1,
    /// [`take_label`] adds that it is pipelined J times).
    const TAKE_LABEL: &'static str;
    /// The done round trip, as the latency row names it.
    const DONE_LABEL: &'static str;

    fn connect(addr: &str, queue: &str) -> impl Future<Output = Result<Self, Error>> + Send;
    /// Fails unless the queue is empty and unused (a fresh name).
    fn check_fresh(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
    /// Adds these job bodies in one round trip.
    fn add(&mut self, bodies: &[Vec<u8>]) -> impl Future<Output = Result<(), Error>> + Send;
    /// Takes up to `j` jobs in one round trip (pipelined); none when the
    /// queue is empty.
    fn take(&mut self, j: usize, out: &mut Vec<Job>) -> impl Future<Output = Result<(), Error>> + Send;
    /// Marks a job done; `false` if the server did not know it.
    fn done(&mut self, job: &Job) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Jobs the server still holds in the queue, and its own words for it.
    fn remaining(&mut self) -> impl Future<Output = Result<(u64, String), Error>> + Send;
    /// Removes whatever this run left behind (best effort).
    fn cleanup(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A socket for a text protocol: requests are gathered in `out` and sent
/// together by [`Wire::flush`] (a pipeline is one write), replies are read
/// a line or a counted block at a time from one buffer.
pub struct Wire {
    io: BufReader<TcpStream>,
    pub out: Vec<u8>,
    line: Vec<u8>,
    /// Who is at the other end, for error messages.
    peer: &'static str,
}

impl Wire {
    pub async fn connect(addr: &str, peer: &'static str) -> Result<Wire, Error> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("{peer}: connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("{peer}: {e}"))?;
        Ok(Wire {
            io: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::with_capacity(4096),
            line: Vec::new(),
            peer,
        })
    }

    /// Sends everything gathered in `out`.
    pub async fn flush(&mut self) -> Result<(), Error> {
        let r = self.io.get_mut().write_all(&self.out).await;
        self.out.clear();
        r.map_err(|e| format!("{}: send failed: {e}", self.peer))
    }

    /// The next reply line, without its CR LF.
    pub async fn line(&mut self) -> Result<&[u8], Error> {
        self.line.clear();
        let n = self.io.read_until(b'\n', &mut self.line).await.map_err(|e| format!("{}: {e}", self.peer))?;
        if n == 0 || !self.line.ends_with(b"\r\n") {
            return Err(format!("{}: connection closed mid-reply", self.peer));
        }
        Ok(&self.line[..self.line.len() - 2])
    }

    /// A block of `n` bytes followed by CR LF (a bulk string, a job body).
    pub async fn block(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let mut b = vec![0; n + 2];
        self.io.read_exact(&mut b).await.map_err(|e| format!("{}: {e}", self.peer))?;
        if !b.ends_with(b"\r\n") {
            return Err(format!("{}: a block of {n} bytes not followed by CR LF", self.peer));
        }
        b.truncate(n);
        Ok(b)
    }
}

/// Parses a decimal number in a reply line.
pub fn num<T: std::str::FromStr>(peer: &str, s: &[u8]) -> Result<T, Error> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{peer}: expected a number, got {:?}", String::from_utf8_lossy(s)))
}

/// The body of job `i`: its key, a colon, then random letters and digits
/// up to `size` bytes in all.
fn job_body(i: u64, size: usize, rng: &mut SmallRng) -> Vec<u8> {
    let mut body = unit_key(i).into_bytes();
    body.push(b':');
    let pad = size.saturating_sub(body.len());
    body.extend((0..pad).map(|_| rng.sample(Alphanumeric)));
    body
}

/// The job number a body made by [`job_body`] carries.
fn body_index(body: &[u8]) -> Option<u64> {
    let key = body.split(|&b| b == b':').next()?;
    std::str::from_utf8(key.strip_prefix(b"k")?).ok()?.parse().ok()
}

/// The take round trip of `j` jobs, as its latency row names it.
fn take_label<P: Peer>(j: usize) -> String {
    if j == 1 {
        P::TAKE_LABEL.into()
    } else {
        format!("{} x{j}, pipelined", P::TAKE_LABEL)
    }
}

/// Adds jobs `[0, n)` of `size` bytes each, `batch` per round trip, with
/// the same batching and bodies for every peer.
async fn preload<P: Peer>(c: &mut P, n: u64, size: usize, batch: usize) -> Result<(), Error> {
    let mut rng = SmallRng::seed_from_u64(0);
    for (from, to) in batches(n, batch) {
        let bodies: Vec<Vec<u8>> = (from..to).map(|i| job_body(i, size, &mut rng)).collect();
        c.add(&bodies).await?;
    }
    Ok(())
}

/// `--peer KIND [ADDR]` as a known kind and its address (ADDR defaults to
/// the server's usual port on 127.0.0.1).
pub fn target(p: &[String]) -> Result<(&str, String), Error> {
    let kind = p.first().map(String::as_str).unwrap_or_default();
    let port = match kind {
        Redis::NAME => Redis::DEFAULT_PORT,
        Beanstalkd::NAME => Beanstalkd::DEFAULT_PORT,
        other => return Err(format!("--peer: unknown server {other:?}; known: {}, {}", Redis::NAME, Beanstalkd::NAME)),
    };
    Ok((kind, p.get(1).cloned().unwrap_or_else(|| format!("127.0.0.1:{port}"))))
}

/// `drain --peer KIND [ADDR]`.
pub async fn drain(cfg: &Cfg, p: &[String]) -> Result<Report, Error> {
    let (kind, addr) = target(p)?;
    if kind == Redis::NAME {
        drain_on::<Redis>(cfg, &addr).await
    } else {
        drain_on::<Beanstalkd>(cfg, &addr).await
    }
}

async fn drain_on<P: Peer>(cfg: &Cfg, addr: &str) -> Result<Report, Error> {
    let queue = spec_name(cfg, "drain");
    let mut c = P::connect(addr, &queue).await?;
    c.check_fresh().await?;
    let r = async {
        let t = Instant::now();
        preload(&mut c, cfg.units, cfg.data_bytes, cfg.batch).await?;
        eprintln!(
            "coordbench: drain ({}): {} jobs added in {:.2} s; draining with W={} J={}",
            P::NAME,
            cfg.units,
            t.elapsed().as_secs_f64(),
            cfg.workers,
            cfg.max_jobs
        );
        let mut r = run_workers::<P>(cfg, addr, &queue).await?;
        let (left, says) = c.remaining().await?;
        r.1.check(left == 0, &says, &mut r.0);
        Ok::<_, Error>(r.0)
    }
    .await;
    let mem = daemon_mem(cfg.daemon_pid);
    if let Err(e) = c.cleanup().await {
        eprintln!("coordbench: cleaning up {queue} on {}: {e}", P::NAME);
    }
    let mut r = r?;
    r.mem = mem;
    Ok(r)
}

/// W workers drain the queue; returns the report (rows and CPU, not yet
/// verified) and the merged outcome to verify it with.
async fn run_workers<P: Peer>(cfg: &Cfg, addr: &str, queue: &str) -> Result<(Report, Merged), Error> {
    let (n, w, j) = (cfg.units, cfg.workers.max(1), cfg.max_jobs.max(1));
    let barrier = Arc::new(Barrier::new(w));
    let cpu = CpuMeter::start(cfg.daemon_pid);
    let tasks = (0..w)
        .map(|_| {
            let (addr, queue, barrier) = (addr.to_owned(), queue.to_owned(), barrier.clone());
            tokio::spawn(async move { worker::<P>(&addr, &queue, j, &barrier).await })
        })
        .collect();
    let outs = join_all(tasks).await?;
    let m = Merged::of(&outs, n);
    let mut r = Report::new("drain", queue, w, j, n, cfg.data_bytes);
    r.server = P::NAME.into();
    r.cpu = cpu.finish(m.completed);
    r.rows.extend(m.drain_rows("jobs completed", &take_label::<P>(j), P::DONE_LABEL));
    Ok((r, m))
}

/// One worker: take up to J, mark each done, until a take finds nothing.
async fn worker<P: Peer>(addr: &str, queue: &str, j: usize, barrier: &Barrier) -> Result<WorkerOut, Error> {
    let mut c = P::connect(addr, queue).await?;
    let mut got = Vec::with_capacity(j);
    let mut out = WorkerOut::default();
    barrier.wait().await;
    out.start = Some(Instant::now());
    loop {
        let t0 = Instant::now();
        c.take(j, &mut got).await?;
        out.get_work.record(t0.elapsed());
        if got.is_empty() {
            out.empty += 1;
            break;
        }
        for job in got.drain(..) {
            match body_index(&job.body) {
                Some(i) => out.seen.push(i),
                None => out.strange += 1,
            }
            let t1 = Instant::now();
            let known = c.done(&job).await?;
            out.update.record(t1.elapsed());
            if !known {
                out.refused += 1;
            }
            out.completed += 1;
        }
    }
    out.end = Some(Instant::now());
    Ok(out)
}
