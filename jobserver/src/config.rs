//! The daemon-wide methods (docs/protocol.md §3.6): `now` and
//! `get_config`.

use backends::Coordinate;
use cborrpc::value::{int, pair, Value};

use crate::error::RpcResult;
use crate::op::Operation;
use crate::params::Params;
use crate::JobServer;

/// `now()`: the daemon's clock, in Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Now;

impl Operation for Now {
    type Output = i64;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Params::new(params, 0, 0).map(|_| Now)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<i64> {
        Ok(s.backend().now().unix_secs())
    }

    fn answer(out: RpcResult<i64>) -> RpcResult<Value> {
        out.map(int)
    }
}

/// `get_config()`: the YAML file given with `--config`, as a map; an
/// empty map without one (the Python daemon always had a config).
#[derive(Debug, Clone, PartialEq)]
pub struct GetConfig;

impl Operation for GetConfig {
    type Output = Value;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Params::new(params, 0, 0).map(|_| GetConfig)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Value> {
        Ok(s.config().cloned().unwrap_or(Value::Map(Vec::new())))
    }

    fn answer(out: RpcResult<Value>) -> RpcResult<Value> {
        Ok(pair(out?, None))
    }
}
