//! One RPC method as a typed operation: decode, execute, answer.
//!
//! Each method is a struct whose fields are its decoded parameters
//! ([`Operation::parse`]), which runs against the server's backend and lock
//! tree ([`Operation::execute`]) to a typed result, which is shaped as the
//! Python client unpacks it ([`Operation::answer`]). Parsing needs no
//! backend, so it is tested alone; execution knows nothing of CBOR-RPC, so
//! the HTTP API builds the same structs and shapes the same results as
//! JSON. The pattern is mini-redis's `cmd/`: parse → apply → frame.

use std::future::Future;

use backends::model::Error as BackendError;
use backends::Coordinate;
use cborrpc::value::{pair, Value};

use crate::error::{RpcError, RpcResult};
use crate::JobServer;

/// One RPC method.
pub trait Operation: Sized + Send {
    /// What executing it yields, before any wire shaping.
    type Output: Send;

    /// Decodes the positional CBOR-RPC parameters.
    fn parse(params: Vec<Value>) -> RpcResult<Self>;

    /// Runs it.
    fn execute<C: Coordinate>(self, server: &JobServer<C>) -> impl Future<Output = RpcResult<Self::Output>> + Send;

    /// Shapes the outcome as the Python client unpacks it; errors that the
    /// client expects in band become values here.
    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value>;
}

/// A request the daemon declines in band: the client sees
/// `[false-ish value, message]` rather than an error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// `[f(value), null]`, or `[zero, "No such work spec NAME"]` for a missing
/// spec (the pair-returning methods report that in band).
pub fn in_band<T>(out: RpcResult<T>, zero: Value, f: impl FnOnce(T) -> Value) -> RpcResult<Value> {
    match out {
        Ok(v) => Ok(pair(f(v), None)),
        Err(e) => missing_spec_in_band(e, zero),
    }
}

/// Like [`in_band`], for operations that may also decline with a message.
pub fn in_band_or_refused<T>(
    out: RpcResult<Result<T, Refused>>,
    zero: Value,
    f: impl FnOnce(T) -> Value,
) -> RpcResult<Value> {
    match out {
        Ok(Ok(v)) => Ok(pair(f(v), None)),
        Ok(Err(Refused(msg))) => Ok(pair(zero, Some(msg))),
        Err(e) => missing_spec_in_band(e, zero),
    }
}

fn missing_spec_in_band(e: RpcError, zero: Value) -> RpcResult<Value> {
    match e {
        RpcError::Backend(e @ BackendError::NoSuchWorkSpec(_)) => Ok(pair(zero, Some(e.to_string()))),
        e => Err(e),
    }
}

/// `[true, null]`.
pub fn done() -> Value {
    pair(Value::Bool(true), None)
}
