//! The Python-compatible Coordinate RPC methods.
//!
//! [`JobServer::call`] takes a method name and its CBOR parameters and
//! dispatches to one typed [`Operation`] per method, which decodes them
//! ([`params`]), makes one call on the [`Coordinate`] backend (or the lock
//! tree), and shapes the answer exactly as the Python client unpacks it.
//! It knows nothing of sockets; the daemon's connection loop feeds it, and
//! the HTTP API runs the same operations with JSON around them.
//!
//! Methods live by area, as in go-coordinate's `jobserver/`: [`specs`],
//! [`units`], [`work`] (`get_work` and `update_work_unit`; which unit is
//! handed out is decided by `backends::scheduler` and the backend's
//! `get_work`), [`workers`], [`locks`] and [`config`]. Errors keep their
//! kind ([`RpcError`]); protocol constants and defaults are in [`wire`].
//!
//! Answer shapes follow go-coordinate: methods that return a value and a
//! message answer a plain two-element array `[value, message-or-null]`;
//! `get_work` items and `get_work_units` pairs are tuples (tag 128); spec
//! names and worker ids are text. A missing work spec is an in-band
//! `[zero, "No such work spec NAME"]` for the pair-returning methods.
//!
//! Strings come back as they were sent, as from the Python daemon (Go
//! answered bytes, which a Python 3 client sees as `b'...'`): a work unit
//! key is answered in the string type it was last added with (text or
//! bytes; a key that is not UTF-8 can only be bytes), and spec data keeps
//! every value's type, `module` and `run_function` included.
//!
//! Decisions where go-coordinate and the Python daemon differ
//! (docs/protocol.md §7.1), taken here for every backend:
//!
//! * `archive` always answers `result: null` (Go omitted `result`, which
//!   makes the client raise). Its options `older_than` (seconds) and `keep`
//!   (per spec and status) remove old finished and failed units; with no
//!   options it removes nothing.
//! * `list_work_specs` is sorted by name, `start` inclusive, `limit`
//!   honoured, `next` names the first spec not returned.
//! * Empty results are `[]`, never `null`.
//! * `worker_heartbeat` with a null or empty parent means "no parent".
//! * A chained `output` to a missing `then` spec is ignored.
//! * The 4th element of a unit item may be any number.
//! * `del_work_units({})` deletes nothing and says so; `work_unit_keys`
//!   with `state` deletes only the named units in that state.
//! * `get_work_unit_status` answers `null` for unknown keys.
//! * `update_work_unit` checks the status code before touching anything.
//! * `list_worker_modes` and `mode_counts` answer `[map, null]` and count
//!   only live workers (active and not expired); so does `worker_stats`.
//! * Worker records are kept while a worker is live, holds a unit or has
//!   children, and for a day after it unregisters or expires; then they are
//!   dropped (Go kept every worker forever, Python dropped them at once).
//! * Responses use text keys `id`, `result`, `error` (Go used byte strings;
//!   Python 2 clients accept both, Python 3 clients need text).
//! * `get_work_spec` of a missing spec answers `null`, as the client
//!   documents.
//! * `get_config` of a daemon started without `--config` answers an empty
//!   map (the Python daemon always had a config to return).
//! * Synthetic keys of continuous specs are text.
//! * `get_work` honours `lease_time`: absent or below 1 s means go-coordinate's
//!   fixed 15 minutes, above 86,400 s is clamped to a day.
//! * `update_work_unit`'s `lease_time` extends the lease to now + value; a
//!   value ≤ 0 (what workers send to abandon a unit) lets the lease lapse at
//!   once, so the unit is available again on the next call. Absent means
//!   300 s, as in Go.
//! * Work unit data follows go-coordinate's attempt model: data written by
//!   a worker belongs to that attempt, and a retried unit shows its
//!   original data again.
//! * Method names may also be sent in CamelCase (`GetWorkSpecMeta`), and
//!   missing trailing optional parameters read as null.

pub mod config;
pub mod error;
pub mod locks;
pub mod op;
pub mod params;
pub mod specs;
pub mod units;
pub mod wire;
pub mod work;
pub mod workers;

use backends::locks::{LockLimits, LockTree};
use backends::Coordinate;
use cborrpc::Value;

pub use error::{ErrorKind, RpcError, RpcResult};
pub use op::Operation;

/// Bounds on what one call may make the daemon build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest reply a call may build, in bytes (checked where one short
    /// request could name a large value many times).
    pub max_reply_bytes: usize,
    /// Limits of the lock methods.
    pub locks: LockLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_reply_bytes: 64 << 20, locks: LockLimits::default() }
    }
}

/// The RPC front of a Coordinate backend.
pub struct JobServer<C> {
    backend: C,
    locks: LockTree,
    config: Option<Value>,
    limits: Limits,
}

impl<C: Coordinate> JobServer<C> {
    /// A job server over `backend` with default limits; `config` is what
    /// `get_config` returns.
    pub fn new(backend: C, config: Option<Value>) -> Self {
        Self::with_limits(backend, config, Limits::default())
    }

    /// A job server with the given limits.
    pub fn with_limits(backend: C, config: Option<Value>, limits: Limits) -> Self {
        let locks = LockTree::with_limits(limits.locks.clone());
        // Locks a durable backend kept across a restart, with what is left
        // of their time.
        let now = backend.now();
        for held in backend.saved_locks() {
            let left = (held.deadline.0 - now.0) as f64 / 1e6;
            if left > 0.0 {
                let _ = locks.lock(now, &held.owner, left, &[held.path]);
            }
        }
        JobServer { backend, locks, config, limits }
    }

    /// The backend.
    pub fn backend(&self) -> &C {
        &self.backend
    }

    /// The daemon's lock tree.
    pub fn locks(&self) -> &LockTree {
        &self.locks
    }

    /// The `--config` document, if any.
    pub fn config(&self) -> Option<&Value> {
        self.config.as_ref()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs one RPC method (snake_case or CamelCase name).
    pub async fn call(&self, method: &str, params: Vec<Value>) -> RpcResult<Value> {
        use {config::*, locks::*, specs::*, units::*, work::*, workers::*};
        wire::check_readable(&params).map_err(RpcError::InvalidRequest)?;
        match &*wire::snake(method) {
            "list_work_specs" => self.run::<ListWorkSpecs>(params).await,
            "set_work_spec" => self.run::<SetWorkSpec>(params).await,
            "del_work_spec" => self.run::<DelWorkSpec>(params).await,
            "clear" => self.run::<Clear>(params).await,
            "get_work_spec" => self.run::<GetWorkSpec>(params).await,
            "control_work_spec" => self.run::<ControlWorkSpec>(params).await,
            "get_work_spec_meta" => self.run::<GetWorkSpecMeta>(params).await,
            "add_work_units" => self.run::<AddWorkUnits>(params).await,
            "get_work_units" => self.run::<GetWorkUnits>(params).await,
            "get_work_unit_status" => self.run::<GetWorkUnitStatus>(params).await,
            "prioritize_work_units" => self.run::<PrioritizeWorkUnits>(params).await,
            "count_work_units" => self.run::<CountWorkUnits>(params).await,
            "del_work_units" => self.run::<DelWorkUnits>(params).await,
            "archive" => self.run::<Archive>(params).await,
            "get_work" => self.run::<GetWork>(params).await,
            "update_work_unit" => self.run::<UpdateWorkUnit>(params).await,
            "worker_heartbeat" => self.run::<WorkerHeartbeat>(params).await,
            "worker_unregister" => self.run::<WorkerUnregister>(params).await,
            "list_worker_modes" => self.run::<ListWorkerModes>(params).await,
            "get_worker_info" => self.run::<GetWorkerInfo>(params).await,
            "mode_counts" => self.run::<ModeCounts>(params).await,
            "worker_stats" => self.run::<GetWorkerStats>(params).await,
            "get_child_work_units" => self.run::<GetChildWorkUnits>(params).await,
            "lock" => self.run::<Lock>(params).await,
            "renew" => self.run::<Renew>(params).await,
            "locksome" => self.run::<LockSome>(params).await,
            "readlock" => self.run::<ReadLock>(params).await,
            "unlock" => self.run::<Unlock>(params).await,
            "delete_namespace" => self.run::<DeleteNamespace>(params).await,
            "now" => self.run::<Now>(params).await,
            "get_config" => self.run::<GetConfig>(params).await,
            _ => Err(RpcError::invalid(format!("no such method {method}"))),
        }
    }

    /// Decodes, executes and answers one operation.
    async fn run<O: Operation>(&self, params: Vec<Value>) -> RpcResult<Value> {
        let op = O::parse(params)?;
        O::answer(op.execute(self).await)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod parse_tests;
