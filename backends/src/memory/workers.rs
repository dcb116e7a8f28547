//! Worker records of the memory backend.
//!
//! Workers are created by any call that names them. Each keeps the set of
//! units it holds pending leases on, so `get_child_work_units` answers from
//! that set instead of scanning every unit.

use std::collections::BTreeSet;
use std::sync::Arc;

use cborrpc::Value;

use super::UKey;
use crate::clock::Time;
use crate::model::{Heartbeat, WORKER_RECORD_GRACE};

#[derive(Debug, Default)]
pub(super) struct Worker {
    pub mode: String,
    /// The last heartbeat's data; `None` before the first heartbeat.
    pub data: Option<Value>,
    pub expiration: Option<Time>,
    pub last_update: Option<Time>,
    /// True between a heartbeat and `worker_unregister`.
    pub active: bool,
    pub parent: Option<Arc<str>>,
    pub children: BTreeSet<Arc<str>>,
    /// (spec, key) of the units this worker holds pending.
    pub pending: HashSet<(Arc<str>, UKey)>,
}

impl Worker {
    fn live(&self, now: Time) -> bool {
        self.active && self.expiration.is_none_or(|e| e > now)
    }
}

/// Worker names and held units are hashed on every `get_work` and update:
/// foldhash (hashbrown's default, seeded per process) instead of SipHash,
/// which cost more than the rest of the lookups it served.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
type HashSet<T> = std::collections::HashSet<T, foldhash::quality::RandomState>;

#[derive(Debug, Default)]
pub(super) struct Workers {
    map: HashMap<Arc<str>, Worker>,
}

impl Workers {
    /// The worker's shared name, creating the record if needed.
    pub fn touch(&mut self, name: &str) -> Arc<str> {
        if let Some((k, _)) = self.map.get_key_value(name) {
            return k.clone();
        }
        let k: Arc<str> = name.into();
        self.map.insert(k.clone(), Worker::default());
        k
    }

    pub fn get(&self, name: &str) -> Option<&Worker> {
        self.map.get(name)
    }

    pub fn hold(&mut self, worker: &Arc<str>, spec: &Arc<str>, key: &UKey) {
        if let Some(w) = self.map.get_mut(worker) {
            w.pending.insert((spec.clone(), key.clone()));
        }
    }

    pub fn release(&mut self, worker: &Arc<str>, spec: &Arc<str>, key: &UKey) {
        if let Some(w) = self.map.get_mut(worker) {
            w.pending.remove(&(spec.clone(), key.clone()));
        }
    }

    pub fn heartbeat(&mut self, hb: Heartbeat, now: Time) {
        let name = self.touch(&hb.worker);
        let parent = hb.parent.filter(|p| !p.is_empty() && *p != hb.worker).map(|p| self.touch(&p));
        let w = self.map.get_mut(&name).expect("just touched");
        w.active = true;
        w.mode = hb.mode;
        w.data = Some(hb.data);
        w.last_update = Some(now);
        w.expiration = Some(now.plus_secs(hb.expire_secs));
        self.set_parent(name, parent);
    }

    /// Points a worker at its parent, moving it between children sets.
    fn set_parent(&mut self, name: Arc<str>, parent: Option<Arc<str>>) {
        let Some(w) = self.map.get_mut(&name) else { return };
        let old = std::mem::replace(&mut w.parent, parent.clone());
        if let Some(old) = old.and_then(|o| self.map.get_mut(&o)) {
            old.children.remove(&name);
        }
        if let Some(new) = parent.and_then(|p| self.map.get_mut(&p)) {
            new.children.insert(name);
        }
    }

    /// Marks a worker inactive; returns the workers pruned meanwhile.
    pub fn unregister(&mut self, name: &str, now: Time) -> Vec<Arc<str>> {
        let name = self.touch(name);
        if let Some(w) = self.map.get_mut(&name) {
            w.active = false;
            w.last_update = Some(now);
        }
        self.prune(now)
    }

    /// Drops the records of workers gone for longer than
    /// [`WORKER_RECORD_GRACE`] that hold nothing and have no children.
    fn prune(&mut self, now: Time) -> Vec<Arc<str>> {
        let cutoff = now.plus_secs(-WORKER_RECORD_GRACE);
        let doomed: Vec<Arc<str>> = self
            .map
            .iter()
            .filter(|(_, w)| {
                !w.live(now)
                    && w.pending.is_empty()
                    && w.children.is_empty()
                    && w.last_update.is_none_or(|t| t < cutoff)
                    && w.expiration.is_none_or(|e| e < cutoff || !w.active)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for name in &doomed {
            self.forget(name);
        }
        doomed
    }

    /// Drops a worker's record.
    pub fn forget(&mut self, name: &str) {
        if let Some(parent) = self.map.remove(name).and_then(|w| w.parent) {
            if let Some(p) = self.map.get_mut(&parent) {
                p.children.remove(name);
            }
        }
    }

    /// Active, unexpired workers.
    pub fn live(&self, now: Time) -> impl Iterator<Item = (&Arc<str>, &Worker)> {
        self.map.iter().filter(move |(_, w)| w.live(now))
    }
}

impl Workers {
    /// Every worker record (for snapshots).
    pub fn all(&self) -> impl Iterator<Item = (&Arc<str>, &Worker)> {
        self.map.iter()
    }

    /// Sets a worker record from the journal, linking it to its parent.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &mut self,
        name: &str,
        mode: String,
        active: bool,
        data: Option<Value>,
        expiration: Option<Time>,
        last_update: Option<Time>,
        parent: Option<&str>,
    ) {
        let name = self.touch(name);
        let parent = parent.map(|p| self.touch(p));
        let w = self.map.get_mut(&name).expect("just touched");
        w.mode = mode;
        w.active = active;
        w.data = data;
        w.expiration = expiration;
        w.last_update = last_update;
        self.set_parent(name, parent);
    }
}
