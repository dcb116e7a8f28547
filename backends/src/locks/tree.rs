//! The lock tree as a flat arena, so no walk and no drop recurses.
//!
//! Nodes live in a [`Slab`] and refer to each other by index: a deep tree
//! is dropped as one flat vector, and every walk (lookup, pruning, subtree
//! removal) is a loop. Each node indexes its children by label key, so a
//! lookup costs one hash probe per label. Held locks are also indexed by
//! deadline, so expiry touches only the locks that have expired rather
//! than the whole tree.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use slab::Slab;

use crate::clock::Time;

/// A node's index in the arena.
type NodeId = usize;

/// A held lock.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub owner: Arc<str>,
    pub deadline: Time,
}

#[derive(Debug)]
struct Node {
    /// The parent's index; the root's is its own.
    parent: NodeId,
    /// This node's label key (empty for the root), shared with the
    /// parent's `children` map.
    key: Arc<[u8]>,
    held: Option<Held>,
    children: HashMap<Arc<[u8]>, NodeId>,
}

/// The tree: the root is always present, every other node is locked or has
/// descendants (unlocked leaves are pruned as soon as they appear).
#[derive(Debug)]
pub(super) struct Tree {
    nodes: Slab<Node>,
    root: NodeId,
    /// Every held lock as (deadline, node).
    deadlines: BTreeSet<(Time, NodeId)>,
}

impl Default for Tree {
    fn default() -> Self {
        let mut nodes = Slab::new();
        let entry = nodes.vacant_entry();
        let root = entry.key();
        entry.insert(Node { parent: root, key: Arc::from(&[][..]), held: None, children: HashMap::new() });
        Tree { nodes, root, deadlines: BTreeSet::new() }
    }
}

impl Tree {
    /// Nodes in the tree, the root included.
    pub(super) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node at `path`, if it exists.
    pub(super) fn find<'a>(&self, path: impl IntoIterator<Item = &'a [u8]>) -> Option<NodeId> {
        path.into_iter().try_fold(self.root, |id, key| self.nodes[id].children.get(key).copied())
    }

    /// The lock held on `path`, if any.
    pub(super) fn held<'a>(&self, path: impl IntoIterator<Item = &'a [u8]>) -> Option<&Held> {
        self.find(path).and_then(|id| self.nodes[id].held.as_ref())
    }

    /// Whether `path` can be locked: no lock on it, on a prefix of it, or
    /// on an extension of it.
    pub(super) fn lockable<'a>(&self, path: impl IntoIterator<Item = &'a [u8]>) -> bool {
        let mut node = &self.nodes[self.root];
        for key in path {
            if node.held.is_some() {
                return false;
            }
            match node.children.get(key) {
                None => return true,
                Some(&c) => node = &self.nodes[c],
            }
        }
        node.held.is_none() && node.children.is_empty()
    }

    /// Locks `path` (creating its nodes) for `owner` until `deadline`.
    pub(super) fn lock<'a>(&mut self, path: impl IntoIterator<Item = &'a [u8]>, owner: &Arc<str>, deadline: Time) {
        let mut id = self.root;
        for key in path {
            id = match self.nodes[id].children.get(key) {
                Some(&c) => c,
                None => {
                    let key: Arc<[u8]> = Arc::from(key);
                    let child =
                        self.nodes.insert(Node { parent: id, key: key.clone(), held: None, children: HashMap::new() });
                    self.nodes[id].children.insert(key, child);
                    child
                }
            };
        }
        self.set_held(id, Held { owner: owner.clone(), deadline });
    }

    /// Moves the deadline of the lock on node `id`, if it is held.
    pub(super) fn renew(&mut self, id: NodeId, deadline: Time) {
        if let Some(owner) = self.nodes[id].held.as_ref().map(|h| h.owner.clone()) {
            self.set_held(id, Held { owner, deadline });
        }
    }

    fn set_held(&mut self, id: NodeId, held: Held) {
        if let Some(old) = self.nodes[id].held.replace(held.clone()) {
            self.deadlines.remove(&(old.deadline, id));
        }
        self.deadlines.insert((held.deadline, id));
    }

    /// Unlocks node `id`, then prunes it and every ancestor left as an
    /// unlocked leaf.
    pub(super) fn unlock(&mut self, id: NodeId) {
        if let Some(old) = self.nodes[id].held.take() {
            self.deadlines.remove(&(old.deadline, id));
        }
        let mut id = id;
        while id != self.root && self.nodes[id].held.is_none() && self.nodes[id].children.is_empty() {
            let node = self.nodes.remove(id);
            self.nodes[node.parent].children.remove(&node.key);
            id = node.parent;
        }
    }

    /// Unlocks every lock whose deadline is before `now`, pruning as it
    /// goes; touches only those locks.
    pub(super) fn expire(&mut self, now: Time) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline >= now {
                break;
            }
            self.deadlines.pop_first();
            // Each entry mirrors one held lock; checked all the same, as a
            // stale entry must not unlock (or index) the wrong node.
            if self.nodes.get(id).and_then(|n| n.held.as_ref()).is_some_and(|h| h.deadline == deadline) {
                self.unlock(id);
            }
        }
    }

    /// Removes the root's child keyed `key` and its whole subtree.
    pub(super) fn remove_root_child(&mut self, key: &[u8]) {
        let Some(top) = self.nodes[self.root].children.remove(key) else { return };
        let mut stack = vec![top];
        while let Some(id) = stack.pop() {
            let node = self.nodes.remove(id);
            if let Some(held) = node.held {
                self.deadlines.remove(&(held.deadline, id));
            }
            stack.extend(node.children.into_values());
        }
    }

    /// Every held lock as (label keys root first, lock), by deadline.
    pub(super) fn all_held(&self) -> impl Iterator<Item = (Vec<&[u8]>, &Held)> + '_ {
        self.deadlines.iter().filter_map(move |&(_, id)| {
            let held = self.nodes[id].held.as_ref()?;
            let mut keys = Vec::new();
            let mut at = id;
            while at != self.root {
                keys.push(&*self.nodes[at].key);
                at = self.nodes[at].parent;
            }
            keys.reverse();
            Some((keys, held))
        })
    }
}
