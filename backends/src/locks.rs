//! The hierarchical lock tree behind the `lock`, `locksome`, `renew`,
//! `readlock`, `unlock` and `delete_namespace` RPCs.
//!
//! One tree per daemon process, shared by all clients, not persisted (as in
//! go-coordinate). A key path is a list of labels (any CBOR values,
//! compared by exact equality, so `b"a"` ≠ `"a"`); a path can be locked
//! only if no prefix and no extension of it is locked. Locks are not
//! re-entrant. Every operation first drops locks whose deadline has passed
//! and prunes unlocked leaves, so the tree never grows beyond the live
//! locks.

use parking_lot::Mutex;

use crate::clock::Time;
use cborrpc::Value;

#[derive(Debug, Default)]
struct Node {
    label: Option<Value>,
    owner: String,
    deadline: Option<Time>,
    children: Vec<Node>,
}

impl Node {
    fn locked(&self) -> bool {
        self.deadline.is_some()
    }

    fn child(&self, label: &Value) -> Option<&Node> {
        self.children.iter().find(|c| c.label.as_ref() == Some(label))
    }

    fn child_mut(&mut self, label: &Value) -> Option<&mut Node> {
        self.children.iter_mut().find(|c| c.label.as_ref() == Some(label))
    }

    fn find(&self, path: &[Value]) -> Option<&Node> {
        path.iter().try_fold(self, |n, l| n.child(l))
    }

    fn find_mut(&mut self, path: &[Value]) -> Option<&mut Node> {
        path.iter().try_fold(self, |n, l| n.child_mut(l))
    }

    /// Unlocks expired nodes and removes unlocked leaves, bottom-up.
    fn expire(&mut self, now: Time) {
        if matches!(self.deadline, Some(d) if d < now) {
            self.deadline = None;
            self.owner.clear();
        }
        self.children.retain_mut(|c| {
            c.expire(now);
            c.locked() || !c.children.is_empty()
        });
    }

    /// Checks that `owner` holds every path; otherwise names the first that
    /// it does not (`unheld` is the message for a path nobody holds).
    fn check_held(&self, owner: &str, paths: &[Vec<Value>], unheld: &str) -> Result<(), String> {
        for p in paths {
            match self.find(p) {
                Some(n) if n.locked() && n.owner == owner => {}
                Some(n) if n.locked() => return Err(format!("{} is held by {}", format_path(p), n.owner)),
                _ => return Err(format!("{} {unheld}", format_path(p))),
            }
        }
        Ok(())
    }

    fn lockable(&self, path: &[Value]) -> bool {
        let mut node = self;
        for label in path {
            if node.locked() {
                return false;
            }
            match node.child(label) {
                None => return true,
                Some(c) => node = c,
            }
        }
        !node.locked() && node.children.is_empty()
    }

    fn lock(&mut self, path: &[Value], owner: &str, deadline: Time) {
        let mut node = self;
        for label in path {
            let idx = match node.children.iter().position(|c| c.label.as_ref() == Some(label)) {
                Some(i) => i,
                None => {
                    node.children.push(Node { label: Some(label.clone()), ..Node::default() });
                    node.children.len() - 1
                }
            };
            node = &mut node.children[idx];
        }
        node.owner = owner.to_owned();
        node.deadline = Some(deadline);
    }
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

/// The daemon's lock tree.
#[derive(Debug, Default)]
pub struct LockTree {
    root: Mutex<Node>,
}

impl LockTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks every path or none: `Err` names the first unlockable one.
    pub fn lock(&self, now: Time, owner: &str, timeout: f64, paths: &[Vec<Value>]) -> Result<(), String> {
        let mut root = self.root.lock();
        root.expire(now);
        if let Some(p) = paths.iter().find(|p| !root.lockable(p)) {
            return Err(format!("{} is not lockable", format_path(p)));
        }
        let d = deadline(now, timeout);
        for p in paths {
            root.lock(p, owner, d);
        }
        Ok(())
    }

    /// Locks every lockable path, in order; returns each path locked, or
    /// `None` where it was not.
    pub fn locksome(&self, now: Time, owner: &str, timeout: f64, paths: &[Vec<Value>]) -> Vec<Option<Vec<Value>>> {
        let mut root = self.root.lock();
        root.expire(now);
        let d = deadline(now, timeout);
        paths
            .iter()
            .map(|p| {
                if root.lockable(p) {
                    root.lock(p, owner, d);
                    Some(p.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// Extends locks that `owner` holds on every path, or none of them.
    pub fn renew(&self, now: Time, owner: &str, timeout: f64, paths: &[Vec<Value>]) -> Result<(), String> {
        let mut root = self.root.lock();
        root.expire(now);
        root.check_held(owner, paths, "is held by None")?;
        let d = deadline(now, timeout);
        for p in paths {
            if let Some(n) = root.find_mut(p) {
                n.deadline = Some(d);
            }
        }
        Ok(())
    }

    /// The owner of each path, `None` where it is not locked.
    pub fn readlock(&self, now: Time, paths: &[Vec<Value>]) -> Vec<Option<String>> {
        let mut root = self.root.lock();
        root.expire(now);
        paths.iter().map(|p| root.find(p).filter(|n| n.locked()).map(|n| n.owner.clone())).collect()
    }

    /// Unlocks every path if `owner` holds them all; otherwise nothing.
    pub fn unlock(&self, now: Time, owner: &str, paths: &[Vec<Value>]) -> Result<(), String> {
        let mut root = self.root.lock();
        root.expire(now);
        root.check_held(owner, paths, "is not held")?;
        for p in paths {
            if let Some(n) = root.find_mut(p) {
                n.deadline = None;
                n.owner.clear();
            }
        }
        root.expire(now);
        Ok(())
    }

    /// Removes the root's child labelled `prefix` and everything under it.
    pub fn delete_namespace(&self, now: Time, prefix: &Value) {
        let mut root = self.root.lock();
        root.expire(now);
        root.children.retain(|c| c.label.as_ref() != Some(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cborrpc::value::{bytes, text};

    fn p(labels: &[&str]) -> Vec<Value> {
        labels.iter().map(|l| text(*l)).collect()
    }
    const NOW: Time = Time(1_000_000_000_000);

    #[test]
    fn prefixes_and_extensions_conflict() {
        let t = LockTree::new();
        t.lock(NOW, "a", 10.0, &[p(&["usr", "bin"])]).unwrap();
        assert!(t.lock(NOW, "b", 10.0, &[p(&["usr"])]).is_err());
        assert!(t.lock(NOW, "b", 10.0, &[p(&["usr", "bin", "ls"])]).is_err());
        assert!(t.lock(NOW, "a", 10.0, &[p(&["usr", "bin"])]).is_err(), "not re-entrant");
        t.lock(NOW, "b", 10.0, &[p(&["usr", "share"])]).unwrap();
        assert_eq!(
            t.readlock(NOW, &[p(&["usr", "bin"]), p(&["usr", "share"]), p(&["usr"])]),
            vec![Some("a".into()), Some("b".into()), None]
        );
        assert!(t.lock(NOW, "c", 10.0, &[vec![]]).is_err(), "the root covers everything");
    }

    #[test]
    fn lock_is_all_or_nothing_and_locksome_is_not() {
        let t = LockTree::new();
        t.lock(NOW, "a", 10.0, &[p(&["x"])]).unwrap();
        assert_eq!(t.lock(NOW, "b", 10.0, &[p(&["y"]), p(&["x"])]), Err("[x] is not lockable".into()));
        assert_eq!(t.readlock(NOW, &[p(&["y"])]), vec![None]);
        assert_eq!(t.locksome(NOW, "b", 10.0, &[p(&["y"]), p(&["x"])]), vec![Some(p(&["y"])), None]);
    }

    #[test]
    fn expiry_renew_and_unlock() {
        let t = LockTree::new();
        t.lock(NOW, "a", 10.0, &[p(&["x"])]).unwrap();
        assert_eq!(t.renew(NOW, "b", 10.0, &[p(&["x"])]), Err("[x] is held by a".into()));
        assert_eq!(t.renew(NOW, "a", 10.0, &[p(&["z"])]), Err("[z] is held by None".into()));
        t.renew(NOW.plus_secs(5.0), "a", 10.0, &[p(&["x"])]).unwrap();
        assert_eq!(t.readlock(NOW.plus_secs(14.0), &[p(&["x"])]), vec![Some("a".into())]);
        assert_eq!(t.readlock(NOW.plus_secs(16.0), &[p(&["x"])]), vec![None]);
        t.lock(NOW, "a", 10.0, &[p(&["q"])]).unwrap();
        assert_eq!(t.unlock(NOW, "b", &[p(&["q"])]), Err("[q] is held by a".into()));
        assert_eq!(t.unlock(NOW, "a", &[p(&["r"])]), Err("[r] is not held".into()));
        t.unlock(NOW, "a", &[p(&["q"])]).unwrap();
        t.lock(NOW, "b", 10.0, &[vec![]]).unwrap();
    }

    #[test]
    fn labels_compare_exactly_and_namespaces_delete() {
        let t = LockTree::new();
        t.lock(NOW, "a", 10.0, &[vec![bytes(&b"ns"[..]), text("k")]]).unwrap();
        t.lock(NOW, "a", 10.0, &[vec![text("ns"), text("k")]]).unwrap();
        t.delete_namespace(NOW, &text("ns"));
        assert_eq!(
            t.readlock(NOW, &[vec![text("ns"), text("k")], vec![bytes(&b"ns"[..]), text("k")]]),
            vec![None, Some("a".into())]
        );
        assert_eq!(format_path(&[bytes(&b"foo"[..])]), "[[102 111 111]]");
    }
}
