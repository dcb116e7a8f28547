//! The conformance suite on the durable backend, each rule in a fresh data
//! directory with the default (sync always) journal.

mod common;

use std::sync::Arc;

use backends::durable::{DurableBackend, DurableOptions};

backends::conformance_tests!(|clock| async move {
    let opts = DurableOptions { seed: Some(1), ..DurableOptions::new(common::fresh_dir("conformance")) };
    DurableBackend::open(opts, Arc::new(clock)).expect("open durable backend")
});

/// Locks outlive a restart with the time they had left; an unlock does too.
#[tokio::test]
async fn locks_survive_a_restart() {
    use backends::locks::LockTree;
    use backends::{Coordinate, MockClock, Value};
    let clock = MockClock::new();
    let dir = common::fresh_dir("conformance");
    let open = || DurableBackend::open(DurableOptions::new(&dir), Arc::new(clock.clone())).unwrap();
    let b = open();
    let tree = LockTree::new();
    let path = |s: &str| vec![Value::Text("ns".into()), Value::Text(s.into())];
    let now = b.now();
    tree.lock(now, "alice", 60.0, &[path("a"), path("b")]).unwrap();
    b.save_locks(&tree, now).await.unwrap();
    tree.unlock(now, "alice", &[path("b")]).unwrap();
    b.save_locks(&tree, now).await.unwrap();
    drop(b);
    clock.advance(10.0);
    let b = open();
    let saved = b.saved_locks();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!((saved[0].path.clone(), saved[0].owner.as_str()), (path("a"), "alice"));
    assert_eq!(saved[0].deadline, now.plus_secs(60.0));
    // Snapshots carry them too.
    b.snapshot_now().unwrap();
    drop(b);
    assert_eq!(open().saved_locks().len(), 1);
}
