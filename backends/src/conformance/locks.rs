//! The lock methods' locks: exclusion along a path's prefixes and
//! extensions, all-or-nothing calls, owners, expiry by the backend's
//! clock, exact label equality, namespaces and limits.

use cborrpc::Value;

use crate::clock::MockClock;
use crate::locks::{LockAnswer, LockCall, LockLimits};
use crate::Coordinate;

fn path(labels: &[&str]) -> Vec<Value> {
    labels.iter().map(|l| Value::Text(l.to_string())).collect()
}

async fn call<C: Coordinate>(c: &C, call: LockCall) -> LockAnswer {
    c.lock_call(&call, &LockLimits::default()).await.unwrap()
}

async fn lock<C: Coordinate>(c: &C, owner: &str, timeout: f64, paths: Vec<Vec<Value>>) -> Result<(), String> {
    match call(c, LockCall::Lock { owner: owner.into(), timeout, paths }).await {
        LockAnswer::Done(r) => r,
        other => panic!("lock answered {other:?}"),
    }
}

async fn unlock<C: Coordinate>(c: &C, owner: &str, paths: Vec<Vec<Value>>) -> Result<(), String> {
    match call(c, LockCall::Unlock { owner: owner.into(), paths }).await {
        LockAnswer::Done(r) => r,
        other => panic!("unlock answered {other:?}"),
    }
}

async fn renew<C: Coordinate>(c: &C, owner: &str, timeout: f64, paths: Vec<Vec<Value>>) -> Result<(), String> {
    match call(c, LockCall::Renew { owner: owner.into(), timeout, paths }).await {
        LockAnswer::Done(r) => r,
        other => panic!("renew answered {other:?}"),
    }
}

async fn owners<C: Coordinate>(c: &C, paths: Vec<Vec<Value>>) -> Vec<Option<String>> {
    match call(c, LockCall::ReadLock { paths }).await {
        LockAnswer::Owners(r) => r.unwrap(),
        other => panic!("readlock answered {other:?}"),
    }
}

fn who(names: &[Option<&str>]) -> Vec<Option<String>> {
    names.iter().map(|n| n.map(str::to_string)).collect()
}

/// A locked path excludes itself, its prefixes and its extensions, for
/// its owner too (locks are not re-entrant), but not its siblings.
pub async fn locks_exclude_prefixes_and_extensions<C: Coordinate>(c: &C, _clock: &MockClock) {
    lock(c, "alice", 60.0, vec![path(&["jobs", "a"])]).await.unwrap();
    for p in [path(&["jobs"]), path(&["jobs", "a"]), path(&["jobs", "a", "x"]), vec![]] {
        let e = lock(c, "bob", 60.0, vec![p.clone()]).await.unwrap_err();
        assert!(e.contains("is not lockable"), "{p:?}: {e}");
    }
    assert!(lock(c, "alice", 60.0, vec![path(&["jobs", "a"])]).await.is_err());
    lock(c, "bob", 60.0, vec![path(&["jobs", "b"]), path(&["other"])]).await.unwrap();
    let got = owners(c, vec![path(&["jobs", "a"]), path(&["jobs", "b"]), path(&["jobs"]), path(&["other"])]).await;
    assert_eq!(got, who(&[Some("alice"), Some("bob"), None, Some("bob")]));
    // The empty path is the root: it excludes everything, and is excluded
    // by anything locked.
    unlock(c, "alice", vec![path(&["jobs", "a"])]).await.unwrap();
    unlock(c, "bob", vec![path(&["jobs", "b"]), path(&["other"])]).await.unwrap();
    lock(c, "carol", 60.0, vec![vec![]]).await.unwrap();
    assert!(lock(c, "bob", 60.0, vec![path(&["anything"])]).await.is_err());
    assert_eq!(owners(c, vec![vec![]]).await, who(&[Some("carol")]));
}

/// `lock` takes every path or none; `locksome` takes each one it can.
pub async fn lock_is_all_or_nothing_and_locksome_is_not<C: Coordinate>(c: &C, _clock: &MockClock) {
    lock(c, "alice", 60.0, vec![path(&["a"])]).await.unwrap();
    let e = lock(c, "bob", 60.0, vec![path(&["b"]), path(&["a", "x"]), path(&["c"])]).await.unwrap_err();
    assert!(e.contains("[a x] is not lockable"), "{e}");
    assert_eq!(owners(c, vec![path(&["b"]), path(&["c"])]).await, who(&[None, None]));
    let got = call(
        c,
        LockCall::LockSome {
            owner: "bob".into(),
            timeout: 60.0,
            paths: vec![path(&["b"]), path(&["a"]), path(&["b", "y"]), path(&["c"])],
        },
    )
    .await;
    assert_eq!(got, LockAnswer::Some(Ok(vec![Some(path(&["b"])), None, None, Some(path(&["c"]))])));
    assert_eq!(
        owners(c, vec![path(&["a"]), path(&["b"]), path(&["c"])]).await,
        who(&[Some("alice"), Some("bob"), Some("bob")])
    );
    // Paths of one call are checked against the locks as they were, as
    // go-coordinate does: `lock` takes a path and its extension together,
    // `locksome` only the first.
    lock(c, "carol", 60.0, vec![path(&["d"]), path(&["d", "e"])]).await.unwrap();
    assert_eq!(owners(c, vec![path(&["d"]), path(&["d", "e"])]).await, who(&[Some("carol"), Some("carol")]));
    unlock(c, "carol", vec![path(&["d"])]).await.unwrap();
    assert_eq!(owners(c, vec![path(&["d"]), path(&["d", "e"])]).await, who(&[None, Some("carol")]));
    let got = call(
        c,
        LockCall::LockSome { owner: "dave".into(), timeout: 60.0, paths: vec![path(&["f"]), path(&["f", "g"])] },
    )
    .await;
    assert_eq!(got, LockAnswer::Some(Ok(vec![Some(path(&["f"])), None])));
}

/// Renewing and unlocking need the owner; each is all or nothing.
pub async fn renew_and_unlock_need_the_owner<C: Coordinate>(c: &C, clock: &MockClock) {
    lock(c, "alice", 10.0, vec![path(&["a"]), path(&["b"])]).await.unwrap();
    let e = renew(c, "bob", 60.0, vec![path(&["a"])]).await.unwrap_err();
    assert!(e.contains("[a] is held by alice"), "{e}");
    let e = renew(c, "alice", 60.0, vec![path(&["a"]), path(&["z"])]).await.unwrap_err();
    assert!(e.contains("[z] is held by None"), "{e}");
    let e = unlock(c, "bob", vec![path(&["a"])]).await.unwrap_err();
    assert!(e.contains("[a] is held by alice"), "{e}");
    let e = unlock(c, "alice", vec![path(&["a"]), path(&["z"])]).await.unwrap_err();
    assert!(e.contains("[z] is not held"), "{e}");
    assert_eq!(owners(c, vec![path(&["a"]), path(&["b"])]).await, who(&[Some("alice"), Some("alice")]));
    // Renewing moves the deadline to now + timeout.
    renew(c, "alice", 60.0, vec![path(&["a"])]).await.unwrap();
    clock.advance(30.0);
    assert_eq!(owners(c, vec![path(&["a"]), path(&["b"])]).await, who(&[Some("alice"), None]));
    unlock(c, "alice", vec![path(&["a"])]).await.unwrap();
    assert_eq!(owners(c, vec![path(&["a"])]).await, who(&[None]));
    lock(c, "bob", 60.0, vec![path(&["a", "x"])]).await.unwrap();
}

/// A lock lasts its timeout by the backend's clock (0 means 60 s): held
/// at its deadline, gone just after, and then free for anyone.
pub async fn locks_expire_by_the_clock<C: Coordinate>(c: &C, clock: &MockClock) {
    lock(c, "alice", 10.0, vec![path(&["a"])]).await.unwrap();
    lock(c, "alice", 0.0, vec![path(&["b"])]).await.unwrap();
    clock.advance(10.0);
    assert_eq!(owners(c, vec![path(&["a"])]).await, who(&[Some("alice")]));
    assert!(lock(c, "bob", 60.0, vec![path(&["a", "x"])]).await.is_err());
    clock.advance(0.001);
    assert_eq!(owners(c, vec![path(&["a"])]).await, who(&[None]));
    lock(c, "bob", 60.0, vec![path(&["a", "x"])]).await.unwrap();
    assert!(renew(c, "alice", 60.0, vec![path(&["a"])]).await.is_err());
    clock.advance(49.0);
    assert_eq!(owners(c, vec![path(&["b"])]).await, who(&[Some("alice")]));
    clock.advance(1.0);
    assert_eq!(owners(c, vec![path(&["b"])]).await, who(&[None]));
}

/// Labels are equal only when their encodings are: bytes are not text, an
/// integer is not a float; `delete_namespace` drops everything under one
/// first label.
pub async fn labels_compare_exactly_and_namespaces_delete<C: Coordinate>(c: &C, _clock: &MockClock) {
    let bytes = vec![Value::Bytes(b"a".to_vec())];
    lock(c, "alice", 60.0, vec![path(&["a"]), vec![Value::Integer(1.into())]]).await.unwrap();
    lock(c, "bob", 60.0, vec![bytes.clone(), vec![Value::Float(1.0)]]).await.unwrap();
    let got =
        owners(c, vec![path(&["a"]), bytes.clone(), vec![Value::Integer(1.into())], vec![Value::Float(1.0)]]).await;
    assert_eq!(got, who(&[Some("alice"), Some("bob"), Some("alice"), Some("bob")]));
    lock(c, "carol", 60.0, vec![path(&["ns", "x"]), path(&["ns", "y", "z"]), path(&["nt"])]).await.unwrap();
    assert_eq!(call(c, LockCall::DeleteNamespace { prefix: Value::Text("ns".into()) }).await, LockAnswer::Done(Ok(())));
    let got = owners(c, vec![path(&["ns", "x"]), path(&["ns", "y", "z"]), path(&["nt"]), path(&["a"])]).await;
    assert_eq!(got, who(&[None, None, Some("carol"), Some("alice")]));
    lock(c, "dave", 60.0, vec![path(&["ns"])]).await.unwrap();
}

/// A call over a limit is refused whole and changes nothing.
pub async fn lock_calls_over_a_limit_are_refused<C: Coordinate>(c: &C, _clock: &MockClock) {
    let limits = LockLimits { max_paths: 2, max_depth: 3, ..LockLimits::default() };
    let three = vec![path(&["a"]), path(&["b"]), path(&["c"])];
    let got =
        c.lock_call(&LockCall::Lock { owner: "alice".into(), timeout: 60.0, paths: three.clone() }, &limits).await;
    assert!(matches!(got, Ok(LockAnswer::Done(Err(ref e))) if e.contains("max_paths")), "{got:?}");
    let got =
        c.lock_call(&LockCall::LockSome { owner: "alice".into(), timeout: 60.0, paths: three.clone() }, &limits).await;
    assert!(matches!(got, Ok(LockAnswer::Some(Err(ref e))) if e.contains("max_paths")), "{got:?}");
    let deep = vec![path(&["a", "b", "c", "d"])];
    let got = c.lock_call(&LockCall::Lock { owner: "alice".into(), timeout: 60.0, paths: deep }, &limits).await;
    assert!(matches!(got, Ok(LockAnswer::Done(Err(ref e))) if e.contains("max_depth")), "{got:?}");
    let got = c.lock_call(&LockCall::ReadLock { paths: three.clone() }, &limits).await;
    assert!(matches!(got, Ok(LockAnswer::Owners(Err(ref e))) if e.contains("max_paths")), "{got:?}");
    assert_eq!(owners(c, three).await, who(&[None, None, None]));
    let long = "x".repeat(LockLimits::default().max_owner_bytes + 1);
    let e = lock(c, &long, 60.0, vec![path(&["a"])]).await.unwrap_err();
    assert!(e.contains("max_owner_bytes"), "{e}");
    assert_eq!(owners(c, vec![path(&["a"])]).await, who(&[None]));
}
