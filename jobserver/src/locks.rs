//! The lock methods (docs/protocol.md §3.5, §6): `lock`, `renew`,
//! `locksome`, `readlock`, `unlock` and `delete_namespace`, each one
//! [`LockCall`] on the backend, which keeps the locks (the embedded
//! backends in their own tree, PostgreSQL in a table every daemon
//! shares). Failures the client expects (a path held by someone else, a
//! call over a limit) are answered in band as `[false, message]` where the
//! method has such a pair, else as an error reply.

use backends::locks::{LockAnswer, LockCall};
use backends::Coordinate;
use cborrpc::value::{as_sequence, int, pair, Value};

use crate::error::{RpcError, RpcResult};
use crate::op::{done, Operation, Refused};
use crate::params::{number, Params};
use crate::JobServer;

/// A list of key paths, each a list of labels.
pub type KeyPaths = Vec<Vec<Value>>;

fn key_paths(v: &Value) -> RpcResult<KeyPaths> {
    let bad = || RpcError::invalid("cannot decode key paths");
    let outer = as_sequence(v).ok_or_else(bad)?;
    outer.iter().map(|p| as_sequence(p).map(|labels| labels.to_vec()).ok_or_else(bad)).collect()
}

/// A lock timeout in seconds; null means 0 (the lock tree's default).
fn lock_timeout(v: &Value) -> RpcResult<f64> {
    if v.is_null() {
        Ok(0.0)
    } else {
        number(v, "timeout")
    }
}

/// The parameters shared by `lock`, `renew` and `locksome`.
#[derive(Debug, Clone, PartialEq)]
pub struct LockRequest {
    /// Who locks.
    pub owner: String,
    /// Seconds the locks last (0: the tree's default).
    pub timeout: f64,
    /// What to lock.
    pub paths: KeyPaths,
}

impl LockRequest {
    fn parse(params: Vec<Value>) -> RpcResult<LockRequest> {
        let p = Params::new(params, 3, 3)?;
        let owner = crate::params::string(p.get(0), "locker_id")?;
        Ok(LockRequest { owner, timeout: lock_timeout(p.get(1))?, paths: key_paths(p.get(2))? })
    }
}

fn answer_pair(out: RpcResult<Result<(), Refused>>) -> RpcResult<Value> {
    Ok(match out? {
        Ok(()) => done(),
        Err(Refused(msg)) => pair(Value::Bool(false), Some(msg)),
    })
}

/// `lock(owner, timeout, paths)`: all the paths or none.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock(pub LockRequest);

impl Operation for Lock {
    type Output = Result<(), Refused>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        LockRequest::parse(params).map(Lock)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        let LockRequest { owner, timeout, paths } = self.0;
        done_or_refused(run(s, LockCall::Lock { owner, timeout, paths }).await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        answer_pair(out)
    }
}

/// `renew(owner, timeout, paths)`: extends locks the owner holds on every
/// path, or none.
#[derive(Debug, Clone, PartialEq)]
pub struct Renew(pub LockRequest);

impl Operation for Renew {
    type Output = Result<(), Refused>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        LockRequest::parse(params).map(Renew)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        let LockRequest { owner, timeout, paths } = self.0;
        done_or_refused(run(s, LockCall::Renew { owner, timeout, paths }).await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        answer_pair(out)
    }
}

/// `locksome(owner, timeout, paths)`: each lockable path; the answer lists
/// each path locked, or null.
#[derive(Debug, Clone, PartialEq)]
pub struct LockSome(pub LockRequest);

impl Operation for LockSome {
    type Output = Result<Vec<Option<Vec<Value>>>, Refused>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        LockRequest::parse(params).map(LockSome)
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        let LockRequest { owner, timeout, paths } = self.0;
        match run(s, LockCall::LockSome { owner, timeout, paths }).await? {
            LockAnswer::Some(r) => Ok(r.map_err(Refused)),
            other => Err(mismatched(other)),
        }
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        Ok(match out? {
            Ok(got) => {
                let got = got.into_iter().map(|p| p.map(Value::Array).unwrap_or(Value::Null)).collect();
                pair(Value::Array(got), None)
            }
            Err(Refused(msg)) => pair(Value::Null, Some(msg)),
        })
    }
}

/// `readlock(paths)`: the owner of each path, or null.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadLock {
    /// What to look at.
    pub paths: KeyPaths,
}

impl Operation for ReadLock {
    type Output = Vec<Option<String>>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(ReadLock { paths: key_paths(Params::new(params, 1, 1)?.get(0))? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        match run(s, LockCall::ReadLock { paths: self.paths }).await? {
            LockAnswer::Owners(r) => r.map_err(RpcError::InvalidRequest),
            other => Err(mismatched(other)),
        }
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        Ok(Value::Array(out?.into_iter().map(|o| o.map(Value::Text).unwrap_or(Value::Null)).collect()))
    }
}

/// `unlock(owner, paths)`: all the paths if the owner holds them all.
#[derive(Debug, Clone, PartialEq)]
pub struct Unlock {
    /// Who unlocks.
    pub owner: String,
    /// What to unlock.
    pub paths: KeyPaths,
}

impl Operation for Unlock {
    type Output = Result<(), Refused>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let p = Params::new(params, 2, 2)?;
        Ok(Unlock { owner: crate::params::string(p.get(0), "locker_id")?, paths: key_paths(p.get(1))? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        done_or_refused(run(s, LockCall::Unlock { owner: self.owner, paths: self.paths }).await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        answer_pair(out)
    }
}

/// `delete_namespace(prefix)`: drops every lock under a first label.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteNamespace {
    /// The first label.
    pub prefix: Value,
}

impl Operation for DeleteNamespace {
    type Output = ();

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(DeleteNamespace { prefix: Params::new(params, 1, 1)?.take(0) })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<()> {
        match done_or_refused(run(s, LockCall::DeleteNamespace { prefix: self.prefix }).await?)? {
            Ok(()) => Ok(()),
            Err(Refused(msg)) => Err(RpcError::InvalidRequest(msg)),
        }
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        out.map(|()| int(0))
    }
}

/// Runs a call on the backend's locks under the server's limits.
async fn run<C: Coordinate>(s: &JobServer<C>, call: LockCall) -> RpcResult<LockAnswer> {
    Ok(s.backend().lock_call(&call, &s.limits().locks).await?)
}

fn done_or_refused(answer: LockAnswer) -> RpcResult<Result<(), Refused>> {
    match answer {
        LockAnswer::Done(r) => Ok(r.map_err(Refused)),
        other => Err(mismatched(other)),
    }
}

/// A backend answered a lock call with the shape of another method's.
fn mismatched(answer: LockAnswer) -> RpcError {
    RpcError::Internal(format!("lock call answered {answer:?}"))
}
