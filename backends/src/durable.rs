//! The durable embedded backend, the daemon's default: the memory
//! backend's indexes, plus a journal of every change in a data directory.
//!
//! * **A reply means written.** Each locked section of the memory backend
//!   hands its records to the journal in order (see `memory::persist`);
//!   a mutating call then waits until the journal is durable past what it
//!   appended. Reads never wait.
//! * **Refusing beats lying.** While the journal cannot be written (a full
//!   disk, an I/O error) mutating calls are refused before they change
//!   anything; reads go on; the writer retries its backlog and the backend
//!   accepts changes again once a write succeeds.
//! * **Snapshots without a stall.** When the journal since the last
//!   snapshot outgrows both [`DurableOptions::snapshot_after`] and the
//!   last snapshot, a background thread starts a new segment under the
//!   state lock and copies the state into a snapshot in small locked
//!   chunks; then older files are deleted. Records are idempotent results,
//!   so the new segment replayed over the copy lands on the exact state.
//! * **Recovery** loads the newest snapshot and replays the segments
//!   after it. A torn tail (a record the crash cut short, never
//!   acknowledged) is cut off with a log line; damage followed by valid
//!   records stops the start with the file and offset, unless
//!   [`DurableOptions::truncate_corrupt`] says to discard from there.
//!   Leases keep their expiry times, so a unit pending at the crash stays
//!   pending until its lease runs out.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{error, info, warn};

use crate::clock::{Clock, Time};
use crate::journal::frame::{append_frame, check_header, scan, End, FileKind, FILE_HEADER, JOURNAL_VERSION};
use crate::journal::{Dir, Disk, FsyncMode, Journal, RealDisk};
use crate::locks::{LockAnswer, LockCall, LockLimits};
use crate::memory::{Cursor, MemoryBackend, Sink};
use crate::model::*;
use crate::stats::SpecStats;
use crate::{Coordinate, Value};

/// How the durable backend is opened.
#[derive(Clone)]
pub struct DurableOptions {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// When a reply may go out relative to the disk.
    pub fsync: FsyncMode,
    /// Journal bytes since the last snapshot that start a new one (when
    /// they also exceed the last snapshot's size).
    pub snapshot_after: u64,
    /// Start even if a journal is damaged in the middle, discarding
    /// everything from the damage on.
    pub truncate_corrupt: bool,
    /// The file operations (tests inject faults here).
    pub disk: Arc<dyn Disk>,
    /// Seed of the scheduler's random draws (tests); `None` seeds randomly.
    pub seed: Option<u64>,
}

impl DurableOptions {
    /// Defaults for a directory: sync always, snapshot after 64 MiB.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DurableOptions {
            dir: dir.into(),
            fsync: FsyncMode::Always,
            snapshot_after: 64 << 20,
            truncate_corrupt: false,
            disk: Arc::new(RealDisk),
            seed: None,
        }
    }
}

struct JournalSink(Arc<Journal>);

impl Sink for JournalSink {
    fn append(&self, payload: &[u8]) {
        self.0.append(payload);
    }
}

/// The durable [`Coordinate`] backend.
pub struct DurableBackend {
    mem: Arc<MemoryBackend>,
    dir: Arc<Dir>,
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
    snapshotter: Mutex<Option<JoinHandle<()>>>,
    /// Held while a snapshot is written: the background one and
    /// [`DurableBackend::snapshot_now`] must not interleave their cuts.
    snapshotting: Arc<Mutex<()>>,
}

/// Why a directory could not be opened.
fn fail(msg: impl Into<String>) -> Error {
    Error::Backend(msg.into())
}

impl DurableBackend {
    /// Opens (or creates) a data directory and recovers its state.
    pub fn open(opts: DurableOptions, clock: Arc<dyn Clock>) -> Result<DurableBackend> {
        let started = Instant::now();
        let dir = Arc::new(
            Dir::open(&opts.dir, opts.disk.clone())
                .map_err(|e| fail(format!("cannot open data directory {}: {e}", opts.dir.display())))?,
        );
        let mem = Arc::new(match opts.seed {
            Some(seed) => MemoryBackend::with_seed(clock, seed),
            None => MemoryBackend::new(clock),
        });
        let io = |e: std::io::Error| fail(format!("data directory {}: {e}", dir.path().display()));
        let listing = dir.list().map_err(io)?;
        let mut snapshot_size = 0;
        let base = match listing.snapshots.last() {
            Some(&n) => {
                snapshot_size = load_snapshot(&dir, n, &mem)?;
                n
            }
            None => listing.segments.first().copied().unwrap_or(1),
        };
        let segments: Vec<u64> = listing.segments.iter().copied().filter(|&s| s >= base).collect();
        for (i, &s) in segments.iter().enumerate() {
            if s != base + i as u64 {
                return Err(fail(format!(
                    "data directory {}: journal segment {} is missing (found {:?}); refusing to start",
                    dir.path().display(),
                    base + i as u64,
                    segments
                )));
            }
        }
        let mut records = 0;
        for (i, &s) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            match replay_segment(&dir, s, last, opts.truncate_corrupt, &mem)? {
                Replayed::Records(n) => records += n,
                Replayed::Truncated(n) => {
                    records += n;
                    // Everything after a deliberate truncation goes too.
                    for &later in &segments[i + 1..] {
                        std::fs::remove_file(dir.file(FileKind::Journal, later)).map_err(io)?;
                    }
                    break;
                }
            }
        }
        dir.remove_below(base).map_err(io)?;
        // Appends go on in the newest segment left (a deliberate truncation
        // removes the ones after the damage).
        let mut current =
            segments.iter().rev().copied().find(|&s| dir.file(FileKind::Journal, s).exists()).unwrap_or(base);
        if segment_version(&dir, current).map_err(io)?.is_some_and(|v| v < JOURNAL_VERSION) {
            // Appends follow the current format, which an older segment's
            // header does not announce: they go to a new segment.
            current += 1;
        }
        let journal = Arc::new(Journal::start(dir.clone(), current, opts.fsync).map_err(io)?);
        mem.restore_locks().map_err(|e| fail(format!("data directory {}: {e}", dir.path().display())))?;
        mem.attach(Arc::new(JournalSink(journal.clone())));
        info!(
            dir = %dir.path().display(),
            snapshot = base,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "durable store recovered"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let snapshotting = Arc::new(Mutex::new(()));
        let snapshotter = {
            let (mem, journal, stop, dir) = (mem.clone(), journal.clone(), stop.clone(), dir.clone());
            let (after, busy) = (opts.snapshot_after, snapshotting.clone());
            std::thread::Builder::new()
                .name("snapshotter".into())
                .spawn(move || snapshot_loop(&dir, &mem, &journal, &stop, &busy, after, snapshot_size))
                .map_err(io)?
        };
        Ok(DurableBackend { mem, dir, journal, stop, snapshotter: Mutex::new(Some(snapshotter)), snapshotting })
    }

    /// Runs a mutating call: refused while the journal is failing, and
    /// answered only once its records are durable.
    async fn write<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        if let Some(e) = self.journal.error() {
            return Err(fail(e.to_string()));
        }
        let r = call.await?;
        self.journal.wait_appended().await.map_err(|e| fail(e.to_string()))?;
        Ok(r)
    }

    /// A canonical encoding of the whole state, equal for equal states
    /// (tests compare it across a restart).
    pub fn digest(&self) -> Vec<u8> {
        self.mem.digest()
    }

    /// Writes a snapshot now (tests; the daemon's snapshots are driven by
    /// journal growth). Returns its size.
    pub fn snapshot_now(&self) -> std::io::Result<u64> {
        let _one = self.snapshotting.lock();
        write_snapshot(&self.dir, &self.mem, &self.journal)
    }

    /// Stops the snapshotter and writes out the journal's backlog.
    pub fn close(&self) {
        if self.stop.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(t) = self.snapshotter.lock().take() {
            let _ = t.join();
        }
        self.journal.close();
        let st = self.journal.stats();
        let syncs = st.syncs.load(Ordering::Relaxed);
        info!(
            batches = st.batches.load(Ordering::Relaxed),
            bytes = st.bytes.load(Ordering::Relaxed),
            syncs,
            mean_sync_us = st.sync_micros.load(Ordering::Relaxed) / syncs.max(1),
            "journal closed"
        );
    }
}

impl Drop for DurableBackend {
    fn drop(&mut self) {
        self.close();
    }
}

/// The format version in segment `n`'s header, if it has one.
fn segment_version(dir: &Dir, n: u64) -> std::io::Result<Option<u32>> {
    use std::io::Read;
    let mut header = [0u8; FILE_HEADER];
    match std::fs::File::open(dir.file(FileKind::Journal, n)) {
        Ok(mut f) => match f.read_exact(&mut header) {
            Ok(()) => Ok(check_header(FileKind::Journal, &header).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Loads snapshot `n`; returns its size in bytes.
fn load_snapshot(dir: &Dir, n: u64, mem: &MemoryBackend) -> Result<u64> {
    let path = dir.file(FileKind::Snapshot, n);
    let bytes = std::fs::read(&path).map_err(|e| fail(format!("cannot read snapshot {}: {e}", path.display())))?;
    let bad = |why: String| fail(format!("snapshot {} is damaged: {why}; refusing to start", path.display()));
    check_header(FileKind::Snapshot, &bytes).map_err(bad)?;
    let (frames, end) = scan(&bytes, false);
    if end != End::Clean {
        return Err(bad(format!("{end:?}")));
    }
    let mut complete = false;
    for f in frames {
        complete = mem.replay(&bytes[f.clone()]).map_err(|e| bad(format!("{e} at offset {}", f.start)))?;
    }
    if !complete {
        return Err(bad("it has no end marker".into()));
    }
    Ok(bytes.len() as u64)
}

enum Replayed {
    Records(u64),
    /// Cut short deliberately ([`DurableOptions::truncate_corrupt`]).
    Truncated(u64),
}

fn replay_segment(dir: &Dir, n: u64, last: bool, truncate_corrupt: bool, mem: &MemoryBackend) -> Result<Replayed> {
    let path = dir.file(FileKind::Journal, n);
    let shown = path.display();
    let bytes = std::fs::read(&path).map_err(|e| fail(format!("cannot read journal {shown}: {e}")))?;
    let cut = |at: usize| -> Result<()> {
        let f = std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| {
            f.set_len(at as u64)?;
            f.sync_all()
        });
        f.map_err(|e| fail(format!("cannot truncate journal {shown}: {e}")))
    };
    if bytes.len() < FILE_HEADER && last {
        // Created but its header never made it: start it afresh.
        cut(0)?;
        return Ok(Replayed::Records(0));
    }
    let version = check_header(FileKind::Journal, &bytes)
        .map_err(|why| fail(format!("journal {shown}: {why}; refusing to start")))?;
    let (frames, end) = scan(&bytes, version >= 2);
    let mut count = 0;
    for f in &frames {
        mem.replay(&bytes[f.clone()]).map_err(|e| {
            fail(format!("journal {shown} has an unreadable record at offset {}: {e}; refusing to start", f.start))
        })?;
        count += 1;
    }
    match end {
        End::Clean => Ok(Replayed::Records(count)),
        // Space the writer reserved ahead of its writes: a clean end.
        End::TornTail { offset, .. } if bytes[offset..].iter().all(|&b| b == 0) => {
            cut(offset)?;
            Ok(Replayed::Records(count))
        }
        End::TornTail { offset, reason } | End::UnsyncedHole { offset, reason } if last => {
            let what = if matches!(end, End::TornTail { .. }) {
                "journal ends in a torn record (a write cut short by a crash, never acknowledged); cutting it off"
            } else {
                "journal has a hole after its last sync (pages a power loss kept out of order, never acknowledged); \
                 cutting it off there"
            };
            warn!(journal = %shown, offset, cut_bytes = bytes.len() - offset, reason, "{what}");
            cut(offset)?;
            Ok(Replayed::Records(count))
        }
        End::TornTail { offset, reason } | End::UnsyncedHole { offset, reason } | End::Corrupt { offset, reason } => {
            if truncate_corrupt {
                error!(journal = %shown, offset, reason, "journal damaged; discarding it from here on as --truncate-corrupt-journal asks");
                cut(offset)?;
                return Ok(Replayed::Truncated(count));
            }
            Err(fail(format!(
                "journal {shown} is damaged at offset {offset} ({reason}) and valid records follow; refusing to start. \
                 Restore the data directory from a backup, or start with --truncate-corrupt-journal to discard \
                 everything from that offset on"
            )))
        }
    }
}

fn snapshot_loop(
    dir: &Dir,
    mem: &MemoryBackend,
    journal: &Journal,
    stop: &AtomicBool,
    busy: &Mutex<()>,
    after: u64,
    mut last: u64,
) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if journal.since_rotation() <= after.max(last) || journal.error().is_some() {
            continue;
        }
        let one = busy.lock();
        let written = write_snapshot(dir, mem, journal);
        drop(one);
        match written {
            Ok(size) => last = size,
            Err(e) => {
                error!(error = %e, "snapshot failed; the journal is kept and the snapshot will be tried again");
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
}

/// Cuts the journal, copies the state in chunks, then drops the files the
/// snapshot replaces. Returns the snapshot's size.
fn write_snapshot(dir: &Dir, mem: &MemoryBackend, journal: &Journal) -> std::io::Result<u64> {
    let started = Instant::now();
    let (n, pos) = mem.with_lock(|| journal.rotate());
    journal.wait_blocking(pos).map_err(|e| std::io::Error::other(e.to_string()))?;
    let size = dir.write_snapshot(n, |w| {
        let mut cursor = Cursor::default();
        let (mut body, mut frame) = (Vec::new(), Vec::new());
        loop {
            body.clear();
            frame.clear();
            let more = mem.snapshot_chunk(&mut cursor, &mut body);
            append_frame(&mut frame, &body);
            w.write_all(&frame)?;
            if !more {
                return Ok(());
            }
        }
    })?;
    dir.remove_below(n)?;
    info!(snapshot = n, bytes = size, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot written");
    Ok(size)
}

impl Coordinate for DurableBackend {
    async fn list_work_specs(&self, start: &str, limit: usize) -> Result<(Vec<SpecData>, Option<String>)> {
        self.mem.list_work_specs(start, limit).await
    }
    async fn set_work_spec(&self, data: SpecData) -> Result<()> {
        self.write(self.mem.set_work_spec(data)).await
    }
    async fn del_work_spec(&self, name: &str) -> Result<()> {
        self.write(self.mem.del_work_spec(name)).await
    }
    async fn clear(&self) -> Result<usize> {
        self.write(self.mem.clear()).await
    }
    async fn get_work_spec(&self, name: &str) -> Result<SpecData> {
        self.mem.get_work_spec(name).await
    }
    async fn get_work_spec_meta(&self, name: &str) -> Result<SpecMeta> {
        self.mem.get_work_spec_meta(name).await
    }
    async fn control_work_spec(&self, name: &str, control: SpecControl) -> Result<()> {
        self.write(self.mem.control_work_spec(name, control)).await
    }
    async fn add_work_units(&self, spec: &str, units: Vec<NewUnit>) -> Result<()> {
        self.write(self.mem.add_work_units(spec, units)).await
    }
    async fn get_work_units(&self, spec: &str, query: UnitQuery) -> Result<Vec<(UnitKey, Value)>> {
        self.mem.get_work_units(spec, query).await
    }
    async fn get_work_unit_status(&self, spec: &str, keys: Vec<Key>) -> Result<Vec<Option<UnitStatusInfo>>> {
        self.mem.get_work_unit_status(spec, keys).await
    }
    async fn prioritize_work_units(&self, spec: &str, keys: Vec<Key>, change: PriorityChange) -> Result<()> {
        self.write(self.mem.prioritize_work_units(spec, keys, change)).await
    }
    async fn count_work_units(&self, spec: &str) -> Result<BTreeMap<UnitStatus, u64>> {
        self.mem.count_work_units(spec).await
    }
    async fn del_work_units(&self, spec: &str, query: DelQuery) -> Result<u64> {
        self.write(self.mem.del_work_units(spec, query)).await
    }
    async fn retry_work_units(&self, spec: &str, keys: Option<Vec<Key>>) -> Result<u64> {
        self.write(self.mem.retry_work_units(spec, keys)).await
    }
    async fn archive(&self, policy: ArchivePolicy) -> Result<u64> {
        self.write(self.mem.archive(policy)).await
    }
    async fn get_work(&self, worker: &str, options: GetWork) -> Result<Vec<WorkGrant>> {
        self.write(self.mem.get_work(worker, options)).await
    }
    async fn update_work_unit(&self, spec: &str, key: &[u8], update: UnitUpdate) -> Result<bool> {
        self.write(self.mem.update_work_unit(spec, key, update)).await
    }
    async fn worker_heartbeat(&self, heartbeat: Heartbeat) -> Result<()> {
        self.write(self.mem.worker_heartbeat(heartbeat)).await
    }
    async fn worker_unregister(&self, worker: &str) -> Result<()> {
        self.write(self.mem.worker_unregister(worker)).await
    }
    async fn list_worker_modes(&self) -> Result<BTreeMap<String, String>> {
        self.mem.list_worker_modes().await
    }
    async fn get_worker_info(&self, worker: &str) -> Result<Option<Value>> {
        self.mem.get_worker_info(worker).await
    }
    async fn list_workers(&self, start: &str, limit: usize) -> Result<(Vec<WorkerInfo>, Option<String>)> {
        self.mem.list_workers(start, limit).await
    }
    async fn mode_counts(&self) -> Result<BTreeMap<String, u64>> {
        self.mem.mode_counts().await
    }
    async fn worker_stats(&self) -> Result<WorkerStats> {
        self.mem.worker_stats().await
    }
    async fn get_child_work_units(&self, worker: &str) -> Result<BTreeMap<String, Vec<ChildUnit>>> {
        self.mem.get_child_work_units(worker).await
    }
    fn now(&self) -> Time {
        self.mem.now()
    }
    async fn lock_call(&self, call: &LockCall, limits: &LockLimits) -> Result<LockAnswer> {
        if call.writes() {
            self.write(self.mem.lock_call(call, limits)).await
        } else {
            self.mem.lock_call(call, limits).await
        }
    }
    async fn spec_stats(&self) -> Result<Vec<SpecStats>> {
        self.mem.spec_stats().await
    }
}
