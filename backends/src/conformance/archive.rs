//! Archiving old finished and failed units, and forgetting long-gone workers.

use cborrpc::value::{int, text};
use cborrpc::Value;

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// archive with keep = 1 leaves only the newest finished and the newest failed unit.
pub async fn archive_keeps_the_newest<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d", "e"]).await;
    work(c, "w", 5).await;
    for (k, st) in [("c", UnitStatus::Finished), ("a", UnitStatus::Finished), ("b", UnitStatus::Finished)] {
        assert!(set_status(c, "s", k, st, None).await);
        clock.advance(1.0);
    }
    for k in ["e", "d"] {
        assert!(set_status(c, "s", k, UnitStatus::Failed, None).await);
        clock.advance(1.0);
    }
    add_keys(c, "s", &["x", "y"]).await;
    assert_eq!(keys_of(&work(c, "w", 1).await), ["x"]);
    let removed = c.archive(ArchivePolicy { keep: Some(1), older_than: None }).await.unwrap();
    assert_eq!(removed, 3);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["b", "d", "x", "y"]);
    use UnitStatus::*;
    assert_eq!(counts(c, "s").await, count_map(&[(Available, 1), (Pending, 1), (Finished, 1), (Failed, 1)]));
    assert_eq!(c.archive(ArchivePolicy { keep: Some(0), older_than: None }).await.unwrap(), 2);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["x", "y"]);
}

/// archive with older_than removes only finished and failed units completed that long ago.
pub async fn archive_removes_old_units<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    work(c, "w", 3).await;
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    assert!(set_status(c, "s", "b", UnitStatus::Failed, None).await);
    clock.advance(100.0);
    assert!(set_status(c, "s", "c", UnitStatus::Finished, None).await);
    add_keys(c, "s", &["x", "y"]).await;
    assert_eq!(keys_of(&work_leased(c, "w", 10_000.0).await), ["x"]);
    clock.advance(10.0);
    let removed = c.archive(ArchivePolicy { older_than: Some(50.0), keep: None }).await.unwrap();
    assert_eq!(removed, 2);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["c", "x", "y"]);
    clock.advance(1000.0);
    assert_eq!(c.archive(ArchivePolicy { older_than: Some(50.0), keep: None }).await.unwrap(), 1);
    assert_eq!(c.archive(ArchivePolicy { older_than: Some(0.0), keep: Some(0) }).await.unwrap(), 0);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["x", "y"]);
    assert_eq!(status(c, "s", "x").await, UnitStatus::Pending);
}

/// Records of workers gone for over a day, holding nothing, are dropped;
/// live workers and workers holding units are kept.
pub async fn long_gone_workers_are_forgotten<C: Coordinate>(c: &C, clock: &MockClock) {
    let hb = |w: &str| Heartbeat {
        worker: w.into(),
        mode: "RUN".into(),
        expire_secs: 600.0,
        data: Value::Map(vec![(text("pid"), int(1))]),
        parent: None,
    };
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    c.worker_heartbeat(hb("gone")).await.unwrap();
    c.worker_unregister("gone").await.unwrap();
    c.worker_heartbeat(hb("holder")).await.unwrap();
    assert_eq!(work(c, "holder", 1).await.len(), 1);
    clock.advance(3600.0);
    c.worker_unregister("someone").await.unwrap();
    assert!(c.get_worker_info("gone").await.unwrap().is_some(), "kept within the grace period");
    clock.advance(WORKER_RECORD_GRACE);
    c.get_work("holder", GetWork { lease_secs: 1e9, ..gw() }).await.unwrap();
    c.update_work_unit("s", b"a", UnitUpdate { lease_secs: 1e9, ..upd() }).await.unwrap();
    c.worker_heartbeat(hb("live")).await.unwrap();
    c.worker_unregister("someone-else").await.unwrap();
    assert_eq!(c.get_worker_info("gone").await.unwrap(), None, "forgotten after the grace period");
    assert!(c.get_worker_info("live").await.unwrap().is_some());
    let held = c.get_work_unit_status("s", vec![b"a".to_vec()]).await.unwrap();
    assert_eq!(held[0].as_ref().and_then(|i| i.worker_id.clone()).as_deref(), Some("holder"));
}
