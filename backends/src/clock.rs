//! Time, behind a trait so tests can move it by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A point in time: microseconds since the Unix epoch.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub i64);

impl Time {
    /// From (possibly fractional) Unix seconds.
    pub fn from_secs_f64(s: f64) -> Time {
        Time((s * 1e6) as i64)
    }
    /// Whole Unix seconds (floor).
    pub fn unix_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    /// Milliseconds within the second.
    pub fn subsec_millis(self) -> i64 {
        self.0.rem_euclid(1_000_000) / 1000
    }
    /// Unix seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// This time plus `secs` seconds (may be negative), saturating.
    pub fn plus_secs(self, secs: f64) -> Time {
        let d = (secs * 1e6).clamp(i64::MIN as f64, i64::MAX as f64) as i64;
        Time(self.0.saturating_add(d))
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Time;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Time(d.as_micros() as i64)
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct MockClock(Arc<AtomicI64>);

impl MockClock {
    /// A clock at a fixed, realistic start time (2015-10-05).
    pub fn new() -> Self {
        MockClock(Arc::new(AtomicI64::new(1_444_000_000_000_000)))
    }
    /// Moves the clock forward by `secs` seconds.
    pub fn advance(&self, secs: f64) {
        self.0.fetch_add((secs * 1e6) as i64, Ordering::SeqCst);
    }
}

impl Default for MockClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MockClock {
    fn now(&self) -> Time {
        Time(self.0.load(Ordering::SeqCst))
    }
}
