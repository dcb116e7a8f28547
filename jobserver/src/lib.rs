//! The Python-compatible Coordinate RPC methods.
//!
//! [`JobServer::call`] takes a method name and its CBOR parameters and
//! dispatches to one typed [`Operation`] per method, which decodes them
//! ([`params`]), makes one call on the [`Coordinate`] backend (which keeps
//! the locks of the lock methods too), and shapes the answer exactly as the Python client unpacks it.
//! It knows nothing of sockets; the daemon's connection loop feeds it, and
//! the HTTP API runs the same operations with JSON around them.
//!
//! Methods live by area, as in go-coordinate's `jobserver/`: [`specs`],
//! [`units`], [`work`] (`get_work` and `update_work_unit`; which unit is
//! handed out is decided by `backends::scheduler` and the backend's
//! `get_work`), [`workers`], [`locks`] and [`config`]. Errors keep their
//! kind ([`RpcError`]); protocol constants and defaults are in [`wire`].
//! Each call is counted and timed per [`Method`] ([`metrics`]).
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
pub mod method;
pub mod metrics;
pub mod op;
pub mod params;
pub mod specs;
pub mod units;
pub mod wire;
pub mod work;
pub mod workers;

use std::time::Instant;

use backends::locks::LockLimits;
use backends::Coordinate;
use cborrpc::Value;

pub use error::{ErrorKind, RpcError, RpcResult};
pub use method::Method;
pub use op::Operation;

use metrics::RequestStats;

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
    config: Option<Value>,
    limits: Limits,
    metrics: RequestStats,
}

impl<C: Coordinate> JobServer<C> {
    /// A job server over `backend` with default limits; `config` is what
    /// `get_config` returns.
    pub fn new(backend: C, config: Option<Value>) -> Self {
        Self::with_limits(backend, config, Limits::default())
    }

    /// A job server with the given limits.
    pub fn with_limits(backend: C, config: Option<Value>, limits: Limits) -> Self {
        JobServer { backend, config, limits, metrics: RequestStats::default() }
    }

    /// The backend.
    pub fn backend(&self) -> &C {
        &self.backend
    }

    /// The `--config` document, if any.
    pub fn config(&self) -> Option<&Value> {
        self.config.as_ref()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Request and connection counters (the daemon's connection loop
    /// counts its connections here; [`metrics::render`] reads them).
    pub fn metrics(&self) -> &RequestStats {
        &self.metrics
    }

    /// Runs one RPC method (snake_case or CamelCase name).
    pub async fn call(&self, method: &str, params: Vec<Value>) -> RpcResult<Value> {
        use {config::*, locks::*, specs::*, units::*, work::*, workers::*};
        let started = Instant::now();
        let m = Method::from_snake(&wire::snake(method));
        if let Err(e) = wire::check_readable(&params) {
            self.metrics.record(m, Some(ErrorKind::InvalidRequest), started);
            return Err(RpcError::InvalidRequest(e));
        }
        let Some(m) = m else {
            self.metrics.record(None, Some(ErrorKind::InvalidRequest), started);
            return Err(RpcError::invalid(format!("no such method {method}")));
        };
        match m {
            Method::ListWorkSpecs => self.run::<ListWorkSpecs>(m, params, started).await,
            Method::SetWorkSpec => self.run::<SetWorkSpec>(m, params, started).await,
            Method::DelWorkSpec => self.run::<DelWorkSpec>(m, params, started).await,
            Method::Clear => self.run::<Clear>(m, params, started).await,
            Method::GetWorkSpec => self.run::<GetWorkSpec>(m, params, started).await,
            Method::ControlWorkSpec => self.run::<ControlWorkSpec>(m, params, started).await,
            Method::GetWorkSpecMeta => self.run::<GetWorkSpecMeta>(m, params, started).await,
            Method::AddWorkUnits => self.run::<AddWorkUnits>(m, params, started).await,
            Method::GetWorkUnits => self.run::<GetWorkUnits>(m, params, started).await,
            Method::GetWorkUnitStatus => self.run::<GetWorkUnitStatus>(m, params, started).await,
            Method::PrioritizeWorkUnits => self.run::<PrioritizeWorkUnits>(m, params, started).await,
            Method::CountWorkUnits => self.run::<CountWorkUnits>(m, params, started).await,
            Method::DelWorkUnits => self.run::<DelWorkUnits>(m, params, started).await,
            Method::Archive => self.run::<Archive>(m, params, started).await,
            Method::GetWork => self.run::<GetWork>(m, params, started).await,
            Method::UpdateWorkUnit => self.run::<UpdateWorkUnit>(m, params, started).await,
            Method::WorkerHeartbeat => self.run::<WorkerHeartbeat>(m, params, started).await,
            Method::WorkerUnregister => self.run::<WorkerUnregister>(m, params, started).await,
            Method::ListWorkerModes => self.run::<ListWorkerModes>(m, params, started).await,
            Method::GetWorkerInfo => self.run::<GetWorkerInfo>(m, params, started).await,
            Method::ModeCounts => self.run::<ModeCounts>(m, params, started).await,
            Method::WorkerStats => self.run::<GetWorkerStats>(m, params, started).await,
            Method::GetChildWorkUnits => self.run::<GetChildWorkUnits>(m, params, started).await,
            Method::Lock => self.run::<Lock>(m, params, started).await,
            Method::Renew => self.run::<Renew>(m, params, started).await,
            Method::LockSome => self.run::<LockSome>(m, params, started).await,
            Method::ReadLock => self.run::<ReadLock>(m, params, started).await,
            Method::Unlock => self.run::<Unlock>(m, params, started).await,
            Method::DeleteNamespace => self.run::<DeleteNamespace>(m, params, started).await,
            Method::Now => self.run::<Now>(m, params, started).await,
            Method::GetConfig => self.run::<GetConfig>(m, params, started).await,
        }
    }

    /// Decodes, executes and answers one operation, and records it. The
    /// outcome is the execution's, before an error is answered in band
    /// (a missing spec counts as `not_found`).
    async fn run<O: Operation>(&self, m: Method, params: Vec<Value>, started: Instant) -> RpcResult<Value> {
        let op = match O::parse(params) {
            Ok(op) => op,
            Err(e) => {
                self.metrics.record(Some(m), Some(e.kind()), started);
                return Err(e);
            }
        };
        let out = op.execute(self).await;
        self.metrics.record(Some(m), out.as_ref().err().map(RpcError::kind), started);
        O::answer(out)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod parse_tests;
