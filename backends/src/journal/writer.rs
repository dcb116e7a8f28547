//! The journal writer: callers append frames to a shared buffer in the
//! order of their changes, then wait in a queue ordered by position; one
//! thread writes the buffer out and syncs it, and one task in the runtime,
//! woken once per batch, answers the waiters it covered (only those).
//!
//! Group commit falls out of the shape: while a sync runs, new frames pile
//! up, and the writer's next turn takes them all. (A second sync in flight
//! was tried: on this project's disk two concurrent syncs complete only
//! 1.1-1.2x as many per second as one (`bench/fsync-probe.py`), while
//! batches halve; in A/B drains of that build, which the tree no longer
//! has, it lost about 10% under load and gained nothing when quiet.)
//!
//! Every batch starts with a sync mark saying how far the file was durable
//! when it was written, so recovery can tell a hole that a power loss left
//! in the unsynced tail (the pages of a batch over several pages can reach
//! the disk out of order: cut off) from damage to acknowledged records
//! (refused); see `frame`.
//!
//! A failed write or sync (a full disk, an I/O error) is retried every
//! [`RETRY`] until it succeeds; meanwhile the failure is recorded, so
//! waiters get an error instead of an acknowledgment and the backend
//! refuses new changes. After a failed sync the kernel may have dropped
//! the dirty pages, so the writer keeps every byte not yet known durable
//! and a retry writes them all again before it syncs. Nothing appended is
//! dropped: when space returns the backlog is written and the error clears.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;
use tracing::{error, info};

use super::ahead::Ahead;
use super::dir::{Dir, Disk};
use super::frame::{append_frame, append_mark};

/// Longest wait for a batch to fill up in `always` mode ([`Writer::gather`]).
const GATHER: Duration = Duration::from_micros(150);

/// How often a failed write is tried again.
pub const RETRY: Duration = Duration::from_millis(200);

/// When a reply may go out relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncMode {
    /// After its records are written and synced (group commit).
    Always,
    /// After its records are written; synced at least this often. A daemon
    /// crash loses nothing, a power loss at most the interval.
    Interval(Duration),
    /// After its records are written; never synced by us. A daemon crash
    /// loses nothing; a power loss loses what the kernel had not written.
    Never,
}

impl std::str::FromStr for FsyncMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(FsyncMode::Always),
            "never" => Ok(FsyncMode::Never),
            "interval" => Ok(FsyncMode::Interval(Duration::from_millis(50))),
            _ => match s.strip_prefix("interval=").map(|ms| ms.trim_end_matches("ms").parse::<u64>()) {
                Some(Ok(ms)) if ms > 0 => Ok(FsyncMode::Interval(Duration::from_millis(ms))),
                _ => Err(format!("--fsync must be always, interval, interval=MS or never, not {s:?}")),
            },
        }
    }
}

type Reply = oneshot::Sender<Result<(), Arc<str>>>;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Writing or syncing: it takes what piled up when it comes back.
    #[default]
    Busy,
    /// For anything to write.
    Idle,
    /// For enough waiting requests ([`Writer::gather`]).
    Gathering,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Total bytes ever appended: the position a caller waits for.
    appended: u64,
    /// Callers waiting for records the writer has not taken yet.
    waiters: usize,
    /// Where the batch the writer took last ends, and the callers waiting
    /// within it (counted at the take and after it).
    taken_end: u64,
    taken_waiters: usize,
    /// Requests waiting for their records, in position order. Each is
    /// woken once, when its position is durable: a sync wakes only the
    /// requests it covers, not those that arrived during it.
    queue: VecDeque<(u64, Reply)>,
    /// Bytes appended (over the journal's whole life) that are durable
    /// under the fsync mode.
    durable: u64,
    /// What the writer waits for, so callers wake it only when it would
    /// act: each needless wake-up is a futex call and a context switch
    /// (measurable when the cores are busy; no difference on a quiet
    /// machine).
    writer: Waiting,
    /// Why writes are failing, if they are: waiters fail at once and the
    /// backend refuses changes. Set for good when the writer stops.
    failing: Option<Arc<str>>,
    /// Whether [`answer_forever`] runs (it starts with the first waiter).
    answering: bool,
    /// The writer has stopped: the answering task ends.
    stopped: bool,
    /// (offset in `buf`, new segment number): start a new segment there.
    rotations: Vec<(usize, u64)>,
    next_segment: u64,
    shutdown: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Tells the runtime's answering task ([`answer_forever`]) that
    /// requests are durable.
    answer: tokio::sync::Notify,
    /// Bytes written to segments since the newest snapshot's segment began.
    since_rotation: AtomicU64,
    stats: Stats,
}

/// Counters of the writer's work since the journal opened.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches written (one `write` each, more across a rotation).
    pub batches: AtomicU64,
    /// `fdatasync` calls that succeeded.
    pub syncs: AtomicU64,
    /// Time spent in those calls, in microseconds.
    pub sync_micros: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
}

/// An open journal with its writer thread. Dropping it stops the thread
/// after the backlog is written.
pub struct Journal {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Journal {
    /// Starts appending to segment `segment` of `dir` (created if absent).
    pub fn start(dir: Arc<Dir>, segment: u64, mode: FsyncMode) -> std::io::Result<Journal> {
        let (file, offset) = dir.open_segment(segment)?;
        let file = Arc::new(file);
        let ahead = Ahead::start(dir.disk.clone(), file.clone(), offset)?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending { next_segment: segment + 1, ..Pending::default() }),
            wake: Condvar::new(),
            answer: tokio::sync::Notify::new(),
            since_rotation: AtomicU64::new(offset),
            stats: Stats::default(),
        });
        let mut w = Writer {
            shared: shared.clone(),
            mode,
            dir,
            file,
            ahead,
            offset,
            spare: Vec::new(),
            unsynced: Vec::new(),
            unsynced_at: offset,
            synced: offset,
            last_sync: Instant::now(),
        };
        let writer = std::thread::Builder::new().name("journal-writer".into()).spawn(move || {
            // Timed waits of [`GATHER`] must not be stretched by the
            // default 50 µs timer slack.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
            w.run()
        })?;
        Ok(Journal { shared, thread: Mutex::new(Some(writer)) })
    }

    /// Appends one record; returns the position to wait for.
    pub fn append(&self, payload: &[u8]) -> u64 {
        let mut p = self.shared.pending.lock();
        let before = p.buf.len();
        append_frame(&mut p.buf, payload);
        p.appended += (p.buf.len() - before) as u64;
        let pos = p.appended;
        let idle = p.writer == Waiting::Idle;
        drop(p);
        if idle {
            self.shared.wake.notify_one();
        }
        pos
    }

    /// Waits until everything appended so far is durable (what a request
    /// does after its changes); counts the caller for group commit. Fails
    /// at once while writes are failing.
    pub async fn wait_appended(&self) -> Result<(), Arc<str>> {
        let (rx, start_answering) = {
            let mut p = self.shared.pending.lock();
            if let Some(e) = &p.failing {
                return Err(e.clone());
            }
            if p.appended <= p.durable {
                return Ok(());
            }
            if p.appended <= p.taken_end {
                p.taken_waiters += 1;
            } else {
                p.waiters += 1;
            }
            let (tx, rx) = oneshot::channel();
            let pos = p.appended;
            p.queue.push_back((pos, tx));
            let start_answering = !std::mem::replace(&mut p.answering, true);
            if p.writer == Waiting::Gathering && p.waiters >= p.taken_waiters {
                self.shared.wake.notify_one();
            }
            (rx, start_answering)
        };
        if start_answering {
            // Outside the lock: spawning may wake a runtime thread.
            tokio::spawn(answer_forever(self.shared.clone()));
        }
        rx.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Ends the current segment here and starts the next; returns its
    /// number and the position after which it exists on disk. Call it
    /// under the same lock as the appends, so the cut is a consistent point.
    pub fn rotate(&self) -> (u64, u64) {
        let mut p = self.shared.pending.lock();
        let n = p.next_segment;
        p.next_segment += 1;
        let at = p.buf.len();
        p.rotations.push((at, n));
        let pos = p.appended;
        drop(p);
        self.shared.wake.notify_one();
        (n, pos)
    }

    /// Bytes written into segments since the last rotation.
    pub fn since_rotation(&self) -> u64 {
        self.shared.since_rotation.load(Ordering::Relaxed)
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The current failure, if writes are failing.
    pub fn error(&self) -> Option<Arc<str>> {
        self.shared.pending.lock().failing.clone()
    }

    /// Waits until everything up to `pos` is durable, for a thread outside
    /// the runtime (the snapshotter, rarely: polling is good enough).
    pub fn wait_blocking(&self, pos: u64) -> Result<(), Arc<str>> {
        loop {
            {
                let p = self.shared.pending.lock();
                if p.durable >= pos {
                    return Ok(());
                }
                if let Some(e) = &p.failing {
                    return Err(e.clone());
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Writes the backlog, syncs and stops the writer thread.
    pub fn close(&self) {
        self.shared.pending.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Answers the requests the writer has made durable, in the runtime
/// (started by the first request that waits).
async fn answer_forever(shared: Arc<Shared>) {
    /// Should the runtime drop this task, the next waiter starts another.
    struct Restart(Arc<Shared>);
    impl Drop for Restart {
        fn drop(&mut self) {
            self.0.pending.lock().answering = false;
        }
    }
    let shared = Restart(shared);
    let shared = &shared.0;
    let mut ready = Vec::new();
    loop {
        shared.answer.notified().await;
        let running = shared.take_durable(&mut ready);
        for (_, tx) in ready.drain(..) {
            let _ = tx.send(Ok(()));
        }
        if !running {
            return;
        }
    }
}

fn closed() -> Arc<str> {
    "the journal is closed".into()
}

fn refusal(e: &std::io::Error) -> Arc<str> {
    format!("the journal cannot be written ({e}); changes are refused until it can").into()
}

impl Shared {
    fn timed_sync(&self, disk: &dyn Disk, file: &File) -> std::io::Result<()> {
        let t = Instant::now();
        disk.sync(file)?;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.stats.sync_micros.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records that the journal is durable up to `pos` and has the
    /// requests that covers answered.
    ///
    /// One wake-up of the runtime's answering task, which wakes them all
    /// from inside the runtime. Waking each request from this thread made
    /// the runtime's I/O driver write its eventfd once per request.
    fn advance(&self, pos: u64) {
        let covered = {
            let mut p = self.pending.lock();
            p.durable = pos;
            p.queue.front().is_some_and(|(at, _)| *at <= pos)
        };
        if covered {
            self.answer.notify_one();
        }
    }

    /// The requests durable now, taken from the queue into `ready`; false
    /// once the writer has stopped.
    fn take_durable(&self, ready: &mut Vec<(u64, Reply)>) -> bool {
        let mut p = self.pending.lock();
        let n = p.queue.partition_point(|(at, _)| *at <= p.durable);
        ready.extend(p.queue.drain(..n));
        !p.stopped
    }

    /// Ends the answering task, after every request has been answered.
    fn stop_answering(&self) {
        self.pending.lock().stopped = true;
        self.answer.notify_one();
    }

    /// Refuses changes with `why` and fails every waiting request.
    fn fail(&self, why: Arc<str>) {
        let waiting = {
            let mut p = self.pending.lock();
            p.failing = Some(why.clone());
            std::mem::take(&mut p.queue)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(why.clone()));
        }
    }
}

/// One batch taken from [`Pending`].
struct Batch {
    buf: Vec<u8>,
    rotations: Vec<(usize, u64)>,
    /// The journal position after it.
    end: u64,
    shutdown: bool,
}

struct Writer {
    dir: Arc<Dir>,
    shared: Arc<Shared>,
    mode: FsyncMode,
    file: Arc<File>,
    /// Keeps synced zeros ahead of `offset` in `file`.
    ahead: Ahead,
    /// Where the next byte goes in `file`.
    offset: u64,
    /// The other half of the double buffer.
    spare: Vec<u8>,
    /// The bytes at `unsynced_at..offset`: written, not known durable.
    unsynced: Vec<u8>,
    unsynced_at: u64,
    /// How far the segment is known synced (what the next mark says).
    synced: u64,
    last_sync: Instant,
}

impl Writer {
    fn run(&mut self) {
        self.serve();
        // Whatever still waits was not written (at shutdown after a
        // failure), and nothing will be from now on.
        self.shared.fail(closed());
        self.shared.stop_answering();
    }

    fn serve(&mut self) {
        loop {
            let batch = self.take();
            if !self.write_batch(&batch) {
                // Only at shutdown: what was not written was not acknowledged.
                return;
            }
            let mut buf = batch.buf;
            buf.clear();
            self.spare = buf;
            if batch.shutdown && self.shared.pending.lock().buf.is_empty() {
                return;
            }
        }
    }

    /// Waits for work and takes it.
    fn take(&mut self) -> Batch {
        let mut p = self.shared.pending.lock();
        p.writer = Waiting::Idle;
        while p.buf.is_empty() && p.rotations.is_empty() && !p.shutdown {
            match self.mode {
                FsyncMode::Interval(d) if !self.unsynced.is_empty() => {
                    let left = d.saturating_sub(self.last_sync.elapsed());
                    if left.is_zero() || self.shared.wake.wait_for(&mut p, left).timed_out() {
                        break;
                    }
                }
                _ => self.shared.wake.wait(&mut p),
            }
        }
        p.writer = Waiting::Busy;
        if self.mode == FsyncMode::Always {
            self.gather(&mut p);
        }
        p.taken_waiters = std::mem::take(&mut p.waiters);
        p.taken_end = p.appended;
        let buf = std::mem::replace(&mut p.buf, std::mem::take(&mut self.spare));
        Batch { buf, rotations: std::mem::take(&mut p.rotations), end: p.appended, shutdown: p.shutdown }
    }

    /// Writes a batch (starting the segments it asks for), syncs it if the
    /// mode says so, and answers the requests it covers.
    fn write_batch(&mut self, batch: &Batch) -> bool {
        let shutdown = batch.shutdown;
        let mut start = 0;
        for &(at, n) in &batch.rotations {
            // The old segment is complete on disk before the new one exists.
            if !(self.write(&batch.buf[start..at], shutdown) && self.switch_to(n, shutdown)) {
                return false;
            }
            start = at;
        }
        if !self.write(&batch.buf[start..], shutdown) {
            return false;
        }
        let sync = !self.unsynced.is_empty()
            && (shutdown
                || match self.mode {
                    FsyncMode::Always => true,
                    FsyncMode::Interval(d) => self.last_sync.elapsed() >= d,
                    FsyncMode::Never => false,
                });
        if sync {
            if !self.sync(shutdown) {
                return false;
            }
        } else if self.mode == FsyncMode::Never {
            // Never synced, never written again: a write is as far as it goes.
            self.unsynced.clear();
            self.unsynced_at = self.offset;
        }
        self.shared.advance(batch.end);
        if shutdown {
            let _ = self.trim();
        }
        true
    }

    /// Writes `bytes`, after a sync mark, at the end of the segment.
    fn write(&mut self, bytes: &[u8], shutdown: bool) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let from = self.unsynced.len();
        // In `never` mode nothing is synced, so a hole anywhere is damage.
        let durable = if self.mode == FsyncMode::Never { self.offset } else { self.synced };
        append_mark(&mut self.unsynced, durable);
        self.unsynced.extend_from_slice(bytes);
        let at = self.offset;
        let end = at + (self.unsynced.len() - from) as u64;
        self.ahead.claim(end);
        let r = self.dir.disk.write_at(&self.file, &self.unsynced[from..], at);
        match r {
            Ok(()) => {
                self.wrote(end, (end - at) as usize);
                true
            }
            Err(e) => self.recover(e, shutdown),
        }
    }

    fn wrote(&mut self, end: u64, bytes: usize) {
        let st = &self.shared.stats;
        st.batches.fetch_add(1, Ordering::Relaxed);
        st.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.shared.since_rotation.fetch_add(end.saturating_sub(self.offset), Ordering::Relaxed);
        self.offset = self.offset.max(end);
    }

    /// Syncs the segment: everything written is then durable.
    fn sync(&mut self, shutdown: bool) -> bool {
        match self.shared.timed_sync(&*self.dir.disk, &self.file) {
            Ok(()) => {
                self.synced_all();
                true
            }
            // `recover` syncs what it writes again.
            Err(e) => self.recover(e, shutdown),
        }
    }

    fn synced_all(&mut self) {
        self.last_sync = Instant::now();
        self.synced = self.offset;
        self.unsynced.clear();
        self.unsynced_at = self.offset;
    }

    /// After a failed write or sync: refuses changes, then writes every
    /// byte not known durable again, and syncs them unless the mode never
    /// does, until that works. Gives up (false) only when shutting down:
    /// when the batch was taken at shutdown, or when a close comes while
    /// it retries (else a close during a full disk would wait forever).
    fn recover(&mut self, first: std::io::Error, shutdown: bool) -> bool {
        error!(dir = %self.dir.path().display(), error = %first, "journal write failed; refusing changes and retrying");
        self.shared.fail(refusal(&first));
        let sync = self.mode != FsyncMode::Never;
        loop {
            let at = self.unsynced_at;
            let end = at + self.unsynced.len() as u64;
            self.ahead.claim(end);
            let r = self.dir.disk.write_at(&self.file, &self.unsynced, at).and_then(|()| {
                if sync {
                    self.shared.timed_sync(&*self.dir.disk, &self.file)
                } else {
                    Ok(())
                }
            });
            match r {
                Ok(()) => {
                    self.wrote(end, self.unsynced.len());
                    if sync {
                        self.synced_all();
                    }
                    self.shared.pending.lock().failing = None;
                    info!(dir = %self.dir.path().display(), "journal writes succeed again");
                    return true;
                }
                Err(e) => {
                    if shutdown || self.shared.pending.lock().shutdown {
                        error!(error = %e, "giving up on unwritten journal records at shutdown; none was acknowledged");
                        return false;
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
    }

    /// Waits a little for the batch to serve as many requests as the
    /// previous one.
    ///
    /// Closed-loop clients fall into step with the syncs: the requests
    /// answered by one sync come back together a moment later. Syncing at
    /// the first of them would split the group in two, each half then
    /// waiting for the other's sync; waiting (at most [`GATHER`]) for as
    /// many waiting requests as the last batch had keeps them in one sync.
    /// Requests, not records, are counted: one request may seal several
    /// records. Under steady load a larger batch arrives during the sync
    /// itself, so this waits only when requests are late. (MySQL's
    /// `binlog_group_commit_sync_no_delay_count` is the same idea.)
    fn gather(&self, p: &mut parking_lot::MutexGuard<'_, Pending>) {
        // The previous batch's waiters, late ones included.
        let short = |p: &Pending| p.waiters < p.taken_waiters && !p.shutdown;
        if !short(p) {
            return;
        }
        let deadline = Instant::now() + GATHER;
        p.writer = Waiting::Gathering;
        while short(p) {
            if self.shared.wake.wait_until(p, deadline).timed_out() {
                break;
            }
        }
        p.writer = Waiting::Busy;
    }

    /// Syncs everything and cuts the zeros off the current segment, so
    /// only the last segment can end in zeros.
    fn trim(&mut self) -> std::io::Result<()> {
        self.ahead.retire();
        if self.file.metadata()?.len() > self.offset {
            self.file.set_len(self.offset)?;
        }
        self.file.sync_all()
    }

    /// Ends the current segment (synced and trimmed) and starts segment `n`.
    fn switch_to(&mut self, n: u64, shutdown: bool) -> bool {
        loop {
            match self.trim().and_then(|()| self.dir.open_segment(n)) {
                Ok((file, offset)) => {
                    self.file = Arc::new(file);
                    self.ahead.resume(self.file.clone(), offset);
                    self.offset = offset;
                    self.unsynced.clear();
                    self.unsynced_at = offset;
                    self.synced = offset;
                    self.last_sync = Instant::now();
                    self.shared.since_rotation.store(offset, Ordering::Relaxed);
                    return true;
                }
                Err(e) => {
                    if !self.recover(e, shutdown) {
                        return false;
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
    }
}
