//! The lock tree's behaviour, limits, and the shapes that used to crash
//! or stall it.

use super::*;
use cborrpc::value::{bytes, int, text};

/// A tree with the limits its calls are checked against, and one method
/// per lock call, each going through [`LockTree::apply`] as the backends'
/// calls do.
#[derive(Default)]
struct T {
    tree: LockTree,
    limits: LockLimits,
}

impl std::ops::Deref for T {
    type Target = LockTree;
    fn deref(&self) -> &LockTree {
        &self.tree
    }
}

impl T {
    fn with_limits(limits: LockLimits) -> T {
        T { tree: LockTree::new(), limits }
    }

    fn run(&self, now: Time, call: LockCall) -> LockAnswer {
        self.tree.apply(&self.limits, now, &call)
    }

    fn done(&self, now: Time, call: LockCall) -> Result<(), String> {
        match self.run(now, call) {
            LockAnswer::Done(r) => r,
            other => panic!("answered {other:?}"),
        }
    }

    fn lock(&self, now: Time, owner: &str, timeout: f64, paths: &[Vec<Value>]) -> Result<(), String> {
        self.done(now, LockCall::Lock { owner: owner.into(), timeout, paths: paths.to_vec() })
    }

    fn renew(&self, now: Time, owner: &str, timeout: f64, paths: &[Vec<Value>]) -> Result<(), String> {
        self.done(now, LockCall::Renew { owner: owner.into(), timeout, paths: paths.to_vec() })
    }

    fn unlock(&self, now: Time, owner: &str, paths: &[Vec<Value>]) -> Result<(), String> {
        self.done(now, LockCall::Unlock { owner: owner.into(), paths: paths.to_vec() })
    }

    fn delete_namespace(&self, now: Time, prefix: &Value) {
        self.done(now, LockCall::DeleteNamespace { prefix: prefix.clone() }).unwrap()
    }

    fn try_locksome(
        &self,
        now: Time,
        owner: &str,
        timeout: f64,
        paths: &[Vec<Value>],
    ) -> Result<Vec<Option<Vec<Value>>>, String> {
        match self.run(now, LockCall::LockSome { owner: owner.into(), timeout, paths: paths.to_vec() }) {
            LockAnswer::Some(r) => r,
            other => panic!("answered {other:?}"),
        }
    }

    /// `try_locksome`, a refusal read as nothing locked.
    fn locksome(&self, now: Time, owner: &str, timeout: f64, paths: &[Vec<Value>]) -> Vec<Option<Vec<Value>>> {
        self.try_locksome(now, owner, timeout, paths).unwrap_or_else(|_| vec![None; paths.len()])
    }

    fn try_readlock(&self, now: Time, paths: &[Vec<Value>]) -> Result<Vec<Option<String>>, String> {
        match self.run(now, LockCall::ReadLock { paths: paths.to_vec() }) {
            LockAnswer::Owners(r) => r,
            other => panic!("answered {other:?}"),
        }
    }

    /// `try_readlock`, a refusal read as nothing held.
    fn readlock(&self, now: Time, paths: &[Vec<Value>]) -> Vec<Option<String>> {
        self.try_readlock(now, paths).unwrap_or_else(|_| vec![None; paths.len()])
    }
}

fn p(labels: &[&str]) -> Vec<Value> {
    labels.iter().map(|l| text(*l)).collect()
}
const NOW: Time = Time(1_000_000_000_000);

#[test]
fn prefixes_and_extensions_conflict() {
    let t = T::default();
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
    let t = T::default();
    t.lock(NOW, "a", 10.0, &[p(&["x"])]).unwrap();
    assert_eq!(t.lock(NOW, "b", 10.0, &[p(&["y"]), p(&["x"])]), Err("[x] is not lockable".into()));
    assert_eq!(t.readlock(NOW, &[p(&["y"])]), vec![None]);
    assert_eq!(t.locksome(NOW, "b", 10.0, &[p(&["y"]), p(&["x"])]), vec![Some(p(&["y"])), None]);
}

#[test]
fn expiry_renew_and_unlock() {
    let t = T::default();
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
    let t = T::default();
    t.lock(NOW, "a", 10.0, &[vec![bytes(&b"ns"[..]), text("k")]]).unwrap();
    t.lock(NOW, "a", 10.0, &[vec![text("ns"), text("k")]]).unwrap();
    t.delete_namespace(NOW, &text("ns"));
    assert_eq!(
        t.readlock(NOW, &[vec![text("ns"), text("k")], vec![bytes(&b"ns"[..]), text("k")]]),
        vec![None, Some("a".into())]
    );
    assert_eq!(format_path(&[bytes(&b"foo"[..])]), "[[102 111 111]]");
}

#[test]
fn duplicate_and_nested_paths_in_one_call() {
    let t = T::default();
    // All-or-nothing checks every path against the tree as it was, as Go does.
    t.lock(NOW, "a", 10.0, &[p(&["x"]), p(&["x"]), p(&["y"]), p(&["y", "z"])]).unwrap();
    t.unlock(NOW, "a", &[p(&["x"]), p(&["x"]), p(&["y"])]).unwrap();
    assert_eq!(t.readlock(NOW, &[p(&["x"]), p(&["y"]), p(&["y", "z"])]), vec![None, None, Some("a".into())]);
    t.unlock(NOW, "a", &[p(&["y", "z"])]).unwrap();
    assert_eq!(t.node_count(), 1, "unlocking prunes every node");
    assert_eq!(t.locksome(NOW, "b", 10.0, &[p(&["q"]), p(&["q"]), p(&["q", "r"])]), vec![Some(p(&["q"])), None, None]);
}

#[test]
fn renew_moves_the_expiry() {
    let t = T::default();
    t.lock(NOW, "a", 10.0, &[p(&["x"]), p(&["y"])]).unwrap();
    t.renew(NOW, "a", 100.0, &[p(&["x"])]).unwrap();
    assert_eq!(t.readlock(NOW.plus_secs(50.0), &[p(&["x"]), p(&["y"])]), vec![Some("a".into()), None]);
    assert_eq!(t.readlock(NOW.plus_secs(101.0), &[p(&["x"])]), vec![None]);
    assert_eq!(t.node_count(), 1);
    t.lock(NOW, "a", -1.0, &[p(&["gone"])]).unwrap();
    assert_eq!(t.readlock(NOW, &[p(&["gone"])]), vec![None], "a negative timeout expires at once");
}

#[test]
fn held_locks_lists_every_lock() {
    let t = T::default();
    let labels = vec![text("ns"), bytes(&b"k"[..]), int(-7), Value::Float(1.5), cborrpc::value::tuple(vec![int(1)])];
    t.lock(NOW, "a", 20.0, std::slice::from_ref(&labels)).unwrap();
    t.lock(NOW, "b", 10.0, &[p(&["other"])]).unwrap();
    t.lock(NOW, "c", -1.0, &[p(&["expired"])]).unwrap();
    assert_eq!(
        t.held_locks(NOW),
        vec![
            HeldLock { path: p(&["other"]), owner: "b".into(), deadline: NOW.plus_secs(10.0) },
            HeldLock { path: labels, owner: "a".into(), deadline: NOW.plus_secs(20.0) },
        ]
    );
}

/// The path of issue 10: `lock("a", 0, [[0] * 30000])`.
fn zeros(n: usize) -> Vec<Value> {
    vec![int(0); n]
}

#[test]
fn a_30000_label_path_is_refused_and_the_tree_still_works() {
    let t = T::default();
    let err = t.lock(NOW, "a", 0.0, &[p(&["ok"]), zeros(30_000)]).unwrap_err();
    assert_eq!(err, "key path 1 has 30000 labels, more than the limit of 64 (max_depth)");
    assert_eq!(t.readlock(NOW, &[p(&["ok"])]), vec![None], "all or nothing");
    assert!(t.try_locksome(NOW, "a", 0.0, &[zeros(30_000)]).unwrap_err().contains("max_depth"));
    assert_eq!(t.locksome(NOW, "a", 0.0, &[p(&["ok"]), zeros(65)]), vec![None, None]);
    assert!(t.try_readlock(NOW, &[zeros(65)]).unwrap_err().contains("max_depth"));
    assert!(t.unlock(NOW, "a", &[zeros(65)]).unwrap_err().contains("max_depth"));
    assert!(t.renew(NOW, "a", 0.0, &[zeros(65)]).unwrap_err().contains("max_depth"));
    t.lock(NOW, "b", 0.0, &[zeros(64)]).unwrap();
    assert_eq!(t.readlock(NOW, &[zeros(64), p(&["ok"])]), vec![Some("b".into()), None]);
}

#[test]
fn oversized_labels_and_too_many_paths_are_refused() {
    let t = T::default();
    let big = vec![text("ns"), text("x".repeat(5000))];
    assert_eq!(
        t.lock(NOW, "a", 0.0, &[p(&["ok"]), big]),
        Err("label 1 of key path 1 takes 5000 bytes, more than the limit of 4096 (max_label_bytes)".into())
    );
    // Within the content limit, over it once encoded.
    let nested = vec![Value::Array(vec![text("y".repeat(4000)); 2])];
    assert!(t.lock(NOW, "a", 0.0, &[nested]).unwrap_err().contains("max_label_bytes"));
    t.lock(NOW, "a", 0.0, &[vec![text("z".repeat(4093))]]).unwrap();
    let many: Vec<Vec<Value>> = (0..10_001).map(|i| vec![int(i)]).collect();
    assert_eq!(
        t.lock(NOW, "a", 0.0, &many),
        Err("10001 key paths in one call, more than the limit of 10000 (max_paths)".into())
    );
    assert!(t.try_readlock(NOW, &many).unwrap_err().contains("max_paths"));
    assert_eq!(t.readlock(NOW, &many[..1]), vec![None]);
    t.delete_namespace(NOW, &text("w".repeat(1 << 20)));
    assert_eq!(t.node_count(), 2, "an oversized prefix deletes nothing");
}

#[test]
fn an_over_long_owner_is_refused() {
    let t = T::default();
    let owner = "o".repeat(4097);
    assert_eq!(
        t.lock(NOW, &owner, 0.0, &[p(&["x"])]),
        Err("locker id of 4097 bytes is longer than the limit of 4096 (max_owner_bytes)".into())
    );
    assert!(t.try_locksome(NOW, &owner, 0.0, &[p(&["x"])]).unwrap_err().contains("max_owner_bytes"));
    assert_eq!(t.locksome(NOW, &owner, 0.0, &[p(&["x"])]), vec![None]);
    assert_eq!(t.node_count(), 1);
    t.lock(NOW, &owner[..4096], 0.0, &[p(&["x"])]).unwrap();
}

#[test]
fn readlock_reply_is_bounded() {
    let t = T::default();
    let owner = "o".repeat(4096);
    t.lock(NOW, &owner, 0.0, &[p(&["x"])]).unwrap();
    // 1024 copies of a 4 KiB owner make exactly 4 MiB, the default limit.
    let ok = vec![p(&["x"]); 1024];
    assert_eq!(t.try_readlock(NOW, &ok).unwrap().len(), 1024);
    let over = vec![p(&["x"]); 1025];
    let err = t.try_readlock(NOW, &over).unwrap_err();
    assert!(err.contains("4198400 bytes") && err.contains("max_reply_bytes"), "{err}");
    assert_eq!(t.readlock(NOW, &over), vec![None; 1025]);
    let small = T::with_limits(LockLimits { max_reply_bytes: 10, ..LockLimits::default() });
    small.lock(NOW, "abcdef", 0.0, &[p(&["x"])]).unwrap();
    assert!(small.try_readlock(NOW, &[p(&["x"]), p(&["x"])]).is_err());
    assert_eq!(small.try_readlock(NOW, &[p(&["x"]), p(&["y"])]).unwrap(), vec![Some("abcdef".into()), None]);
}

/// Deeper than any recursive walk or drop survives on a 2 MiB test thread.
const DEEP: usize = 300_000;

fn deep_tree() -> T {
    T::with_limits(LockLimits { max_depth: DEEP, ..LockLimits::default() })
}

#[test]
fn a_deep_allowed_path_expires_unlocks_and_drops_without_recursion() {
    let t = deep_tree();
    t.lock(NOW, "a", 10.0, &[zeros(DEEP)]).unwrap();
    assert!(t.lock(NOW, "b", 10.0, &[zeros(DEEP / 2)]).is_err(), "a prefix of a lock");
    assert_eq!(t.readlock(NOW, &[zeros(DEEP)]), vec![Some("a".into())]);
    assert_eq!(t.node_count(), DEEP + 1);
    assert_eq!(t.readlock(NOW.plus_secs(11.0), &[zeros(DEEP)]), vec![None]);
    assert_eq!(t.node_count(), 1, "expiry prunes the whole chain");
    t.lock(NOW, "a", 10.0, &[zeros(DEEP)]).unwrap();
    t.unlock(NOW, "a", &[zeros(DEEP)]).unwrap();
    assert_eq!(t.node_count(), 1, "unlock prunes the whole chain");
    t.lock(NOW, "a", 10.0, &[zeros(DEEP), vec![int(1)]]).unwrap();
    t.delete_namespace(NOW, &int(0));
    assert_eq!(t.readlock(NOW, &[zeros(DEEP), vec![int(1)]]), vec![None, Some("a".into())]);
    t.lock(NOW, "a", 10.0, &[zeros(DEEP)]).unwrap();
    drop(t);
}

#[test]
fn many_expired_deep_nodes_expire_in_one_call() {
    let t = T::default();
    // 2,000 branches of 64 levels under one shared prefix, expiring at once.
    let paths: Vec<Vec<Value>> = (0..2_000).map(|i| [vec![int(i)], zeros(63)].concat()).collect();
    t.lock(NOW, "a", 5.0, &paths).unwrap();
    t.lock(NOW, "b", 50.0, &[p(&["kept"])]).unwrap();
    assert_eq!(t.node_count(), 1 + 2_000 * 64 + 1);
    t.lock(NOW.plus_secs(6.0), "c", 10.0, &[paths[0].clone()]).unwrap();
    assert_eq!(t.node_count(), 1 + 64 + 1, "only the new lock and the live one remain");
    assert_eq!(t.held_locks(NOW.plus_secs(6.0)).len(), 2);
}

#[test]
fn ten_thousand_paths_lock_and_unlock() {
    let t = T::default();
    let paths: Vec<Vec<Value>> =
        (0..10_000).map(|i| vec![text("work_spec"), bytes(format!("unit-{i:05}").into_bytes())]).collect();
    let start = std::time::Instant::now();
    t.lock(NOW, "a", 10.0, &paths).unwrap();
    let locked = start.elapsed();
    assert_eq!(t.locksome(NOW, "b", 10.0, &paths[..3]), vec![None, None, None]);
    let start = std::time::Instant::now();
    t.unlock(NOW, "a", &paths).unwrap();
    let unlocked = start.elapsed();
    assert_eq!(t.node_count(), 1);
    let got = t.locksome(NOW, "b", 10.0, &paths);
    assert!(got.iter().all(Option::is_some));
    // A figure for the report, not an assertion (see README).
    eprintln!("10,000 paths: lock {locked:?}, unlock {unlocked:?}");
}
