//! Continuous specs: the synthetic unit made when a spec runs dry.

use cborrpc::value::int;
use cborrpc::Value;

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// An idle continuous spec yields one synthetic unit keyed by the current time.
pub async fn continuous_spec_yields_a_synthetic_unit<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("c", &[("continuous", Value::Bool(true))])).await.unwrap();
    let grants = work(c, "w", 5).await;
    assert_eq!(grants, vec![WorkGrant { spec: "c".into(), key: UnitKey::text("1444000000.000"), data: map(&[]) }]);
    assert_eq!(status(c, "c", "1444000000.000").await, UnitStatus::Pending);
    assert!(set_status(c, "c", "1444000000.000", UnitStatus::Finished, None).await);
    clock.advance(2.5);
    assert_eq!(keys_of(&work(c, "w", 5).await), ["1444000002.500"]);
    assert_eq!(counts(c, "c").await, count_map(&[(UnitStatus::Pending, 1), (UnitStatus::Finished, 1)]));
}

/// No synthetic unit is made while a unit is pending or available.
pub async fn continuous_waits_for_pending_and_available_units<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("c", &[("continuous", Value::Bool(true))])).await.unwrap();
    add_keys(c, "c", &["x"]).await;
    assert_eq!(keys_of(&work(c, "w", 5).await), ["x"]);
    clock.advance(1.0);
    assert!(work(c, "w", 5).await.is_empty());
    assert!(set_status(c, "c", "x", UnitStatus::Finished, None).await);
    assert_eq!(keys_of(&work(c, "w", 5).await), ["1444000001.000"]);
    clock.advance(1.0);
    assert!(work(c, "w", 5).await.is_empty());
    assert_eq!(counts(c, "c").await, count_map(&[(UnitStatus::Pending, 1), (UnitStatus::Finished, 1)]));
}

/// `interval` gates the next synthetic unit until the clock passes it.
pub async fn continuous_interval_gates_synthetic_units<C: Coordinate>(c: &C, clock: &MockClock) {
    let data = spec("c", &[("continuous", Value::Bool(true)), ("interval", int(60))]);
    c.set_work_spec(data.clone()).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 1).await), ["1444000000.000"]);
    assert!(set_status(c, "c", "1444000000.000", UnitStatus::Finished, None).await);
    clock.advance(1.0);
    assert!(work(c, "w", 1).await.is_empty());
    clock.advance(58.0);
    assert!(work(c, "w", 1).await.is_empty());
    clock.advance(1.5);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["1444000060.500"]);
    assert!(set_status(c, "c", "1444000060.500", UnitStatus::Finished, None).await);
    clock.advance(1.0);
    assert!(work(c, "w", 1).await.is_empty());
    c.set_work_spec(data).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 1).await), ["1444000061.500"]);
}

/// Paused, switched-off and non-continuous specs get no synthetic units.
pub async fn continuous_needs_a_running_continuous_spec<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("plain", &[])).await.unwrap();
    c.set_work_spec(spec("paused", &[("continuous", Value::Bool(true)), ("disabled", Value::Bool(true))]))
        .await
        .unwrap();
    c.set_work_spec(spec("off", &[("continuous", Value::Bool(true))])).await.unwrap();
    let on = |b| SpecControl { continuous: Some(b), ..SpecControl::default() };
    c.control_work_spec("off", on(false)).await.unwrap();
    c.control_work_spec("plain", on(true)).await.unwrap();
    assert!(work(c, "w", 1).await.is_empty());
    c.control_work_spec("off", on(true)).await.unwrap();
    assert_eq!(work(c, "w", 1).await[0].spec, "off");
}
