//! The two calls of a worker's loop (docs/protocol.md §3.3): `get_work`
//! and `update_work_unit`. Which spec and which units `get_work` hands out
//! is the backend's, through `backends::scheduler` (docs/protocol.md §4);
//! here are the options and the answer shapes.

use backends::model::{GetWork as WorkOptions, Key, NewUnit, UnitStatus, UnitUpdate, WorkGrant};
use backends::Coordinate;
use cborrpc::value::{pair, text, tuple, type_name, Value};

use crate::error::{RpcError, RpcResult};
use crate::op::{in_band, Operation};
use crate::params::{integer, key, number, string, string_set, Params};
use crate::wire::{status, DEFAULT_GET_WORK_LEASE, DEFAULT_UPDATE_LEASE, MAX_LEASE};
use crate::JobServer;

/// `get_work(worker_id, options)`: leases up to `max_jobs` units of one
/// spec to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct GetWork {
    /// The worker (created if new).
    pub worker: String,
    /// What to hand out.
    pub options: WorkOptions,
}

/// What `get_work` handed out, and whether the client asked for one unit
/// (answered as one tuple) or several (a list of tuples).
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    /// The units.
    pub grants: Vec<WorkGrant>,
    /// The client asked for exactly one.
    pub single: bool,
}

/// The lease `get_work` gives: the client's if at least a second (capped
/// at a day), else the default.
fn get_work_lease(asked: Option<f64>) -> f64 {
    match asked {
        Some(l) if l >= 1.0 => l.min(MAX_LEASE),
        _ => DEFAULT_GET_WORK_LEASE,
    }
}

impl Operation for GetWork {
    type Output = Granted;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let mut p = Params::new(params, 1, 2)?;
        let worker = p.worker_id(0)?;
        let o = p.options(1)?;
        let max_jobs = o.opt("max_jobs", integer)?.unwrap_or(1).max(1) as usize;
        o.opt("available_gb", number)?;
        let mut options = WorkOptions::new(max_jobs, get_work_lease(o.opt("lease_time", number)?));
        options.work_spec_names = o.opt("work_spec_names", string_set)?.unwrap_or_default();
        Ok(GetWork { worker, options })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Granted> {
        let single = self.options.max_jobs == 1;
        Ok(Granted { grants: s.backend().get_work(&self.worker, self.options).await?, single })
    }

    fn answer(out: RpcResult<Granted>) -> RpcResult<Value> {
        let Granted { grants, single } = out?;
        let item = |g: WorkGrant| tuple(vec![text(g.spec), g.key.into_value(), g.data]);
        let result = if single {
            match grants.into_iter().next() {
                Some(g) => item(g),
                None => tuple(vec![Value::Null, Value::Null, Value::Null]),
            }
        } else {
            Value::Array(grants.into_iter().map(item).collect())
        };
        Ok(pair(result, None))
    }
}

/// `update_work_unit(name, key, options)`: renews, finishes, fails or
/// retries a unit, or replaces an idle unit's data; answers whether
/// anything changed.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateWorkUnit {
    /// The spec.
    pub name: String,
    /// The unit.
    pub key: Key,
    /// What to do.
    pub update: UnitUpdate,
}

/// The status an update asks for; 0 or absent means "keep it".
fn requested_status(code: Option<i64>) -> RpcResult<Option<UnitStatus>> {
    Ok(match code {
        None | Some(0) => None,
        Some(status::AVAILABLE) => Some(UnitStatus::Available),
        Some(status::PENDING) => Some(UnitStatus::Pending),
        Some(status::FINISHED) => Some(UnitStatus::Finished),
        Some(status::FAILED) => Some(UnitStatus::Failed),
        Some(_) => return Err(RpcError::invalid("update_work_unit invalid status")),
    })
}

impl Operation for UpdateWorkUnit {
    type Output = bool;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let mut p = Params::new(params, 3, 3)?;
        let name = p.spec_name(0)?;
        let key = key(p.get(1), "work_unit_key")?;
        let mut o = p.options(2)?;
        let status = requested_status(o.opt("status", integer)?)?;
        let data = match o.take("data") {
            None => None,
            Some(d @ Value::Map(_)) => Some(NewUnit::check_data(d)?),
            Some(other) => return Err(RpcError::invalid(format!("data: expected a map, got {}", type_name(&other)))),
        };
        let lease = o.opt("lease_time", number)?.map_or(DEFAULT_UPDATE_LEASE, |l| l.min(MAX_LEASE));
        let update = UnitUpdate { status, lease_secs: lease, data, worker_id: o.opt("worker_id", string)? };
        Ok(UpdateWorkUnit { name, key, update })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<bool> {
        Ok(s.backend().update_work_unit(&self.name, &self.key, self.update).await?)
    }

    fn answer(out: RpcResult<bool>) -> RpcResult<Value> {
        in_band(out, Value::Bool(false), Value::Bool)
    }
}
