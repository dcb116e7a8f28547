//! Ports of go-coordinate's `jobserver` test suites (`python_test.go`,
//! `work_test.go`, `specs_test.go`, `locks_test.go`), driven through
//! [`JobServer::call`] with the CBOR parameters a client would send, plus a
//! few tests of the decisions listed at the top of `lib.rs`.
//!
//! Where go-coordinate answered differently from our documented decisions,
//! the test asserts our behaviour and a `// Go:` comment says what Go did.

use std::sync::Arc;

use backends::memory::MemoryBackend;
use backends::{Clock, MockClock};
use cborrpc::value::{bytes, int, pair, text, tuple, Value};

use crate::JobServer;

const AVAILABLE: i64 = 1;
const PENDING: i64 = 3;
const FINISHED: i64 = 4;
const FAILED: i64 = 5;
const PAUSED: i64 = 2;
const RUNNABLE: i64 = 1;

/// The name of the reference work spec.
const SPEC: &str = "test_job_client";
/// The lease `get_work` gives when the client names none.
const GET_WORK_LEASE: i64 = 900;

// ---------------------------------------------------------------------------
// Value builders

fn t(s: &str) -> Value {
    text(s)
}

fn b(s: impl AsRef<[u8]>) -> Value {
    bytes(s.as_ref())
}

/// A work unit key as a client sends it: text when it is valid UTF-8
/// (as Go's encoder sends Go strings), bytes otherwise.
fn key(k: impl AsRef<[u8]>) -> Value {
    match std::str::from_utf8(k.as_ref()) {
        Ok(s) => text(s),
        Err(_) => b(k),
    }
}

/// A map with text keys.
fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

fn list<const N: usize>(items: [Value; N]) -> Value {
    Value::Array(items.into())
}

/// `{"k": "v"}`-style one-entry data.
fn kv(k: &str, v: &str) -> Value {
    map([(k, t(v))])
}

/// `[true, null]`.
fn yes() -> Value {
    pair(Value::Bool(true), None)
}

/// `[false, null]`.
fn no() -> Value {
    pair(Value::Bool(false), None)
}

/// Sets `k` in map `m`.
fn insert(m: &mut Value, k: &str, v: Value) {
    let Value::Map(entries) = m else { panic!("not a map: {m:?}") };
    entries.retain(|(ek, _)| ek != &text(k));
    entries.push((text(k), v));
}

/// A work spec: the reference spec plus `extra` entries.
fn spec_data<const N: usize>(extra: [(&str, Value); N]) -> Value {
    let mut m = map([
        ("name", t(SPEC)),
        ("min_gb", int(1)),
        ("module", t("coordinate.tests.test_job_client")),
        ("run_function", t("run_function")),
    ]);
    for (k, v) in extra {
        insert(&mut m, k, v);
    }
    m
}

/// The `get_work_units` list for `units`, in key order, as the daemon
/// returns it: tuples of (key as sent, data).
fn unit_list<K: AsRef<[u8]>>(units: &[(K, Value)]) -> Value {
    let mut units: Vec<(&[u8], &Value)> = units.iter().map(|(k, d)| (k.as_ref(), d)).collect();
    units.sort_by(|a, b| a.0.cmp(b.0));
    Value::Array(units.into_iter().map(|(k, d)| tuple(vec![key(k), d.clone()])).collect())
}

/// Keys `PREFIX001..` with data `{"k": "v1"}..`, as Go's
/// `addPrefixedWorkUnits` builds them.
fn prefixed(prefix: &str, count: usize) -> Vec<(String, Value)> {
    (1..=count).map(|i| (format!("{prefix}{i:03}"), kv("k", &format!("v{i}")))).collect()
}

/// The `get_work` items for the first `count` prefixed units of `spec`.
fn prefixed_work(spec: &str, prefix: &str, count: usize) -> Value {
    Value::Array(prefixed(prefix, count).into_iter().map(|(k, d)| tuple(vec![t(spec), key(k), d])).collect())
}

/// Map entries sorted recursively, so maps compare regardless of order.
fn norm(v: &Value) -> Value {
    match v {
        Value::Map(entries) => {
            let mut e: Vec<(Value, Value)> = entries.iter().map(|(k, v)| (norm(k), norm(v))).collect();
            e.sort_by_key(|(k, _)| format!("{k:?}"));
            Value::Map(e)
        }
        Value::Array(items) => Value::Array(items.iter().map(norm).collect()),
        Value::Tag(tag, inner) => Value::Tag(*tag, Box::new(norm(inner))),
        other => other.clone(),
    }
}

/// Asserts two values are equal, ignoring map entry order.
#[track_caller]
fn same(actual: &Value, expected: &Value) {
    assert_eq!(norm(actual), norm(expected));
}

/// Asserts `v` is `[false, "<non-empty text>"]`.
#[track_caller]
fn refused(v: &Value) {
    match v {
        Value::Array(items) if items.len() == 2 => {
            assert_eq!(items[0], Value::Bool(false), "{v:?}");
            assert!(matches!(&items[1], Value::Text(m) if !m.is_empty()), "{v:?}");
        }
        _ => panic!("expected [false, message], got {v:?}"),
    }
}

/// Splits a `[value, null]` answer.
#[track_caller]
fn value_of(v: Value) -> Value {
    match v {
        Value::Array(mut items) if items.len() == 2 && items[1].is_null() => items.swap_remove(0),
        other => panic!("expected [value, null], got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Fixture

struct Fixture {
    server: JobServer<MemoryBackend>,
    clock: MockClock,
}

impl Fixture {
    fn new() -> Fixture {
        let clock = MockClock::new();
        let backend = MemoryBackend::with_seed(Arc::new(clock.clone()), 1);
        Fixture { server: JobServer::new(backend, None), clock }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_secs()
    }

    async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, String> {
        self.server.call(method, params).await.map_err(|e| e.to_string())
    }

    /// Calls `method`, which must not answer an error.
    async fn ok(&self, method: &str, params: Vec<Value>) -> Value {
        match self.call(method, params).await {
            Ok(v) => v,
            Err(e) => panic!("{method} answered an error: {e}"),
        }
    }

    /// Calls `method`, which must answer `[true, null]`.
    async fn yes(&self, method: &str, params: Vec<Value>) {
        let got = self.ok(method, params).await;
        assert_eq!(got, yes(), "{method}");
    }

    async fn set_spec(&self, data: Value) {
        self.yes("set_work_spec", vec![data]).await;
    }

    async fn add_unit(&self, spec: &str, k: impl AsRef<[u8]>, data: Value) {
        self.yes("add_work_units", vec![t(spec), list([tuple(vec![key(k), data])])]).await;
    }

    /// Adds several units in one call, as plain `[key, data]` lists.
    async fn add_units<K: AsRef<[u8]>>(&self, spec: &str, units: &[(K, Value)]) {
        let items = units.iter().map(|(k, d)| list([key(k), d.clone()])).collect();
        self.yes("add_work_units", vec![t(spec), Value::Array(items)]).await;
    }

    async fn prioritize(&self, spec: &str, k: &str, value: i64, adjust: bool) {
        let (priority, adjustment) = if adjust { (Value::Null, int(value)) } else { (int(value), Value::Null) };
        let opts = map([("work_unit_keys", list([t(k)])), ("priority", priority), ("adjustment", adjustment)]);
        self.yes("prioritize_work_units", vec![t(spec), opts]).await;
    }

    /// The unit list `get_work_units` answers (the message must be null).
    async fn work_units(&self, spec: &str, options: Value) -> Value {
        value_of(self.ok("get_work_units", vec![t(spec), options]).await)
    }

    /// The data of one unit, fetched by key.
    async fn one_unit(&self, spec: &str, k: &str) -> Value {
        let units = self.work_units(spec, map([("work_unit_keys", list([t(k)]))])).await;
        match units {
            Value::Array(mut items) if items.len() == 1 => match items.pop() {
                Some(Value::Tag(128, inner)) => match *inner {
                    Value::Array(mut kd) if kd.len() == 2 => {
                        assert_eq!(kd[0], t(k));
                        kd.pop().unwrap()
                    }
                    other => panic!("bad unit tuple {other:?}"),
                },
                other => panic!("bad unit item {other:?}"),
            },
            other => panic!("expected one unit, got {other:?}"),
        }
    }

    async fn update(&self, spec: &str, k: impl AsRef<[u8]>, options: Value) -> Value {
        self.ok("update_work_unit", vec![t(spec), key(k), options]).await
    }

    async fn finish(&self, spec: &str, k: impl AsRef<[u8]>, data: Option<Value>) {
        let mut opts = map([("status", int(FINISHED))]);
        if let Some(d) = data {
            insert(&mut opts, "data", d);
        }
        assert_eq!(self.update(spec, k, opts).await, yes());
    }

    /// The status map of one unit.
    async fn status_map(&self, spec: &str, k: &str) -> Value {
        match value_of(self.ok("get_work_unit_status", vec![t(spec), list([t(k)])]).await) {
            Value::Array(mut items) if items.len() == 1 => items.pop().unwrap(),
            other => panic!("expected one status, got {other:?}"),
        }
    }

    /// The wire status code of one unit.
    async fn status(&self, spec: &str, k: &str) -> i64 {
        let m = self.status_map(spec, k).await;
        let Value::Map(entries) = &m else { panic!("status is not a map: {m:?}") };
        match entries.iter().find(|(ek, _)| ek == &t("status")) {
            Some((_, Value::Integer(i))) => i64::try_from(*i).unwrap(),
            _ => panic!("no status in {m:?}"),
        }
    }

    /// One `get_work` call by worker `test`, as the Python worker makes it:
    /// the (spec, key, data) handed out, or `None` for `(None, None, None)`.
    async fn get_one_work(&self) -> Option<(String, Value, Value)> {
        self.get_work_as("test").await
    }

    async fn get_work_as(&self, worker: &str) -> Option<(String, Value, Value)> {
        let got = value_of(self.ok("get_work", vec![t(worker), map([("available_gb", int(1))])]).await);
        let Value::Tag(128, inner) = got else { panic!("get_work item is not a tuple: {got:?}") };
        match *inner {
            Value::Array(items) => match <[Value; 3]>::try_from(items) {
                Ok([Value::Null, Value::Null, Value::Null]) => None,
                Ok([Value::Text(spec), k @ (Value::Text(_) | Value::Bytes(_)), data @ Value::Map(_)]) => {
                    Some((spec, k, data))
                }
                Ok(other) => panic!("bad get_work item {other:?}"),
                Err(other) => panic!("get_work item is not a triple: {other:?}"),
            },
            other => panic!("bad get_work tuple {other:?}"),
        }
    }

    /// Gets work expecting exactly unit `k` of `spec`, its key in the
    /// string type `key` sends it as; returns its data.
    async fn get_specific_work(&self, spec: &str, k: impl AsRef<[u8]>) -> Value {
        self.get_specific_key(spec, key(k)).await
    }

    /// Gets work expecting exactly the unit of `spec` whose key is answered
    /// as `k`; returns its data.
    async fn get_specific_key(&self, spec: &str, k: Value) -> Value {
        let (got_spec, got_key, data) = self.get_one_work().await.expect("expected work, got none");
        assert_eq!((got_spec.as_str(), &got_key), (spec, &k));
        data
    }

    async fn do_one_work(&self, spec: &str, k: &str) {
        self.get_specific_work(spec, k).await;
        self.finish(spec, k, None).await;
    }

    async fn do_no_work(&self) {
        assert_eq!(self.get_one_work().await, None);
    }

    async fn heartbeat(&self, worker: &str, expire: i64, data: Value, parent: &str) {
        self.yes("worker_heartbeat", vec![t(worker), t("RUN"), int(expire), data, t(parent)]).await;
    }

    /// `get_child_work_units(parent)` with its message checked.
    async fn child_units(&self, parent: &str) -> Value {
        value_of(self.ok("get_child_work_units", vec![t(parent)]).await)
    }
}

/// One `get_child_work_units` entry for a unit of `SPEC`.
fn child_unit(k: &str, data: Value, worker: &str, expires: i64) -> Value {
    map([
        ("work_spec_name", t(SPEC)),
        ("work_unit_key", t(k)),
        ("work_unit_data", data),
        ("worker_id", t(worker)),
        ("expires", int(expires)),
    ])
}

// ---------------------------------------------------------------------------
// python_test.go: from test_job_client.py

/// Go's `DoWork`: creates the reference spec and one unit, runs it and
/// returns the unit's final data.
async fn do_work(f: &Fixture, k: &str, data: Value) -> Value {
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, k, data.clone()).await;

    same(&f.one_unit(SPEC, k).await, &data);
    same(&f.status_map(SPEC, k).await, &map([("status", int(AVAILABLE))]));

    let mut got = f.get_specific_work(SPEC, k).await;
    same(&got, &data);
    let only = map([("work_unit_keys", list([t(k)]))]);
    same(&f.work_units(SPEC, only).await, &unit_list(&[(k, data)]));
    let pending =
        map([("status", int(PENDING)), ("worker_id", t("test")), ("expiration", int(f.now() + GET_WORK_LEASE))]);
    same(&f.status_map(SPEC, k).await, &pending);

    // "Run" the unit.
    insert(&mut got, "output", map([("foo", kv("bar", "baz"))]));
    insert(&mut got, "args", tuple(vec![t("arg")]));
    f.finish(SPEC, k, Some(got)).await;
    same(&f.status_map(SPEC, k).await, &map([("status", int(FINISHED)), ("worker_id", t("test"))]));
    f.one_unit(SPEC, k).await
}

#[tokio::test]
async fn data_updates() {
    let f = Fixture::new();
    let got = do_work(&f, "u", kv("k", "v")).await;
    let expected = map([("k", t("v")), ("output", map([("foo", kv("bar", "baz"))])), ("args", tuple(vec![t("arg")]))]);
    same(&got, &expected);
}

// TestArgs and TestKwargs were skipped by Go too: they test the Python
// worker's run_function call.

#[tokio::test]
async fn pause() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_units(SPEC, &[("u", kv("k", "v"))]).await;
    same(&f.work_units(SPEC, map([])).await, &unit_list(&[("u", kv("k", "v"))]));
    assert_eq!(f.status(SPEC, "u").await, AVAILABLE);

    f.yes("control_work_spec", vec![t(SPEC), map([("status", int(PAUSED))])]).await;
    f.do_no_work().await;

    f.yes("control_work_spec", vec![t(SPEC), map([("status", int(RUNNABLE))])]).await;
    f.get_specific_work(SPEC, "u").await;
}

#[tokio::test]
async fn get_many() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_units(SPEC, &prefixed("u", 100)).await;
    let opts = map([("available_gb", int(1)), ("lease_time", int(300)), ("max_jobs", int(10))]);
    let got = f.ok("get_work", vec![t("test"), opts]).await;
    same(&got, &pair(prefixed_work(SPEC, "u", 10), None));
}

#[tokio::test]
async fn get_many_max_getwork() {
    let f = Fixture::new();
    f.set_spec(spec_data([("max_getwork", int(5))])).await;
    f.add_units(SPEC, &prefixed("u", 100)).await;
    let opts = map([("available_gb", int(1)), ("lease_time", int(300)), ("max_jobs", int(10))]);
    let got = f.ok("get_work", vec![t("test"), opts]).await;
    // 10 requested, but the spec's max_getwork caps it at 5.
    same(&got, &pair(prefixed_work(SPEC, "u", 5), None));
}

#[tokio::test]
async fn get_too_many() {
    let f = Fixture::new();
    f.set_spec(spec_data([("weight", int(1))])).await;
    f.add_units(SPEC, &prefixed("u", 100)).await;
    f.set_spec(map([
        ("name", t("ws2")),
        ("min_gb", Value::Float(0.1)),
        ("module", t("coordinate.tests.test_job_client")),
        ("run_function", t("run_function")),
        ("priority", int(2)),
    ]))
    .await;
    f.add_units("ws2", &prefixed("z", 4)).await;
    let opts = map([("available_gb", int(1)), ("lease_time", int(300)), ("max_jobs", int(10))]);
    let got = f.ok("get_work", vec![t("test"), opts]).await;
    // ws2 has the higher priority but only 4 units; no spill-over.
    same(&got, &pair(prefixed_work("ws2", "z", 4), None));
}

#[tokio::test]
async fn prioritize() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    for k in ["a", "b", "c"] {
        f.add_unit(SPEC, k, kv("k", "v")).await;
    }
    f.do_one_work(SPEC, "a").await; // key order by default
    f.prioritize(SPEC, "c", 1, false).await;
    f.do_one_work(SPEC, "c").await;
    f.do_one_work(SPEC, "b").await;
    f.do_no_work().await;
}

#[tokio::test]
async fn prioritize_adjust() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    for k in ["a", "b", "c"] {
        f.add_unit(SPEC, k, kv("k", "v")).await;
    }
    f.prioritize(SPEC, "a", 10, true).await;
    f.prioritize(SPEC, "b", 20, true).await;
    f.prioritize(SPEC, "c", 30, true).await;
    f.do_one_work(SPEC, "c").await;
    f.do_one_work(SPEC, "b").await;
    f.do_one_work(SPEC, "a").await;
    f.do_no_work().await;
}

#[tokio::test]
async fn reprioritize() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    for k in ["a", "b", "c"] {
        f.add_unit(SPEC, k, kv("k", "v")).await;
    }
    f.prioritize(SPEC, "a", 10, false).await;
    f.prioritize(SPEC, "b", 20, false).await;
    f.prioritize(SPEC, "c", 30, false).await;
    f.do_one_work(SPEC, "c").await;
    f.prioritize(SPEC, "a", 15, true).await; // 10 + 15 = 25 > 20
    f.do_one_work(SPEC, "a").await;
    f.do_one_work(SPEC, "b").await;
    f.do_no_work().await;
}

#[tokio::test]
async fn succeed_fail() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "a", kv("k", "v")).await;
    f.do_one_work(SPEC, "a").await;
    // A late failure from the parent is a no-op.
    assert_eq!(f.update(SPEC, "a", map([("status", int(FAILED))])).await, no());
    assert_eq!(f.status(SPEC, "a").await, FINISHED);
}

#[tokio::test]
async fn fail_succeed() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "a", kv("k", "v")).await;
    f.get_specific_work(SPEC, "a").await;
    assert_eq!(f.update(SPEC, "a", map([("status", int(FAILED))])).await, yes());
    // A late success wins.
    f.finish(SPEC, "a", None).await;
    assert_eq!(f.status(SPEC, "a").await, FINISHED);
}

#[tokio::test]
async fn get_child_units_basic() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "a", kv("k", "v")).await;
    f.heartbeat("parent", 6000, Value::Null, "").await;
    f.heartbeat("child", 6000, Value::Null, "parent").await;
    same(&f.child_units("parent").await, &map([("child", list([]))]));

    let got = f.get_work_as("child").await;
    assert_eq!(got, Some((SPEC.to_string(), t("a"), kv("k", "v"))));
    let expires = f.now() + GET_WORK_LEASE;
    let expected = map([("child", list([child_unit("a", kv("k", "v"), "child", expires)]))]);
    same(&f.child_units("parent").await, &expected);

    f.finish(SPEC, "a", None).await;
    same(&f.child_units("parent").await, &map([("child", list([]))]));
}

#[tokio::test]
async fn get_child_units_multi() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "a", kv("k", "v")).await;
    f.add_unit(SPEC, "b", kv("k", "v")).await;
    f.heartbeat("parent", 6000, Value::Null, "").await;
    f.heartbeat("child", 6000, Value::Null, "parent").await;
    same(&f.child_units("parent").await, &map([("child", list([]))]));

    let opts = map([("available_gb", int(1)), ("max_jobs", int(10))]);
    let got = f.ok("get_work", vec![t("child"), opts]).await;
    let item = |k: &str| tuple(vec![t(SPEC), t(k), kv("k", "v")]);
    same(&got, &pair(list([item("a"), item("b")]), None));

    let expires = f.now() + GET_WORK_LEASE;
    let unit = |k: &str| child_unit(k, kv("k", "v"), "child", expires);
    same(&f.child_units("parent").await, &map([("child", list([unit("a"), unit("b")]))]));
    f.finish(SPEC, "a", None).await;
    same(&f.child_units("parent").await, &map([("child", list([unit("b")]))]));
    f.finish(SPEC, "b", None).await;
    same(&f.child_units("parent").await, &map([("child", list([]))]));
}

// ---------------------------------------------------------------------------
// python_test.go: from test_job_flow.py

/// Sets up specs `first` (then `second`) and `second`, with unit `u` =
/// `{"k": "v"}` in `first`.
async fn flow_specs(f: &Fixture) {
    f.set_spec(map([("name", t("first")), ("then", t("second"))])).await;
    f.set_spec(map([("name", t("second"))])).await;
    f.add_unit("first", "u", kv("k", "v")).await;
}

/// Finishes `first`/`u` with `output`, then runs the chained unit, which
/// must carry `expected` data.
/// Runs "u" through `first` with `output`, then expects unit `second_key`
/// (answered in the type the output gave it) with data `expected`.
async fn run_flow(f: &Fixture, output: Value, second_key: Value, expected: Value) {
    let mut data = f.get_specific_work("first", "u").await;
    same(&data, &kv("k", "v"));
    insert(&mut data, "output", output);
    f.finish("first", "u", Some(data)).await;

    let mut data = f.get_specific_key("second", second_key).await;
    same(&data, &expected);
    insert(&mut data, "output", map([("u", kv("mode", "foo"))]));
    f.finish("second", "u", Some(data)).await;
    f.do_no_work().await;
}

#[tokio::test]
async fn simple_flow() {
    let f = Fixture::new();
    flow_specs(&f).await;
    run_flow(&f, map([("u", kv("x", "y"))]), t("u"), kv("x", "y")).await;
}

#[tokio::test]
async fn simple_output() {
    let f = Fixture::new();
    flow_specs(&f).await;
    run_flow(&f, list([t("u")]), t("u"), map([])).await;
}

#[tokio::test]
async fn simple_output_bytes() {
    let f = Fixture::new();
    flow_specs(&f).await;
    run_flow(&f, list([b("u")]), b("u"), map([])).await;
}

// ---------------------------------------------------------------------------
// python_test.go: from test_task_master.py

/// The reference spec as `get_work_spec`/`list_work_specs` return it: as
/// it was sent. Go: `module` and `run_function` as bytes.
fn spec_out() -> Value {
    map([
        ("name", t(SPEC)),
        ("min_gb", int(1)),
        ("module", t("coordinate.tests.test_job_client")),
        ("run_function", t("run_function")),
    ])
}

#[tokio::test]
async fn list_work_specs() {
    let f = Fixture::new();
    same(&f.ok("list_work_specs", vec![map([])]).await, &list([list([]), Value::Null]));
    f.set_spec(spec_data([])).await;
    same(&f.ok("list_work_specs", vec![map([])]).await, &list([list([spec_out()]), Value::Null]));
}

#[tokio::test]
async fn clear() {
    let f = Fixture::new();
    same(&f.ok("list_work_specs", vec![map([])]).await, &list([list([]), Value::Null]));
    f.set_spec(spec_data([])).await;
    same(&f.ok("list_work_specs", vec![map([])]).await, &list([list([spec_out()]), Value::Null]));
    assert_eq!(f.ok("clear", vec![]).await, int(1));
    same(&f.ok("list_work_specs", vec![map([])]).await, &list([list([]), Value::Null]));
}

fn everything() -> Value {
    map([])
}

/// The client's default `list_work_units` filter: available and pending.
fn available_or_pending() -> Value {
    map([("state", list([int(AVAILABLE), int(PENDING)]))])
}

fn finished_only() -> Value {
    map([("state", int(FINISHED))])
}

fn no_units() -> Value {
    list([])
}

#[tokio::test]
async fn list_work_units() {
    let f = Fixture::new();
    let units = [("foo", map([("length", int(3))])), ("foobar", map([("length", int(6))]))];
    f.set_spec(spec_data([])).await;
    f.add_units(SPEC, &units).await;

    same(&f.work_units(SPEC, everything()).await, &unit_list(&units));
    same(&f.work_units(SPEC, available_or_pending()).await, &unit_list(&units));
    // Go: null for no matches.
    same(&f.work_units(SPEC, finished_only()).await, &no_units());

    // Units go out in key order: "foo" first.
    let (spec, k, data) = f.get_one_work().await.expect("no work");
    assert_eq!((spec.as_str(), k), (SPEC, t("foo")));
    same(&data, &units[0].1);
    same(&f.work_units(SPEC, everything()).await, &unit_list(&units));
    same(&f.work_units(SPEC, available_or_pending()).await, &unit_list(&units));
    same(&f.work_units(SPEC, finished_only()).await, &no_units());

    f.finish(SPEC, "foo", None).await;
    same(&f.work_units(SPEC, everything()).await, &unit_list(&units));
    same(&f.work_units(SPEC, available_or_pending()).await, &unit_list(&units[1..]));
    same(&f.work_units(SPEC, finished_only()).await, &unit_list(&units[..1]));
}

#[tokio::test]
async fn list_work_units_start_limit() {
    let f = Fixture::new();
    let foo = map([("length", int(3))]);
    let bar = map([("length", int(6))]);
    f.set_spec(spec_data([])).await;
    f.add_units(SPEC, &[("foo", foo.clone()), ("bar", bar.clone())]).await;

    let got = f.work_units(SPEC, map([("limit", int(1))])).await;
    same(&got, &unit_list(&[("bar", bar)]));
    // `start` is exclusive.
    let got = f.work_units(SPEC, map([("start", t("bar")), ("limit", int(1))])).await;
    same(&got, &unit_list(&[("foo", foo)]));
    // Go: null for no matches.
    let got = f.work_units(SPEC, map([("start", t("foo")), ("limit", int(1))])).await;
    same(&got, &no_units());
}

#[tokio::test]
async fn del_work_units_simple() {
    let f = Fixture::new();
    let foo = map([("length", int(3))]);
    let bar = map([("length", int(6))]);
    f.set_spec(spec_data([])).await;
    f.add_units(SPEC, &[("foo", foo), ("bar", bar.clone())]).await;

    let got = f.ok("del_work_units", vec![t(SPEC), map([("work_unit_keys", list([t("foo")]))])]).await;
    assert_eq!(got, pair(int(1), None));
    same(&f.work_units(SPEC, everything()).await, &unit_list(&[("bar", bar)]));
}

/// Unit names per state, as in Go's `stateShortName` and `stateShortName2`.
const STATE_NAMES: [(i64, [&str; 2]); 4] =
    [(AVAILABLE, ["AV", "AI"]), (PENDING, ["PE", "ND"]), (FINISHED, ["FI", "NI"]), (FAILED, ["FA", "IL"])];

fn names_of(state: i64) -> [&'static str; 2] {
    STATE_NAMES.iter().find(|(s, _)| *s == state).map(|(_, n)| *n).unwrap()
}

/// Go's `prepareSomeOfEach`: `n` (1 or 2) units in each state, all with
/// data `{"x": 1}`; returns their names.
async fn prepare_some_of_each(f: &Fixture, n: usize) -> Vec<&'static str> {
    f.set_spec(spec_data([])).await;
    let data = map([("x", int(1))]);
    let mut all = Vec::new();
    for state in [FAILED, FINISHED, PENDING, AVAILABLE] {
        for &name in &names_of(state)[..n] {
            f.add_unit(SPEC, name, data.clone()).await;
            if state != AVAILABLE {
                f.get_specific_work(SPEC, name).await;
            }
            if state == FAILED || state == FINISHED {
                assert_eq!(f.update(SPEC, name, map([("status", int(state))])).await, yes());
            }
            all.push(name);
        }
    }
    all
}

/// Go's `delWorkUnitsBy` for every state: with `n` units per state,
/// `options(state)` must delete exactly the first unit of that state.
async fn del_work_units_by(n: usize, options: impl Fn(i64) -> Value) {
    let f = Fixture::new();
    for (state, names) in STATE_NAMES {
        let all = prepare_some_of_each(&f, n).await;
        let got = f.ok("del_work_units", vec![t(SPEC), options(state)]).await;
        assert_eq!(got, pair(int(1), None), "state {state}");
        let left: Vec<_> = all.into_iter().filter(|&k| k != names[0]).map(|k| (k, map([("x", int(1))]))).collect();
        same(&f.work_units(SPEC, everything()).await, &unit_list(&left));
        assert_eq!(f.ok("clear", vec![]).await, int(1));
    }
}

fn by_name(state: i64) -> Value {
    map([("work_unit_keys", list([t(names_of(state)[0])]))])
}

fn by_name_and_state(state: i64) -> Value {
    map([("work_unit_keys", list([t(names_of(state)[0])])), ("state", int(state))])
}

#[tokio::test]
async fn del_work_units_by_name() {
    del_work_units_by(1, by_name).await;
}

#[tokio::test]
async fn del_work_units_by_name2() {
    del_work_units_by(2, by_name).await;
}

#[tokio::test]
async fn del_work_units_by_state() {
    del_work_units_by(1, |state| map([("state", int(state))])).await;
}

#[tokio::test]
async fn del_work_units_by_state2() {
    let f = Fixture::new();
    for (state, names) in STATE_NAMES {
        let all = prepare_some_of_each(&f, 2).await;
        let got = f.ok("del_work_units", vec![t(SPEC), map([("state", int(state))])]).await;
        assert_eq!(got, pair(int(2), None), "state {state}");
        let left: Vec<_> = all.into_iter().filter(|k| !names.contains(k)).map(|k| (k, map([("x", int(1))]))).collect();
        same(&f.work_units(SPEC, everything()).await, &unit_list(&left));
        assert_eq!(f.ok("clear", vec![]).await, int(1));
    }
}

#[tokio::test]
async fn del_work_units_by_name_and_state() {
    del_work_units_by(1, by_name_and_state).await;
}

#[tokio::test]
async fn del_work_units_by_name_and_state2() {
    del_work_units_by(2, by_name_and_state).await;
}

#[tokio::test]
async fn regenerate() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "one", map([("number", int(1))])).await;
    f.get_specific_work(SPEC, "one").await;
    // Setting the spec again while a unit is pending is fine.
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "two", map([("number", int(2))])).await;
    f.finish(SPEC, "one", None).await;
    f.do_one_work(SPEC, "two").await;
    f.do_no_work().await;
}

#[tokio::test]
async fn binary_work_unit() {
    let f = Fixture::new();
    let cases: [(&[u8], &str); 9] = [
        (b"\x00", "single null"),
        (b"\x00\x01\x02\x03", "control chars"),
        (b"\x00a\x00b", "UTF-16BE"),
        (b"a\x00b\x00", "UTF-16LE"),
        (b"f\xc3\xbc", "UTF-8"),
        (b"f\xfc", "ISO-8859-1"),
        (b"\xf0\x0f", "F00F"),
        (b"\xff", "FF"),
        (b"\xff\x80", "FF80"),
    ];
    // Go stored the key in "k" as a Go string; bytes are the Rust equivalent.
    let units: Vec<(&[u8], Value)> = cases.iter().map(|&(k, what)| (k, map([("k", b(k)), ("t", t(what))]))).collect();
    f.set_spec(spec_data([])).await;
    f.add_units(SPEC, &units).await;
    same(&f.work_units(SPEC, everything()).await, &unit_list(&units));

    // Every unit comes out exactly once, in byte order of its key.
    let mut sorted = units.clone();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (k, data) in &sorted {
        let got = f.get_specific_work(SPEC, k).await;
        same(&got, data);
        f.finish(SPEC, k, None).await;
    }
    f.do_no_work().await;
    // Go: null for no matches.
    same(&f.work_units(SPEC, available_or_pending()).await, &no_units());
    same(&f.work_units(SPEC, finished_only()).await, &unit_list(&units));
}

#[tokio::test]
async fn work_unit_value() {
    let f = Fixture::new();
    let uuid = Value::Tag(
        37,
        Box::new(b([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef])),
    );
    let data = map([
        ("list", list([int(1), int(2), int(3)])),
        ("tuple", tuple(vec![int(4), int(5), int(6)])),
        ("mixed", list([int(1), tuple(vec![int(2), list([int(3), int(4)])])])),
        ("uuid", uuid),
        ("str", b("foo")),
        ("unicode", t("foo")),
        ("unicode2", t("fü")),
    ]);
    f.set_spec(spec_data([])).await;
    f.add_units(SPEC, &[("k", data.clone())]).await;
    same(&f.work_units(SPEC, everything()).await, &unit_list(&[("k", data)]));
}

// ---------------------------------------------------------------------------
// work_test.go

#[tokio::test]
async fn update_available() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "unit", map([])).await;
    let got = f.update(SPEC, "unit", map([("status", int(FAILED)), ("worker_id", t("child"))])).await;
    assert_eq!(got, yes());
    same(&f.status_map(SPEC, "unit").await, &map([("status", int(FAILED)), ("worker_id", t("child"))]));
}

/// A parent kills a child's unit that already expired back to available.
#[tokio::test]
async fn update_available_full() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "unit", map([])).await;
    f.heartbeat("parent", 900, map([]), "").await;
    f.heartbeat("child", 900, map([]), "parent").await;

    let got = f.get_work_as("child").await;
    assert_eq!(got, Some((SPEC.to_string(), t("unit"), map([]))));
    assert_eq!(f.status(SPEC, "unit").await, PENDING);

    // Simulate expiry by forcing the unit back to available.
    let got = f.update(SPEC, "unit", map([("status", int(AVAILABLE)), ("worker_id", t("child"))])).await;
    assert_eq!(got, yes());
    assert_eq!(f.status(SPEC, "unit").await, AVAILABLE);

    let got = f.update(SPEC, "unit", map([("status", int(FAILED)), ("worker_id", t("parent"))])).await;
    assert_eq!(got, yes());
    same(&f.status_map(SPEC, "unit").await, &map([("status", int(FAILED)), ("worker_id", t("parent"))]));
}

#[tokio::test]
async fn delayed_unit() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    let item = tuple(vec![t("unit"), map([]), map([("delay", int(90))])]);
    f.yes("add_work_units", vec![t(SPEC), list([item])]).await;

    // Delayed units report as available, but are not handed out.
    assert_eq!(f.status(SPEC, "unit").await, AVAILABLE);
    f.do_no_work().await;

    f.clock.advance(60.0);
    assert_eq!(f.status(SPEC, "unit").await, AVAILABLE);
    f.do_no_work().await;

    f.clock.advance(60.0);
    assert_eq!(f.status(SPEC, "unit").await, AVAILABLE);
    f.do_one_work(SPEC, "unit").await;
}

// ---------------------------------------------------------------------------
// specs_test.go

/// Go's `TestSpecByteification` turned `module` into bytes; we answer every
/// value in the type it was sent as (a Python 3 worker imports by text).
#[tokio::test]
async fn spec_values_come_back_as_sent() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    same(&f.ok("get_work_spec", vec![t(SPEC)]).await, &spec_out());
    f.set_spec(spec_data([("module", b("m")), ("run_function", b("f"))])).await;
    let want = spec_data([("module", b("m")), ("run_function", b("f"))]);
    same(&f.ok("get_work_spec", vec![t(SPEC)]).await, &want);
}

// ---------------------------------------------------------------------------
// locks_test.go

/// A key path of text labels, as a list.
fn path<const N: usize>(labels: [&str; N]) -> Value {
    Value::Array(labels.iter().map(|l| t(l)).collect())
}

/// A key path of text labels, as a tuple.
fn tpath<const N: usize>(labels: [&str; N]) -> Value {
    tuple(labels.iter().map(|l| t(l)).collect())
}

#[tokio::test]
async fn lock_basic() {
    let f = Fixture::new();
    let (foo, barbaz, bar) = (tpath(["foo"]), tpath(["bar", "baz"]), tpath(["bar"]));
    let id = || t("id");

    f.yes("lock", vec![id(), int(0), list([foo.clone(), barbaz.clone()])]).await;
    assert_eq!(f.ok("readlock", vec![list([foo.clone()])]).await, list([id()]));
    assert_eq!(f.ok("readlock", vec![list([bar.clone()])]).await, list([Value::Null]));
    assert_eq!(f.ok("readlock", vec![list([barbaz.clone(), foo.clone()])]).await, list([id(), id()]));

    f.yes("unlock", vec![id(), list([foo.clone(), barbaz.clone()])]).await;
    let got = f.ok("readlock", vec![list([foo, bar, barbaz])]).await;
    assert_eq!(got, list([Value::Null, Value::Null, Value::Null]));
}

#[tokio::test]
async fn lock_conflict() {
    let f = Fixture::new();
    f.yes("lock", vec![t("id"), int(0), list([path(["foo"])])]).await;
    // foo.bar cannot be locked while foo is held, even by the same owner.
    refused(&f.ok("lock", vec![t("id"), int(0), list([path(["foo", "bar"])])]).await);
}

#[tokio::test]
async fn lock_conflict2() {
    let f = Fixture::new();
    f.yes("lock", vec![t("id"), int(0), list([path(["foo", "bar"])])]).await;
    // foo cannot be locked while foo.bar is held.
    refused(&f.ok("lock", vec![t("id"), int(0), list([path(["foo"])])]).await);
}

#[tokio::test]
async fn locksome() {
    let f = Fixture::new();
    f.yes("lock", vec![t("id"), int(0), list([path(["foo"])])]).await;
    let got = f.ok("locksome", vec![t("id"), int(0), list([path(["foo"]), path(["bar"]), path(["baz"])])]).await;
    assert_eq!(got, pair(list([Value::Null, path(["bar"]), path(["baz"])]), None));
}

#[tokio::test]
async fn unlock_sanity() {
    let f = Fixture::new();
    let keys = || list([path(["foo"]), path(["bar"])]);
    f.yes("lock", vec![t("id"), int(0), keys()]).await;
    // Another locker cannot unlock them...
    refused(&f.ok("unlock", vec![t("id2"), keys()]).await);
    // ...and they are still held.
    assert_eq!(f.ok("readlock", vec![keys()]).await, list([t("id"), t("id")]));
    f.yes("unlock", vec![t("id"), keys()]).await;
}

#[tokio::test]
async fn readlock_not_nil() {
    let f = Fixture::new();
    assert_eq!(f.ok("readlock", vec![list([])]).await, list([]));
}

#[tokio::test]
async fn unlock_not_locked() {
    let f = Fixture::new();
    refused(&f.ok("unlock", vec![t("id"), list([path(["foo"]), path(["bar"])])]).await);
}

// ---------------------------------------------------------------------------
// Our documented decisions (lib.rs, docs/protocol.md §7.1) where Go differs

#[tokio::test]
async fn missing_work_spec() {
    let f = Fixture::new();
    // Go: error response "No such work spec nope".
    assert_eq!(f.ok("get_work_spec", vec![t("nope")]).await, Value::Null);
    let nsws = |zero: Value| pair(zero, Some("No such work spec nope".into()));
    assert_eq!(f.ok("del_work_spec", vec![t("nope")]).await, nsws(Value::Bool(false)));
    assert_eq!(f.ok("get_work_units", vec![t("nope"), map([])]).await, nsws(Value::Null));
    assert_eq!(f.ok("del_work_units", vec![t("nope"), map([("all", Value::Bool(true))])]).await, nsws(int(0)));
}

#[tokio::test]
async fn status_of_unknown_key_is_null() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "a", map([])).await;
    // Go: error response `No such work unit "b"`.
    let got = f.ok("get_work_unit_status", vec![t(SPEC), list([t("a"), t("b")])]).await;
    same(&got, &pair(list([map([("status", int(AVAILABLE))]), Value::Null]), None));
}

#[tokio::test]
async fn del_work_units_needs_options() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_units(SPEC, &[("a", map([])), ("b", map([]))]).await;
    // Go: deleted every unit.
    let got = f.ok("del_work_units", vec![t(SPEC), map([])]).await;
    assert_eq!(got, pair(int(0), Some("no usable options to del_work_units".into())));
    same(&f.work_units(SPEC, everything()).await, &unit_list(&[("a", map([])), ("b", map([]))]));
    // Go: ignored the state and deleted "a".
    let opts = map([("work_unit_keys", list([t("a")])), ("state", int(FINISHED))]);
    assert_eq!(f.ok("del_work_units", vec![t(SPEC), opts]).await, pair(int(0), None));
    let got = f.ok("del_work_units", vec![t(SPEC), map([("all", Value::Bool(true))])]).await;
    assert_eq!(got, pair(int(2), None));
}

#[tokio::test]
async fn archive_answers_null() {
    let f = Fixture::new();
    // Go: a response with no `result` at all.
    assert_eq!(f.ok("archive", vec![map([])]).await, Value::Null);
    assert_eq!(f.ok("archive", vec![]).await, Value::Null);
}

#[tokio::test]
async fn empty_results_are_lists() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    // Go: null for each of these.
    same(&f.ok("get_work_units", vec![t(SPEC), map([])]).await, &pair(list([]), None));
    same(&f.ok("get_work", vec![t("w"), map([("max_jobs", int(5))])]).await, &pair(list([]), None));
    same(&f.ok("locksome", vec![t("id"), int(0), list([])]).await, &pair(list([]), None));
}

#[tokio::test]
async fn worker_modes_are_pairs_of_live_workers() {
    let f = Fixture::new();
    f.heartbeat("a", 10, map([]), "").await;
    f.heartbeat("b", 100, map([]), "").await;
    // Go: bare maps, listing every worker ever seen (and a phantom "").
    same(&f.ok("list_worker_modes", vec![]).await, &pair(map([("a", t("RUN")), ("b", t("RUN"))]), None));
    same(&f.ok("mode_counts", vec![]).await, &pair(map([("RUN", int(2))]), None));
    f.clock.advance(50.0);
    same(&f.ok("list_worker_modes", vec![]).await, &pair(map([("b", t("RUN"))]), None));
    same(&f.ok("mode_counts", vec![]).await, &pair(map([("RUN", int(1))]), None));
    f.yes("worker_unregister", vec![t("b")]).await;
    same(&f.ok("list_worker_modes", vec![]).await, &pair(map([]), None));
    same(&f.ok("mode_counts", vec![]).await, &pair(map([]), None));
}

#[tokio::test]
async fn leases() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    f.add_unit(SPEC, "a", map([])).await;
    let pending = |worker: &str, expires: i64| {
        map([("status", int(PENDING)), ("worker_id", t(worker)), ("expiration", int(expires))])
    };

    // Go: get_work ignored lease_time and always leased for 15 minutes.
    let opts = map([("lease_time", int(60))]);
    f.ok("get_work", vec![t("w1"), opts]).await;
    same(&f.status_map(SPEC, "a").await, &pending("w1", f.now() + 60));

    // Renewal extends the lease to now + lease_time; absent means 300 s.
    assert_eq!(f.update(SPEC, "a", map([("lease_time", int(120))])).await, yes());
    same(&f.status_map(SPEC, "a").await, &pending("w1", f.now() + 120));
    assert_eq!(f.update(SPEC, "a", map([])).await, yes());
    same(&f.status_map(SPEC, "a").await, &pending("w1", f.now() + 300));

    // Go: a lease_time of -1 renewed for 300 s; we let the lease lapse.
    assert_eq!(f.update(SPEC, "a", map([("lease_time", int(-1))])).await, yes());
    assert_eq!(f.get_work_as("w2").await, Some((SPEC.to_string(), t("a"), map([]))));
    same(&f.status_map(SPEC, "a").await, &pending("w2", f.now() + GET_WORK_LEASE));
}

// ---------------------------------------------------------------------------
// Data checked at the door (issue: unit data no client can read back)

/// Unknown tags, and known tags around the wrong kind of value, are refused
/// with the place in the request named; nothing is stored.
#[tokio::test]
async fn unreadable_cbor_is_refused_where_it_is() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    let bad = map([("k", list([int(1), Value::Tag(99, Box::new(int(1)))]))]);
    let err = f.call("add_work_units", vec![t(SPEC), list([list([t("u"), bad])])]).await.unwrap_err();
    assert!(err.starts_with(r#"params[1][0][1]["k"][1]: CBOR tag 99 around integer is not accepted"#), "{err}");
    let bignum_of_text = map([("k", Value::Tag(2, Box::new(t("12"))))]);
    let err = f.call("add_work_units", vec![t(SPEC), list([list([t("u"), bignum_of_text])])]).await.unwrap_err();
    assert!(err.contains("CBOR tag 2 around text"), "{err}");
    let short_uuid = map([("data", map([("id", Value::Tag(37, Box::new(b([1, 2]))))]))]);
    let err = f.call("update_work_unit", vec![t(SPEC), t("u"), short_uuid]).await.unwrap_err();
    assert!(err.contains("CBOR tag 37 around byte string"), "{err}");
    assert_eq!(f.work_units(SPEC, map([])).await, list([]));
}

/// What the Python client reads back is stored and answered unchanged: a
/// bignum beyond 64 bits (tag 3, −2^128), a UUID, a tuple.
#[tokio::test]
async fn readable_tags_round_trip() {
    let f = Fixture::new();
    f.set_spec(spec_data([])).await;
    let data = map([
        ("big", Value::Tag(3, Box::new(b([0xff; 16])))),
        ("id", Value::Tag(37, Box::new(b([7; 16])))),
        ("pair", tuple(vec![int(1), t("x")])),
    ]);
    f.add_unit(SPEC, "u", data.clone()).await;
    same(&f.one_unit(SPEC, "u").await, &data);
}
