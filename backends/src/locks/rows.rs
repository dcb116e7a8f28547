//! Locks as rows keyed by bytes, for a backend that keeps them outside the
//! daemon (PostgreSQL), where several daemons must see one set.
//!
//! A path's row key is its label keys concatenated. Labels are CBOR items,
//! which delimit themselves, so a row key splits back into labels one way
//! only; the locks on a path's prefixes are the rows keyed by the key's
//! prefixes at label boundaries (the empty key is the root), and the locks
//! on its extensions are exactly the rows in the open range
//! (key, key ‖ 0xFF): no item starts with 0xFF (CBOR's "break"), so an
//! extension's next byte is below it, and any other key in the range would
//! have the path's key as a prefix. A call is decided by those rows alone,
//! so a backend loads them into a [`LockTree`], applies the call there,
//! and writes back the difference.

use super::keys::Keys;
use super::{LockCall, LockLimits, LockTree};
use crate::clock::Time;

/// One held lock as a row.
#[derive(Debug, Clone, PartialEq)]
pub struct LockRow {
    /// The path's label keys, concatenated.
    pub key: Vec<u8>,
    /// The locker id.
    pub owner: String,
    /// When it expires.
    pub deadline: Time,
}

/// The rows that can decide a call: keys to match exactly, and open
/// ranges (low, high) of keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowScope {
    /// Each path's key and the keys of its prefixes, the empty one
    /// included.
    pub exact: Vec<Vec<u8>>,
    /// Each path's extensions: (key, key ‖ 0xFF).
    pub ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl LockCall {
    /// The rows that can decide this call, or `None` when the call is over
    /// a limit, so that no row can change its answer (a refusal).
    pub fn row_scope(&self, limits: &LockLimits) -> Option<RowScope> {
        let keys = Keys::encode(limits, &self.paths()).ok()?;
        let mut scope = RowScope::default();
        for i in 0..keys.len() {
            let mut key = Vec::new();
            scope.exact.push(Vec::new());
            for label in keys.path(i) {
                key.extend_from_slice(label);
                scope.exact.push(key.clone());
            }
            let mut high = key.clone();
            high.push(0xff);
            scope.ranges.push((key, high));
        }
        scope.exact.sort_unstable();
        scope.exact.dedup();
        Some(scope)
    }
}

impl LockTree {
    /// A tree holding `rows` as a tree's [`rows`](Self::rows) listed them;
    /// `Err` names a row key that is not a sequence of CBOR items.
    pub fn from_rows(rows: impl IntoIterator<Item = LockRow>) -> Result<LockTree, String> {
        let tree = LockTree::new();
        {
            let mut t = tree.tree.lock();
            for row in rows {
                let mut labels = Vec::new();
                let mut at = 0;
                while at < row.key.len() {
                    let (_, used) = cborrpc::decode::decode_prefix(&row.key[at..], 1)
                        .map_err(|e| format!("lock row key {:02x?}: {e}", row.key))?;
                    labels.push(&row.key[at..at + used]);
                    at += used;
                }
                t.lock(labels, &row.owner.as_str().into(), row.deadline);
            }
        }
        Ok(tree)
    }

    /// Every lock held at `now`, as rows.
    pub fn rows(&self, now: Time) -> Vec<LockRow> {
        let mut t = self.tree.lock();
        t.expire(now);
        t.all_held()
            .map(|(labels, held)| LockRow {
                key: labels.concat(),
                owner: held.owner.to_string(),
                deadline: held.deadline,
            })
            .collect()
    }
}
