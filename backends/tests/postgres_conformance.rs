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

/// Rows written by a version-1 schema, which answered every key as bytes,
/// keep that answer after the upgrade that records each key's string type.
#[tokio::test]
async fn upgrade_keeps_keys_of_existing_rows_as_bytes() {
    use backends::model::{NewUnit, UnitKey, UnitQuery};
    use backends::Coordinate;
    use cborrpc::Value;

    let schema = format!("up{}_{}", std::process::id(), rand_suffix());
    let url = test_url();
    let mut cfg = parse_config(&url).unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    drop(client);
    let _ = task.await;
    cfg.options(format!("-c search_path={schema}"));
    let (mut client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    backends::postgres::schema::migrate_to(&mut client, 1).await.unwrap();
    let data = cborrpc::encode::to_vec(&Value::Map(vec![]));
    client
        .batch_execute(
            "INSERT INTO work_spec (name, data, priority, weight, paused, continuous, can_be_continuous,
                 min_memory_gb, interval_secs, max_running, max_getwork, max_retries, next_spec, runtime)
             VALUES ('s', '\\xa1646e616d656173', 0, 20, false, false, false, 0, 0, 0, 0, 0, '', '')",
        )
        .await
        .unwrap();
    client
        .execute("INSERT INTO work_unit (spec_id, key, data, status) SELECT id, 'old', $1, 0 FROM work_spec", &[&data])
        .await
        .unwrap();
    drop(client);
    let _ = task.await;

    let b = PostgresBackend::connect_config(cfg, Arc::new(MockClock::new()), 2, Some(1)).await.unwrap();
    b.add_work_units("s", vec![NewUnit::keyed(UnitKey::text("new"), Value::Map(vec![]))]).await.unwrap();
    let keys: Vec<UnitKey> =
        b.get_work_units("s", UnitQuery::default()).await.unwrap().into_iter().map(|u| u.0).collect();
    assert_eq!(keys, [UnitKey::text("new"), UnitKey::bytes(*b"old")]);
}
