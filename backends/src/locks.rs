//! The hierarchical lock tree behind the `lock`, `locksome`, `renew`,
//! `readlock`, `unlock` and `delete_namespace` RPCs.
//!
//! The embedded backends each keep one tree, shared by all clients (the
//! durable one journals it); PostgreSQL keeps the locks as rows and runs
//! each call on a tree of the rows it can touch ([`LockRow`]). Each call
//! of the lock methods is a [`LockCall`] applied by [`LockTree::apply`],
//! so the rules are written once. A key path is a list of labels (any CBOR values,
//! compared by exact CBOR equality, so `b"a"` ≠ `"a"`); a path can be
//! locked only if no prefix and no extension of it is locked. Locks are not
//! re-entrant. Every operation first drops locks whose deadline has passed
//! and prunes unlocked leaves, so the tree never grows beyond the live
//! locks.
//!
//! All clients share one mutex, so no call may hold it for long or take
//! the daemon down: [`LockLimits`] bounds what one call may ask for (checked
//! and encoded before the mutex is taken), the tree is an arena walked by
//! loops (no recursion however deep a path is), children are hashed by
//! label and expiry visits only expired locks, so a call costs
//! O(labels in it + locks it expires).

mod call;
mod keys;
mod rows;
mod tree;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Time;
pub use call::{LockAnswer, LockCall};
use cborrpc::Value;
pub use keys::LockLimits;
use keys::{label_key, Keys};
pub use rows::{LockRow, RowScope};
use tree::Tree;

/// One held lock, as listed by [`LockTree::held_locks`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeldLock {
    /// The locked key path.
    pub path: Vec<Value>,
    /// The locker id holding it.
    pub owner: String,
    /// When it expires.
    pub deadline: Time,
}

/// Formats a path as Go's `%v` would: `[foo bar]`.
pub fn format_path(path: &[Value]) -> String {
    fn one(v: &Value) -> String {
        match v {
            Value::Text(s) => s.clone(),
            Value::Bytes(b) => format!("[{}]", b.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")),
            Value::Integer(i) => i128::from(*i).to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "<nil>".into(),
            Value::Array(items) => format!("[{}]", items.iter().map(one).collect::<Vec<_>>().join(" ")),
            Value::Tag(_, inner) => one(inner),
            other => format!("{other:?}"),
        }
    }
    format!("[{}]", path.iter().map(one).collect::<Vec<_>>().join(" "))
}

/// Effective lock duration: 0 means 60 s; at most 1,000,000 s.
fn deadline(now: Time, timeout: f64) -> Time {
    let t = if timeout == 0.0 { 60.0 } else { timeout.min(1_000_000.0) };
    now.plus_secs(t)
}

/// A lock tree. Calls come through [`LockTree::apply`], which checks each
/// against the limits it is given (the server's, which the tree does not
/// keep).
#[derive(Debug, Default)]
pub struct LockTree {
    tree: Mutex<Tree>,
}

impl LockTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks every path or none: `Err` names the first unlockable one, or
    /// the limit the call exceeds.
    fn lock(&self, l: &LockLimits, now: Time, owner: &str, timeout: f64, paths: &[Vec<Value>]) -> Result<(), String> {
        l.check_owner(owner)?;
        let keys = Keys::encode(l, paths)?;
        let owner: Arc<str> = owner.into();
        let mut tree = self.tree.lock();
        tree.expire(now);
        if let Some(i) = (0..keys.len()).find(|&i| !tree.lockable(keys.path(i))) {
            return Err(format!("{} is not lockable", format_path(&paths[i])));
        }
        let d = deadline(now, timeout);
        for i in 0..keys.len() {
            tree.lock(keys.path(i), &owner, d);
        }
        Ok(())
    }

    /// Locks every lockable path, in order; answers each path locked, or
    /// `None` where it was not, or `Err` naming the limit the call exceeds
    /// (then nothing is locked).
    fn locksome(
        &self,
        l: &LockLimits,
        now: Time,
        owner: &str,
        timeout: f64,
        paths: &[Vec<Value>],
    ) -> Result<Vec<Option<Vec<Value>>>, String> {
        l.check_owner(owner)?;
        let keys = Keys::encode(l, paths)?;
        let owner: Arc<str> = owner.into();
        let mut tree = self.tree.lock();
        tree.expire(now);
        let d = deadline(now, timeout);
        let got = (0..keys.len()).map(|i| {
            if tree.lockable(keys.path(i)) {
                tree.lock(keys.path(i), &owner, d);
                Some(i)
            } else {
                None
            }
        });
        let got: Vec<Option<usize>> = got.collect();
        drop(tree);
        Ok(got.into_iter().map(|i| i.map(|i| paths[i].clone())).collect())
    }

    /// Extends locks that `owner` holds on every path, or none of them.
    fn renew(&self, l: &LockLimits, now: Time, owner: &str, timeout: f64, paths: &[Vec<Value>]) -> Result<(), String> {
        let keys = Keys::encode(l, paths)?;
        let mut tree = self.tree.lock();
        tree.expire(now);
        check_held(&tree, &keys, paths, owner, "is held by None")?;
        let d = deadline(now, timeout);
        for i in 0..keys.len() {
            if let Some(id) = tree.find(keys.path(i)) {
                tree.renew(id, d);
            }
        }
        Ok(())
    }

    /// The owner of each path (`None` where it is not locked), or `Err`
    /// naming the limit the call exceeds, including the total bytes of
    /// owners in the reply.
    fn readlock(&self, l: &LockLimits, now: Time, paths: &[Vec<Value>]) -> Result<Vec<Option<String>>, String> {
        let keys = Keys::encode(l, paths)?;
        let mut tree = self.tree.lock();
        tree.expire(now);
        let owners: Vec<Option<Arc<str>>> =
            (0..keys.len()).map(|i| tree.held(keys.path(i)).map(|h| h.owner.clone())).collect();
        drop(tree);
        let total: usize = owners.iter().flatten().map(|o| o.len()).sum();
        if total > l.max_reply_bytes {
            return Err(format!(
                "readlock reply would carry {total} bytes of locker ids, more than the limit of {} \
                 (max_reply_bytes); ask for fewer key paths",
                l.max_reply_bytes
            ));
        }
        Ok(owners.into_iter().map(|o| o.map(|o| o.to_string())).collect())
    }

    /// Unlocks every path if `owner` holds them all; otherwise nothing.
    fn unlock(&self, l: &LockLimits, now: Time, owner: &str, paths: &[Vec<Value>]) -> Result<(), String> {
        let keys = Keys::encode(l, paths)?;
        let mut tree = self.tree.lock();
        tree.expire(now);
        check_held(&tree, &keys, paths, owner, "is not held")?;
        for i in 0..keys.len() {
            // Found again: unlocking an earlier path may have pruned nodes.
            if let Some(id) = tree.find(keys.path(i)) {
                tree.unlock(id);
            }
        }
        Ok(())
    }

    /// Removes the root's child labelled `prefix` and everything under it.
    fn delete_namespace(&self, l: &LockLimits, now: Time, prefix: &Value) {
        let key = label_key(l, prefix);
        let mut tree = self.tree.lock();
        tree.expire(now);
        if let Some(key) = key {
            tree.remove_root_child(&key);
        }
    }

    /// Every lock held at `now`, soonest deadline first: what a durable
    /// backend would persist.
    pub fn held_locks(&self, now: Time) -> Vec<HeldLock> {
        let mut tree = self.tree.lock();
        tree.expire(now);
        let held: Vec<(Vec<Vec<u8>>, Arc<str>, Time)> = tree
            .all_held()
            .map(|(keys, h)| (keys.into_iter().map(<[u8]>::to_vec).collect(), h.owner.clone(), h.deadline))
            .collect();
        drop(tree);
        held.into_iter()
            .map(|(keys, owner, deadline)| HeldLock {
                // Keys are our own encodings of decoded values: they decode.
                path: keys.iter().map(|k| cborrpc::encode::decode(k).unwrap_or(Value::Null)).collect(),
                owner: owner.to_string(),
                deadline,
            })
            .collect()
    }

    /// Puts back locks a durable backend recorded, each with its own
    /// deadline, whatever the limits now are (they were taken under the
    /// limits then). They were held together, so none conflicts.
    pub fn restore(&self, held: impl IntoIterator<Item = HeldLock>) {
        let unlimited = LockLimits {
            max_depth: usize::MAX,
            max_label_bytes: usize::MAX,
            max_paths: usize::MAX,
            max_owner_bytes: usize::MAX,
            max_reply_bytes: usize::MAX,
        };
        let mut tree = self.tree.lock();
        for h in held {
            if let Ok(keys) = Keys::encode(&unlimited, std::slice::from_ref(&h.path)) {
                tree.lock(keys.path(0), &h.owner.as_str().into(), h.deadline);
            }
        }
    }

    /// Nodes in the tree, the root included, as the last call left it (1
    /// when nothing was locked).
    pub fn node_count(&self) -> usize {
        self.tree.lock().node_count()
    }
}

/// Checks that `owner` holds every path; otherwise names the first that it
/// does not (`unheld` is the message for a path nobody holds).
fn check_held(tree: &Tree, keys: &Keys, paths: &[Vec<Value>], owner: &str, unheld: &str) -> Result<(), String> {
    for (i, p) in paths.iter().enumerate() {
        match tree.held(keys.path(i)) {
            Some(h) if &*h.owner == owner => {}
            Some(h) => return Err(format!("{} is held by {}", format_path(p), h.owner)),
            None => return Err(format!("{} {unheld}", format_path(p))),
        }
    }
    Ok(())
}
