//! The in-memory backend: the embedded default, zero set-up.
//!
//! All state lives behind one `parking_lot::Mutex`: the scheduler needs a
//! consistent view across specs (priorities, pending counts, weights), and
//! every critical section here is short and O(log n) in the number of
//! units, so one lock costs less than the coordination finer locks would
//! need. The lock is never held across an `.await`.
//!
//! Nothing on a request path scans all units of a spec. Each spec keeps:
//! * `units`: key → unit, ordered bytewise (for `get_work_units` paging);
//! * `available`: (priority desc, key) of units ready to hand out, so
//!   `get_work` takes the first `n` entries;
//! * `delayed` and `leases`: (time, key) of delayed units and of pending
//!   leases, so promotions and expiries pop only what is due;
//! * counts per status, maintained on every transition, so
//!   `count_work_units` copies five integers;
//! * the counters of the daemon's metrics (`crate::stats`), bumped where
//!   each event happens, under the lock already held.
//!
//! A unit's `not_before` doubles as the time it became available (set
//! when it is added, released, expired or retried; a delayed unit becomes
//! available at its `not_before`), which is what the queue-wait histogram
//! measures at hand-out: no extra field, and the journal carries it.
//!
//! Every change to a unit goes through `Spec::change`, which takes the
//! unit out of the indexes, applies the change and puts it back, so the
//! indexes cannot drift from the units.
//!
//! Unit data is stored CBOR-encoded (a ~100-byte map costs ~100 bytes
//! instead of a tree of boxed values) and decoded when a reply needs it.

mod persist;
mod workers;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;

use cborrpc::encode::{decode, encode, to_vec};
use cborrpc::value::map_get;
use cborrpc::Value;

use crate::clock::{Clock, SystemClock, Time};
use crate::locks::{LockAnswer, LockCall, LockLimits, LockTree};
use crate::model::*;
use crate::scheduler::{self, Candidate};
use crate::stats::{SpecCounters, SpecStats};
use crate::Coordinate;
use persist::Log;
pub use persist::{Cursor, Sink};
use workers::Workers;

type UKey = Arc<[u8]>;
type Blob = Box<[u8]>;

/// A unit to add, with its data already encoded: encoding happens before
/// the lock is taken.
struct Prepared {
    key: Key,
    text_key: bool,
    data: Blob,
    priority: f64,
    delay: f64,
}

impl Prepared {
    fn new(u: NewUnit) -> Prepared {
        Self::with_buffer(u, &mut Vec::new())
    }

    /// Encodes through `buf`, so each unit costs one exact allocation
    /// instead of a growing vector's several.
    fn with_buffer(u: NewUnit, buf: &mut Vec<u8>) -> Prepared {
        buf.clear();
        encode(&u.data, buf);
        Prepared { data: Box::from(&buf[..]), key: u.key, text_key: u.text_key, priority: u.priority, delay: u.delay }
    }
}

/// Units a scan (`get_work_units` with a status filter, `retry_work_units`
/// of every failed unit) looks at per hold of the lock, so a search
/// through a million units does not stall `get_work` for its whole length.
const SCAN_CHUNK: usize = 16_384;

fn bound_ref(b: &Bound<Key>) -> Bound<&[u8]> {
    b.as_ref().map(Vec::as_slice)
}

/// Units upserted per hold of the lock by `add_work_units`: large batches
/// release the lock between chunks so `get_work` callers are not starved.
const ADD_CHUNK: usize = 128;

/// Between two chunks of a long call: let the other tasks of this thread
/// run. Releasing the lock lets other threads in; a daemon serving on one
/// thread would still run nothing else until the call ended.
async fn between_chunks() {
    tokio::task::yield_now().await;
}

/// The `not_before` of a unit stored by a version that did not keep the
/// time it became available (kept as a plain time rather than an `Option`
/// to keep units small): never delayed, and no queue wait is measured.
const NO_DELAY: Time = Time(i64::MIN);

/// Sort key for descending priority: the IEEE total order, reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Prio(std::cmp::Reverse<i64>);

impl Prio {
    fn of(p: f64) -> Prio {
        let b = p.to_bits() as i64;
        Prio(std::cmp::Reverse(b ^ ((((b >> 63) as u64) >> 1) as i64)))
    }
}

#[derive(Debug)]
struct Attempt {
    worker: Arc<str>,
    /// The attempt's own data; `None` means "the unit's data".
    data: Option<Blob>,
    expiration: Time,
    end: Option<Time>,
}

#[derive(Debug)]
struct Unit {
    data: Blob,
    priority: f64,
    /// Not handed out before this time; once that is past, when it became
    /// available ([`Unit::make_idle`]).
    not_before: Time,
    status: UnitStatus,
    /// The active attempt (pending, finished or failed).
    attempt: Option<Box<Attempt>>,
    /// Attempts ever made, for `max_retries`.
    attempts: u32,
    /// The key was last added as a text string (fits in padding).
    text_key: bool,
}

impl Unit {
    fn unit_key(&self, key: &[u8]) -> UnitKey {
        UnitKey::stored(key.to_vec(), self.text_key)
    }

    fn effective_data(&self) -> &[u8] {
        self.attempt.as_ref().and_then(|a| a.data.as_deref()).unwrap_or(&self.data)
    }

    fn idle_status(&self, now: Time) -> UnitStatus {
        if self.not_before > now {
            UnitStatus::Delayed
        } else {
            UnitStatus::Available
        }
    }

    /// Ends the active attempt, if any, at `since` (≤ `now`): the unit is
    /// delayed until its `not_before`, or available since the later of
    /// `since` and `not_before`.
    fn make_idle(&mut self, since: Time, now: Time) {
        self.attempt = None;
        self.status = self.idle_status(now);
        if self.status == UnitStatus::Available {
            self.not_before = self.not_before.max(since);
        }
    }

    /// Microseconds since it became available, if known.
    fn waited(&self, now: Time) -> Option<i64> {
        (self.not_before != NO_DELAY).then(|| now.0.saturating_sub(self.not_before.0))
    }
}

#[derive(Debug, Default)]
struct Index {
    available: BTreeSet<(Prio, UKey)>,
    delayed: BTreeSet<(Time, UKey)>,
    leases: BTreeSet<(Time, UKey)>,
    counts: [u64; 5],
}

impl Index {
    fn slot(s: UnitStatus) -> usize {
        s as usize
    }

    fn insert(&mut self, key: &UKey, u: &Unit) {
        self.counts[Self::slot(u.status)] += 1;
        match u.status {
            UnitStatus::Available => {
                self.available.insert((Prio::of(u.priority), key.clone()));
            }
            UnitStatus::Delayed => {
                self.delayed.insert((u.not_before, key.clone()));
            }
            UnitStatus::Pending => {
                let exp = u.attempt.as_ref().map(|a| a.expiration).unwrap_or_default();
                self.leases.insert((exp, key.clone()));
            }
            UnitStatus::Finished | UnitStatus::Failed => {}
        }
    }

    fn remove(&mut self, key: &UKey, u: &Unit) {
        self.counts[Self::slot(u.status)] -= 1;
        match u.status {
            UnitStatus::Available => {
                self.available.remove(&(Prio::of(u.priority), key.clone()));
            }
            UnitStatus::Delayed => {
                self.delayed.remove(&(u.not_before, key.clone()));
            }
            UnitStatus::Pending => {
                let exp = u.attempt.as_ref().map(|a| a.expiration).unwrap_or_default();
                self.leases.remove(&(exp, key.clone()));
            }
            UnitStatus::Finished | UnitStatus::Failed => {}
        }
    }

    fn count(&self, s: UnitStatus) -> u64 {
        self.counts[Self::slot(s)]
    }
}

#[derive(Debug)]
struct Spec {
    name: Arc<str>,
    data: SpecData,
    meta: SpecMeta,
    units: BTreeMap<UKey, Unit>,
    idx: Index,
    /// Events since the process started (not journaled).
    counters: SpecCounters,
}

impl Spec {
    fn new(name: &str, data: SpecData, meta: SpecMeta) -> Spec {
        Spec {
            name: name.into(),
            data,
            meta,
            units: BTreeMap::new(),
            idx: Index::default(),
            counters: SpecCounters::default(),
        }
    }

    /// Applies `f` to a unit, keeping the indexes and the workers' pending
    /// sets in step. Returns `None` if there is no such unit.
    fn change<R>(&mut self, cx: &mut Ctx, key: &[u8], f: impl FnOnce(&mut Unit) -> R) -> Option<R> {
        self.change_as(cx, key, false, f)
    }

    /// [`Spec::change`] for a change that may replace the unit's own data,
    /// which the journal record then carries too.
    fn change_as<R>(&mut self, cx: &mut Ctx, key: &[u8], new_data: bool, f: impl FnOnce(&mut Unit) -> R) -> Option<R> {
        let workers = &mut cx.workers;
        // One descent of the tree for both the shared key and the unit (a
        // lookup compares up to ~30 keys in a spec of 100k).
        let (k, u) = self.units.range_mut::<[u8], _>((Bound::Included(key), Bound::Included(key))).next()?;
        let k = k.clone();
        self.idx.remove(&k, u);
        let was_pending = (u.status == UnitStatus::Pending).then(|| u.attempt.as_ref().map(|a| a.worker.clone()));
        let r = f(u);
        if let Some(Some(w)) = was_pending {
            let still =
                u.status == UnitStatus::Pending && u.attempt.as_ref().is_some_and(|a| Arc::ptr_eq(&a.worker, &w));
            if !still {
                workers.release(&w, &self.name, &k);
            }
        }
        if u.status == UnitStatus::Pending {
            if let Some(a) = &u.attempt {
                workers.hold(&a.worker, &self.name, &k);
            }
        }
        self.idx.insert(&k, u);
        cx.log.unit(&self.name, &k, u, new_data);
        Some(r)
    }

    /// Expires due leases and promotes due delayed units.
    fn refresh(&mut self, cx: &mut Ctx, now: Time) {
        while let Some((t, k)) = self.idx.leases.first().cloned() {
            if t >= now {
                break;
            }
            self.change(cx, &k, |u| u.make_idle(t, now));
            self.counters.expired += 1;
        }
        while let Some((t, k)) = self.idx.delayed.first().cloned() {
            if t > now {
                break;
            }
            self.change(cx, &k, |u| u.status = UnitStatus::Available);
        }
    }

    /// Adds or replaces a unit (docs/protocol.md §2.4: upsert semantics).
    fn upsert(&mut self, cx: &mut Ctx, unit: Prepared, now: Time) {
        let Prepared { key, text_key, data, priority, delay } = unit;
        self.counters.added += 1;
        let not_before = if delay > 0.0 { now.plus_secs(delay) } else { now };
        if self.units.contains_key(key.as_slice()) {
            self.change_as(cx, &key, true, move |u| {
                let old = std::mem::replace(&mut u.data, data);
                u.text_key = text_key;
                u.priority = priority;
                u.not_before = not_before;
                match u.status {
                    UnitStatus::Pending => {
                        if let Some(a) = &mut u.attempt {
                            a.data.get_or_insert(old);
                        }
                    }
                    _ => u.make_idle(now, now),
                }
            });
        } else {
            let key: UKey = key.into();
            let u = Unit {
                data,
                priority,
                not_before,
                status: UnitStatus::Available,
                attempt: None,
                attempts: 0,
                text_key,
            };
            let u = Unit { status: u.idle_status(now), ..u };
            self.idx.insert(&key, &u);
            cx.log.unit(&self.name, &key, &u, true);
            self.units.insert(key, u);
        }
    }

    /// Makes a failed unit available again (delayed while its delay
    /// holds), its queue wait starting now, as an update to available
    /// does. False, and nothing journaled, if it is not failed.
    fn retry(&mut self, cx: &mut Ctx, key: &[u8], now: Time) -> bool {
        if self.units.get(key).is_none_or(|u| u.status != UnitStatus::Failed) {
            return false;
        }
        self.change(cx, key, |u| u.make_idle(now, now));
        self.counters.retried += 1;
        true
    }

    /// Passes `f` the units from `lower` to `upper` in key order, at most
    /// [`SCAN_CHUNK`] of them and while it returns true; returns the key to
    /// resume from if it stopped before the end.
    fn scan(&self, lower: &Bound<Key>, upper: &Bound<Key>, mut f: impl FnMut(&UKey, &Unit) -> bool) -> Option<Key> {
        let range = self.units.range::<[u8], _>((bound_ref(lower), bound_ref(upper)));
        for (scanned, (k, u)) in range.enumerate() {
            if scanned == SCAN_CHUNK || !f(k, u) {
                return Some(k.to_vec());
            }
        }
        None
    }

    fn remove_unit(&mut self, cx: &mut Ctx, key: &[u8]) -> bool {
        let Some((k, u)) = self.units.remove_entry(key) else { return false };
        self.idx.remove(&k, &u);
        if let (UnitStatus::Pending, Some(a)) = (u.status, &u.attempt) {
            cx.workers.release(&a.worker, &self.name, &k);
        }
        cx.log.unit_del(&self.name, &k);
        true
    }

    fn release_all(&mut self, workers: &mut Workers) {
        for (_, k) in std::mem::take(&mut self.idx.leases) {
            if let Some(a) = self.units.get(&k).and_then(|u| u.attempt.as_ref()) {
                workers.release(&a.worker, &self.name, &k);
            }
        }
    }

    fn can_start_continuous(&self, now: Time) -> bool {
        scheduler::can_start_continuous(
            &self.meta,
            self.idx.count(UnitStatus::Available),
            self.idx.count(UnitStatus::Pending),
            now,
        )
    }

    fn matches(&self, u: &Unit, states: &Option<Vec<UnitStatus>>) -> bool {
        states.as_ref().is_none_or(|s| s.contains(&u.status))
    }
}

/// What a unit change touches besides its spec: the workers' pending sets
/// and the journal.
#[derive(Default)]
struct Ctx {
    workers: Workers,
    log: Log,
}

struct State {
    specs: BTreeMap<String, Spec>,
    cx: Ctx,
    rng: StdRng,
    /// The last lock record journaled (durable backend only): the body of
    /// a [`persist`] LOCKS record, carried into snapshots.
    locks: Vec<u8>,
}

impl State {
    fn spec(&mut self, name: &str, now: Time) -> Result<(&mut Spec, &mut Ctx)> {
        let spec = self.specs.get_mut(name).ok_or_else(|| Error::NoSuchWorkSpec(name.to_owned()))?;
        spec.refresh(&mut self.cx, now);
        Ok((spec, &mut self.cx))
    }

    fn refresh_all(&mut self, now: Time) {
        for spec in self.specs.values_mut() {
            spec.refresh(&mut self.cx, now);
        }
    }
}

/// The state, locked. Dropping it hands the journal the records of the
/// changes made meanwhile, still under the lock, so the journal's order is
/// the order of the changes.
struct Locked<'a>(parking_lot::MutexGuard<'a, State>);

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.cx.log.seal();
    }
}

/// The in-memory [`Coordinate`] backend.
pub struct MemoryBackend {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// The locks of the `lock` methods: a tree of their own, under its own
    /// mutex, so lock calls never wait for unit work.
    locks: LockTree,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

fn decode_blob(b: &[u8]) -> Value {
    decode(b).unwrap_or(Value::Null)
}

impl MemoryBackend {
    /// A backend on the given clock, with a randomly seeded scheduler.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_rng(clock, StdRng::from_os_rng())
    }

    /// A backend whose scheduler draws from a seeded RNG (for tests).
    pub fn with_seed(clock: Arc<dyn Clock>, seed: u64) -> Self {
        Self::with_rng(clock, StdRng::seed_from_u64(seed))
    }

    fn with_rng(clock: Arc<dyn Clock>, rng: StdRng) -> Self {
        MemoryBackend {
            state: Mutex::new(State { specs: BTreeMap::new(), cx: Ctx::default(), rng, locks: Vec::new() }),
            clock,
            locks: LockTree::new(),
        }
    }

    fn lock(&self) -> Locked<'_> {
        Locked(self.state.lock())
    }

    fn get_work_locked(&self, st: &mut State, worker: &str, opts: &GetWork, now: Time) -> Vec<WorkGrant> {
        let worker_name: Arc<str> = st.cx.workers.touch(worker);
        loop {
            st.refresh_all(now);
            // Filter the specs and keep their names alongside the stats.
            let mut names: Vec<&str> = Vec::new();
            let mut cands: Vec<Candidate> = Vec::new();
            for (name, spec) in &st.specs {
                let m = &spec.meta;
                let pending = spec.idx.count(UnitStatus::Pending);
                if !scheduler::eligible(name, m, spec.idx.count(UnitStatus::Available), pending, opts, now) {
                    continue;
                }
                names.push(name);
                cands.push(Candidate { priority: m.priority, weight: m.weight, pending });
            }
            let Some(i) = scheduler::choose(&cands, &mut st.rng) else { return Vec::new() };
            let name = names[i].to_owned();
            let spec = st.specs.get_mut(&name).expect("chosen spec exists");
            let cx = &mut st.cx;
            let n = scheduler::batch_size(&spec.meta, opts.max_jobs, spec.idx.count(UnitStatus::Pending));
            let mut keys: Vec<UKey> =
                spec.idx.available.iter().take(n.max(0) as usize).map(|(_, k)| k.clone()).collect();
            if keys.is_empty() && spec.can_start_continuous(now) {
                let key = continuous_key(now);
                spec.meta.next_continuous = Some(now.plus_secs(spec.meta.interval));
                cx.log.spec(spec);
                match spec.units.get(key.bytes.as_slice()).map(|u| u.status) {
                    None => spec.upsert(cx, Prepared::new(NewUnit::keyed(key.clone(), Value::Map(vec![]))), now),
                    Some(UnitStatus::Available) => {}
                    Some(_) => return Vec::new(),
                }
                keys.push(key.bytes.into());
            }
            if keys.is_empty() {
                return Vec::new();
            }
            let lease = now.plus_secs(opts.lease_secs);
            let max_retries = spec.meta.max_retries;
            let mut grants = Vec::with_capacity(keys.len());
            let mut failed_any = false;
            for k in keys {
                let grant = spec.change(cx, &k, |u| {
                    u.attempts = u.attempts.saturating_add(1);
                    if max_retries > 0 && u.attempts as i64 > max_retries {
                        u.attempt = Some(Box::new(Attempt {
                            worker: worker_name.clone(),
                            data: Some(to_vec(&too_many_retries()).into()),
                            expiration: now,
                            end: Some(now),
                        }));
                        u.status = UnitStatus::Failed;
                        return None;
                    }
                    let waited = u.waited(now);
                    u.attempt = Some(Box::new(Attempt {
                        worker: worker_name.clone(),
                        data: None,
                        expiration: lease,
                        end: None,
                    }));
                    u.status = UnitStatus::Pending;
                    Some((u.text_key, decode_blob(&u.data), waited))
                });
                match grant.flatten() {
                    Some((text, data, waited)) => {
                        spec.counters.handed_out += 1;
                        if let Some(w) = waited {
                            spec.counters.queue_wait.observe(w);
                        }
                        grants.push(WorkGrant { spec: name.clone(), key: UnitKey::stored(k.to_vec(), text), data })
                    }
                    None => {
                        spec.counters.failed += 1;
                        failed_any = true;
                    }
                }
            }
            if !grants.is_empty() || !failed_any {
                return grants;
            }
            // Every unit picked had run out of retries: choose again.
        }
    }
}

/// Leaves the `n` least items of `v` by `key`, sorted, and returns the
/// next one: a page of a large set without sorting all of it, under the
/// lock.
fn first_sorted<T, K: Ord>(v: &mut Vec<T>, n: usize, mut key: impl FnMut(&T) -> K) -> Option<T> {
    let next = (v.len() > n).then(|| {
        v.select_nth_unstable_by_key(n, &mut key);
        v.truncate(n + 1);
        v.pop().expect("n + 1 items")
    });
    v.sort_unstable_by_key(key);
    next
}

/// The outcome of an update that finished a unit: output for the next spec.
type Chain = Option<(String, Vec<NewUnit>)>;

fn update_locked(spec: &mut Spec, cx: &mut Ctx, key: &[u8], upd: UnitUpdate, now: Time) -> Result<(bool, Chain)> {
    let status = spec.units.get(key).map(|u| u.status).ok_or_else(|| Error::NoSuchWorkUnit(key.to_vec()))?;
    let (force, plan) = plan_update(status, upd.status)?;
    let data: Option<Blob> = upd.data.as_ref().map(|d| to_vec(d).into());
    let lease = now.plus_secs(upd.lease_secs);
    let then = spec.meta.then.clone();
    let worker = force.then(|| cx.workers.touch(upd.worker_id.as_deref().unwrap_or_default()));
    let new_data = plan == UpdatePlan::SetIdleData && data.is_some();
    let r = spec.change_as(cx, key, new_data, |u| {
        if let Some(worker) = worker {
            u.attempts = u.attempts.saturating_add(1);
            u.attempt = Some(Box::new(Attempt { worker, data: None, expiration: lease, end: None }));
            u.status = UnitStatus::Pending;
        }
        let mut finished = false;
        let changed = match plan {
            UpdatePlan::SetIdleData => match data {
                Some(d) => {
                    u.data = d;
                    true
                }
                None => false,
            },
            UpdatePlan::Renew => {
                if let Some(a) = &mut u.attempt {
                    a.expiration = lease;
                    if data.is_some() {
                        a.data = data;
                    }
                }
                true
            }
            UpdatePlan::Release | UpdatePlan::Retry => {
                u.make_idle(now, now);
                true
            }
            UpdatePlan::Finish | UpdatePlan::LateFinish | UpdatePlan::Fail => {
                if let Some(a) = &mut u.attempt {
                    if plan != UpdatePlan::LateFinish && data.is_some() {
                        a.data = data;
                    }
                    a.end = Some(now);
                }
                finished = plan != UpdatePlan::Fail;
                u.status = if finished { UnitStatus::Finished } else { UnitStatus::Failed };
                true
            }
            UpdatePlan::Nothing => false,
        };
        let chain =
            (finished && !then.is_empty()).then(|| (then.clone(), chained_units(&decode_blob(u.effective_data()))));
        (changed, chain)
    });
    let c = &mut spec.counters;
    match plan {
        UpdatePlan::Finish | UpdatePlan::LateFinish => c.finished += 1,
        UpdatePlan::Fail => c.failed += 1,
        UpdatePlan::Retry => c.retried += 1,
        UpdatePlan::Release => c.released += 1,
        UpdatePlan::SetIdleData | UpdatePlan::Renew | UpdatePlan::Nothing => {}
    }
    Ok(r.expect("unit exists"))
}

impl Coordinate for MemoryBackend {
    async fn list_work_specs(&self, start: &str, limit: usize) -> Result<(Vec<SpecData>, Option<String>)> {
        let st = self.lock();
        let mut it = st.specs.range::<str, _>((Bound::Included(start), Bound::Unbounded));
        let specs: Vec<SpecData> = it.by_ref().take(limit).map(|(_, s)| s.data.clone()).collect();
        let next = it.next().map(|(n, _)| n.clone());
        Ok((specs, next))
    }

    async fn set_work_spec(&self, mut data: SpecData) -> Result<()> {
        let (name, meta) = prepare_spec(&mut data)?;
        let mut st = self.lock();
        match st.specs.get_mut(&name) {
            Some(spec) => {
                spec.data = data;
                spec.meta = meta;
            }
            None => {
                st.specs.insert(name.clone(), Spec::new(&name, data, meta));
            }
        }
        let State { specs, cx, .. } = &mut *st;
        cx.log.spec(&specs[&name]);
        Ok(())
    }

    async fn del_work_spec(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        let State { specs, cx, .. } = &mut *st;
        let mut spec = specs.remove(name).ok_or_else(|| Error::NoSuchWorkSpec(name.to_owned()))?;
        spec.release_all(&mut cx.workers);
        cx.log.spec_del(name);
        Ok(())
    }

    async fn clear(&self) -> Result<usize> {
        let mut st = self.lock();
        let State { specs, cx, .. } = &mut *st;
        let n = specs.len();
        for (_, mut spec) in std::mem::take(specs) {
            spec.release_all(&mut cx.workers);
        }
        cx.log.clear();
        Ok(n)
    }

    async fn get_work_spec(&self, name: &str) -> Result<SpecData> {
        let st = self.lock();
        st.specs.get(name).map(|s| s.data.clone()).ok_or_else(|| Error::NoSuchWorkSpec(name.to_owned()))
    }

    async fn get_work_spec_meta(&self, name: &str) -> Result<SpecMeta> {
        let now = self.clock.now();
        let mut st = self.lock();
        let (spec, _) = st.spec(name, now)?;
        let mut meta = spec.meta.clone();
        meta.available_count = spec.idx.count(UnitStatus::Available);
        meta.pending_count = spec.idx.count(UnitStatus::Pending);
        Ok(meta)
    }

    async fn control_work_spec(&self, name: &str, control: SpecControl) -> Result<()> {
        let mut st = self.lock();
        let State { specs, cx, .. } = &mut *st;
        let spec = specs.get_mut(name).ok_or_else(|| Error::NoSuchWorkSpec(name.to_owned()))?;
        spec.meta.apply(&control);
        cx.log.spec(spec);
        Ok(())
    }

    async fn add_work_units(&self, name: &str, units: Vec<NewUnit>) -> Result<()> {
        let now = self.clock.now();
        let mut buf = Vec::with_capacity(512);
        let mut units = units.into_iter().map(|u| Prepared::with_buffer(u, &mut buf)).peekable();
        loop {
            {
                let mut st = self.lock();
                let (spec, cx) = st.spec(name, now)?;
                for unit in units.by_ref().take(ADD_CHUNK) {
                    spec.upsert(cx, unit, now);
                }
                if units.peek().is_none() {
                    return Ok(());
                }
            }
            between_chunks().await;
        }
    }

    async fn get_work_units(&self, name: &str, q: UnitQuery) -> Result<Vec<(UnitKey, Value)>> {
        let now = self.clock.now();
        let pick = |(k, u): (&UKey, &Unit)| (u.unit_key(k), decode_blob(u.effective_data()));
        if let Some(mut keys) = q.keys {
            let mut st = self.lock();
            let (spec, _) = st.spec(name, now)?;
            keys.sort();
            keys.dedup();
            return Ok(keys.iter().filter_map(|k| spec.units.get_key_value(k.as_slice())).map(pick).collect());
        }
        let mut out = Vec::new();
        let Some((mut lower, upper)) = key_range(q.start.as_deref(), q.prefix.as_deref()) else {
            // Still report a missing spec.
            self.lock().spec(name, now)?;
            return Ok(out);
        };
        // A status filter may skip many units between matches: scan in
        // chunks.
        loop {
            {
                let mut st = self.lock();
                let (spec, _) = st.spec(name, now)?;
                // No unit is in a status asked for: finding none would read
                // every unit of the spec.
                if q.states.as_ref().is_some_and(|s| s.iter().all(|&s| spec.idx.count(s) == 0)) {
                    return Ok(out);
                }
                let resume = spec.scan(&lower, &upper, |k, u| {
                    if out.len() >= q.limit {
                        return false;
                    }
                    if spec.matches(u, &q.states) {
                        out.push(pick((k, u)));
                    }
                    true
                });
                match resume {
                    Some(k) if out.len() < q.limit => lower = Bound::Included(k),
                    _ => return Ok(out),
                }
            }
            between_chunks().await;
        }
    }

    async fn get_work_unit_status(&self, name: &str, keys: Vec<Key>) -> Result<Vec<Option<UnitStatusInfo>>> {
        let now = self.clock.now();
        let mut st = self.lock();
        let (spec, _) = st.spec(name, now)?;
        Ok(keys
            .iter()
            .map(|k| {
                let u = spec.units.get(k.as_slice())?;
                let traceback = (u.status == UnitStatus::Failed)
                    .then(|| match decode_blob(u.effective_data()) {
                        Value::Map(e) => map_get(&e, "traceback").filter(|v| !v.is_null()).cloned(),
                        _ => None,
                    })
                    .flatten();
                Some(UnitStatusInfo {
                    status: u.status,
                    worker_id: u.attempt.as_ref().map(|a| a.worker.to_string()),
                    expiration: u.attempt.as_ref().filter(|_| u.status == UnitStatus::Pending).map(|a| a.expiration),
                    traceback,
                    attempts: u.attempts.into(),
                    priority: u.priority,
                })
            })
            .collect())
    }

    async fn prioritize_work_units(&self, name: &str, keys: Vec<Key>, change: PriorityChange) -> Result<()> {
        let now = self.clock.now();
        let mut st = self.lock();
        let (spec, cx) = st.spec(name, now)?;
        for k in keys {
            spec.change(cx, &k, |u| match change {
                PriorityChange::Set(p) => u.priority = p,
                PriorityChange::Adjust(d) => u.priority += d,
            });
        }
        Ok(())
    }

    async fn count_work_units(&self, name: &str) -> Result<BTreeMap<UnitStatus, u64>> {
        let now = self.clock.now();
        let mut st = self.lock();
        let (spec, _) = st.spec(name, now)?;
        Ok(UnitStatus::ALL.iter().map(|&s| (s, spec.idx.count(s))).filter(|&(_, n)| n > 0).collect())
    }

    async fn del_work_units(&self, name: &str, q: DelQuery) -> Result<u64> {
        let now = self.clock.now();
        let mut st = self.lock();
        let (spec, cx) = st.spec(name, now)?;
        let doomed: Vec<UKey> = match &q {
            DelQuery::All => spec.units.keys().cloned().collect(),
            DelQuery::Keys(keys, state) => keys
                .iter()
                .filter_map(|k| spec.units.get_key_value(k.as_slice()))
                .filter(|(_, u)| state.is_none_or(|s| u.status == s))
                .map(|(k, _)| k.clone())
                .collect(),
            DelQuery::State(s) => match s {
                UnitStatus::Available => spec.idx.available.iter().map(|(_, k)| k.clone()).collect(),
                UnitStatus::Pending => spec.idx.leases.iter().map(|(_, k)| k.clone()).collect(),
                UnitStatus::Delayed => spec.idx.delayed.iter().map(|(_, k)| k.clone()).collect(),
                _ => spec.units.iter().filter(|(_, u)| u.status == *s).map(|(k, _)| k.clone()).collect(),
            },
        };
        let mut n = 0;
        for k in doomed {
            n += spec.remove_unit(cx, &k) as u64;
        }
        Ok(n)
    }

    async fn retry_work_units(&self, name: &str, keys: Option<Vec<Key>>) -> Result<u64> {
        let now = self.clock.now();
        let mut n = 0;
        let Some(keys) = keys else {
            // Every failed unit: each hold of the lock scans a chunk and
            // retries at most ADD_CHUNK units, then the next resumes.
            let mut lower = Bound::Unbounded;
            loop {
                {
                    let mut st = self.lock();
                    let (spec, cx) = st.spec(name, now)?;
                    let mut failed = Vec::new();
                    let resume = spec.scan(&lower, &Bound::Unbounded, |k, u| {
                        if failed.len() == ADD_CHUNK {
                            return false;
                        }
                        if u.status == UnitStatus::Failed {
                            failed.push(k.clone());
                        }
                        true
                    });
                    for k in failed {
                        n += u64::from(spec.retry(cx, &k, now));
                    }
                    match resume {
                        Some(k) => lower = Bound::Included(k),
                        None => return Ok(n),
                    }
                }
                between_chunks().await;
            }
        };
        // In chunks, as adds are.
        let mut keys = keys.into_iter().peekable();
        loop {
            {
                let mut st = self.lock();
                let (spec, cx) = st.spec(name, now)?;
                for k in keys.by_ref().take(ADD_CHUNK) {
                    n += u64::from(spec.retry(cx, &k, now));
                }
                if keys.peek().is_none() {
                    return Ok(n);
                }
            }
            between_chunks().await;
        }
    }

    async fn archive(&self, policy: ArchivePolicy) -> Result<u64> {
        let now = self.clock.now();
        let mut st = self.lock();
        let State { specs, cx, .. } = &mut *st;
        let mut removed = 0;
        for spec in specs.values_mut() {
            for status in [UnitStatus::Finished, UnitStatus::Failed] {
                let mut done: Vec<(Time, UKey)> = spec
                    .units
                    .iter()
                    .filter(|(_, u)| u.status == status)
                    .map(|(k, u)| (u.attempt.as_ref().and_then(|a| a.end).unwrap_or_default(), k.clone()))
                    .collect();
                done.sort_unstable_by(|a, b| b.cmp(a));
                for (i, (end, k)) in done.into_iter().enumerate() {
                    let too_many = policy.keep.is_some_and(|keep| i as u64 >= keep);
                    let too_old = policy.older_than.is_some_and(|age| end < now.plus_secs(-age));
                    if too_many || too_old {
                        removed += spec.remove_unit(cx, &k) as u64;
                    }
                }
            }
        }
        Ok(removed)
    }

    async fn get_work(&self, worker: &str, opts: GetWork) -> Result<Vec<WorkGrant>> {
        let now = self.clock.now();
        let mut st = self.lock();
        Ok(self.get_work_locked(&mut st, worker, &opts, now))
    }

    async fn update_work_unit(&self, name: &str, key: &[u8], upd: UnitUpdate) -> Result<bool> {
        let now = self.clock.now();
        let mut st = self.lock();
        let (spec, cx) = st.spec(name, now)?;
        let (changed, chain) = update_locked(spec, cx, key, upd, now)?;
        if let Some((then, units)) = chain {
            // A chain to a spec that does not exist is ignored.
            if let Ok((next, cx)) = st.spec(&then, now) {
                for unit in units {
                    next.upsert(cx, Prepared::new(unit), now);
                }
            }
        }
        Ok(changed)
    }

    async fn worker_heartbeat(&self, hb: Heartbeat) -> Result<()> {
        let now = self.clock.now();
        let mut st = self.lock();
        let name = hb.worker.clone();
        let cx = &mut st.cx;
        cx.workers.heartbeat(hb, now);
        cx.log.worker(&name, cx.workers.get(&name));
        Ok(())
    }

    async fn worker_unregister(&self, worker: &str) -> Result<()> {
        let now = self.clock.now();
        let mut st = self.lock();
        let cx = &mut st.cx;
        let pruned = cx.workers.unregister(worker, now);
        cx.log.worker(worker, cx.workers.get(worker));
        for name in pruned {
            cx.log.worker_del(&name);
        }
        Ok(())
    }

    async fn list_worker_modes(&self) -> Result<BTreeMap<String, String>> {
        let now = self.clock.now();
        Ok(self.lock().cx.workers.live(now).map(|(n, w)| (n.to_string(), w.mode.clone())).collect())
    }

    async fn get_worker_info(&self, worker: &str) -> Result<Option<Value>> {
        Ok(self.lock().cx.workers.get(worker).and_then(|w| w.data.clone()))
    }

    async fn list_workers(&self, start: &str, limit: usize) -> Result<(Vec<WorkerInfo>, Option<String>)> {
        let now = self.clock.now();
        let mut st = self.lock();
        // Due leases end first, so what a worker holds is current.
        st.refresh_all(now);
        let mut live: Vec<_> = st.cx.workers.live(now).filter(|(n, _)| &***n >= start).collect();
        let next = first_sorted(&mut live, limit, |(n, _)| *n).map(|(n, _)| n.to_string());
        let workers = live
            .into_iter()
            .map(|(name, w)| {
                let mut held: Vec<_> = w.pending.iter().collect();
                first_sorted(&mut held, HELD_UNITS_LISTED, |&h| h);
                let held = held
                    .into_iter()
                    .filter_map(|(spec, key)| {
                        let u = st.specs.get(&**spec)?.units.get(key)?;
                        let a = u.attempt.as_ref()?;
                        Some(HeldUnit { spec: spec.to_string(), key: u.unit_key(key), expires: a.expiration })
                    })
                    .collect();
                WorkerInfo {
                    id: name.to_string(),
                    mode: w.mode.clone(),
                    data: w.data.clone(),
                    parent: w.parent.as_ref().map(|p| p.to_string()),
                    last_heartbeat: w.last_update,
                    expires: w.expiration,
                    held,
                    held_count: w.pending.len() as u64,
                }
            })
            .collect();
        Ok((workers, next))
    }

    async fn mode_counts(&self) -> Result<BTreeMap<String, u64>> {
        let now = self.clock.now();
        let mut counts = BTreeMap::new();
        for (_, w) in self.lock().cx.workers.live(now) {
            *counts.entry(w.mode.clone()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    async fn worker_stats(&self) -> Result<WorkerStats> {
        let now = self.clock.now();
        let st = self.lock();
        let mut stats = WorkerStats::default();
        for (_, w) in st.cx.workers.live(now) {
            stats.num_workers += 1;
            stats.num_children += w.parent.is_some() as u64;
            stats.num_expirable += w.expiration.is_some() as u64;
        }
        Ok(stats)
    }

    async fn get_child_work_units(&self, worker: &str) -> Result<BTreeMap<String, Vec<ChildUnit>>> {
        let now = self.clock.now();
        let mut st = self.lock();
        st.refresh_all(now);
        let mut out = BTreeMap::new();
        let Some(parent) = st.cx.workers.get(worker) else { return Ok(out) };
        for child in parent.children.iter() {
            let mut units = Vec::new();
            if let Some(c) = st.cx.workers.get(child) {
                let mut held: Vec<_> = c.pending.iter().collect();
                held.sort();
                for (spec_name, key) in held {
                    let Some(u) = st.specs.get(&**spec_name).and_then(|s| s.units.get(key)) else { continue };
                    let Some(a) = &u.attempt else { continue };
                    units.push(ChildUnit {
                        spec: spec_name.to_string(),
                        key: u.unit_key(key),
                        data: decode_blob(u.effective_data()),
                        worker_id: a.worker.to_string(),
                        expires: a.expiration,
                    });
                }
            }
            out.insert(child.to_string(), units);
        }
        Ok(out)
    }

    async fn lock_call(&self, call: &LockCall, limits: &LockLimits) -> Result<LockAnswer> {
        let now = self.now();
        let answer = self.locks.apply(limits, now, call);
        if call.writes() && answer.is_ok() {
            self.journal_locks(now);
        }
        Ok(answer)
    }

    fn now(&self) -> Time {
        self.clock.now()
    }

    async fn spec_stats(&self) -> Result<Vec<SpecStats>> {
        let now = self.clock.now();
        let mut st = self.lock();
        st.refresh_all(now);
        Ok(st
            .specs
            .iter()
            .map(|(name, s)| SpecStats { name: name.clone(), counts: s.idx.counts, counters: Some(s.counters) })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;
    use crate::conformance::fixture::*;

    /// Scans longer than a chunk go through several holds of the lock and
    /// miss nothing: a status filter, and a retry of every failed unit
    /// (more than ADD_CHUNK of them, spread over every chunk).
    #[tokio::test]
    async fn scans_resume_across_chunks() {
        let b = MemoryBackend::with_seed(Arc::new(MockClock::new()), 1);
        b.set_work_spec(spec("s", &[])).await.unwrap();
        let n = 2 * SCAN_CHUNK + 10;
        let keys: Vec<String> = (0..n).map(|i| format!("{i:06}")).collect();
        let units = keys.iter().map(|k| NewUnit::new(k.as_bytes().to_vec(), Value::Null)).collect();
        b.add_work_units("s", units).await.unwrap();
        let doomed: Vec<&str> = keys.iter().step_by(97).map(String::as_str).collect();
        assert!(doomed.len() > ADD_CHUNK);
        let doomed_keys = doomed.iter().map(|k| k.as_bytes().to_vec()).collect();
        b.prioritize_work_units("s", doomed_keys, PriorityChange::Set(1.0)).await.unwrap();
        assert_eq!(keys_of(&work(&b, "w", doomed.len()).await), doomed);
        for k in &doomed {
            assert!(set_status(&b, "s", k, UnitStatus::Failed, None).await);
        }
        let failed = UnitQuery { limit: n, ..in_states(&[UnitStatus::Failed]) };
        assert_eq!(unit_keys(&b, "s", failed.clone()).await, doomed);
        assert_eq!(b.retry_work_units("s", None).await.unwrap(), doomed.len() as u64);
        assert_eq!(counts(&b, "s").await, count_map(&[(UnitStatus::Available, n as u64)]));
        assert!(unit_keys(&b, "s", failed).await.is_empty());
    }
}
