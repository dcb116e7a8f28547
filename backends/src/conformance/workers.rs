//! Workers: heartbeats, expiry, unregistering and parent/child listings.

use std::collections::BTreeMap;

use cborrpc::value::{int, text};

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// Heartbeats show in the worker lists, counts, info and stats.
pub async fn heartbeat_lists_the_worker<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.worker_heartbeat(heartbeat("w1", "RUN", 60.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("w2", "IDLE", 60.0, None)).await.unwrap();
    let modes: BTreeMap<String, String> =
        [("w1", "RUN"), ("w2", "IDLE")].iter().map(|(w, m)| (w.to_string(), m.to_string())).collect();
    assert_eq!(c.list_worker_modes().await.unwrap(), modes);
    let by_mode: BTreeMap<String, u64> = [("IDLE".to_string(), 1), ("RUN".to_string(), 1)].into();
    assert_eq!(c.mode_counts().await.unwrap(), by_mode);
    assert_eq!(c.get_worker_info("w1").await.unwrap(), Some(map(&[("worker_id", text("w1"))])));
    assert_eq!(c.get_worker_info("nobody").await.unwrap(), None);
    let stats = WorkerStats { num_workers: 2, num_children: 0, num_expirable: 2 };
    assert_eq!(c.worker_stats().await.unwrap(), stats);
    let mut again = heartbeat("w1", "IDLE", 60.0, None);
    again.data = map(&[("pid", int(7))]);
    c.worker_heartbeat(again).await.unwrap();
    assert_eq!(c.mode_counts().await.unwrap(), [("IDLE".to_string(), 2)].into());
    assert_eq!(c.get_worker_info("w1").await.unwrap(), Some(map(&[("pid", int(7))])));
}

/// An unregistered worker leaves the live lists.
pub async fn unregistered_worker_is_not_listed<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.worker_heartbeat(heartbeat("w1", "RUN", 60.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("w2", "RUN", 60.0, None)).await.unwrap();
    c.worker_unregister("w1").await.unwrap();
    assert_eq!(c.list_worker_modes().await.unwrap(), [("w2".to_string(), "RUN".to_string())].into());
    assert_eq!(c.mode_counts().await.unwrap(), [("RUN".to_string(), 1)].into());
    assert_eq!(c.worker_stats().await.unwrap().num_workers, 1);
    c.worker_heartbeat(heartbeat("w1", "RUN", 60.0, None)).await.unwrap();
    assert_eq!(c.worker_stats().await.unwrap().num_workers, 2);
}

/// A worker whose heartbeat expired leaves the live lists.
pub async fn expired_worker_is_not_listed<C: Coordinate>(c: &C, clock: &MockClock) {
    c.worker_heartbeat(heartbeat("w1", "RUN", 10.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("w2", "IDLE", 100.0, None)).await.unwrap();
    clock.advance(9.0);
    assert_eq!(c.worker_stats().await.unwrap().num_workers, 2);
    clock.advance(2.0);
    assert_eq!(c.list_worker_modes().await.unwrap(), [("w2".to_string(), "IDLE".to_string())].into());
    assert_eq!(c.mode_counts().await.unwrap(), [("IDLE".to_string(), 1)].into());
    let stats = WorkerStats { num_workers: 1, num_children: 0, num_expirable: 1 };
    assert_eq!(c.worker_stats().await.unwrap(), stats);
    c.worker_heartbeat(heartbeat("w1", "RUN", 10.0, None)).await.unwrap();
    assert_eq!(c.worker_stats().await.unwrap().num_workers, 2);
}

/// A child's pending units are listed under its parent; a child without any has an empty list.
pub async fn child_work_units_are_listed_under_the_parent<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.worker_heartbeat(heartbeat("p", "RUN", 600.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("c1", "RUN", 600.0, Some("p"))).await.unwrap();
    c.worker_heartbeat(heartbeat("c2", "RUN", 600.0, Some("p"))).await.unwrap();
    assert_eq!(c.worker_stats().await.unwrap(), WorkerStats { num_workers: 3, num_children: 2, num_expirable: 3 });
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    assert_eq!(keys_of(&work_leased(c, "c1", 100.0).await), ["a"]);
    let children = c.get_child_work_units("p").await.unwrap();
    let unit = ChildUnit {
        spec: "s".into(),
        key: UnitKey::bytes(*b"a"),
        data: data(0),
        worker_id: "c1".into(),
        expires: c.now().plus_secs(100.0),
    };
    let want: BTreeMap<String, Vec<ChildUnit>> = [("c1".to_string(), vec![unit]), ("c2".to_string(), vec![])].into();
    assert_eq!(children, want);
    assert!(c.get_child_work_units("c1").await.unwrap().is_empty());
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    let empty: BTreeMap<String, Vec<ChildUnit>> = [("c1".to_string(), vec![]), ("c2".to_string(), vec![])].into();
    assert_eq!(c.get_child_work_units("p").await.unwrap(), empty);
}

/// A child's units leave the parent's list once their lease has expired.
pub async fn child_work_units_drop_expired_leases<C: Coordinate>(c: &C, clock: &MockClock) {
    c.worker_heartbeat(heartbeat("p", "RUN", 600.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("c1", "RUN", 600.0, Some("p"))).await.unwrap();
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work_leased(c, "c1", 10.0).await;
    assert_eq!(c.get_child_work_units("p").await.unwrap()["c1"].len(), 1);
    clock.advance(11.0);
    assert_eq!(c.get_child_work_units("p").await.unwrap(), [("c1".to_string(), vec![])].into());
}

/// An empty-string parent means no parent.
pub async fn empty_parent_means_no_parent<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.worker_heartbeat(heartbeat("w", "RUN", 60.0, Some(""))).await.unwrap();
    assert_eq!(c.worker_stats().await.unwrap(), WorkerStats { num_workers: 1, num_children: 0, num_expirable: 1 });
    assert_eq!(c.list_worker_modes().await.unwrap(), [("w".to_string(), "RUN".to_string())].into());
    assert!(c.get_child_work_units("").await.unwrap().is_empty());
}

/// list_workers: live workers by id, paged, with mode, data, parent,
/// times, and the units each holds (the first HELD_UNITS_LISTED by spec
/// and key, and how many).
pub async fn list_workers_shows_live_workers_and_their_units<C: Coordinate>(c: &C, clock: &MockClock) {
    let t0 = c.now();
    c.worker_heartbeat(heartbeat("w2", "RUN", 60.0, Some("w1"))).await.unwrap();
    c.worker_heartbeat(heartbeat("w1", "IDLE", 60.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("w3", "RUN", 10.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("gone", "RUN", 60.0, None)).await.unwrap();
    c.worker_unregister("gone").await.unwrap();
    c.set_work_spec(spec("s", &[])).await.unwrap();
    c.set_work_spec(spec("t", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    add_keys(c, "t", &["x"]).await;
    work_from(c, "w2", "t", 1).await;
    work_from(c, "w2", "s", 2).await;
    work_from(c, "w1", "s", 1).await;
    assert!(set_status(c, "s", "c", UnitStatus::Finished, None).await);
    let (all, next) = c.list_workers("", 10).await.unwrap();
    assert_eq!(next, None);
    assert_eq!(all.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), ["w1", "w2", "w3"]);
    let w2 = &all[1];
    assert_eq!((w2.mode.as_str(), w2.parent.as_deref()), ("RUN", Some("w1")));
    assert_eq!(w2.data, Some(map(&[("worker_id", text("w2"))])));
    assert_eq!((w2.last_heartbeat, w2.expires), (Some(t0), Some(t0.plus_secs(60.0))));
    let held: Vec<(&str, &[u8])> = w2.held.iter().map(|h| (h.spec.as_str(), h.key.bytes.as_slice())).collect();
    assert_eq!(held, [("s", &b"a"[..]), ("s", b"b"), ("t", b"x")]);
    assert_eq!(w2.held_count, 3);
    assert_eq!(w2.held[0].expires, t0.plus_secs(900.0));
    assert_eq!((all[0].held_count, all[0].held.len()), (0, 0), "w1's unit c is finished");
    assert_eq!(all[2].held_count, 0);
    let (page, next) = c.list_workers("w1", 1).await.unwrap();
    assert_eq!((page.len(), page[0].id.as_str(), next.as_deref()), (1, "w1", Some("w2")));
    let (page, next) = c.list_workers("w2", 5).await.unwrap();
    assert_eq!((page.len(), next), (2, None));
    clock.advance(30.0);
    let (all, _) = c.list_workers("", 10).await.unwrap();
    assert_eq!(all.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), ["w1", "w2"], "w3 expired");
    let keys: Vec<String> = (0..HELD_UNITS_LISTED + 50).map(|i| format!("k{i:03}")).collect();
    add_keys(c, "t", &keys.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(work_from(c, "w1", "t", keys.len()).await.len(), keys.len());
    let (all, _) = c.list_workers("w1", 1).await.unwrap();
    let held: Vec<&[u8]> = all[0].held.iter().map(|h| h.key.bytes.as_slice()).collect();
    let first: Vec<&[u8]> = keys[..HELD_UNITS_LISTED].iter().map(|k| k.as_bytes()).collect();
    assert_eq!((held, all[0].held_count), (first, keys.len() as u64));
}
