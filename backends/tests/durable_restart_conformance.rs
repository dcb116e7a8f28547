//! The conformance suite on the durable backend restarted after every
//! change: each mutating call is followed by closing the store and opening
//! it again from its directory, and the state read back must equal the
//! state before, byte for byte. Every second restart also writes a
//! snapshot first, so recovery from snapshot plus journal is exercised as
//! much as recovery from the journal alone.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use backends::durable::{DurableBackend, DurableOptions};
use backends::locks::{LockAnswer, LockCall, LockLimits};
use backends::model::*;
use backends::stats::SpecStats;
use backends::{Coordinate, MockClock, Time, Value};
use parking_lot::Mutex;

struct Restarting {
    dir: PathBuf,
    clock: MockClock,
    current: Mutex<Option<Arc<DurableBackend>>>,
    restarts: AtomicU64,
}

impl Restarting {
    fn open(dir: PathBuf, clock: MockClock) -> Restarting {
        let b = Self::open_dir(&dir, &clock);
        Restarting { dir, clock, current: Mutex::new(Some(Arc::new(b))), restarts: AtomicU64::new(0) }
    }

    fn open_dir(dir: &std::path::Path, clock: &MockClock) -> DurableBackend {
        let opts = DurableOptions { seed: Some(1), ..DurableOptions::new(dir) };
        DurableBackend::open(opts, Arc::new(clock.clone())).expect("open durable backend")
    }

    fn cur(&self) -> Arc<DurableBackend> {
        self.current.lock().clone().expect("open")
    }

    fn restart(&self) {
        let old = self.current.lock().take().expect("open");
        let old = Arc::try_unwrap(old).ok().expect("no call in flight during a restart");
        let n = self.restarts.fetch_add(1, Ordering::Relaxed);
        if n % 2 == 1 {
            old.snapshot_now().expect("snapshot");
        }
        let before = old.digest();
        drop(old);
        let new = Self::open_dir(&self.dir, &self.clock);
        assert!(new.digest() == before, "state after restart {n} differs from the state before it");
        *self.current.lock() = Some(Arc::new(new));
    }

    async fn write<T, F: std::future::Future<Output = Result<T>>>(
        &self,
        f: impl FnOnce(Arc<DurableBackend>) -> F,
    ) -> Result<T> {
        let r = f(self.cur()).await;
        self.restart();
        r
    }
}

impl Coordinate for Restarting {
    async fn list_work_specs(&self, start: &str, limit: usize) -> Result<(Vec<SpecData>, Option<String>)> {
        self.cur().list_work_specs(start, limit).await
    }
    async fn set_work_spec(&self, data: SpecData) -> Result<()> {
        self.write(|b| async move { b.set_work_spec(data).await }).await
    }
    async fn del_work_spec(&self, name: &str) -> Result<()> {
        self.write(|b| async move { b.del_work_spec(name).await }).await
    }
    async fn clear(&self) -> Result<usize> {
        self.write(|b| async move { b.clear().await }).await
    }
    async fn get_work_spec(&self, name: &str) -> Result<SpecData> {
        self.cur().get_work_spec(name).await
    }
    async fn get_work_spec_meta(&self, name: &str) -> Result<SpecMeta> {
        self.cur().get_work_spec_meta(name).await
    }
    async fn control_work_spec(&self, name: &str, control: SpecControl) -> Result<()> {
        self.write(|b| async move { b.control_work_spec(name, control).await }).await
    }
    async fn add_work_units(&self, spec: &str, units: Vec<NewUnit>) -> Result<()> {
        self.write(|b| async move { b.add_work_units(spec, units).await }).await
    }
    async fn get_work_units(&self, spec: &str, query: UnitQuery) -> Result<Vec<(UnitKey, Value)>> {
        self.cur().get_work_units(spec, query).await
    }
    async fn get_work_unit_status(&self, spec: &str, keys: Vec<Key>) -> Result<Vec<Option<UnitStatusInfo>>> {
        self.cur().get_work_unit_status(spec, keys).await
    }
    async fn prioritize_work_units(&self, spec: &str, keys: Vec<Key>, change: PriorityChange) -> Result<()> {
        self.write(|b| async move { b.prioritize_work_units(spec, keys, change).await }).await
    }
    async fn count_work_units(&self, spec: &str) -> Result<BTreeMap<UnitStatus, u64>> {
        self.cur().count_work_units(spec).await
    }
    async fn del_work_units(&self, spec: &str, query: DelQuery) -> Result<u64> {
        self.write(|b| async move { b.del_work_units(spec, query).await }).await
    }
    async fn retry_work_units(&self, spec: &str, keys: Option<Vec<Key>>) -> Result<u64> {
        self.write(|b| async move { b.retry_work_units(spec, keys).await }).await
    }
    async fn archive(&self, policy: ArchivePolicy) -> Result<u64> {
        self.write(|b| async move { b.archive(policy).await }).await
    }
    async fn get_work(&self, worker: &str, options: GetWork) -> Result<Vec<WorkGrant>> {
        self.write(|b| async move { b.get_work(worker, options).await }).await
    }
    async fn update_work_unit(&self, spec: &str, key: &[u8], update: UnitUpdate) -> Result<bool> {
        self.write(|b| async move { b.update_work_unit(spec, key, update).await }).await
    }
    async fn worker_heartbeat(&self, heartbeat: Heartbeat) -> Result<()> {
        self.write(|b| async move { b.worker_heartbeat(heartbeat).await }).await
    }
    async fn worker_unregister(&self, worker: &str) -> Result<()> {
        self.write(|b| async move { b.worker_unregister(worker).await }).await
    }
    async fn list_worker_modes(&self) -> Result<BTreeMap<String, String>> {
        self.cur().list_worker_modes().await
    }
    async fn get_worker_info(&self, worker: &str) -> Result<Option<Value>> {
        self.cur().get_worker_info(worker).await
    }
    async fn list_workers(&self, start: &str, limit: usize) -> Result<(Vec<WorkerInfo>, Option<String>)> {
        self.cur().list_workers(start, limit).await
    }
    async fn mode_counts(&self) -> Result<BTreeMap<String, u64>> {
        self.cur().mode_counts().await
    }
    async fn worker_stats(&self) -> Result<WorkerStats> {
        self.cur().worker_stats().await
    }
    async fn get_child_work_units(&self, worker: &str) -> Result<BTreeMap<String, Vec<ChildUnit>>> {
        self.cur().get_child_work_units(worker).await
    }
    async fn lock_call(&self, call: &LockCall, limits: &LockLimits) -> Result<LockAnswer> {
        if call.writes() {
            self.write(|b| async move { b.lock_call(call, limits).await }).await
        } else {
            self.cur().lock_call(call, limits).await
        }
    }
    fn now(&self) -> Time {
        self.cur().now()
    }
    /// The durable backend's counts; its counters count since the process
    /// started, so here they start again at every restart, that is after
    /// every change, and are left out (the counters rule then skips).
    async fn spec_stats(&self) -> Result<Vec<SpecStats>> {
        let mut stats = self.cur().spec_stats().await?;
        stats.iter_mut().for_each(|s| s.counters = None);
        Ok(stats)
    }
}

backends::conformance_tests!(|clock: MockClock| async move { Restarting::open(common::fresh_dir("restart"), clock) });
