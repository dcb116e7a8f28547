//! The conformance suite on the PostgreSQL backend, each rule in a schema
//! of its own on the cluster named by `COORDINATE_TEST_PG` (which
//! `./run-tests` starts; see `scripts/pg-cluster`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use backends::postgres::{parse_config, PostgresBackend, DEFAULT_CALL_TIMEOUT};
use backends::MockClock;

/// The test cluster's URL; without it these tests cannot run, and they fail
/// rather than pass silently.
pub fn test_url() -> String {
    std::env::var("COORDINATE_TEST_PG")
        .expect("COORDINATE_TEST_PG is not set: run ./run-tests, or start a cluster with scripts/pg-cluster")
}

/// A new, empty schema on the test cluster, and the configuration that
/// connects to it.
async fn new_schema() -> tokio_postgres::Config {
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
    cfg
}

/// A fresh backend in a new, empty schema.
pub async fn fresh(clock: MockClock) -> PostgresBackend {
    let cfg = new_schema().await;
    PostgresBackend::connect_config(cfg, Arc::new(clock), 4, DEFAULT_CALL_TIMEOUT, Some(1)).await.expect("backend")
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

    let cfg = new_schema().await;
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

    let b = PostgresBackend::connect_config(cfg, Arc::new(MockClock::new()), 2, DEFAULT_CALL_TIMEOUT, Some(1))
        .await
        .unwrap();
    b.add_work_units("s", vec![NewUnit::keyed(UnitKey::text("new"), Value::Map(vec![]))]).await.unwrap();
    let keys: Vec<UnitKey> =
        b.get_work_units("s", UnitQuery::default()).await.unwrap().into_iter().map(|u| u.0).collect();
    assert_eq!(keys, [UnitKey::text("new"), UnitKey::bytes(*b"old")]);
}

/// Finishes that arrive together are coalesced into one statement
/// (postgres/finish.rs): each answers as if it ran alone. Of two callers
/// ending one unit at once, exactly one changes it; fails among finishes
/// and finishes carrying data keep their own outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finishes_are_coalesced_without_changing_answers() {
    use backends::conformance::{add_keys, counts, set_status, spec, unit_data, work};
    use backends::model::UnitStatus;
    use backends::Coordinate;
    use cborrpc::Value;

    let b = Arc::new(fresh(MockClock::new()).await);
    b.set_work_spec(spec("s", &[])).await.unwrap();
    let keys: Vec<String> = (0..200).map(|n| format!("k{n:03}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    add_keys(&*b, "s", &refs).await;
    add_keys(&*b, "s", &["idle"]).await;
    let mut held = Vec::new();
    while held.len() < 200 {
        let got = work(&*b, "w", 50).await;
        held.extend(got.into_iter().map(|g| String::from_utf8(g.key.bytes).unwrap()).filter(|k| k != "idle"));
        assert!(!held.is_empty());
    }
    let mut tasks = Vec::new();
    for (n, k) in held.iter().enumerate() {
        for _ in 0..2 {
            let (b, k) = (b.clone(), k.clone());
            let (status, data) = match n % 10 {
                0 => (UnitStatus::Failed, None),
                1 => (UnitStatus::Finished, Some(Value::Text(format!("out {k}")))),
                _ => (UnitStatus::Finished, None),
            };
            tasks.push(tokio::spawn(async move { set_status(&*b, "s", &k, status, data).await }));
        }
    }
    let mut firsts = 0;
    for t in tasks {
        let changed = t.await.unwrap();
        firsts += usize::from(changed);
    }
    // One of each pair ended the unit; the other found it ended, which
    // changes nothing (finished or failed again: `false`).
    assert_eq!(firsts, 200, "finishes that said they changed something");
    let c = counts(&*b, "s").await;
    assert_eq!(c.get(&UnitStatus::Failed).copied(), Some(20), "{c:?}");
    assert_eq!(c.get(&UnitStatus::Finished).copied(), Some(180), "{c:?}");
    assert_eq!(
        c.get(&UnitStatus::Pending).copied().unwrap_or(0) + c.get(&UnitStatus::Available).copied().unwrap_or(0),
        1
    );
    for (n, k) in held.iter().enumerate() {
        if n % 10 == 1 {
            assert_eq!(unit_data(&*b, "s", k).await, Value::Text(format!("out {k}")));
        }
    }
}

/// Units have no foreign key to their spec (schema migration 4): adds that
/// race a deletion of their spec must still leave no unit without a spec,
/// and a spec made again under the same name starts empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_racing_a_spec_deletion_leave_no_orphan_units() {
    use backends::conformance::spec;
    use backends::model::{Error, NewUnit};
    use backends::Coordinate;
    use cborrpc::Value;

    let cfg = new_schema().await;
    let b = Arc::new(
        PostgresBackend::connect_config(cfg.clone(), Arc::new(MockClock::new()), 4, DEFAULT_CALL_TIMEOUT, Some(1))
            .await
            .unwrap(),
    );
    let units = |round: usize, n: usize| -> Vec<NewUnit> {
        (0..n).map(|i| NewUnit::new(format!("r{round}-{i}").into_bytes(), Value::Map(vec![]))).collect()
    };
    let mut deleted_first = 0;
    for round in 0..30 {
        b.set_work_spec(spec("s", &[])).await.unwrap();
        b.add_work_units("s", units(round, 50)).await.unwrap();
        let adder = {
            let b = b.clone();
            tokio::spawn(async move { b.add_work_units("s", units(round + 1000, 2000)).await })
        };
        // Let the add find its spec before the deletion starts, most rounds.
        tokio::time::sleep(std::time::Duration::from_micros(300 * (round as u64 % 5))).await;
        b.del_work_spec("s").await.unwrap();
        match adder.await.unwrap() {
            Ok(()) => {}
            Err(Error::NoSuchWorkSpec(_)) => deleted_first += 1,
            Err(e) => panic!("add racing a deletion: {e}"),
        }
    }
    b.set_work_spec(spec("s", &[])).await.unwrap();
    assert!(b.count_work_units("s").await.unwrap().is_empty(), "a spec made again starts empty");
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM work_unit u WHERE NOT EXISTS (SELECT 1 FROM work_spec s WHERE s.id = u.spec_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "units left without a spec ({deleted_first} of 30 adds found the spec deleted)");
    drop(client);
    let _ = task.await;
}

/// `get_work` requests that arrive together are claimed together
/// (postgres/claim.rs): 48 workers asking at once, for 1 to 4 units each,
/// across a plain spec, a spec with `max_getwork` and a spec with
/// `max_running` (which takes the transaction path). Every unit goes to
/// one worker only, to the worker that received it, no request gets more
/// than it may, each answer comes in hand-out order, `max_running` holds,
/// and the rounds hand out every unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_are_coalesced_without_changing_answers() {
    use std::collections::HashMap;

    use backends::conformance::{add_keys, counts, spec};
    use backends::model::{GetWork, UnitStatus};
    use backends::Coordinate;
    use cborrpc::Value;

    let b = Arc::new(fresh(MockClock::new()).await);
    b.set_work_spec(spec("plain", &[])).await.unwrap();
    b.set_work_spec(spec("capped", &[("max_getwork", Value::Integer(2.into()))])).await.unwrap();
    b.set_work_spec(spec("limited", &[("max_running", Value::Integer(5.into()))])).await.unwrap();
    let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i:03}")).collect::<Vec<_>>();
    for (s, n) in [("plain", 2000), ("capped", 400), ("limited", 40)] {
        let keys = names(s, n);
        add_keys(&*b, s, &keys.iter().map(String::as_str).collect::<Vec<_>>()).await;
    }
    let mut holder: HashMap<(String, Vec<u8>), String> = HashMap::new();
    for round in 0..100 {
        let mut tasks = Vec::new();
        for w in 0..48 {
            let b = b.clone();
            let worker = format!("w{w}");
            let max_jobs = 1 + w % 4;
            tasks.push(tokio::spawn(async move {
                let got = b.get_work(&worker, GetWork::new(max_jobs, 900.0)).await.unwrap();
                (worker, max_jobs, got)
            }));
        }
        let mut any = false;
        for t in tasks {
            let (worker, max_jobs, got) = t.await.unwrap();
            assert!(got.len() <= max_jobs, "{worker} asked for {max_jobs}, got {}", got.len());
            assert!(got.windows(2).all(|p| p[0].spec == p[1].spec && p[0].key < p[1].key), "one spec, in order");
            if got.first().is_some_and(|g| g.spec == "capped") {
                assert!(got.len() <= 2, "max_getwork 2, got {}", got.len());
            }
            for g in got {
                any = true;
                let unit = (g.spec.clone(), g.key.bytes.clone());
                assert!(holder.insert(unit, worker.clone()).is_none(), "{:?} handed out twice", g.key);
            }
        }
        let limited = counts(&*b, "limited").await;
        assert!(limited.get(&UnitStatus::Pending).copied().unwrap_or(0) <= 5, "max_running 5: {limited:?}");
        // Free the limited spec for the next round.
        let held: Vec<_> = holder.iter().filter(|((s, _), _)| s == "limited").map(|((_, k), _)| k.clone()).collect();
        for k in held {
            let done = backends::model::UnitUpdate::new(Some(UnitStatus::Finished), 900.0);
            b.update_work_unit("limited", &k, done).await.unwrap();
        }
        if !any && round > 0 {
            break;
        }
    }
    for (s, n) in [("plain", 2000), ("capped", 400), ("limited", 40)] {
        let got = holder.keys().filter(|(spec, _)| spec == s).count();
        assert_eq!(got, n, "{s}: units handed out");
    }
    for ((s, key), worker) in &holder {
        let st = b.get_work_unit_status(s, vec![key.clone()]).await.unwrap().remove(0).unwrap();
        if s != "limited" {
            assert_eq!(st.status, UnitStatus::Pending);
        }
        assert_eq!(st.worker_id.as_deref(), Some(worker.as_str()), "{s}/{key:?}: the worker that received it");
    }
}

/// Two backends (two daemons) on one new schema.
async fn two_daemons() -> (PostgresBackend, PostgresBackend) {
    let cfg = new_schema().await;
    let connect = |cfg| async move {
        PostgresBackend::connect_config(cfg, Arc::new(MockClock::new()), 2, DEFAULT_CALL_TIMEOUT, Some(1))
            .await
            .expect("backend")
    };
    (connect(cfg.clone()).await, connect(cfg).await)
}

/// A daemon's claims reuse the spec list for a few milliseconds; what
/// another daemon changes in that time must still be honoured where it
/// matters: a spec paused there hands out nothing here, and units added
/// there to a spec this daemon saw empty are handed out here.
#[tokio::test]
async fn a_reused_spec_list_honours_another_daemons_pause_and_new_units() {
    use backends::conformance::fixture::{add_keys, keys_of, spec, work};
    use backends::model::SpecControl;
    use backends::Coordinate;

    let (a, b) = two_daemons().await;
    a.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(&a, "s", &["k1", "k2", "k3"]).await;
    // Each round: A claims (reading or reusing its list), then B changes
    // something, then A asks again at once, within the list's lifetime.
    assert_eq!(keys_of(&work(&a, "w", 1).await), ["k1"]);
    b.control_work_spec("s", SpecControl { paused: Some(true), ..SpecControl::default() }).await.unwrap();
    assert!(work(&a, "w", 1).await.is_empty(), "a spec paused on another daemon handed out work");
    b.control_work_spec("s", SpecControl { paused: Some(false), ..SpecControl::default() }).await.unwrap();
    assert_eq!(keys_of(&work(&a, "w", 2).await), ["k2", "k3"]);
    // A's list now says s has nothing left; B adds a unit.
    add_keys(&b, "s", &["k4"]).await;
    assert_eq!(keys_of(&work(&a, "w", 1).await), ["k4"], "a unit added on another daemon was not handed out");
    // A limit set on another daemon is kept at once too.
    add_keys(&a, "s", &["k5", "k6"]).await;
    assert_eq!(keys_of(&work(&a, "w", 1).await), ["k5"]);
    b.control_work_spec("s", SpecControl { max_running: Some(1), ..SpecControl::default() }).await.unwrap();
    assert!(work(&a, "w", 1).await.is_empty(), "max_running set on another daemon was exceeded");
}
