//! The load generator against a daemon, as `scripts/bench` runs it: its
//! figures are only worth quoting if its drains really verify exactly-once
//! and clean up after themselves.

use std::process::Command;

use crate::common::*;

/// Runs `coordbench --json --address ADDR ARGS...` to its end; its exit
/// status, its JSON lines and its stderr.
fn coordbench(addr: std::net::SocketAddr, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coordbench"))
        .args(["--json", "--address", &addr.to_string()])
        .args(args)
        .output()
        .expect("run coordbench");
    let json = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (out.status.success(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_beside_a_backdrop_verifies_and_leaves_no_spec_behind() {
    let d = Daemon::memory().await;
    let addr = d.addr;
    let (ok, json, err) = tokio::task::spawn_blocking(move || {
        coordbench(addr, &["drain", "--workers", "4", "--max-jobs", "2", "--units", "300", "--backdrop", "500"])
    })
    .await
    .unwrap();
    assert!(ok, "coordbench failed: {err}");
    assert_eq!(json.len(), 1, "{json:?}");
    assert_eq!(json[0]["ok"], true, "{json:?}");
    assert_eq!(json[0]["rows"][0]["count"], 300, "{json:?}");
    let notes = json[0]["notes"].to_string();
    assert!(notes.contains("all 300 keys finished exactly once"), "{notes}");
    // The drain's spec and the backdrop's are both deleted.
    let mut c = d.client().await;
    let got = c.ok("list_work_specs", vec![map(&[])]).await;
    let cborrpc::Value::Array(parts) = &got else { panic!("list_work_specs: {got:?}") };
    assert_eq!(parts.first(), Some(&cborrpc::Value::Array(vec![])), "specs left behind: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdrop_is_refused_where_there_is_no_spec() {
    let d = Daemon::memory().await;
    let addr = d.addr;
    let (ok, json, _) =
        tokio::task::spawn_blocking(move || coordbench(addr, &["idle", "--connections", "2", "--backdrop", "5"]))
            .await
            .unwrap();
    assert!(!ok);
    assert_eq!(json[0]["ok"], false, "{json:?}");
    assert!(json[0]["error"].as_str().unwrap_or("").contains("--backdrop"), "{json:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backdrop_is_a_spec_of_its_own_and_a_taken_name_is_left_alone() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    let taken = map(&[("name", t("bench-x-backdrop")), ("min_gb", i(0))]);
    c.ok("set_work_spec", vec![taken]).await;
    c.ok(
        "add_work_units",
        vec![t("bench-x-backdrop"), cborrpc::Value::Array(vec![cborrpc::Value::Array(vec![t("k"), map(&[])])])],
    )
    .await;
    let addr = d.addr;
    let (ok, json, _) = tokio::task::spawn_blocking(move || {
        coordbench(addr, &["drain", "--spec", "bench-x", "--workers", "2", "--units", "10", "--backdrop", "5"])
    })
    .await
    .unwrap();
    assert!(!ok, "{json:?}");
    assert!(json[0]["error"].as_str().unwrap_or("").contains("bench-x-backdrop already exists"), "{json:?}");
    // The run's own spec is gone; the spec it found in its way is intact.
    assert!(c.ok("get_work_spec", vec![t("bench-x")]).await.is_null());
    assert_eq!(rpc_counts(&mut c, "bench-x-backdrop").await.values().sum::<u64>(), 1);
}
