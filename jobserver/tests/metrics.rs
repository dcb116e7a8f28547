//! The metrics exposition, rendered as `/metrics` serves it, after a
//! worker's life cycle driven through `JobServer::call` on the memory and
//! durable backends with a mock clock: it parses, `coordinate_work_units`
//! equals `count_work_units` after every step, and the counters, the
//! queue-wait histogram and the request counts move as the calls say.

#[path = "metrics/exposition.rs"]
mod exposition;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use backends::durable::{DurableBackend, DurableOptions};
use backends::journal::FsyncMode;
use backends::memory::MemoryBackend;
use backends::{Coordinate, MockClock};
use cborrpc::value::{int, text, tuple, Value};
use exposition::Exposition;
use jobserver::wire::status;
use jobserver::{metrics, JobServer};

const SPEC: &str = "s";
const IDLE: &str = "idle \"quoted\"\nspec";

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (text(*k), v.clone())).collect())
}

async fn call<C: Coordinate>(s: &JobServer<C>, method: &str, params: Vec<Value>) -> Value {
    s.call(method, params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn scrape<C: Coordinate>(s: &JobServer<C>) -> Exposition {
    let text = metrics::render(s).await.expect("render");
    exposition::parse(&text).unwrap_or_else(|e| panic!("{e} in\n{text}"))
}

/// `coordinate_work_units` of every spec equals its `count_work_units`.
async fn gauges_match_counts<C: Coordinate>(s: &JobServer<C>) -> Exposition {
    let e = scrape(s).await;
    for spec in [SPEC, IDLE] {
        let Value::Array(answer) = call(s, "count_work_units", vec![text(spec)]).await else { panic!() };
        let Value::Map(by_code) = &answer[0] else { panic!("{answer:?}") };
        let mut want = [0.0; 5];
        for (k, v) in by_code {
            let (Value::Integer(k), Value::Integer(v)) = (k, v) else { panic!() };
            let slot = match i128::from(*k) as i64 {
                status::AVAILABLE => 0,
                status::PENDING => 1,
                status::FINISHED => 2,
                status::FAILED => 3,
                status::DELAYED_COUNT => 4,
                other => panic!("code {other}"),
            };
            want[slot] = i128::from(*v) as f64;
        }
        for (i, name) in ["available", "pending", "finished", "failed", "delayed"].iter().enumerate() {
            let got = e.get("coordinate_work_units", &[("work_spec", spec), ("status", name)]);
            assert_eq!(got, Some(want[i]), "{spec} {name}");
        }
    }
    e
}

async fn update<C: Coordinate>(s: &JobServer<C>, key: &str, code: i64) {
    let options = map(&[("status", int(code)), ("lease_time", int(10))]);
    let answer = call(s, "update_work_unit", vec![text(SPEC), text(key), options]).await;
    assert_eq!(answer, Value::Array(vec![Value::Bool(true), Value::Null]), "update {key}");
}

async fn get_work<C: Coordinate>(s: &JobServer<C>, worker: &str, n: i64) -> Vec<String> {
    let options = map(&[("max_jobs", int(n)), ("lease_time", int(10))]);
    let Value::Array(answer) = call(s, "get_work", vec![text(worker), options]).await else { panic!() };
    let Value::Array(items) = &answer[0] else { panic!("{answer:?}") };
    items
        .iter()
        .map(|i| match i {
            Value::Tag(_, inner) => match &**inner {
                Value::Array(parts) => match &parts[1] {
                    Value::Text(k) => k.clone(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect()
}

fn spec_counter(e: &Exposition, name: &str) -> f64 {
    e.get(&format!("coordinate_work_units_{name}_total"), &[("work_spec", SPEC)]).unwrap_or(f64::NAN)
}

/// Adds, hands out, finishes, fails, lets leases expire, promotes a
/// delayed unit, releases and retries, checking the gauges after each.
async fn life_cycle<C: Coordinate>(s: &JobServer<C>, clock: &MockClock) {
    call(s, "set_work_spec", vec![map(&[("name", text(SPEC))])]).await;
    call(s, "set_work_spec", vec![map(&[("name", text(IDLE))])]).await;
    let mut items: Vec<Value> = (0..10).map(|i| tuple(vec![text(format!("u{i}")), map(&[])])).collect();
    items.push(tuple(vec![text("d"), map(&[]), map(&[("delay", int(30))])]));
    call(s, "add_work_units", vec![text(SPEC), Value::Array(items)]).await;
    gauges_match_counts(s).await;

    clock.advance(5.0);
    assert_eq!(get_work(s, "w1", 4).await, ["u0", "u1", "u2", "u3"]);
    gauges_match_counts(s).await;
    update(s, "u0", status::FINISHED).await;
    update(s, "u1", status::FAILED).await;
    gauges_match_counts(s).await;

    // The leases of u2 and u3 ran out at t=15; d is due at t=30.
    clock.advance(20.0);
    let e = gauges_match_counts(s).await;
    assert_eq!(e.get("coordinate_work_units", &[("work_spec", SPEC), ("status", "available")]), Some(8.0));
    assert_eq!(spec_counter(&e, "expired"), 2.0);

    clock.advance(10.0);
    assert_eq!(get_work(s, "w2", 2).await, ["d", "u2"]);
    update(s, "d", status::AVAILABLE).await;
    update(s, "u1", status::AVAILABLE).await;
    let e = gauges_match_counts(s).await;

    let counters =
        [("added", 11.0), ("handed_out", 6.0), ("finished", 1.0), ("failed", 1.0), ("retried", 1.0), ("released", 1.0)];
    for (name, want) in counters {
        assert_eq!(spec_counter(&e, name), want, "{name}");
    }
    // Waits: u0..u3 5 s each, d 5 s after its delay, u2 20 s after its
    // lease ran out.
    let wait = |suffix: &str, le: Option<&str>| {
        let mut labels = vec![("work_spec", SPEC)];
        labels.extend(le.map(|le| ("le", le)));
        e.get(&format!("coordinate_queue_wait_seconds{suffix}"), &labels)
    };
    assert_eq!(wait("_count", None), Some(6.0));
    assert_eq!(wait("_sum", None), Some(45.0));
    assert_eq!(wait("_bucket", Some("1.0")), Some(0.0));
    assert_eq!(wait("_bucket", Some("5.0")), Some(5.0));
    assert_eq!(wait("_bucket", Some("30.0")), Some(6.0));
    assert_eq!(wait("_bucket", Some("+Inf")), Some(6.0));
    assert_eq!(e.get("coordinate_work_units_added_total", &[("work_spec", IDLE)]), Some(0.0));
}

/// Requests by method and outcome, workers by mode, open connections.
async fn requests_workers_connections<C: Coordinate>(s: &JobServer<C>) {
    let before = scrape(s).await;
    let n = |e: &Exposition, method: &str, outcome: &str| {
        e.get("coordinate_requests_total", &[("method", method), ("outcome", outcome)]).unwrap_or(0.0)
    };
    // A missing spec is answered in band but counts as not_found.
    call(s, "count_work_units", vec![text("nope")]).await;
    assert!(s.call("no_such_method", vec![]).await.is_err());
    assert!(s.call("GetWork", vec![int(1)]).await.is_err());
    call(s, "worker_heartbeat", vec![text("hb"), text("RUN"), int(600), map(&[]), Value::Null]).await;
    let open = s.metrics().open_connection();
    let after = scrape(s).await;
    assert_eq!(n(&after, "count_work_units", "not_found") - n(&before, "count_work_units", "not_found"), 1.0);
    assert_eq!(n(&after, "unknown", "invalid_request") - n(&before, "unknown", "invalid_request"), 1.0);
    assert_eq!(n(&after, "get_work", "invalid_request") - n(&before, "get_work", "invalid_request"), 1.0);
    assert_eq!(n(&after, "get_work", "ok"), 2.0);
    assert_eq!(n(&after, "update_work_unit", "ok"), 4.0);
    let get_work_total: f64 = after
        .series("coordinate_requests_total")
        .iter()
        .filter(|(l, _)| l["method"] == "get_work")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(after.get("coordinate_request_duration_seconds_count", &[("method", "get_work")]), Some(get_work_total));
    assert_eq!(after.get("coordinate_connections", &[]), Some(1.0));
    drop(open);
    assert_eq!(scrape(s).await.get("coordinate_connections", &[]), Some(0.0));

    let Value::Array(modes) = call(s, "mode_counts", vec![]).await else { panic!() };
    let Value::Map(modes) = &modes[0] else { panic!() };
    assert!(!modes.is_empty());
    for (mode, count) in modes {
        let (Value::Text(mode), Value::Integer(count)) = (mode, count) else { panic!() };
        assert_eq!(after.get("coordinate_workers", &[("mode", mode)]), Some(i128::from(*count) as f64), "{mode}");
    }
}

#[tokio::test]
async fn memory_backend_metrics() {
    let clock = MockClock::new();
    let s = JobServer::new(MemoryBackend::with_seed(Arc::new(clock.clone()), 1), None);
    life_cycle(&s, &clock).await;
    requests_workers_connections(&s).await;
}

fn fresh_dir(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("metrics-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open_durable(dir: &Path, clock: &MockClock) -> DurableBackend {
    let mut opts = DurableOptions::new(dir);
    opts.fsync = FsyncMode::Never;
    opts.seed = Some(1);
    DurableBackend::open(opts, Arc::new(clock.clone())).expect("open")
}

#[tokio::test]
async fn durable_backend_metrics_and_restart() {
    let clock = MockClock::new();
    let dir = fresh_dir("durable");
    {
        let s = JobServer::new(open_durable(&dir, &clock), None);
        life_cycle(&s, &clock).await;
        requests_workers_connections(&s).await;
    }
    // After a restart the counters start again, the gauges still match,
    // and the time each unit became available came back with the journal:
    // d was released and u1 retried at t=35, and u3 has been available
    // since its lease ran out at t=15.
    clock.advance(5.0);
    let s = JobServer::new(open_durable(&dir, &clock), None);
    let e = gauges_match_counts(&s).await;
    assert_eq!(spec_counter(&e, "handed_out"), 0.0);
    assert_eq!(get_work(&s, "w3", 3).await, ["d", "u1", "u3"]);
    let e = scrape(&s).await;
    assert_eq!(e.get("coordinate_queue_wait_seconds_sum", &[("work_spec", SPEC)]), Some(35.0));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
