//! What the metrics read at scrape time (`Coordinate::spec_stats`): every
//! spec, with the counts `count_work_units` answers, due leases and delays
//! applied; and, from a backend that keeps counters, events counted once.

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::stats::SpecStats;
use crate::Coordinate;

/// Checks that `spec_stats` lists exactly `names` with their counts.
async fn stats_match_counts<C: Coordinate>(c: &C, names: &[&str]) -> Vec<SpecStats> {
    let stats = c.spec_stats().await.unwrap();
    let listed: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(listed, names);
    for s in &stats {
        let want = counts(c, &s.name).await;
        for status in UnitStatus::ALL {
            assert_eq!(s.count(status), want.get(&status).copied().unwrap_or(0), "{} {status:?}", s.name);
        }
    }
    stats
}

/// Spec stats equal `count_work_units` after adds, hand-outs, finishes,
/// failures, a delay coming due and leases running out.
pub async fn spec_stats_match_counts<C: Coordinate>(c: &C, clock: &MockClock) {
    assert!(c.spec_stats().await.unwrap().is_empty());
    c.set_work_spec(spec("b", &[])).await.unwrap();
    c.set_work_spec(spec("a", &[])).await.unwrap();
    stats_match_counts(c, &["a", "b"]).await;
    add_keys(c, "b", &["u1", "u2", "u3", "u4", "u5"]).await;
    let mut late = NewUnit::new(b"d".to_vec(), data(9));
    late.delay = 30.0;
    c.add_work_units("b", vec![late]).await.unwrap();
    stats_match_counts(c, &["a", "b"]).await;
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["u1"]);
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["u2"]);
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["u3"]);
    assert!(set_status(c, "b", "u1", UnitStatus::Finished, None).await);
    assert!(set_status(c, "b", "u2", UnitStatus::Failed, None).await);
    let s = stats_match_counts(c, &["a", "b"]).await;
    assert_eq!(s[1].counts, [2, 1, 1, 1, 1]);
    // u3's lease runs out and d comes due; nothing else has looked since.
    clock.advance(31.0);
    let s = stats_match_counts(c, &["a", "b"]).await;
    assert_eq!(s[1].counts, [4, 0, 1, 1, 0]);
}

/// A backend that keeps counters counts each event once: adds, hand-outs,
/// finishes, failures, retries (by update or `retry_work_units`),
/// releases, expiries and queue waits, a retried unit's from its retry.
pub async fn spec_stats_counters_count_each_event<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d"]).await;
    let Some(_) = c.spec_stats().await.unwrap()[0].counters else { return };
    clock.advance(2.0);
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["a"]);
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["b"]);
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["c"]);
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    assert!(set_status(c, "s", "b", UnitStatus::Failed, None).await);
    assert!(set_status(c, "s", "b", UnitStatus::Available, None).await);
    clock.advance(11.0);
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["b"]);
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["c"]);
    assert!(set_status(c, "s", "c", UnitStatus::Available, None).await);
    let got = c.spec_stats().await.unwrap()[0].counters.expect("counters");
    let events = [got.added, got.handed_out, got.finished, got.failed, got.retried, got.released, got.expired];
    assert_eq!(events, [4, 5, 1, 1, 1, 1, 1]);
    assert_eq!(got.queue_wait.count(), 5);
    // a, b and c waited 2 s; then b 11 s (retried at t=2, handed out at
    // t=13) and c 1 s (its lease ran out at t=12).
    assert_eq!(got.queue_wait.sum_micros, 18_000_000);
    // b fails again at t=13 and is retried at t=16: it waits from then.
    assert!(set_status(c, "s", "b", UnitStatus::Failed, None).await);
    clock.advance(3.0);
    assert_eq!(c.retry_work_units("s", None).await.unwrap(), 1);
    clock.advance(4.0);
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["b"]);
    let got = c.spec_stats().await.unwrap()[0].counters.expect("counters");
    let events = [got.added, got.handed_out, got.finished, got.failed, got.retried, got.released, got.expired];
    assert_eq!(events, [4, 6, 1, 2, 2, 1, 1]);
    assert_eq!(got.queue_wait.count(), 6);
    assert_eq!(got.queue_wait.sum_micros, 22_000_000);
}
