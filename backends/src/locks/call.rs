//! One call of the lock family as data, so the jobserver can hand it to
//! whichever backend keeps the locks: the embedded backends apply it to
//! their own [`LockTree`], PostgreSQL to a tree built from the rows the
//! call can touch (see [`rows`](super::rows)). One [`LockTree::apply`]
//! holds the rules for all of them.

use cborrpc::Value;

use super::{LockLimits, LockTree};
use crate::clock::Time;

/// What one lock method asks, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum LockCall {
    /// `lock`: every path or none.
    Lock { owner: String, timeout: f64, paths: Vec<Vec<Value>> },
    /// `renew`: extends the owner's locks on every path, or none.
    Renew { owner: String, timeout: f64, paths: Vec<Vec<Value>> },
    /// `locksome`: each lockable path.
    LockSome { owner: String, timeout: f64, paths: Vec<Vec<Value>> },
    /// `unlock`: every path if the owner holds them all.
    Unlock { owner: String, paths: Vec<Vec<Value>> },
    /// `readlock`: the owner of each path.
    ReadLock { paths: Vec<Vec<Value>> },
    /// `delete_namespace`: every lock under a first label.
    DeleteNamespace { prefix: Value },
}

/// The answer to a [`LockCall`]; `Err` carries the message a refusal
/// (a path held by someone else, a call over a limit) is answered with.
#[derive(Debug, Clone, PartialEq)]
pub enum LockAnswer {
    /// `lock`, `renew`, `unlock` and `delete_namespace`.
    Done(Result<(), String>),
    /// `locksome`: each path locked, or `None`.
    Some(Result<Vec<Option<Vec<Value>>>, String>),
    /// `readlock`: each path's owner, or `None`.
    Owners(Result<Vec<Option<String>>, String>),
}

impl LockCall {
    /// Whether the call can change the locks (all but `readlock`).
    pub fn writes(&self) -> bool {
        !matches!(self, LockCall::ReadLock { .. })
    }

    /// The key paths the call names (`delete_namespace`: its one label).
    pub fn paths(&self) -> std::borrow::Cow<'_, [Vec<Value>]> {
        match self {
            LockCall::Lock { paths, .. }
            | LockCall::Renew { paths, .. }
            | LockCall::LockSome { paths, .. }
            | LockCall::Unlock { paths, .. }
            | LockCall::ReadLock { paths } => paths.into(),
            LockCall::DeleteNamespace { prefix } => vec![vec![prefix.clone()]].into(),
        }
    }
}

impl LockAnswer {
    /// Whether the call was done (a refusal changed nothing).
    pub fn is_ok(&self) -> bool {
        match self {
            LockAnswer::Done(r) => r.is_ok(),
            LockAnswer::Some(r) => r.is_ok(),
            LockAnswer::Owners(r) => r.is_ok(),
        }
    }
}

impl LockTree {
    /// Runs `call` at `now` under `limits`.
    pub fn apply(&self, limits: &LockLimits, now: Time, call: &LockCall) -> LockAnswer {
        match call {
            LockCall::Lock { owner, timeout, paths } => {
                LockAnswer::Done(self.lock(limits, now, owner, *timeout, paths))
            }
            LockCall::Renew { owner, timeout, paths } => {
                LockAnswer::Done(self.renew(limits, now, owner, *timeout, paths))
            }
            LockCall::LockSome { owner, timeout, paths } => {
                LockAnswer::Some(self.locksome(limits, now, owner, *timeout, paths))
            }
            LockCall::Unlock { owner, paths } => LockAnswer::Done(self.unlock(limits, now, owner, paths)),
            LockCall::ReadLock { paths } => LockAnswer::Owners(self.readlock(limits, now, paths)),
            LockCall::DeleteNamespace { prefix } => {
                self.delete_namespace(limits, now, prefix);
                LockAnswer::Done(Ok(()))
            }
        }
    }
}
