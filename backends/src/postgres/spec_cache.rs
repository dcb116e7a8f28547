//! The spec list the coalesced claims choose from, reused for a few
//! milliseconds.
//!
//! Every claim batch (`claim`) needs the spec list with each spec's
//! available and pending counts. Reading it is a round trip of its own
//! before the claim statement: at 8 workers that round trip was a third
//! of a `get_work`'s latency, and the drain is bound by that latency, not
//! by the database's CPU. So a list read by one batch serves the batches
//! of the next [`FRESH`] as well, with the counts this daemon changed in
//! the meantime kept up to date: units it claimed move from available to
//! pending, units its coalesced finishes ended leave pending.
//!
//! What a reused list can get wrong is bounded:
//!
//! * Changes made through this daemon to specs or to unit counts outside
//!   the coalesced paths (setting, pausing or deleting a spec, adding,
//!   retrying or deleting units, the transaction paths) drop the list, so
//!   the next batch reads it again.
//! * Another daemon's changes are seen within [`FRESH`], as are leases
//!   and delays coming due (the due probe runs with each read).
//! * A request never gets less than a fresh list would give it: the claim
//!   statement itself checks that the spec is still unpaused and still
//!   needs no transaction, and a request that a reused list left without
//!   units, or without a spec to choose, goes down the transaction path,
//!   which reads everything fresh. So a reused list can only shift which
//!   spec a worker draws from among those with work, for at most
//!   [`FRESH`].
//!
//! The age is measured on both the backend's clock (a test's mock clock
//! moving on expires the list) and the monotonic clock.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::specs::SpecRow;
use crate::clock::Time;

/// Longest a list is reused.
pub(super) const FRESH: Duration = Duration::from_millis(5);

#[derive(Default)]
pub(super) struct SpecCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every drop, so a batch that read before a drop cannot put
    /// its stale copy back.
    generation: u64,
    list: Option<Cached>,
}

struct Cached {
    read_at: Instant,
    now: Time,
    specs: Vec<SpecRow>,
}

impl SpecCache {
    /// A copy of the list, and its generation, if one read at most
    /// [`FRESH`] ago (by both clocks) is at hand.
    pub(super) fn get(&self, now: Time) -> Option<(Vec<SpecRow>, u64)> {
        let inner = self.inner.lock();
        let c = inner.list.as_ref()?;
        let age = now.0.checked_sub(c.now.0)?;
        if !(0..=FRESH.as_micros() as i64).contains(&age) || c.read_at.elapsed() > FRESH {
            return None;
        }
        Some((c.specs.clone(), inner.generation))
    }

    /// The generation a fresh read starts in.
    pub(super) fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// Keeps `specs` (read at `now`, or a reused copy with a batch's
    /// claims counted) unless the list was dropped since `generation`.
    pub(super) fn put(&self, generation: u64, now: Time, specs: Vec<SpecRow>, fresh: bool) {
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            return;
        }
        match (&mut inner.list, fresh) {
            (Some(c), false) => c.specs = specs,
            (list, true) => *list = Some(Cached { read_at: Instant::now(), now, specs }),
            (None, false) => {}
        }
    }

    /// Counts the units a coalesced finish ended, one spec name each.
    pub(super) fn ended<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner.lock();
        let Some(c) = inner.list.as_mut() else { return };
        for name in names {
            if let Some(s) = c.specs.iter_mut().find(|s| s.name == name) {
                s.meta.pending_count = s.meta.pending_count.saturating_sub(1);
            }
        }
    }

    /// Forgets the list: the next batch reads it again.
    pub(super) fn drop_list(&self) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.list = None;
    }
}
