//! The choice of a spec in `get_work`: pause, runtimes, caps, names,
//! priority, then weights.

use cborrpc::value::{int, text};
use cborrpc::Value;

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// Paused specs are never chosen.
pub async fn scheduler_skips_paused_specs<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("p", &[("disabled", Value::Bool(true)), ("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("q", &[])).await.unwrap();
    add_keys(c, "p", &["p1", "p2", "p3"]).await;
    add_keys(c, "q", &["q1", "q2", "q3"]).await;
    for _ in 0..3 {
        assert_eq!(work(c, "w", 1).await[0].spec, "q");
    }
    assert!(work(c, "w", 1).await.is_empty());
}

/// Only specs whose runtime is requested are chosen; the default runtime list is [""].
pub async fn scheduler_matches_runtimes<C: Coordinate>(c: &C, _clock: &MockClock) {
    assert_eq!(gw().runtimes, vec![String::new()]);
    c.set_work_spec(spec("go", &[("runtime", text("go")), ("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("py", &[])).await.unwrap();
    add_keys(c, "go", &["g1", "g2"]).await;
    add_keys(c, "py", &["p1"]).await;
    assert_eq!(keys_of(&work(c, "w", 10).await), ["p1"]);
    assert!(work(c, "w", 10).await.is_empty());
    let go = GetWork { max_jobs: 10, runtimes: vec!["go".into()], ..gw() };
    assert_eq!(keys_of(&c.get_work("w", go).await.unwrap()), ["g1", "g2"]);
}

/// Specs at max_running are skipped even when they have the top priority.
pub async fn scheduler_skips_specs_at_max_running<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("hi", &[("priority", int(1)), ("max_running", int(1))])).await.unwrap();
    c.set_work_spec(spec("lo", &[])).await.unwrap();
    add_keys(c, "hi", &["h1", "h2"]).await;
    add_keys(c, "lo", &["l1", "l2"]).await;
    assert_eq!(keys_of(&work(c, "w", 1).await), ["h1"]);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["l1"]);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["l2"]);
    assert!(work(c, "w", 1).await.is_empty());
}

/// Specs whose weight was set to ≤ 0 are never chosen.
pub async fn scheduler_skips_specs_without_weight<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("z", &[("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("n", &[("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("ok", &[])).await.unwrap();
    add_keys(c, "z", &["z1"]).await;
    add_keys(c, "n", &["n1"]).await;
    add_keys(c, "ok", &["o1", "o2"]).await;
    c.control_work_spec("z", SpecControl { weight: Some(0), ..SpecControl::default() }).await.unwrap();
    c.control_work_spec("n", SpecControl { weight: Some(-3), ..SpecControl::default() }).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 1).await), ["o1"]);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["o2"]);
    assert!(work(c, "w", 1).await.is_empty());
    c.control_work_spec("z", SpecControl { weight: Some(1), ..SpecControl::default() }).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 1).await), ["z1"]);
}

/// Only specs named in work_spec_names are chosen; unknown names are ignored.
pub async fn scheduler_honours_work_spec_names<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("a", &[("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("b", &[])).await.unwrap();
    add_keys(c, "a", &["a1", "a2"]).await;
    add_keys(c, "b", &["b1", "b2"]).await;
    let named = |names: &[&str]| GetWork { work_spec_names: names.iter().map(|n| n.to_string()).collect(), ..gw() };
    for k in ["b1", "b2"] {
        let grants = c.get_work("w", named(&["b", "nosuch"])).await.unwrap();
        assert_eq!((grants[0].spec.as_str(), keys_of(&grants)), ("b", vec![k.to_string()]));
    }
    assert!(c.get_work("w", named(&["b"])).await.unwrap().is_empty());
    assert!(c.get_work("w", named(&["nosuch"])).await.unwrap().is_empty());
    assert_eq!(counts(c, "a").await, count_map(&[(UnitStatus::Available, 2)]));
}

/// A higher spec priority always wins over a larger weight while it has work.
pub async fn scheduler_priority_beats_weight<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("hi", &[("priority", int(1)), ("weight", int(1))])).await.unwrap();
    c.set_work_spec(spec("lo", &[("weight", int(1000))])).await.unwrap();
    let keys: Vec<String> = (0..20).map(|i| format!("{i:02}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    add_keys(c, "hi", &keys).await;
    add_keys(c, "lo", &keys).await;
    for _ in 0..20 {
        assert_eq!(work(c, "w", 1).await[0].spec, "hi");
    }
    assert_eq!(work(c, "w", 1).await[0].spec, "lo");
}

/// Weighted choice brings the pending counts of weights 1 and 2 close to 1:2.
pub async fn scheduler_pending_counts_follow_weights<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("one", &[("weight", int(1))])).await.unwrap();
    c.set_work_spec(spec("two", &[("weight", int(2))])).await.unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("{i:03}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    add_keys(c, "one", &keys).await;
    add_keys(c, "two", &keys).await;
    for _ in 0..300 {
        assert_eq!(work(c, "w", 1).await.len(), 1);
    }
    let (one, two) = (meta(c, "one").await.pending_count, meta(c, "two").await.pending_count);
    assert_eq!(one + two, 300);
    let ratio = two as f64 / one.max(1) as f64;
    assert!((1.8..=2.2).contains(&ratio), "pending {one} vs {two}");
}
