//! What the daemon's metrics read from a backend at scrape time: each
//! spec's unit counts by status, and the counters of what happened to its
//! units (`jobserver::metrics` renders them).
//!
//! Counters count events since the process started, as Prometheus
//! counters do; replaying a journal counts nothing. They are kept where
//! the event already is: the memory backend holds them as plain integers
//! in each spec, bumped under the lock the change already holds, so a
//! request pays a few additions and no lookup. Backends that keep none
//! answer `None` and the metrics leave those series out.

use crate::model::UnitStatus;

/// Upper bounds of the queue-wait buckets, in microseconds: 1 ms to a day.
pub const QUEUE_WAIT_BOUNDS_MICROS: [u64; 14] = [
    1_000,
    10_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    900_000_000,
    3_600_000_000,
    14_400_000_000,
    86_400_000_000,
];

/// A histogram of waits over [`QUEUE_WAIT_BOUNDS_MICROS`]; the last
/// bucket counts what is over the largest bound. Buckets are not
/// cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitHistogram {
    /// Observations per bucket.
    pub buckets: [u64; QUEUE_WAIT_BOUNDS_MICROS.len() + 1],
    /// Sum of the observations, in microseconds.
    pub sum_micros: u64,
}

impl WaitHistogram {
    /// Records one wait (negative waits count as zero).
    pub fn observe(&mut self, micros: i64) {
        let m = micros.max(0) as u64;
        let i = QUEUE_WAIT_BOUNDS_MICROS.iter().position(|&b| m <= b).unwrap_or(QUEUE_WAIT_BOUNDS_MICROS.len());
        self.buckets[i] += 1;
        self.sum_micros = self.sum_micros.saturating_add(m);
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// What happened to a spec's units since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpecCounters {
    /// Units added or replaced: `add_work_units`, a finished unit's
    /// chained output, a continuous spec's synthetic units.
    pub added: u64,
    /// Units handed out by `get_work`.
    pub handed_out: u64,
    /// Units finished.
    pub finished: u64,
    /// Units failed, by a worker or for running out of retries.
    pub failed: u64,
    /// Finished or failed units made available again.
    pub retried: u64,
    /// Pending units a worker gave back before finishing them.
    pub released: u64,
    /// Leases that ran out.
    pub expired: u64,
    /// Time from a unit becoming available (added, released, expired,
    /// retried, or its delay over) to `get_work` handing it out.
    pub queue_wait: WaitHistogram,
}

/// One spec as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecStats {
    /// The spec's name.
    pub name: String,
    /// Units per status, indexed by `UnitStatus as usize` (the order of
    /// [`UnitStatus::ALL`]); equal to what `count_work_units` answers.
    pub counts: [u64; 5],
    /// The counters, if the backend keeps them.
    pub counters: Option<SpecCounters>,
}

impl SpecStats {
    /// Units in `status`.
    pub fn count(&self, status: UnitStatus) -> u64 {
        self.counts[status as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_land_in_the_first_bucket_that_holds_them() {
        let mut h = WaitHistogram::default();
        h.observe(-5);
        h.observe(1_000);
        h.observe(1_001);
        h.observe(i64::MAX);
        h.observe(i64::MAX);
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[QUEUE_WAIT_BOUNDS_MICROS.len()], 2);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_micros, u64::MAX, "the sum saturates");
    }

    #[test]
    fn counts_are_indexed_by_status() {
        for (i, s) in UnitStatus::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }
}
