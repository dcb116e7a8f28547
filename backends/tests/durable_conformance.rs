//! The conformance suite on the durable backend, each rule in a fresh data
//! directory with the default (sync always) journal.

mod common;

use std::sync::Arc;

use backends::durable::{DurableBackend, DurableOptions};

backends::conformance_tests!(|clock| async move {
    let opts = DurableOptions { seed: Some(1), ..DurableOptions::new(common::fresh_dir("conformance")) };
    DurableBackend::open(opts, Arc::new(clock)).expect("open durable backend")
});

/// Locks outlive a restart with their own deadlines; an unlock does too,
/// and so do snapshots.
#[tokio::test]
async fn locks_survive_a_restart() {
    use backends::locks::{LockAnswer, LockCall, LockLimits};
    use backends::{Coordinate, MockClock, Value};
    let clock = MockClock::new();
    let dir = common::fresh_dir("conformance");
    let open = || DurableBackend::open(DurableOptions::new(&dir), Arc::new(clock.clone())).unwrap();
    let path = |s: &str| vec![Value::Text("ns".into()), Value::Text(s.into())];
    let limits = LockLimits::default();
    async fn owners(b: &DurableBackend, paths: Vec<Vec<Value>>) -> LockAnswer {
        b.lock_call(&LockCall::ReadLock { paths }, &LockLimits::default()).await.unwrap()
    }
    let b = open();
    let lock = LockCall::Lock { owner: "alice".into(), timeout: 60.0, paths: vec![path("a"), path("b")] };
    assert_eq!(b.lock_call(&lock, &limits).await.unwrap(), LockAnswer::Done(Ok(())));
    let unlock = LockCall::Unlock { owner: "alice".into(), paths: vec![path("b")] };
    assert_eq!(b.lock_call(&unlock, &limits).await.unwrap(), LockAnswer::Done(Ok(())));
    drop(b);
    clock.advance(10.0);
    let b = open();
    let held = LockAnswer::Owners(Ok(vec![Some("alice".into()), None]));
    assert_eq!(owners(&b, vec![path("a"), path("b")]).await, held);
    // Snapshots carry them too, with the same deadline: held at 60 s, not
    // after.
    b.snapshot_now().unwrap();
    drop(b);
    clock.advance(50.0);
    let b = open();
    assert_eq!(owners(&b, vec![path("a"), path("b")]).await, held);
    clock.advance(0.001);
    assert_eq!(owners(&b, vec![path("a"), path("b")]).await, LockAnswer::Owners(Ok(vec![None, None])));
}
