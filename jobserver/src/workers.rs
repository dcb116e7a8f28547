//! Worker methods (docs/protocol.md §3.4): heartbeats, unregistering, and
//! what an operator or a parent worker asks about workers.

use std::collections::BTreeMap;

use backends::model::{ChildUnit, Heartbeat, NewUnit, WorkerStats};
use backends::Coordinate;
use cborrpc::value::{int, pair, text, type_name, Value};

use crate::error::{RpcError, RpcResult};
use crate::op::{done, Operation};
use crate::params::{number, string, Params};
use crate::JobServer;

/// Checks that a method takes no parameters.
fn no_params(params: Vec<Value>) -> RpcResult<()> {
    Params::new(params, 0, 0).map(|_| ())
}

/// The one parameter of the methods that only name a worker.
fn worker_only(params: Vec<Value>) -> RpcResult<String> {
    Params::new(params, 1, 1)?.worker_id(0)
}

/// `worker_heartbeat(worker_id, mode, expire_seconds, data, parent)`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerHeartbeat {
    /// The heartbeat.
    pub heartbeat: Heartbeat,
}

impl Operation for WorkerHeartbeat {
    type Output = ();

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let mut p = Params::new(params, 1, 5)?;
        let worker = p.worker_id(0)?;
        let mode = string(p.get(1), "mode")?;
        let expire_secs = match p.get(2) {
            Value::Null => 0.0,
            v => number(v, "expire_seconds")?,
        };
        let data = match p.take(3) {
            d @ (Value::Map(_) | Value::Null) => NewUnit::check_data(d)?,
            other => return Err(RpcError::invalid(format!("data: expected a map, got {}", type_name(&other)))),
        };
        let parent = Some(string(p.get(4), "parent")?).filter(|p| !p.is_empty());
        Ok(WorkerHeartbeat { heartbeat: Heartbeat { worker, mode, expire_secs, data, parent } })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<()> {
        Ok(s.backend().worker_heartbeat(self.heartbeat).await?)
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        out.map(|()| done())
    }
}

/// `worker_unregister(worker_id)`: the worker is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerUnregister {
    /// The worker.
    pub worker: String,
}

impl Operation for WorkerUnregister {
    type Output = ();

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(WorkerUnregister { worker: worker_only(params)? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<()> {
        Ok(s.backend().worker_unregister(&self.worker).await?)
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        out.map(|()| done())
    }
}

/// `list_worker_modes()`: the mode of each live worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ListWorkerModes;

impl Operation for ListWorkerModes {
    type Output = BTreeMap<String, String>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        no_params(params).map(|()| ListWorkerModes)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        Ok(s.backend().list_worker_modes().await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        Ok(pair(Value::Map(out?.into_iter().map(|(w, m)| (text(w), text(m))).collect()), None))
    }
}

/// `get_worker_info(worker_id)`: the worker's last heartbeat data.
#[derive(Debug, Clone, PartialEq)]
pub struct GetWorkerInfo {
    /// The worker.
    pub worker: String,
}

impl Operation for GetWorkerInfo {
    type Output = Option<Value>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(GetWorkerInfo { worker: worker_only(params)? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Option<Value>> {
        Ok(s.backend().get_worker_info(&self.worker).await?)
    }

    fn answer(out: RpcResult<Option<Value>>) -> RpcResult<Value> {
        Ok(pair(out?.unwrap_or(Value::Null), None))
    }
}

/// `mode_counts()`: live workers per mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeCounts;

impl Operation for ModeCounts {
    type Output = BTreeMap<String, u64>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        no_params(params).map(|()| ModeCounts)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        Ok(s.backend().mode_counts().await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        Ok(pair(Value::Map(out?.into_iter().map(|(m, n)| (text(m), int(n as i64))).collect()), None))
    }
}

/// `worker_stats()`: live workers, with a parent, and with an expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct GetWorkerStats;

impl Operation for GetWorkerStats {
    type Output = WorkerStats;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        no_params(params).map(|()| GetWorkerStats)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<WorkerStats> {
        Ok(s.backend().worker_stats().await?)
    }

    fn answer(out: RpcResult<WorkerStats>) -> RpcResult<Value> {
        let s = out?;
        Ok(Value::Map(vec![
            (text("num_workers"), int(s.num_workers as i64)),
            (text("num_children"), int(s.num_children as i64)),
            (text("num_expirable"), int(s.num_expirable as i64)),
        ]))
    }
}

/// `get_child_work_units(worker_id)`: the units each child of a worker
/// holds, with their real leases (the fork worker kills children whose
/// lease is about to end).
#[derive(Debug, Clone, PartialEq)]
pub struct GetChildWorkUnits {
    /// The parent worker.
    pub worker: String,
}

impl Operation for GetChildWorkUnits {
    type Output = BTreeMap<String, Vec<ChildUnit>>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(GetChildWorkUnits { worker: worker_only(params)? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        Ok(s.backend().get_child_work_units(&self.worker).await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        let child = |u: ChildUnit| {
            Value::Map(vec![
                (text("work_spec_name"), text(u.spec)),
                (text("work_unit_key"), u.key.into_value()),
                (text("work_unit_data"), u.data),
                (text("worker_id"), text(u.worker_id)),
                (text("expires"), int(u.expires.unix_secs())),
            ])
        };
        let out = out?
            .into_iter()
            .map(|(worker, units)| (text(worker), Value::Array(units.into_iter().map(child).collect())))
            .collect();
        Ok(pair(Value::Map(out), None))
    }
}
