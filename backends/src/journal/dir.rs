//! The data directory: lock, names, listing, and the file operations the
//! writer goes through.
//!
//! ```text
//! DIR/LOCK              held (flock) while a daemon has the directory open
//! DIR/journal.000007    journal segment 7
//! DIR/snapshot.000007   the state as of the start of segment 7
//! ```
//!
//! Recovery loads the newest snapshot `N` and replays segments `N`, `N+1`,
//! … in order; anything numbered below the newest snapshot is garbage and
//! is deleted. File operations that can fail with a full disk go through
//! [`Disk`], so tests inject faults without filling a real disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{file_header, FileKind};

/// Writes and syncs on an open file. The real one is [`RealDisk`].
pub trait Disk: Send + Sync + 'static {
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync(&self, file: &File) -> io::Result<()>;
}

/// The operating system's file operations.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }
    fn sync(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}

/// An open, locked data directory.
pub struct Dir {
    path: PathBuf,
    pub(crate) disk: Arc<dyn Disk>,
    /// Holds the lock for as long as the directory is open.
    _lock: File,
}

/// File numbers present in a directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    pub snapshots: Vec<u64>,
    pub segments: Vec<u64>,
}

fn name(kind: FileKind, n: u64) -> String {
    match kind {
        FileKind::Journal => format!("journal.{n:06}"),
        FileKind::Snapshot => format!("snapshot.{n:06}"),
    }
}

impl Dir {
    /// Creates the directory if needed and takes its lock; fails at once
    /// if another process holds it.
    pub fn open(path: &Path, disk: Arc<dyn Disk>) -> io::Result<Dir> {
        fs::create_dir_all(path)?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(path.join("LOCK"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{} is in use by another coordinated (its LOCK file is held)", path.display()),
                ))
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(Dir { path: path.to_owned(), disk, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of file `n` of a kind.
    pub fn file(&self, kind: FileKind, n: u64) -> PathBuf {
        self.path.join(name(kind, n))
    }

    /// Snapshots and segments present, each sorted ascending. Leftover
    /// temporary snapshot files are deleted.
    pub fn list(&self) -> io::Result<Listing> {
        let mut l = Listing::default();
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let parse = |p: &str| name.strip_prefix(p).and_then(|n| n.parse::<u64>().ok());
            if let Some(n) = parse("journal.") {
                l.segments.push(n);
            } else if let Some(n) = parse("snapshot.") {
                l.snapshots.push(n);
            }
        }
        l.snapshots.sort_unstable();
        l.segments.sort_unstable();
        Ok(l)
    }

    /// Syncs the directory itself, so creations and renames survive.
    pub fn sync(&self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()
    }

    /// Opens segment `n` for appending, creating it (with its header) if
    /// it does not exist. Returns the file and the offset to append at.
    pub fn open_segment(&self, n: u64) -> io::Result<(File, u64)> {
        let path = self.file(FileKind::Journal, n);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            return Ok((file, len));
        }
        let header = file_header(FileKind::Journal);
        self.disk.write_at(&file, &header, 0)?;
        self.disk.sync(&file)?;
        self.sync()?;
        Ok((file, header.len() as u64))
    }

    /// Writes a snapshot: `fill` streams its body into a temporary file,
    /// which is synced and renamed into place. A crash leaves either the
    /// old set of files or the new one.
    pub fn write_snapshot(&self, n: u64, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<u64> {
        let tmp = self.path.join(format!("{}.tmp", name(FileKind::Snapshot, n)));
        let file = File::create(&tmp)?;
        let mut w = io::BufWriter::with_capacity(1 << 20, file);
        w.write_all(&file_header(FileKind::Snapshot))?;
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        self.disk.sync(&file)?;
        let size = file.metadata()?.len();
        fs::rename(&tmp, self.file(FileKind::Snapshot, n))?;
        self.sync()?;
        Ok(size)
    }

    /// Deletes every snapshot and segment numbered below `n`.
    pub fn remove_below(&self, n: u64) -> io::Result<()> {
        let l = self.list()?;
        for s in l.snapshots.into_iter().filter(|&s| s < n) {
            fs::remove_file(self.file(FileKind::Snapshot, s))?;
        }
        for s in l.segments.into_iter().filter(|&s| s < n) {
            fs::remove_file(self.file(FileKind::Journal, s))?;
        }
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused() {
        let tmp = tempdir();
        let _a = Dir::open(&tmp, Arc::new(RealDisk)).unwrap();
        let err = Dir::open(&tmp, Arc::new(RealDisk)).err().expect("second open refused");
        assert!(err.to_string().contains("in use by another coordinated"), "{err}");
        drop(_a);
        Dir::open(&tmp, Arc::new(RealDisk)).expect("open after release");
        let _ = fs::remove_dir_all(&tmp);
    }

    #[test]
    fn listing_sorts_and_drops_temporaries() {
        let tmp = tempdir();
        let d = Dir::open(&tmp, Arc::new(RealDisk)).unwrap();
        for n in [3, 1, 2] {
            d.open_segment(n).unwrap();
        }
        d.write_snapshot(2, |w| w.write_all(b"x")).unwrap();
        fs::write(tmp.join("snapshot.000009.tmp"), b"partial").unwrap();
        assert_eq!(d.list().unwrap(), Listing { snapshots: vec![2], segments: vec![1, 2, 3] });
        assert!(!tmp.join("snapshot.000009.tmp").exists());
        d.remove_below(2).unwrap();
        assert_eq!(d.list().unwrap(), Listing { snapshots: vec![2], segments: vec![2, 3] });
        let _ = fs::remove_dir_all(&tmp);
    }

    pub(crate) fn tempdir() -> PathBuf {
        let p = std::env::temp_dir().join(format!("coord-dir-test-{}", uuid_like()));
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn uuid_like() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
    }
}
