//! The lock methods (docs/protocol.md §3.5, §6) over the daemon's lock
//! tree: `lock`, `renew`, `locksome`, `readlock`, `unlock` and
//! `delete_namespace`. Failures the client expects (a path held by someone
//! else, a call over a limit) are answered in band as `[false, message]`
//! where the method has such a pair, else as an error reply.

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
        let r = &self.0;
        let now = s.backend().now();
        let out = s.locks().lock(now, &r.owner, r.timeout, &r.paths).map_err(Refused);
        saved(s, now, out).await
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
        let r = &self.0;
        let now = s.backend().now();
        let out = s.locks().renew(now, &r.owner, r.timeout, &r.paths).map_err(Refused);
        saved(s, now, out).await
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
        let r = &self.0;
        let now = s.backend().now();
        let out = s.locks().try_locksome(now, &r.owner, r.timeout, &r.paths).map_err(Refused);
        saved(s, now, out).await
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
        s.locks().try_readlock(s.backend().now(), &self.paths).map_err(RpcError::InvalidRequest)
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
        let now = s.backend().now();
        let out = s.locks().unlock(now, &self.owner, &self.paths).map_err(Refused);
        saved(s, now, out).await
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
        let now = s.backend().now();
        s.locks().delete_namespace(now, &self.prefix);
        s.backend().save_locks(s.locks(), now).await?;
        Ok(())
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        out.map(|()| int(0))
    }
}

/// Has the backend record the lock set after a call that changed it, and
/// answers only once it is recorded (a durable backend keeps locks across
/// a restart; the others do nothing).
async fn saved<C: Coordinate, T, E>(
    s: &JobServer<C>,
    now: backends::Time,
    out: Result<T, E>,
) -> RpcResult<Result<T, E>> {
    if out.is_ok() {
        s.backend().save_locks(s.locks(), now).await?;
    }
    Ok(out)
}
