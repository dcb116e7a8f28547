//! Per-call limits, and the key paths of one call encoded to label keys.
//!
//! CBOR values are not `Hash`, so each label is keyed by its CBOR encoding:
//! two labels are the same exactly when their encodings are (`b"a"` ≠
//! `"a"`, `1` ≠ `1.0`, a tuple ≠ a list; floats compare by bit pattern, so
//! a NaN label matches itself). Every label of a call goes into one buffer,
//! encoded before the tree's mutex is taken, and the limits are checked on
//! the way so that nothing oversized reaches the tree.

use cborrpc::encode::encode;
use cborrpc::Value;

/// Bounds on what one lock call may ask for; each refusal names its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLimits {
    /// Labels per key path.
    pub max_depth: usize,
    /// Bytes of one label's CBOR encoding.
    pub max_label_bytes: usize,
    /// Key paths per call (`readlock` included).
    pub max_paths: usize,
    /// Bytes of a locker id stored with a lock.
    pub max_owner_bytes: usize,
    /// Total bytes of the owners one `readlock` reply may carry.
    pub max_reply_bytes: usize,
}

impl Default for LockLimits {
    fn default() -> Self {
        LockLimits {
            max_depth: 64,
            max_label_bytes: 4 << 10,
            max_paths: 10_000,
            max_owner_bytes: 4 << 10,
            max_reply_bytes: 4 << 20,
        }
    }
}

impl LockLimits {
    /// Refuses a locker id too long to store.
    pub(super) fn check_owner(&self, owner: &str) -> Result<(), String> {
        if owner.len() > self.max_owner_bytes {
            return Err(format!(
                "locker id of {} bytes is longer than the limit of {} (max_owner_bytes)",
                owner.len(),
                self.max_owner_bytes
            ));
        }
        Ok(())
    }
}

/// The encoded labels of a call's key paths, all in one buffer.
#[derive(Debug, Default)]
pub(super) struct Keys {
    buf: Vec<u8>,
    /// End offset in `buf` of each label.
    label_ends: Vec<usize>,
    /// End index in `label_ends` of each path.
    path_ends: Vec<usize>,
}

impl Keys {
    /// Encodes `paths`, or names the first limit one of them exceeds.
    pub(super) fn encode(limits: &LockLimits, paths: &[Vec<Value>]) -> Result<Keys, String> {
        if paths.len() > limits.max_paths {
            return Err(format!(
                "{} key paths in one call, more than the limit of {} (max_paths)",
                paths.len(),
                limits.max_paths
            ));
        }
        let mut keys = Keys { path_ends: Vec::with_capacity(paths.len()), ..Keys::default() };
        for (i, path) in paths.iter().enumerate() {
            if path.len() > limits.max_depth {
                return Err(format!(
                    "key path {i} has {} labels, more than the limit of {} (max_depth)",
                    path.len(),
                    limits.max_depth
                ));
            }
            for (j, label) in path.iter().enumerate() {
                keys.push_label(limits, label).map_err(|n| {
                    format!(
                        "label {j} of key path {i} takes {n} bytes, more than the limit of {} (max_label_bytes)",
                        limits.max_label_bytes
                    )
                })?;
            }
            keys.path_ends.push(keys.label_ends.len());
        }
        Ok(keys)
    }

    /// Encodes one label; `Err` carries its size (at least) if too large.
    fn push_label(&mut self, limits: &LockLimits, label: &Value) -> Result<(), usize> {
        // Refuse big strings before copying them.
        let content = match label {
            Value::Text(s) => s.len(),
            Value::Bytes(b) => b.len(),
            _ => 0,
        };
        if content > limits.max_label_bytes {
            return Err(content);
        }
        let start = self.buf.len();
        encode(label, &mut self.buf);
        let n = self.buf.len() - start;
        if n > limits.max_label_bytes {
            self.buf.truncate(start);
            return Err(n);
        }
        self.label_ends.push(self.buf.len());
        Ok(())
    }

    /// Number of paths.
    pub(super) fn len(&self) -> usize {
        self.path_ends.len()
    }

    /// The label keys of path `i`, root first.
    pub(super) fn path(&self, i: usize) -> impl Iterator<Item = &[u8]> + Clone {
        let first = if i == 0 { 0 } else { self.path_ends[i - 1] };
        (first..self.path_ends[i]).map(move |j| {
            let start = if j == 0 { 0 } else { self.label_ends[j - 1] };
            &self.buf[start..self.label_ends[j]]
        })
    }
}

/// The key of one label, if it is within the label limit.
pub(super) fn label_key(limits: &LockLimits, label: &Value) -> Option<Vec<u8>> {
    let mut keys = Keys::default();
    keys.push_label(limits, label).ok()?;
    Some(keys.buf)
}
