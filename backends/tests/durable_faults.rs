//! The durable backend on a disk that fails: writes refused with ENOSPC
//! (a full disk) or syncs failing with EIO, switched on and off by the
//! test through a [`Disk`] that wraps the real one.
//!
//! What must hold: a change the journal cannot take gets an error, never
//! a hang; reads keep answering; later changes are refused before they
//! apply; once the disk works again changes are accepted within seconds;
//! and after close and reopen the state is what the reads showed, with
//! every acknowledged change and none of the refused ones. Closing while
//! the disk is still failing must not hang either.

mod common;

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::durable::{DurableBackend, DurableOptions};
use backends::journal::{Disk, RealDisk};
use backends::model::*;
use backends::{Coordinate, MockClock, Value};

/// The real disk, except that writes (or syncs) fail while `on` is set.
struct FaultyDisk {
    on: Arc<AtomicBool>,
    /// Fail the syncs rather than the writes.
    syncs: bool,
    /// The error: ENOSPC (28) or EIO (5).
    errno: i32,
    failures: AtomicU64,
}

impl FaultyDisk {
    fn fault(&self) -> io::Result<()> {
        if self.on.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        Ok(())
    }
}

impl Disk for FaultyDisk {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.syncs {
            self.fault()?;
        }
        RealDisk.write_at(file, buf, offset)
    }
    fn sync(&self, file: &File) -> io::Result<()> {
        if self.syncs {
            self.fault()?;
        }
        RealDisk.sync(file)
    }
}

/// Clears the fault when dropped, so that a failing assertion ends the
/// test instead of leaving the backend's close waiting on the disk.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn open(dir: &Path, disk: Arc<dyn Disk>, clock: &MockClock) -> DurableBackend {
    let opts = DurableOptions { disk, seed: Some(1), ..DurableOptions::new(dir) };
    DurableBackend::open(opts, Arc::new(clock.clone())).expect("open durable backend")
}

fn spec(name: &str) -> SpecData {
    vec![(Value::Text("name".into()), Value::Text(name.into()))]
}

fn units(keys: &[&str]) -> Vec<NewUnit> {
    keys.iter().map(|k| NewUnit::new(k.as_bytes(), Value::Map(vec![]))).collect()
}

fn finish() -> UnitUpdate {
    UnitUpdate::new(Some(UnitStatus::Finished), 900.0)
}

async fn status(b: &DurableBackend, key: &str) -> Option<UnitStatus> {
    b.get_work_unit_status("s", vec![key.as_bytes().to_vec()]).await.unwrap()[0].as_ref().map(|i| i.status)
}

/// A call that must come back, with an error naming the journal.
async fn refused<T: std::fmt::Debug>(what: &str, call: impl std::future::Future<Output = Result<T>>) {
    let r = tokio::time::timeout(Duration::from_secs(10), call).await.unwrap_or_else(|_| panic!("{what} hung"));
    let e = r.expect_err(what).to_string();
    assert!(e.contains("journal cannot be written"), "{what}: {e}");
}

/// One fault: on, checks, off, recovery, reopen.
async fn disk_fails_then_recovers(syncs: bool, errno: i32) {
    let dir = common::fresh_dir(if syncs { "faults-sync" } else { "faults-write" });
    let clock = MockClock::new();
    let on = Arc::new(AtomicBool::new(false));
    let disk = Arc::new(FaultyDisk { on: on.clone(), syncs, errno, failures: AtomicU64::new(0) });
    let b = open(&dir, disk.clone(), &clock);
    let _clear = ClearOnDrop(on.clone());
    b.set_work_spec(spec("s")).await.unwrap();
    let acked = ["a0", "a1", "a2", "a3", "a4"];
    b.add_work_units("s", units(&acked)).await.unwrap();
    let lease = b.get_work("w1", GetWork::new(1, 900.0)).await.unwrap();
    assert_eq!(lease.len(), 1);
    let leased = String::from_utf8(lease[0].key.bytes.clone()).unwrap();

    on.store(true, Ordering::SeqCst);
    // The first change meets the failing disk: an error, not a hang. It
    // was applied before the write failed, so its record waits in the
    // writer's backlog (unacknowledged, like a reply lost to a timeout).
    refused("add_work_units under the fault", b.add_work_units("s", units(&["x"]))).await;
    assert!(disk.failures.load(Ordering::Relaxed) > 0, "the fault was never hit");
    // Reads go on.
    let counts = b.count_work_units("s").await.expect("count_work_units while the disk fails");
    assert_eq!(counts.values().sum::<u64>(), 6, "{counts:?}");
    assert_eq!(b.get_work_units("s", UnitQuery::default()).await.expect("get_work_units").len(), 6);
    assert_eq!(status(&b, &leased).await, Some(UnitStatus::Pending));
    // Later changes are refused before they apply.
    refused("add_work_units", b.add_work_units("s", units(&["y"]))).await;
    refused("update_work_unit", b.update_work_unit("s", leased.as_bytes(), finish())).await;
    refused("get_work", b.get_work("w2", GetWork::new(5, 900.0))).await;
    refused("set_work_spec", b.set_work_spec(spec("t"))).await;
    assert_eq!(status(&b, "y").await, None, "a refused add was applied");
    assert_eq!(status(&b, &leased).await, Some(UnitStatus::Pending), "a refused finish was applied");
    assert_eq!(b.count_work_units("s").await.unwrap().get(&UnitStatus::Pending), Some(&1), "a refused get_work");
    assert!(b.get_work_spec("t").await.is_err(), "a refused set_work_spec was applied");

    on.store(false, Ordering::SeqCst);
    // Within a few seconds changes are accepted again (each try before
    // the writer's retry succeeds is refused without applying).
    let since = Instant::now();
    loop {
        match b.add_work_units("s", units(&["z"])).await {
            Ok(()) => break,
            Err(e) => {
                assert!(e.to_string().contains("journal cannot be written"), "{e}");
                assert!(since.elapsed() < Duration::from_secs(10), "changes still refused 10 s after the fault: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    eprintln!("  accepted again {} ms after the fault cleared", since.elapsed().as_millis());
    assert_eq!(b.update_work_unit("s", leased.as_bytes(), finish()).await, Ok(true));
    let before = b.digest();
    drop(b);

    let b = open(&dir, Arc::new(RealDisk), &clock);
    assert!(b.digest() == before, "the state read back differs from the state before closing");
    for k in acked.iter().chain(&["z", "x"]) {
        assert!(status(&b, k).await.is_some(), "{k} is gone");
    }
    assert_eq!(status(&b, &leased).await, Some(UnitStatus::Finished));
    assert_eq!(status(&b, "y").await, None);
    assert!(b.get_work_spec("t").await.is_err());
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_full_disk_refuses_changes_keeps_reads_and_recovers() {
    disk_fails_then_recovers(false, 28).await;
}

#[tokio::test]
async fn failing_syncs_refuse_changes_keep_reads_and_recover() {
    disk_fails_then_recovers(true, 5).await;
}

/// Closing (a SIGTERM) while the disk is still full comes back, gives
/// up the unacknowledged backlog, and keeps everything acknowledged.
#[tokio::test]
async fn closing_while_the_disk_is_full_does_not_hang() {
    let dir = common::fresh_dir("faults-close");
    let clock = MockClock::new();
    let on = Arc::new(AtomicBool::new(false));
    let disk = Arc::new(FaultyDisk { on: on.clone(), syncs: false, errno: 28, failures: AtomicU64::new(0) });
    let b = Arc::new(open(&dir, disk, &clock));
    b.set_work_spec(spec("s")).await.unwrap();
    b.add_work_units("s", units(&["a0", "a1"])).await.unwrap();
    on.store(true, Ordering::SeqCst);
    refused("add_work_units under the fault", b.add_work_units("s", units(&["x"]))).await;
    // On a thread of its own: a hung close must fail the test, not hang it.
    let (done, closed) = std::sync::mpsc::channel();
    let closing = b.clone();
    std::thread::spawn(move || {
        closing.close();
        // Let go of the directory's lock before the test reopens it.
        drop(closing);
        let _ = done.send(());
    });
    closed.recv_timeout(Duration::from_secs(10)).expect("close hung while the disk was full");
    drop(b);
    let b = open(&dir, Arc::new(RealDisk), &clock);
    assert_eq!(status(&b, "a0").await, Some(UnitStatus::Available));
    assert_eq!(status(&b, "a1").await, Some(UnitStatus::Available));
    assert_eq!(status(&b, "x").await, None, "no write succeeded while the disk was full");
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}
