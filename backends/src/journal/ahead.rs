//! Zeroed space ahead of the journal writer.
//!
//! `fdatasync` after a write into blocks the file already has costs one
//! data flush. A write that grows the file, or lands in space `fallocate`
//! reserved (ext4 keeps such extents marked unwritten and must convert
//! them), also commits a metadata change through the filesystem's own
//! journal first. On this project's disk (ext4 on virtio), 4 KiB writes
//! each followed by `fdatasync` took 363 µs appended, 244 µs into
//! `fallocate`d space and 165 µs into zeros written and synced beforehand
//! (`bench/fsync-probe.py`; the writer's batches are a few KiB under
//! load, so most syncs reach a new page). So a helper thread keeps about
//! [`LEAD`] bytes of real zeros ahead of the writer, synced, a [`CHUNK`]
//! at a time, off the path of any request. (Ad hoc, two 64-worker drains
//! each way: the writer's mean sync fell from 527-587 µs to 363-422 µs.)
//!
//! The one rule: zeros never land on journal bytes. Both threads move one
//! frontier under a lock: the writer raises it to the end of each write
//! before writing, and the zeroer writes only above it, announcing the
//! range it is writing so a writer that caught up waits for that write
//! (never for a sync). A zeroer that falls behind, or cannot write (a full
//! disk), costs only speed: the writer then grows the file itself.
//!
//! Recovery already accepts zeros after the last record of the newest
//! segment; older segments are trimmed to their last record at rotation,
//! after the zeroer has let go of them ([`Ahead::retire`]).

use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use tracing::debug;

use super::dir::Disk;
use super::writer::RETRY;

/// How far ahead of the writer the zeroer keeps zeros.
const LEAD: u64 = 8 << 20;

/// Bytes of zeros per write (and sync) of the zeroer.
const CHUNK: usize = 1 << 20;

#[derive(Default)]
struct State {
    /// The segment being appended to; `None` while it is switched.
    file: Option<Arc<File>>,
    /// Journal bytes or zeros (written or being written) end here.
    frontier: u64,
    /// Where the writer's last write ended.
    written: u64,
    /// The range the zeroer is writing now.
    zeroing: Option<(u64, u64)>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    disk: Arc<dyn Disk>,
}

/// The zeroer thread of one journal. Dropping it stops the thread.
pub(super) struct Ahead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Ahead {
    /// Starts zeroing after `offset` in `file`.
    pub(super) fn start(disk: Arc<dyn Disk>, file: Arc<File>, offset: u64) -> std::io::Result<Ahead> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { file: Some(file), frontier: offset, written: offset, ..State::default() }),
            wake: Condvar::new(),
            disk,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("journal-zeroer".into()).spawn(move || s.run())?;
        Ok(Ahead { shared, thread: Some(thread) })
    }

    /// Called before the writer writes up to `end`: no zeros land below it
    /// from now on, and none is being written there when this returns.
    pub(super) fn claim(&self, end: u64) {
        let mut s = self.shared.state.lock();
        while matches!(s.zeroing, Some((from, _)) if from < end) {
            self.shared.wake.wait(&mut s);
        }
        s.frontier = s.frontier.max(end);
        s.written = end;
        if s.frontier < end + LEAD / 2 {
            self.shared.wake.notify_all();
        }
    }

    /// Lets go of the current file (before the writer trims it): no zero
    /// is written to it once this returns.
    pub(super) fn retire(&self) {
        let mut s = self.shared.state.lock();
        s.file = None;
        while s.zeroing.is_some() {
            self.shared.wake.wait(&mut s);
        }
    }

    /// Zeroes ahead in a new segment, after `offset`.
    pub(super) fn resume(&self, file: Arc<File>, offset: u64) {
        let mut s = self.shared.state.lock();
        s.file = Some(file);
        s.frontier = offset;
        s.written = offset;
        self.shared.wake.notify_all();
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn run(&self) {
        let zeros = vec![0u8; CHUNK];
        loop {
            let (file, from, to) = {
                let mut s = self.state.lock();
                loop {
                    if s.stop {
                        return;
                    }
                    match &s.file {
                        Some(f) if s.frontier < s.written + LEAD => {
                            let (f, from) = (f.clone(), s.frontier);
                            let to = from + CHUNK as u64;
                            s.frontier = to;
                            s.zeroing = Some((from, to));
                            break (f, from, to);
                        }
                        _ => self.wake.wait(&mut s),
                    }
                }
            };
            let wrote = self.disk.write_at(&file, &zeros, from);
            {
                self.state.lock().zeroing = None;
                self.wake.notify_all();
            }
            // The sync makes the new blocks and the file's size durable, so
            // the writer's own syncs in this range flush data only.
            if let Err(e) = wrote.and_then(|()| self.disk.sync(&file)) {
                // The writer grows the file itself meanwhile; its own
                // failures are what requests see.
                debug!(error = %e, from, to, "cannot zero journal space ahead; retrying");
                std::thread::sleep(RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::RealDisk;

    /// A writer appending fast, past the zeroer's lead several times and
    /// across a switch of files: every byte it wrote reads back, and the
    /// file holds only zeros after it.
    #[test]
    fn zeros_never_land_on_written_bytes() {
        let dir = std::env::temp_dir().join(format!("coord-ahead-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let open = |name: &str| {
            let mut f = std::fs::OpenOptions::new();
            Arc::new(f.read(true).write(true).create(true).truncate(true).open(dir.join(name)).unwrap())
        };
        let disk: Arc<dyn Disk> = Arc::new(RealDisk);
        let first = open("a");
        let ahead = Ahead::start(disk.clone(), first.clone(), 0).unwrap();
        let write = |file: &File, ahead: &Ahead, total: u64| {
            let mut at = 0u64;
            let mut n = 0u8;
            while at < total {
                let len = 1 + (n as u64 * 7919) % 40_000;
                n = n.wrapping_add(1);
                let buf = vec![n | 1; len as usize];
                ahead.claim(at + len);
                disk.write_at(file, &buf, at).unwrap();
                at += len;
            }
            at
        };
        let end_a = write(&first, &ahead, 3 * LEAD);
        ahead.retire();
        let second = open("b");
        ahead.resume(second.clone(), 0);
        let end_b = write(&second, &ahead, LEAD + 12345);
        // Give the zeroer time to run ahead of the last write.
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(ahead);
        for (name, end) in [("a", end_a), ("b", end_b)] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            assert!(bytes.len() as u64 >= end, "{name}: file shorter than what was written");
            assert!(bytes[..end as usize].iter().all(|&b| b & 1 == 1), "{name}: zeros inside written bytes");
            assert!(bytes[end as usize..].iter().all(|&b| b == 0), "{name}: not zeros after the end");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
