//! Request counters and latencies, per method, in a fixed array of
//! atomics indexed by [`Method`]: recording a request costs two clock
//! reads and three relaxed atomic additions, with no lookup, allocation or
//! formatting. The scrape copies the array out ([`RequestStats::snapshot`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::error::ErrorKind;
use crate::method::Method;

/// Outcome labels: `ok`, then each [`ErrorKind`] at `1 + kind as usize`.
pub(super) const OUTCOMES: [&str; 6] = ["ok", "invalid_request", "not_found", "conflict", "unavailable", "internal"];

/// Upper bounds of the latency buckets, in nanoseconds: 10 µs to 10 s.
pub(super) const LATENCY_BOUNDS_NANOS: [u64; 14] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
    50_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// Slots: one per method, then one for unknown method names.
const SLOTS: usize = Method::ALL.len() + 1;

/// The label of slot `i`.
pub(super) fn slot_name(i: usize) -> &'static str {
    Method::ALL.get(i).map_or("unknown", |m| m.name())
}

fn outcome_index(err: Option<ErrorKind>) -> usize {
    match err {
        None => 0,
        Some(k) => {
            1 + match k {
                ErrorKind::InvalidRequest => 0,
                ErrorKind::NotFound => 1,
                ErrorKind::Conflict => 2,
                ErrorKind::Unavailable => 3,
                ErrorKind::Internal => 4,
            }
        }
    }
}

/// One method's counters, on its own cache line so that workers calling
/// different methods do not contend.
#[repr(align(64))]
#[derive(Default)]
struct Slot {
    outcomes: [AtomicU64; OUTCOMES.len()],
    /// Non-cumulative; the last bucket is over the largest bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

/// Counters of the requests served and of the open connections.
pub struct RequestStats {
    slots: Box<[Slot; SLOTS]>,
    connections: AtomicI64,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats { slots: Box::new(std::array::from_fn(|_| Slot::default())), connections: AtomicI64::new(0) }
    }
}

impl std::fmt::Debug for RequestStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStats").field("connections", &self.connections.load(Relaxed)).finish_non_exhaustive()
    }
}

impl RequestStats {
    /// Records one request of `method` (`None`: an unknown name) that
    /// started at `started` and failed with `err`, if it failed.
    pub fn record(&self, method: Option<Method>, err: Option<ErrorKind>, started: Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let slot = &self.slots[method.map_or(SLOTS - 1, |m| m as usize)];
        slot.outcomes[outcome_index(err)].fetch_add(1, Relaxed);
        let b = LATENCY_BOUNDS_NANOS.iter().position(|&b| nanos <= b).unwrap_or(LATENCY_BOUNDS_NANOS.len());
        slot.buckets[b].fetch_add(1, Relaxed);
        slot.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Counts a request whose handler panicked (outcome `internal`; its
    /// duration is not known, so the latency histogram leaves it out).
    pub fn record_panic(&self, method: Option<Method>) {
        let slot = &self.slots[method.map_or(SLOTS - 1, |m| m as usize)];
        slot.outcomes[outcome_index(Some(ErrorKind::Internal))].fetch_add(1, Relaxed);
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn open_connection(&self) -> OpenConnection<'_> {
        self.connections.fetch_add(1, Relaxed);
        OpenConnection(&self.connections)
    }

    /// Connections open now.
    pub fn connections(&self) -> i64 {
        self.connections.load(Relaxed)
    }

    /// A copy of every slot's counters.
    pub(super) fn snapshot(&self) -> Vec<SlotSnapshot> {
        let load = |a: &AtomicU64| a.load(Relaxed);
        self.slots
            .iter()
            .map(|s| SlotSnapshot {
                outcomes: s.outcomes.each_ref().map(load),
                buckets: s.buckets.each_ref().map(load),
                sum_nanos: load(&s.sum_nanos),
            })
            .collect()
    }
}

/// An open connection, counted until dropped ([`RequestStats::open_connection`]).
#[must_use = "the connection counts as open only while this lives"]
pub struct OpenConnection<'a>(&'a AtomicI64);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// One slot's counters at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotSnapshot {
    /// Requests per outcome ([`OUTCOMES`]).
    pub outcomes: [u64; OUTCOMES.len()],
    /// Latency buckets, non-cumulative ([`LATENCY_BOUNDS_NANOS`], then over).
    pub buckets: [u64; LATENCY_BOUNDS_NANOS.len() + 1],
    /// Total latency.
    pub sum_nanos: u64,
}

impl SlotSnapshot {
    /// Requests counted, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.outcomes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_land_in_their_method_and_outcome() {
        let r = RequestStats::default();
        let t = Instant::now();
        r.record(Some(Method::GetWork), None, t);
        r.record(Some(Method::GetWork), Some(ErrorKind::NotFound), t);
        r.record(None, Some(ErrorKind::InvalidRequest), t);
        let s = r.snapshot();
        let gw = &s[Method::GetWork as usize];
        assert_eq!(gw.outcomes, [1, 0, 1, 0, 0, 0]);
        assert_eq!(gw.buckets.iter().sum::<u64>(), 2);
        assert_eq!(s[SLOTS - 1].outcomes[1], 1);
        r.record_panic(Some(Method::GetWork));
        let gw = &r.snapshot()[Method::GetWork as usize];
        assert_eq!((gw.outcomes[5], gw.requests(), gw.buckets.iter().sum::<u64>()), (1, 3, 2));
        assert_eq!(slot_name(SLOTS - 1), "unknown");
        assert_eq!(slot_name(Method::GetWork as usize), "get_work");
    }

    #[test]
    fn connections_count_while_open() {
        let r = RequestStats::default();
        let a = r.open_connection();
        let b = r.open_connection();
        assert_eq!(r.connections(), 2);
        drop(a);
        assert_eq!(r.connections(), 1);
        drop(b);
        assert_eq!(r.connections(), 0);
    }
}
