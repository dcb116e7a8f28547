//! Work spec methods (docs/protocol.md §3.1): list, set, delete, clear,
//! read, control and read metadata.

use backends::model::{Error as BackendError, SpecControl, SpecData, SpecMeta};
use backends::Coordinate;
use cborrpc::value::{int, text, type_name, Value};

use crate::error::{RpcError, RpcResult};
use crate::op::{done, in_band, Operation};
use crate::params::{boolean, integer, number, string, Params};
use crate::wire::{spec_status, DEFAULT_LIST_LIMIT};
use crate::JobServer;

/// `list_work_specs(options)`: specs sorted by name from `start`
/// (inclusive), at most `limit`, and the name of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct ListWorkSpecs {
    /// First name to list.
    pub start: String,
    /// Most specs to list.
    pub limit: usize,
}

impl Operation for ListWorkSpecs {
    type Output = (Vec<SpecData>, Option<String>);

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let o = Params::new(params, 0, 1)?.options(0)?;
        let start = o.opt("start", string)?.unwrap_or_default();
        let limit = o.opt("limit", integer)?.filter(|&l| l > 0).map_or(DEFAULT_LIST_LIMIT, |l| l as usize);
        Ok(ListWorkSpecs { start, limit })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        Ok(s.backend().list_work_specs(&self.start, self.limit).await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        let (specs, next) = out?;
        let specs = Value::Array(specs.into_iter().map(Value::Map).collect());
        Ok(Value::Array(vec![specs, next.map(Value::Text).unwrap_or(Value::Null)]))
    }
}

/// `set_work_spec(data)`: creates or replaces a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SetWorkSpec {
    /// The spec's data map.
    pub data: SpecData,
}

impl Operation for SetWorkSpec {
    type Output = ();

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        match Params::new(params, 1, 1)?.take(0) {
            Value::Map(data) => Ok(SetWorkSpec { data }),
            other => Err(RpcError::invalid(format!("work spec must be a map, not {}", type_name(&other)))),
        }
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<()> {
        Ok(s.backend().set_work_spec(self.data).await?)
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        out.map(|()| done())
    }
}

/// The one parameter of the methods that only name a spec.
fn spec_name_only(params: Vec<Value>) -> RpcResult<String> {
    Params::new(params, 1, 1)?.spec_name(0)
}

/// `del_work_spec(name)`: deletes a spec and its units.
#[derive(Debug, Clone, PartialEq)]
pub struct DelWorkSpec {
    /// The spec.
    pub name: String,
}

impl Operation for DelWorkSpec {
    type Output = ();

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(DelWorkSpec { name: spec_name_only(params)? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<()> {
        Ok(s.backend().del_work_spec(&self.name).await?)
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        in_band(out, Value::Bool(false), |()| Value::Bool(true))
    }
}

/// `clear()`: deletes every spec; answers how many there were.
#[derive(Debug, Clone, PartialEq)]
pub struct Clear;

impl Operation for Clear {
    type Output = usize;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Params::new(params, 0, 0)?;
        Ok(Clear)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<usize> {
        Ok(s.backend().clear().await?)
    }

    fn answer(out: RpcResult<usize>) -> RpcResult<Value> {
        Ok(int(out? as i64))
    }
}

/// `get_work_spec(name)`: the spec's data as sent, or null.
#[derive(Debug, Clone, PartialEq)]
pub struct GetWorkSpec {
    /// The spec.
    pub name: String,
}

impl Operation for GetWorkSpec {
    type Output = Option<SpecData>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(GetWorkSpec { name: spec_name_only(params)? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Option<SpecData>> {
        match s.backend().get_work_spec(&self.name).await {
            Ok(data) => Ok(Some(data)),
            Err(BackendError::NoSuchWorkSpec(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn answer(out: RpcResult<Option<SpecData>>) -> RpcResult<Value> {
        Ok(out?.map(Value::Map).unwrap_or(Value::Null))
    }
}

/// `control_work_spec(name, options)`: pause, resume, and change the
/// weight, interval, continuous flag or running limit.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlWorkSpec {
    /// The spec.
    pub name: String,
    /// What to change.
    pub control: SpecControl,
}

impl Operation for ControlWorkSpec {
    type Output = ();

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let mut p = Params::new(params, 2, 2)?;
        let name = p.spec_name(0)?;
        let o = p.options(1)?;
        let control = SpecControl {
            paused: o.opt("status", integer)?.map(|s| s == spec_status::PAUSED),
            continuous: o.opt("continuous", boolean)?,
            weight: o.opt("weight", integer)?,
            interval: o.opt("interval", number)?,
            max_running: o.opt("max_running", integer)?,
        };
        Ok(ControlWorkSpec { name, control })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<()> {
        Ok(s.backend().control_work_spec(&self.name, self.control).await?)
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        in_band(out, Value::Bool(false), |()| Value::Bool(true))
    }
}

/// `get_work_spec_meta(name)`: status, continuous, interval, running limit
/// and weight.
#[derive(Debug, Clone, PartialEq)]
pub struct GetWorkSpecMeta {
    /// The spec.
    pub name: String,
}

impl Operation for GetWorkSpecMeta {
    type Output = SpecMeta;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(GetWorkSpecMeta { name: spec_name_only(params)? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<SpecMeta> {
        Ok(s.backend().get_work_spec_meta(&self.name).await?)
    }

    fn answer(out: RpcResult<SpecMeta>) -> RpcResult<Value> {
        in_band(out, Value::Null, |m| {
            let status = if m.paused { spec_status::PAUSED } else { spec_status::RUNNABLE };
            Value::Map(vec![
                (text("status"), int(status)),
                (text("continuous"), Value::Bool(m.continuous)),
                (text("interval"), Value::Float(m.interval)),
                (text("max_running"), int(m.max_running)),
                (text("weight"), int(m.weight)),
            ])
        })
    }
}
