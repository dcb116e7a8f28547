//! The memory backend's changes as journal records, their replay, and
//! snapshots of the whole state.
//!
//! Records describe results, not requests: a unit record carries the
//! unit's whole state after the change (its data only when the data
//! changed), so replay needs neither the clock nor the scheduler's random
//! draws, and applying a record twice is the same as once. That is what
//! lets a snapshot be taken in chunks while requests go on: the journal
//! segment that starts at the snapshot's cut holds every change made
//! while the chunks were copied, and replaying it over the (slightly
//! mixed-age) snapshot ends at the exact state.
//!
//! Idempotence rules the replay keeps: a unit record for a spec that does
//! not exist, or without data for a unit that does not exist, is skipped
//! (a later record in the same segment deletes it); deletes of missing
//! things are no-ops. Lease expiry and delay promotion are not needed in
//! the journal (they follow from the times a unit record carries), but are
//! recorded anyway when they happen, which keeps one code path.
//!
//! The byte layout of every record is in docs/storage.md.

use std::sync::Arc;

use cborrpc::encode::{decode, encode_array, encode_map, to_vec};
use cborrpc::Value;

use super::workers::{Worker, Workers};
use super::{Attempt, Spec, State, UKey, Unit, NO_DELAY};
use crate::clock::Time;
use crate::journal::codec::{Dec, Enc, Malformed};
use crate::locks::HeldLock;
use crate::model::{prepare_spec, UnitStatus};

/// Where sealed records go: the journal.
pub trait Sink: Send + Sync + 'static {
    /// Appends one record (the changes of one locked section).
    fn append(&self, payload: &[u8]);
}

const SPEC_PUT: u8 = 1;
const SPEC_DEL: u8 = 2;
const CLEAR: u8 = 3;
const UNIT_PUT: u8 = 4;
const UNIT_DEL: u8 = 5;
const WORKER_PUT: u8 = 6;
/// Ends a snapshot: its presence proves the snapshot complete.
const END: u8 = 7;
const WORKER_DEL: u8 = 8;
/// The whole set of held locks (replaces the previous one).
const LOCKS: u8 = 9;

// Flags of a unit record.
const TEXT_KEY: u8 = 1;
const HAS_DATA: u8 = 2;
const HAS_ATTEMPT: u8 = 4;
const ATTEMPT_DATA: u8 = 8;
const ATTEMPT_END: u8 = 16;

/// The changes of the current locked section, encoded as they are made.
/// Without a sink every method returns at once.
#[derive(Default)]
pub(super) struct Log {
    sink: Option<Arc<dyn Sink>>,
    txn: Vec<u8>,
}

impl Log {
    pub(super) fn unit(&mut self, spec: &str, key: &[u8], u: &Unit, with_data: bool) {
        if self.sink.is_some() {
            encode_unit(&mut self.txn, spec, key, u, with_data);
        }
    }

    pub(super) fn unit_del(&mut self, spec: &str, key: &[u8]) {
        if self.sink.is_some() {
            let mut e = Enc(&mut self.txn);
            e.u8(UNIT_DEL);
            e.str(spec);
            e.bytes(key);
        }
    }

    pub(super) fn spec(&mut self, spec: &Spec) {
        if self.sink.is_some() {
            encode_spec(&mut self.txn, spec);
        }
    }

    pub(super) fn spec_del(&mut self, name: &str) {
        if self.sink.is_some() {
            let mut e = Enc(&mut self.txn);
            e.u8(SPEC_DEL);
            e.str(name);
        }
    }

    pub(super) fn clear(&mut self) {
        if self.sink.is_some() {
            self.txn.push(CLEAR);
        }
    }

    pub(super) fn worker(&mut self, name: &str, w: Option<&Worker>) {
        if let (Some(_), Some(w)) = (&self.sink, w) {
            encode_worker(&mut self.txn, name, w);
        }
    }

    /// The whole lock set, as [`encode_locks`] wrote it.
    pub(super) fn locks(&mut self, body: &[u8]) {
        if self.sink.is_some() {
            let mut e = Enc(&mut self.txn);
            e.u8(LOCKS);
            e.bytes(body);
        }
    }

    /// Whether changes are journaled at all.
    pub(super) fn active(&self) -> bool {
        self.sink.is_some()
    }

    pub(super) fn worker_del(&mut self, name: &str) {
        if self.sink.is_some() {
            let mut e = Enc(&mut self.txn);
            e.u8(WORKER_DEL);
            e.str(name);
        }
    }

    /// Hands the section's records to the sink as one record.
    pub(super) fn seal(&mut self) {
        if let Some(sink) = &self.sink {
            if !self.txn.is_empty() {
                sink.append(&self.txn);
                self.txn.clear();
                if self.txn.capacity() > 1 << 20 {
                    self.txn = Vec::new();
                }
            }
        }
    }
}

fn encode_unit(out: &mut Vec<u8>, spec: &str, key: &[u8], u: &Unit, with_data: bool) {
    let mut e = Enc(out);
    e.u8(UNIT_PUT);
    e.str(spec);
    e.bytes(key);
    let a = u.attempt.as_deref();
    let mut flags = 0;
    if u.text_key {
        flags |= TEXT_KEY;
    }
    if with_data {
        flags |= HAS_DATA;
    }
    if let Some(a) = a {
        flags |= HAS_ATTEMPT;
        if a.data.is_some() {
            flags |= ATTEMPT_DATA;
        }
        if a.end.is_some() {
            flags |= ATTEMPT_END;
        }
    }
    e.u8(flags);
    e.u8(u.status as u8);
    e.f64(u.priority);
    e.i64(u.not_before.0);
    e.uvar(u64::from(u.attempts));
    if with_data {
        e.bytes(&u.data);
    }
    if let Some(a) = a {
        e.str(&a.worker);
        e.i64(a.expiration.0);
        if let Some(end) = a.end {
            e.i64(end.0);
        }
        if let Some(d) = &a.data {
            e.bytes(d);
        }
    }
}

fn encode_spec(out: &mut Vec<u8>, spec: &Spec) {
    // The map's CBOR, encoded in place rather than from a cloned Value.
    let mut data = Vec::new();
    encode_map(&spec.data, &mut data);
    let m = &spec.meta;
    let mut e = Enc(out);
    e.u8(SPEC_PUT);
    e.str(&spec.name);
    e.bytes(&data);
    e.bool(m.paused);
    e.bool(m.continuous);
    e.i64(m.weight);
    e.f64(m.interval);
    e.i64(m.max_running);
    e.opt_i64(m.next_continuous.map(|t| t.0));
}

fn encode_worker(out: &mut Vec<u8>, name: &str, w: &Worker) {
    let mut e = Enc(out);
    e.u8(WORKER_PUT);
    e.str(name);
    e.str(&w.mode);
    e.bool(w.active);
    match &w.data {
        Some(d) => {
            e.u8(1);
            e.bytes(&to_vec(d));
        }
        None => e.u8(0),
    }
    e.opt_i64(w.expiration.map(|t| t.0));
    e.opt_i64(w.last_update.map(|t| t.0));
    match &w.parent {
        Some(p) => {
            e.u8(1);
            e.str(p);
        }
        None => e.u8(0),
    }
}

fn status_of(b: u8) -> Result<UnitStatus, Malformed> {
    UnitStatus::ALL.iter().copied().find(|s| *s as u8 == b).ok_or(Malformed("unknown unit status"))
}

fn decode_value(b: &[u8]) -> Result<Value, Malformed> {
    decode(b).map_err(|_| Malformed("bad CBOR value"))
}

impl State {
    /// Applies one record (journal or snapshot). `Ok(true)` means it held
    /// the end-of-snapshot marker.
    pub(super) fn apply(&mut self, payload: &[u8]) -> Result<bool, Malformed> {
        let mut d = Dec::new(payload);
        let mut end = false;
        while !d.is_empty() {
            match d.u8()? {
                SPEC_PUT => self.apply_spec(&mut d)?,
                SPEC_DEL => {
                    let name = d.str()?;
                    if let Some(mut spec) = self.specs.remove(name) {
                        spec.release_all(&mut self.cx.workers);
                    }
                }
                CLEAR => {
                    for (_, mut spec) in std::mem::take(&mut self.specs) {
                        spec.release_all(&mut self.cx.workers);
                    }
                }
                UNIT_PUT => self.apply_unit(&mut d)?,
                UNIT_DEL => {
                    let spec = d.str()?;
                    let key = d.bytes()?;
                    if let Some(s) = self.specs.get_mut(spec) {
                        s.remove_unit(&mut self.cx, key);
                    }
                }
                WORKER_PUT => apply_worker(&mut self.cx.workers, &mut d)?,
                WORKER_DEL => self.cx.workers.forget(d.str()?),
                LOCKS => {
                    let body = d.bytes()?;
                    decode_locks(body)?;
                    self.locks = body.to_vec();
                }
                END => {
                    d.uvar()?;
                    end = true;
                }
                _ => return Err(Malformed("unknown record type")),
            }
        }
        Ok(end)
    }

    fn apply_spec(&mut self, d: &mut Dec) -> Result<(), Malformed> {
        let name = d.str()?.to_owned();
        let Value::Map(mut data) = decode_value(d.bytes()?)? else { return Err(Malformed("spec data is not a map")) };
        let (paused, continuous, weight, interval, max_running) = (d.bool()?, d.bool()?, d.i64()?, d.f64()?, d.i64()?);
        let next_continuous = d.opt_i64()?.map(Time);
        let (_, mut meta) = prepare_spec(&mut data).map_err(|_| Malformed("spec data no longer valid"))?;
        meta.paused = paused;
        meta.continuous = continuous;
        meta.weight = weight;
        meta.interval = interval;
        meta.max_running = max_running;
        meta.next_continuous = next_continuous;
        match self.specs.get_mut(&name) {
            Some(s) => {
                s.data = data;
                s.meta = meta;
            }
            None => {
                self.specs.insert(name.clone(), Spec::new(&name, data, meta));
            }
        }
        Ok(())
    }

    fn apply_unit(&mut self, d: &mut Dec) -> Result<(), Malformed> {
        let spec = d.str()?;
        let key = d.bytes()?;
        let flags = d.u8()?;
        let status = status_of(d.u8()?)?;
        let priority = d.f64()?;
        let not_before = Time(d.i64()?);
        let attempts = u32::try_from(d.uvar()?).map_err(|_| Malformed("attempt count"))?;
        let data = if flags & HAS_DATA != 0 { Some(d.bytes()?) } else { None };
        let attempt = if flags & HAS_ATTEMPT != 0 {
            let worker = d.str()?;
            let expiration = Time(d.i64()?);
            let end = if flags & ATTEMPT_END != 0 { Some(Time(d.i64()?)) } else { None };
            let adata = if flags & ATTEMPT_DATA != 0 { Some(Box::from(d.bytes()?)) } else { None };
            Some((worker, expiration, end, adata))
        } else {
            None
        };
        let Some(s) = self.specs.get_mut(spec) else { return Ok(()) };
        let cx = &mut self.cx;
        let attempt = attempt.map(|(worker, expiration, end, data)| {
            Box::new(Attempt { worker: cx.workers.touch(worker), data, expiration, end })
        });
        let fill = |u: &mut Unit| {
            if let Some(data) = data {
                u.data = Box::from(data);
            }
            u.priority = priority;
            u.not_before = not_before;
            u.status = status;
            u.attempt = attempt;
            u.attempts = attempts;
            u.text_key = flags & TEXT_KEY != 0;
        };
        if s.units.contains_key(key) {
            s.change(cx, key, fill);
        } else if data.is_some() {
            let mut u = Unit {
                data: Box::default(),
                priority: 0.0,
                not_before: NO_DELAY,
                status: UnitStatus::Available,
                attempt: None,
                attempts: 0,
                text_key: false,
            };
            fill(&mut u);
            let k: UKey = key.into();
            s.idx.insert(&k, &u);
            if let (UnitStatus::Pending, Some(a)) = (u.status, &u.attempt) {
                cx.workers.hold(&a.worker, &s.name, &k);
            }
            s.units.insert(k, u);
        }
        Ok(())
    }
}

fn apply_worker(workers: &mut Workers, d: &mut Dec) -> Result<(), Malformed> {
    let name = d.str()?;
    let mode = d.str()?.to_owned();
    let active = d.bool()?;
    let data = if d.bool()? { Some(decode_value(d.bytes()?)?) } else { None };
    let expiration = d.opt_i64()?.map(Time);
    let last_update = d.opt_i64()?.map(Time);
    let parent = if d.bool()? { Some(d.str()?) } else { None };
    workers.restore(name, mode, active, data, expiration, last_update, parent);
    Ok(())
}

/// Where a snapshot copy has got to.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    /// The spec being copied; `None` before the first.
    spec: Option<String>,
    /// The last unit key copied in that spec.
    unit: Option<UKey>,
    /// Specs are done; workers come next.
    workers_done: bool,
    specs_done: bool,
    records: u64,
}

/// Units copied per hold of the lock.
const SNAPSHOT_CHUNK: usize = 512;

impl super::MemoryBackend {
    /// Starts journaling: from now on every locked section's changes go to
    /// `sink` as one record.
    pub fn attach(&self, sink: Arc<dyn Sink>) {
        self.state.lock().cx.log.sink = Some(sink);
    }

    /// Applies a journal or snapshot record, during recovery (before
    /// [`attach`](Self::attach)). `Ok(true)` marks a snapshot's end.
    pub fn replay(&self, payload: &[u8]) -> Result<bool, Malformed> {
        self.state.lock().apply(payload)
    }

    /// Runs `f` under the state lock; a journal rotation done there
    /// happens at a consistent point between changes.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.lock();
        f()
    }

    /// Copies the next chunk of the state into `out` as one record body,
    /// holding the lock only for the chunk. Returns false when done (the
    /// last call writes the end marker).
    pub fn snapshot_chunk(&self, cursor: &mut Cursor, out: &mut Vec<u8>) -> bool {
        let st = self.state.lock();
        if !cursor.specs_done {
            let after = |name: &str| {
                st.specs.range::<str, _>((std::ops::Bound::Excluded(name), std::ops::Bound::Unbounded)).next()
            };
            let next = match (&cursor.spec, &cursor.unit) {
                (None, _) => st.specs.iter().next(),
                // Mid-spec: go on with it, or past it if it was deleted.
                (Some(name), Some(_)) => st.specs.get_key_value(name.as_str()).or_else(|| after(name)),
                (Some(name), None) => after(name),
            };
            let Some((name, spec)) = next else {
                cursor.specs_done = true;
                return true;
            };
            if cursor.spec.as_deref() != Some(name.as_str()) {
                cursor.spec = Some(name.clone());
                cursor.unit = None;
                encode_spec(out, spec);
                cursor.records += 1;
            }
            let mut n = 0;
            let lower = match &cursor.unit {
                Some(k) => std::ops::Bound::Excluded(&k[..]),
                None => std::ops::Bound::Unbounded,
            };
            let mut last = None;
            for (k, u) in spec.units.range::<[u8], _>((lower, std::ops::Bound::Unbounded)).take(SNAPSHOT_CHUNK) {
                encode_unit(out, name, k, u, true);
                last = Some(k.clone());
                n += 1;
            }
            cursor.records += n as u64;
            // A full chunk may have more after it; otherwise the spec is done.
            cursor.unit = if n == SNAPSHOT_CHUNK { last } else { None };
            return true;
        }
        if !cursor.workers_done {
            for (name, w) in st.cx.workers.all() {
                encode_worker(out, name, w);
                cursor.records += 1;
            }
            cursor.workers_done = true;
        }
        if !st.locks.is_empty() {
            let mut e = Enc(out);
            e.u8(LOCKS);
            e.bytes(&st.locks);
            cursor.records += 1;
        }
        let mut e = Enc(out);
        e.u8(END);
        e.uvar(cursor.records);
        false
    }
}

fn encode_locks(held: &[HeldLock]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut e = Enc(&mut body);
    e.uvar(held.len() as u64);
    for l in held {
        let mut path = Vec::new();
        encode_array(&l.path, &mut path);
        e.bytes(&path);
        e.str(&l.owner);
        e.i64(l.deadline.0);
    }
    body
}

fn decode_locks(body: &[u8]) -> Result<Vec<HeldLock>, Malformed> {
    let mut d = Dec::new(body);
    let n = d.uvar()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let Value::Array(path) = decode_value(d.bytes()?)? else { return Err(Malformed("lock path is not a list")) };
        let owner = d.str()?.to_owned();
        let deadline = Time(d.i64()?);
        out.push(HeldLock { path, owner, deadline });
    }
    Ok(out)
}

impl super::MemoryBackend {
    /// Journals the locks held now, if they changed since the last
    /// record; read under the state lock, so journal order is the order
    /// of the reads and of two concurrent calls the later record holds
    /// both changes.
    pub(super) fn journal_locks(&self, now: Time) {
        let mut st = self.lock();
        if !st.cx.log.active() {
            return;
        }
        let body = encode_locks(&self.locks.held_locks(now));
        if body == st.locks {
            return;
        }
        st.cx.log.locks(&body);
        st.locks = body;
    }

    /// Puts the locks the last lock record held (recovered from the
    /// journal and snapshot) back in the tree, with their own deadlines;
    /// those already past expire on the next lock call.
    pub fn restore_locks(&self) -> Result<(), String> {
        let st = self.state.lock();
        if st.locks.is_empty() {
            return Ok(());
        }
        let held = decode_locks(&st.locks).map_err(|e| format!("lock record: {e}"))?;
        drop(st);
        self.locks.restore(held);
        Ok(())
    }

    /// A canonical encoding of the whole state: specs and units in key
    /// order, then the worker records that say anything, by name. Derived
    /// sets (pending units per worker, children) follow from these.
    pub fn digest(&self) -> Vec<u8> {
        let st = self.state.lock();
        let mut out = Vec::new();
        for spec in st.specs.values() {
            encode_spec(&mut out, spec);
            for (k, u) in &spec.units {
                encode_unit(&mut out, &spec.name, k, u, true);
            }
        }
        let mut workers: Vec<_> = st
            .cx
            .workers
            .all()
            .filter(|(_, w)| w.active || w.data.is_some() || w.last_update.is_some() || w.parent.is_some())
            .collect();
        workers.sort_by(|a, b| a.0.cmp(b.0));
        for (name, w) in workers {
            encode_worker(&mut out, name, w);
        }
        out.extend_from_slice(&st.locks);
        // The tree itself, in path order (its own order follows insertion).
        let mut held = self.locks.held_locks(Time(i64::MIN));
        held.sort_by_cached_key(|h| to_vec(&Value::Array(h.path.clone())));
        out.extend_from_slice(&encode_locks(&held));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_record_types_are_refused() {
        let mut st = State {
            specs: Default::default(),
            cx: super::super::Ctx::default(),
            rng: rand::SeedableRng::seed_from_u64(1),
            locks: Vec::new(),
        };
        assert!(st.apply(&[99]).is_err());
        assert!(st.apply(&[UNIT_PUT, 1]).is_err());
    }
}
