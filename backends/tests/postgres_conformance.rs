//! The conformance suite on the PostgreSQL backend, each rule in a schema
//! of its own on the cluster named by `COORDINATE_TEST_PG` (which
//! `./run-tests` starts; see `scripts/pg-cluster`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use backends::postgres::{parse_config, PostgresBackend};
use backends::MockClock;

/// The test cluster's URL; without it these tests cannot run, and they fail
/// rather than pass silently.
pub fn test_url() -> String {
    std::env::var("COORDINATE_TEST_PG")
        .expect("COORDINATE_TEST_PG is not set: run ./run-tests, or start a cluster with scripts/pg-cluster")
}

/// A fresh backend in a new, empty schema.
pub async fn fresh(clock: MockClock) -> PostgresBackend {
    static N: AtomicU32 = AtomicU32::new(0);
    let schema = format!("t{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), rand_suffix());
    let url = test_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect to test cluster");
    let task = tokio::spawn(conn);
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    drop(client);
    let _ = task.await;
    let mut cfg = parse_config(&url).unwrap();
    cfg.options(format!("-c search_path={schema}"));
    PostgresBackend::connect_config(cfg, Arc::new(clock), 4, Some(1)).await.expect("backend")
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
}

backends::conformance_tests!(fresh);
