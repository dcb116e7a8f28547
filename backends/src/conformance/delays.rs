//! Delayed units wait for their delay, whatever their priority.

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// A delayed unit counts and reports as Delayed and is not handed out until its delay passes.
pub async fn delayed_unit_waits_for_its_delay<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut late = NewUnit::new(b"a".to_vec(), data(0));
    late.delay = 60.0;
    c.add_work_units("s", vec![late]).await.unwrap();
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Delayed, 1)]));
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id), (UnitStatus::Delayed, None));
    assert!(unit_keys(c, "s", in_states(&[UnitStatus::Available])).await.is_empty());
    assert!(work(c, "w", 1).await.is_empty());
    clock.advance(30.0);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Delayed);
    assert!(work(c, "w", 1).await.is_empty());
    clock.advance(31.0);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Available);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Available, 1)]));
    assert_eq!(unit_keys(c, "s", in_states(&[UnitStatus::Available])).await, ["a"]);
    assert_eq!(meta(c, "s").await.available_count, 1);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["a"]);
}

/// A delayed unit, whatever its priority, lets available units go first.
pub async fn delayed_unit_lets_others_go_first<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut late = NewUnit::new(b"a".to_vec(), data(0));
    late.delay = 10.0;
    late.priority = 5.0;
    c.add_work_units("s", vec![late, NewUnit::new(b"b".to_vec(), data(1))]).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 10).await), ["b"]);
    clock.advance(11.0);
    assert_eq!(keys_of(&work(c, "w", 10).await), ["a"]);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Pending, 2)]));
}
