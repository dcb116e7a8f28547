//! Chaining: a finished unit's `output` becomes units of its spec's `then`.

use cborrpc::value::{bytes, int, text, tuple};
use cborrpc::Value;

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// A map output creates one unit per entry in the `then` spec.
pub async fn chain_map_output<C: Coordinate>(c: &C, _clock: &MockClock) {
    finish_with_output(c, "b", map(&[("x", data(1)), ("y", data(2))])).await;
    let units = c.get_work_units("b", UnitQuery::default()).await.unwrap();
    assert_eq!(units, vec![(UnitKey::text("x"), data(1)), (UnitKey::text("y"), data(2))]);
    assert_eq!(counts(c, "b").await, count_map(&[(UnitStatus::Available, 2)]));
}

/// A list of keys creates units with empty data; unparseable items are skipped.
pub async fn chain_list_of_keys<C: Coordinate>(c: &C, _clock: &MockClock) {
    let output = list(vec![text("x"), int(5), list(vec![text("z")]), bytes(b"y".to_vec())]);
    finish_with_output(c, "b", output).await;
    let units = c.get_work_units("b", UnitQuery::default()).await.unwrap();
    assert_eq!(units, vec![(UnitKey::text("x"), map(&[])), (UnitKey::bytes(*b"y"), map(&[]))]);
}

/// A list of [key, data] items (lists or tuples) creates units with that data.
pub async fn chain_list_of_pairs<C: Coordinate>(c: &C, _clock: &MockClock) {
    let output = list(vec![list(vec![text("x"), data(1)]), tuple(vec![text("y"), data(2)])]);
    finish_with_output(c, "b", output).await;
    let units = c.get_work_units("b", UnitQuery::default()).await.unwrap();
    assert_eq!(units, vec![(UnitKey::text("x"), data(1)), (UnitKey::text("y"), data(2))]);
}

/// [key, data, {priority, delay}] items honour the priority and the delay.
pub async fn chain_items_with_meta<C: Coordinate>(c: &C, clock: &MockClock) {
    let output = list(vec![
        list(vec![text("x"), data(1), map(&[("priority", int(5))])]),
        list(vec![text("y"), data(2), map(&[("delay", int(30))])]),
        list(vec![text("z"), data(3)]),
    ]);
    finish_with_output(c, "b", output).await;
    assert_eq!(counts(c, "b").await, count_map(&[(UnitStatus::Available, 2), (UnitStatus::Delayed, 1)]));
    assert_eq!(keys_of(&work_from(c, "w", "b", 10).await), ["x", "z"]);
    clock.advance(31.0);
    assert_eq!(keys_of(&work_from(c, "w", "b", 10).await), ["y"]);
}

/// [key, data, meta, priority] items take the fourth element as the priority.
pub async fn chain_items_with_priority<C: Coordinate>(c: &C, _clock: &MockClock) {
    let output = list(vec![
        list(vec![text("x"), map(&[]), Value::Null, int(1)]),
        list(vec![text("y"), map(&[]), map(&[]), Value::Float(7.5)]),
        list(vec![text("z"), map(&[]), map(&[("priority", int(100))]), int(2)]),
        list(vec![text("w"), map(&[]), Value::Null, Value::Null]),
    ]);
    finish_with_output(c, "b", output).await;
    assert_eq!(hand_out_order(c, "b").await, ["y", "z", "x", "w"]);
}

/// A map output with a non-map value creates nothing.
pub async fn chain_map_with_a_bad_value_creates_nothing<C: Coordinate>(c: &C, _clock: &MockClock) {
    finish_with_output(c, "b", map(&[("x", data(1)), ("y", int(3))])).await;
    assert_eq!(counts(c, "b").await, count_map(&[]));
}

/// Chaining to a missing spec is ignored and the finish still succeeds.
pub async fn chain_to_a_missing_spec_is_ignored<C: Coordinate>(c: &C, _clock: &MockClock) {
    finish_with_output(c, "ghost", list(vec![text("x")])).await;
    assert_eq!(c.get_work_spec("ghost").await, Err(Error::NoSuchWorkSpec("ghost".into())));
    assert_eq!(counts(c, "b").await, count_map(&[]));
    assert_eq!(counts(c, "a").await, count_map(&[(UnitStatus::Finished, 1)]));
}

/// Only a finish chains: failing, expiring or renewing with output does not.
pub async fn chain_only_on_finish<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("a", &[("then", text("b"))])).await.unwrap();
    c.set_work_spec(spec("b", &[])).await.unwrap();
    add_keys(c, "a", &["f", "r", "x"]).await;
    work_from(c, "w", "a", 3).await;
    let out = |k: &str| map(&[("output", list(vec![text(k)]))]);
    assert!(set_status(c, "a", "f", UnitStatus::Failed, Some(out("f"))).await);
    assert!(renew(c, "a", "r", 100.0, Some(out("r"))).await);
    assert!(set_status(c, "a", "x", UnitStatus::Available, Some(out("x"))).await);
    assert_eq!(counts(c, "b").await, count_map(&[]));
    assert!(set_status(c, "a", "r", UnitStatus::Finished, None).await);
    assert_eq!(unit_keys(c, "b", UnitQuery::default()).await, ["r"]);
}

/// Chaining reads `output` from the final data: the attempt's, else the unit's.
pub async fn chain_uses_the_final_data<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("a", &[("then", text("b"))])).await.unwrap();
    c.set_work_spec(spec("b", &[])).await.unwrap();
    let own = map(&[("output", list(vec![text("from_unit")]))]);
    c.add_work_units("a", vec![NewUnit::new(b"u".to_vec(), own)]).await.unwrap();
    work_from(c, "w", "a", 1).await;
    assert!(set_status(c, "a", "u", UnitStatus::Finished, None).await);
    assert_eq!(unit_keys(c, "b", UnitQuery::default()).await, ["from_unit"]);
    add_keys(c, "a", &["v"]).await;
    work_from(c, "w", "a", 1).await;
    assert!(renew(c, "a", "v", 100.0, Some(map(&[("output", list(vec![text("from_renew")]))]))).await);
    assert!(set_status(c, "a", "v", UnitStatus::Finished, None).await);
    assert_eq!(unit_keys(c, "b", UnitQuery::default()).await, ["from_renew", "from_unit"]);
}

/// Chained units upsert: a finished unit in the target spec becomes available again.
pub async fn chain_upserts_into_the_target<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("b", &[])).await.unwrap();
    add_keys(c, "b", &["x"]).await;
    work_from(c, "w", "b", 1).await;
    assert!(set_status(c, "b", "x", UnitStatus::Finished, Some(data(9))).await);
    finish_with_output(c, "b", map(&[("x", data(1))])).await;
    let i = info(c, "b", "x").await;
    assert_eq!((i.status, i.worker_id), (UnitStatus::Available, None));
    assert_eq!(unit_data(c, "b", "x").await, data(1));
}
