//! The Coordinate data model, the abstract [`Coordinate`] trait, the
//! scheduler, and the storage backends behind that trait.
//!
//! * [`model`] — plain data types passed across the trait: work spec
//!   metadata (derived from the spec's special keys), new work units,
//!   queries, statuses, and the errors every backend reports.
//! * [`Coordinate`] — one call per RPC-level operation on the daemon's
//!   (single, unnamed) namespace. Keeping each RPC one trait call lets the
//!   PostgreSQL backend run it as one transaction and the memory backend
//!   under one short lock.
//! * [`scheduler`] — the pure choice of a work spec: priority first, then a
//!   weighted-random draw that pushes pending counts toward the weights.
//! * [`clock`] — wall time behind a trait, so leases, delays, intervals and
//!   worker expiry are tested without sleeping.
//! * [`locks`] — the hierarchical lock tree of the `lock` RPCs, and each
//!   call of them as data ([`locks::LockCall`]) for
//!   [`Coordinate::lock_call`].
//! * [`stats`] — what the daemon's metrics read at scrape time: counts per
//!   status and counters of unit events, per spec.
//! * [`memory`] — the in-memory backend.
//! * [`postgres`] — the PostgreSQL backend: durable, shared by any number
//!   of daemons.
//! * [`conformance`] — the behaviour every backend must show, as a macro
//!   that expands to one `#[test]` per rule for a given backend factory.

pub mod clock;
pub mod conformance;
pub mod durable;
pub mod journal;
pub mod locks;
pub mod memory;
pub mod model;
pub mod postgres;
pub mod scheduler;
pub mod stats;

use std::collections::BTreeMap;
use std::future::Future;

pub use cborrpc::Value;
pub use clock::{Clock, MockClock, SystemClock, Time};
pub use model::*;

/// The operations a Coordinate backend provides. Each method is one
/// client-visible operation; all of them act on the daemon's namespace.
///
/// Methods return futures that are `Send` so the daemon can run them on
/// any tokio worker thread.
pub trait Coordinate: Send + Sync + 'static {
    /// Sorted spec names ≥ `start`, at most `limit` specs, with the name
    /// of the next spec when more remain.
    fn list_work_specs(
        &self,
        start: &str,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<SpecData>, Option<String>)>> + Send;
    /// Creates or replaces a spec from its data map; metadata is reset
    /// from the data, existing units are kept.
    fn set_work_spec(&self, data: SpecData) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a spec and everything in it.
    fn del_work_spec(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
    /// Deletes every spec; returns how many there were.
    fn clear(&self) -> impl Future<Output = Result<usize>> + Send;
    /// The spec's data map.
    fn get_work_spec(&self, name: &str) -> impl Future<Output = Result<SpecData>> + Send;
    /// The spec's metadata, including available and pending counts.
    fn get_work_spec_meta(&self, name: &str) -> impl Future<Output = Result<SpecMeta>> + Send;
    /// Changes the mutable parts of a spec's metadata.
    fn control_work_spec(&self, name: &str, control: SpecControl) -> impl Future<Output = Result<()>> + Send;
    /// Adds or replaces work units (upsert by key).
    fn add_work_units(&self, spec: &str, units: Vec<NewUnit>) -> impl Future<Output = Result<()>> + Send;
    /// Units matching a query, sorted by key: (key, effective data).
    fn get_work_units(
        &self,
        spec: &str,
        query: UnitQuery,
    ) -> impl Future<Output = Result<Vec<(UnitKey, Value)>>> + Send;
    /// Status of each named unit, `None` for unknown keys.
    fn get_work_unit_status(
        &self,
        spec: &str,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<Vec<Option<UnitStatusInfo>>>> + Send;
    /// Sets or adjusts the priority of the named units.
    fn prioritize_work_units(
        &self,
        spec: &str,
        keys: Vec<Key>,
        change: PriorityChange,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Number of units in each status (zero counts omitted).
    fn count_work_units(&self, spec: &str) -> impl Future<Output = Result<BTreeMap<UnitStatus, u64>>> + Send;
    /// Deletes units; returns how many.
    fn del_work_units(&self, spec: &str, query: DelQuery) -> impl Future<Output = Result<u64>> + Send;
    /// Makes failed units available again (delayed, if their delay has
    /// not passed), as `update_work_unit` to available does: the named
    /// units that are failed, or every failed unit when `keys` is `None`.
    /// Returns how many. Units in another status are left alone.
    fn retry_work_units(&self, spec: &str, keys: Option<Vec<Key>>) -> impl Future<Output = Result<u64>> + Send;
    /// Removes finished and failed units, keeping at most
    /// `keep_finished` / `keep_failed` of the newest per spec.
    fn archive(&self, policy: ArchivePolicy) -> impl Future<Output = Result<u64>> + Send;
    /// Hands out work to a worker (creating the worker if needed).
    fn get_work(&self, worker: &str, options: GetWork) -> impl Future<Output = Result<Vec<WorkGrant>>> + Send;
    /// Renews, finishes, fails or retries a unit; returns whether anything
    /// changed.
    fn update_work_unit(&self, spec: &str, key: &[u8], update: UnitUpdate)
        -> impl Future<Output = Result<bool>> + Send;
    /// Records a worker's heartbeat.
    fn worker_heartbeat(&self, heartbeat: Heartbeat) -> impl Future<Output = Result<()>> + Send;
    /// Marks a worker inactive.
    fn worker_unregister(&self, worker: &str) -> impl Future<Output = Result<()>> + Send;
    /// Live workers (active, not expired) and their modes.
    fn list_worker_modes(&self) -> impl Future<Output = Result<BTreeMap<String, String>>> + Send;
    /// The last heartbeat data of a worker (`None` if unknown or never sent).
    fn get_worker_info(&self, worker: &str) -> impl Future<Output = Result<Option<Value>>> + Send;
    /// Live workers sorted by id, from `start` (inclusive), at most
    /// `limit`, with the id of the next one when more remain.
    fn list_workers(
        &self,
        start: &str,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<WorkerInfo>, Option<String>)>> + Send;
    /// Number of live workers per mode.
    fn mode_counts(&self) -> impl Future<Output = Result<BTreeMap<String, u64>>> + Send;
    /// Worker totals.
    fn worker_stats(&self) -> impl Future<Output = Result<WorkerStats>> + Send;
    /// Pending units of each direct child of a worker.
    fn get_child_work_units(
        &self,
        worker: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<ChildUnit>>>> + Send;
    /// The backend's current time.
    fn now(&self) -> Time;

    /// Runs one call of the lock family (`lock`, `renew`, `locksome`,
    /// `readlock`, `unlock`, `delete_namespace`) on the locks this backend
    /// keeps, under `limits`. A refusal is an answer, not an error; the
    /// answer to a call that changed the locks comes once the change is
    /// as durable as the backend's units.
    fn lock_call(
        &self,
        call: &locks::LockCall,
        limits: &locks::LockLimits,
    ) -> impl Future<Output = Result<locks::LockAnswer>> + Send;

    /// Every spec's unit counts, current now (due leases and delays
    /// applied first, as `count_work_units` does), with the counters the
    /// backend keeps. Read at each metrics scrape, so it must not scan
    /// units nor query each spec in turn.
    fn spec_stats(&self) -> impl Future<Output = Result<Vec<stats::SpecStats>>> + Send;
}
