//! The `lock` RPCs on the durable default: a lock answered as taken is
//! still held after the daemon restarts, and an unlock answered stays done.

use crate::common::*;
use cborrpc::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_held_across_a_restart() {
    let dir = data_dir("locks");
    let dir_arg = dir.to_str().unwrap();
    let path = |s: &str| Value::Array(vec![Value::Array(vec![t("jobs"), t(s)])]);

    let d = Process::start(&["--data-dir", dir_arg]);
    let mut c = d.client().await;
    assert_eq!(c.ok("lock", vec![t("alice"), i(600), path("a")]).await, ok_pair(Value::Bool(true)));
    assert_eq!(c.ok("lock", vec![t("bob"), i(600), path("b")]).await, ok_pair(Value::Bool(true)));
    assert_eq!(c.ok("unlock", vec![t("bob"), path("b")]).await, ok_pair(Value::Bool(true)));
    d.signal(libc::SIGKILL);
    drop(d);

    let d = Process::start(&["--data-dir", dir_arg]);
    let mut c = d.client().await;
    assert_eq!(c.ok("readlock", vec![path("a")]).await, Value::Array(vec![t("alice")]));
    assert_eq!(c.ok("readlock", vec![path("b")]).await, Value::Array(vec![Value::Null]));
    // Still alice's: bob cannot take it, alice can renew it.
    let refused = c.ok("lock", vec![t("bob"), i(600), path("a")]).await;
    assert_ne!(refused, ok_pair(Value::Bool(true)), "{refused:?}");
    assert_eq!(c.ok("renew", vec![t("alice"), i(600), path("a")]).await, ok_pair(Value::Bool(true)));
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
