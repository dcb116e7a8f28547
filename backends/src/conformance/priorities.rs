//! Unit priorities: the order a spec hands its units out in.

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// Units are handed out by priority, then key.
pub async fn units_by_priority_then_key<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut units: Vec<NewUnit> =
        ["b", "a", "d", "c"].iter().map(|k| NewUnit::new(k.as_bytes().to_vec(), data(0))).collect();
    units[2].priority = 5.0;
    c.add_work_units("s", units).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 10).await), ["d", "a", "b", "c"]);
}

/// Fractional and negative unit priorities order units too.
pub async fn fractional_and_negative_priorities<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let units = [("a", -1.0), ("b", 0.5), ("c", 0.0), ("d", 0.25), ("e", -0.5)]
        .iter()
        .map(|(k, p)| NewUnit { priority: *p, ..NewUnit::new(k.as_bytes().to_vec(), data(0)) })
        .collect();
    c.add_work_units("s", units).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["b", "d", "c", "e", "a"]);
}

/// prioritize_work_units sets or adjusts priorities, ignoring unknown keys.
pub async fn prioritize_set_and_adjust<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    let k = |keys: &[&str]| keys.iter().map(|k| k.as_bytes().to_vec()).collect::<Vec<Key>>();
    c.prioritize_work_units("s", k(&["c", "zz"]), PriorityChange::Set(5.0)).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["c", "a", "b"]);
    c.prioritize_work_units("s", k(&["b"]), PriorityChange::Adjust(10.0)).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["b", "c", "a"]);
    c.prioritize_work_units("s", k(&["b", "c"]), PriorityChange::Adjust(-7.0)).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["b", "a", "c"]);
    c.prioritize_work_units("s", k(&["a", "b", "c"]), PriorityChange::Set(1.0)).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["a", "b", "c"]);
    let r = c.prioritize_work_units("zz", k(&["a"]), PriorityChange::Set(1.0)).await;
    assert_eq!(r, Err(Error::NoSuchWorkSpec("zz".into())));
}

/// Prioritizing a pending unit takes effect when it is available again.
pub async fn prioritize_applies_to_pending_units<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    assert_eq!(keys_of(&work(c, "w", 1).await), ["a"]);
    c.prioritize_work_units("s", vec![b"a".to_vec()], PriorityChange::Adjust(-1.0)).await.unwrap();
    assert_eq!(status(c, "s", "a").await, UnitStatus::Pending);
    assert!(set_status(c, "s", "a", UnitStatus::Available, None).await);
    assert_eq!(hand_out_order(c, "s").await, ["b", "a"]);
}
