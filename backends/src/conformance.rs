//! The behaviour every backend must show, written once.
//!
//! Each rule is an `async fn` taking the backend under test and the
//! [`MockClock`] it was built on. [`conformance_tests!`](crate::conformance_tests)
//! expands to one `#[tokio::test]` per rule for a backend factory, so a
//! backend's test file is one line:
//!
//! ```text
//! backends::conformance_tests!(|clock| async move { MemoryBackend::with_seed(Arc::new(clock), 1) });
//! ```
//!
//! The factory gets a fresh [`MockClock`] and must return a fresh, empty
//! backend on that clock. Rules move the clock by hand; none sleeps.

use std::collections::BTreeMap;

use cborrpc::value::{bytes, int, text, tuple};
use cborrpc::Value;

use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// Spec data with a name and extra entries.
pub fn spec(name: &str, extra: &[(&str, Value)]) -> SpecData {
    let mut d = vec![(text("name"), text(name))];
    d.extend(extra.iter().map(|(k, v)| (text(*k), v.clone())));
    d
}

/// The fixture's `get_work` options: one unit, a 900 s lease.
pub fn gw() -> GetWork {
    GetWork::new(1, 900.0)
}

/// The fixture's update: no status change, a 300 s lease.
pub fn upd() -> UnitUpdate {
    UnitUpdate::new(None, 300.0)
}

/// Unit data `{"n": n}`.
pub fn data(n: i64) -> Value {
    Value::Map(vec![(text("n"), int(n))])
}

/// Counts as a plain map of status → count.
pub async fn counts<C: Coordinate>(c: &C, name: &str) -> BTreeMap<UnitStatus, u64> {
    c.count_work_units(name).await.unwrap()
}

/// Adds units `keys` with data `{"n": i}` to a spec.
pub async fn add_keys<C: Coordinate>(c: &C, name: &str, keys: &[&str]) {
    let units = keys.iter().enumerate().map(|(i, k)| NewUnit::new(k.as_bytes().to_vec(), data(i as i64))).collect();
    c.add_work_units(name, units).await.unwrap();
}

/// One `get_work` of `n` units from any spec.
pub async fn work<C: Coordinate>(c: &C, worker: &str, n: usize) -> Vec<WorkGrant> {
    c.get_work(worker, GetWork { max_jobs: n, ..gw() }).await.unwrap()
}

/// Keys of grants, as strings.
pub fn keys_of(grants: &[WorkGrant]) -> Vec<String> {
    grants.iter().map(|g| String::from_utf8_lossy(&g.key.bytes).into_owned()).collect()
}

/// A map value with text keys.
pub fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (text(*k), v.clone())).collect())
}

/// A list value.
pub fn list(items: Vec<Value>) -> Value {
    Value::Array(items)
}

/// A count map from (status, count) pairs.
pub fn count_map(pairs: &[(UnitStatus, u64)]) -> BTreeMap<UnitStatus, u64> {
    pairs.iter().copied().collect()
}

/// A spec's metadata.
pub async fn meta<C: Coordinate>(c: &C, name: &str) -> SpecMeta {
    c.get_work_spec_meta(name).await.unwrap()
}

/// One `get_work` of up to `n` units from one spec only.
pub async fn work_from<C: Coordinate>(c: &C, worker: &str, name: &str, n: usize) -> Vec<WorkGrant> {
    let opts = GetWork { max_jobs: n, work_spec_names: vec![name.into()], ..gw() };
    c.get_work(worker, opts).await.unwrap()
}

/// One `get_work` of one unit with a lease of `lease_secs`.
pub async fn work_leased<C: Coordinate>(c: &C, worker: &str, lease_secs: f64) -> Vec<WorkGrant> {
    c.get_work(worker, GetWork { lease_secs, ..gw() }).await.unwrap()
}

/// The status info of one existing unit.
pub async fn info<C: Coordinate>(c: &C, name: &str, key: &str) -> UnitStatusInfo {
    let mut v = c.get_work_unit_status(name, vec![key.as_bytes().to_vec()]).await.unwrap();
    assert_eq!(v.len(), 1);
    v.pop().unwrap().unwrap_or_else(|| panic!("no unit {key:?} in {name}"))
}

/// The status of one existing unit.
pub async fn status<C: Coordinate>(c: &C, name: &str, key: &str) -> UnitStatus {
    info(c, name, key).await.status
}

/// Updates a unit's status, with optional data.
pub async fn set_status<C: Coordinate>(c: &C, name: &str, key: &str, status: UnitStatus, data: Option<Value>) -> bool {
    let update = UnitUpdate { status: Some(status), data, ..upd() };
    c.update_work_unit(name, key.as_bytes(), update).await.unwrap()
}

/// Renews a unit's lease (no status), with optional data.
pub async fn renew<C: Coordinate>(c: &C, name: &str, key: &str, lease_secs: f64, data: Option<Value>) -> bool {
    let update = UnitUpdate { lease_secs: lease_secs, data, ..upd() };
    c.update_work_unit(name, key.as_bytes(), update).await.unwrap()
}

/// Keys of the units matching a query, as strings.
pub async fn unit_keys<C: Coordinate>(c: &C, name: &str, query: UnitQuery) -> Vec<String> {
    let units = c.get_work_units(name, query).await.unwrap();
    units.iter().map(|(k, _)| String::from_utf8_lossy(&k.bytes).into_owned()).collect()
}

/// The effective data of one existing unit.
pub async fn unit_data<C: Coordinate>(c: &C, name: &str, key: &str) -> Value {
    let query = UnitQuery { keys: Some(vec![key.as_bytes().to_vec()]), ..UnitQuery::default() };
    let mut units = c.get_work_units(name, query).await.unwrap();
    assert_eq!(units.len(), 1, "no unit {key:?} in {name}");
    units.pop().unwrap().1
}

/// The order a spec hands its available units out in: takes them all,
/// then makes them available again.
pub async fn hand_out_order<C: Coordinate>(c: &C, name: &str) -> Vec<String> {
    let keys = keys_of(&work_from(c, "peek", name, 1000).await);
    for k in &keys {
        assert!(set_status(c, name, k, UnitStatus::Available, None).await);
    }
    keys
}

/// A query for units in the given states.
pub fn in_states(states: &[UnitStatus]) -> UnitQuery {
    UnitQuery { states: Some(states.to_vec()), ..UnitQuery::default() }
}

/// A heartbeat of `worker` in `mode`, expiring after `expire_secs`.
pub fn heartbeat(worker: &str, mode: &str, expire_secs: f64, parent: Option<&str>) -> Heartbeat {
    Heartbeat {
        worker: worker.into(),
        mode: mode.into(),
        expire_secs,
        data: map(&[("worker_id", text(worker))]),
        parent: parent.map(Into::into),
    }
}

/// Sets up spec "a" (`then: then_spec`) and an empty spec "b", takes the
/// unit "u" of "a" and finishes it with data `{"output": output}`.
pub async fn finish_with_output<C: Coordinate>(c: &C, then_spec: &str, output: Value) {
    c.set_work_spec(spec("a", &[("then", text(then_spec))])).await.unwrap();
    c.set_work_spec(spec("b", &[])).await.unwrap();
    add_keys(c, "a", &["u"]).await;
    assert_eq!(keys_of(&work_from(c, "w", "a", 1).await), ["u"]);
    let done = map(&[("output", output)]);
    assert!(set_status(c, "a", "u", UnitStatus::Finished, Some(done)).await);
    assert_eq!(status(c, "a", "u").await, UnitStatus::Finished);
}

// ---------------------------------------------------------------- rules --

// ------------------------------------------------------------ 1. specs --

/// A spec reads back as it was set; list is sorted and paged.
pub async fn spec_round_trip_and_listing<C: Coordinate>(c: &C, _clock: &MockClock) {
    for name in ["b", "a", "c"] {
        c.set_work_spec(spec(name, &[("module", text("m"))])).await.unwrap();
    }
    assert_eq!(c.get_work_spec("a").await.unwrap(), spec("a", &[("module", text("m"))]));
    let (page, next) = c.list_work_specs("", 2).await.unwrap();
    assert_eq!(page, vec![spec("a", &[("module", text("m"))]), spec("b", &[("module", text("m"))])]);
    assert_eq!(next.as_deref(), Some("c"));
    let (page, next) = c.list_work_specs("c", 2).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(next, None);
    assert_eq!(c.get_work_spec("zz").await, Err(Error::NoSuchWorkSpec("zz".into())));
}

/// list_work_specs starts at `start` inclusive, honours `limit` and names the next spec.
pub async fn spec_listing_start_is_inclusive<C: Coordinate>(c: &C, _clock: &MockClock) {
    for name in ["d", "b", "a", "c"] {
        c.set_work_spec(spec(name, &[])).await.unwrap();
    }
    let names =
        |page: Vec<SpecData>| -> Vec<Value> { page.iter().map(|d| spec_get(d, "name").cloned().unwrap()).collect() };
    let (page, next) = c.list_work_specs("b", 2).await.unwrap();
    assert_eq!(names(page), [text("b"), text("c")]);
    assert_eq!(next.as_deref(), Some("d"));
    let (page, next) = c.list_work_specs("d", 2).await.unwrap();
    assert_eq!(names(page), [text("d")]);
    assert_eq!(next, None);
    let (page, next) = c.list_work_specs("bb", 10).await.unwrap();
    assert_eq!(names(page), [text("c"), text("d")]);
    assert_eq!(next, None);
    let (page, next) = c.list_work_specs("e", 10).await.unwrap();
    assert!(page.is_empty());
    assert_eq!(next, None);
    let (page, next) = c.list_work_specs("", 4).await.unwrap();
    assert_eq!(page.len(), 4);
    assert_eq!(next, None);
}

/// Re-setting a spec replaces its data and resets its metadata but keeps its units.
pub async fn spec_reset_replaces_data_and_metadata<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[("module", text("old"))])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    let control = SpecControl {
        paused: Some(true),
        weight: Some(5),
        interval: Some(9.0),
        max_running: Some(3),
        ..SpecControl::default()
    };
    c.control_work_spec("s", control).await.unwrap();
    let new = spec("s", &[("module", text("new")), ("nice", int(4))]);
    c.set_work_spec(new.clone()).await.unwrap();
    assert_eq!(c.get_work_spec("s").await.unwrap(), new);
    let m = meta(c, "s").await;
    assert!(!m.paused);
    assert_eq!((m.weight, m.interval, m.max_running), (16, 0.0, 0));
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Available, 2)]));
    assert_eq!(keys_of(&work(c, "w", 1).await), ["a"]);
}

/// del_work_spec removes the spec and its units.
pub async fn spec_delete_removes_spec_and_units<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    c.set_work_spec(spec("t", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    c.del_work_spec("s").await.unwrap();
    let gone = Error::NoSuchWorkSpec("s".into());
    assert_eq!(c.get_work_spec("s").await.unwrap_err(), gone);
    assert_eq!(c.get_work_spec_meta("s").await.unwrap_err(), gone);
    assert_eq!(c.count_work_units("s").await.unwrap_err(), gone);
    assert_eq!(c.del_work_spec("s").await, Err(Error::NoSuchWorkSpec("s".into())));
    assert!(work(c, "w", 10).await.is_empty());
    assert_eq!(c.list_work_specs("", 10).await.unwrap().0, vec![spec("t", &[])]);
    c.set_work_spec(spec("s", &[])).await.unwrap();
    assert_eq!(counts(c, "s").await, count_map(&[]));
}

/// clear deletes every spec and returns how many there were.
pub async fn spec_clear_returns_the_count<C: Coordinate>(c: &C, _clock: &MockClock) {
    for name in ["a", "b", "c"] {
        c.set_work_spec(spec(name, &[])).await.unwrap();
        add_keys(c, name, &["k"]).await;
    }
    assert_eq!(c.clear().await.unwrap(), 3);
    assert_eq!(c.list_work_specs("", 10).await.unwrap(), (vec![], None));
    assert_eq!(c.get_work_spec("a").await, Err(Error::NoSuchWorkSpec("a".into())));
    assert!(work(c, "w", 10).await.is_empty());
    assert_eq!(c.clear().await.unwrap(), 0);
}

/// A spec with a missing, empty or non-string name is refused and nothing is registered.
pub async fn spec_without_valid_name_is_refused<C: Coordinate>(c: &C, _clock: &MockClock) {
    let bad: Vec<SpecData> = vec![
        vec![(text("module"), text("m"))],
        spec("", &[]),
        vec![(text("name"), int(3))],
        vec![(text("name"), Value::Null)],
    ];
    for data in bad {
        let r = c.set_work_spec(data.clone()).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{data:?} gave {r:?}");
    }
    assert_eq!(c.list_work_specs("", 10).await.unwrap(), (vec![], None));
}

/// Wrongly typed special keys are refused and leave nothing registered or changed.
pub async fn spec_with_mistyped_special_keys_is_refused<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("t", &[("module", text("m"))])).await.unwrap();
    let bad = [("weight", text("x")), ("disabled", int(1)), ("continuous", text("true"))];
    for (key, value) in bad {
        let r = c.set_work_spec(spec("s", &[(key, value.clone())])).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{key}: {value:?} gave {r:?}");
        assert_eq!(c.get_work_spec("s").await, Err(Error::NoSuchWorkSpec("s".into())));
        let r = c.set_work_spec(spec("t", &[(key, value)])).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{key} on re-set gave {r:?}");
    }
    assert_eq!(c.list_work_specs("", 10).await.unwrap(), (vec![spec("t", &[("module", text("m"))])], None));
}

/// The weight is `weight`, else 20 − nice, and never below 1.
pub async fn spec_weight_derivation<C: Coordinate>(c: &C, _clock: &MockClock) {
    let cases: Vec<(Vec<(&str, Value)>, i64)> = vec![
        (vec![], 20),
        (vec![("nice", int(5))], 15),
        (vec![("nice", int(25))], 1),
        (vec![("nice", int(20))], 1),
        (vec![("nice", int(-80))], 100),
        (vec![("weight", int(7))], 7),
        (vec![("weight", int(7)), ("nice", int(5))], 7),
        (vec![("weight", int(0)), ("nice", int(3))], 17),
        (vec![("weight", Value::Float(3.0))], 3),
    ];
    for (extra, weight) in cases {
        c.set_work_spec(spec("s", &extra)).await.unwrap();
        assert_eq!(meta(c, "s").await.weight, weight, "{extra:?}");
    }
}

/// get_work_spec_meta reports the derived metadata.
pub async fn spec_meta_reports_the_derived_metadata<C: Coordinate>(c: &C, _clock: &MockClock) {
    let data = spec(
        "s",
        &[
            ("priority", int(3)),
            ("weight", int(4)),
            ("disabled", Value::Bool(true)),
            ("continuous", Value::Bool(true)),
            ("interval", int(30)),
            ("max_running", int(2)),
            ("max_getwork", int(5)),
            ("max_retries", int(6)),
            ("then", text("t")),
            ("runtime", text("go")),
            ("min_gb", Value::Float(1.5)),
        ],
    );
    c.set_work_spec(data).await.unwrap();
    let m = meta(c, "s").await;
    assert_eq!((m.priority, m.weight, m.paused, m.continuous), (3, 4, true, true));
    assert_eq!((m.interval, m.max_running, m.max_getwork, m.max_retries), (30.0, 2, 5, 6));
    assert_eq!((m.then.as_str(), m.runtime.as_str(), m.min_memory_gb), ("t", "go", 1.5));
    assert_eq!((m.available_count, m.pending_count), (0, 0));
    c.set_work_spec(spec("p", &[])).await.unwrap();
    let m = meta(c, "p").await;
    assert_eq!((m.priority, m.weight, m.paused, m.continuous), (0, 20, false, false));
    assert_eq!((m.interval, m.max_running, m.max_getwork, m.max_retries), (0.0, 0, 0, 0));
    assert_eq!((m.then.as_str(), m.runtime.as_str()), ("", ""));
}

/// get_work_spec_meta counts available (not delayed) and pending units.
pub async fn spec_meta_counts_available_and_pending<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    let mut late = NewUnit::new(b"d".to_vec(), data(0));
    late.delay = 60.0;
    c.add_work_units("s", vec![late]).await.unwrap();
    let m = meta(c, "s").await;
    assert_eq!((m.available_count, m.pending_count), (3, 0));
    work(c, "w", 2).await;
    let m = meta(c, "s").await;
    assert_eq!((m.available_count, m.pending_count), (1, 2));
    assert_eq!(c.get_work_spec_meta("zz").await, Err(Error::NoSuchWorkSpec("zz".into())));
}

// ---------------------------------------------------------- 2. control --

/// Pausing a spec stops get_work; resuming restarts it.
pub async fn control_pause_and_resume<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    let pause = |p| SpecControl { paused: Some(p), ..SpecControl::default() };
    c.control_work_spec("s", pause(true)).await.unwrap();
    assert!(meta(c, "s").await.paused);
    assert!(work(c, "w", 1).await.is_empty());
    c.control_work_spec("s", pause(false)).await.unwrap();
    assert!(!meta(c, "s").await.paused);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["a"]);
    assert_eq!(c.control_work_spec("zz", pause(true)).await, Err(Error::NoSuchWorkSpec("zz".into())));
}

/// `continuous: true` only takes on a spec declared continuous.
pub async fn control_continuous_needs_declaration<C: Coordinate>(c: &C, _clock: &MockClock) {
    let cont = |on| SpecControl { continuous: Some(on), ..SpecControl::default() };
    c.set_work_spec(spec("plain", &[])).await.unwrap();
    c.control_work_spec("plain", cont(true)).await.unwrap();
    assert!(!meta(c, "plain").await.continuous);
    c.set_work_spec(spec("cont", &[("continuous", Value::Bool(true))])).await.unwrap();
    c.control_work_spec("cont", cont(false)).await.unwrap();
    assert!(!meta(c, "cont").await.continuous);
    c.control_work_spec("cont", cont(true)).await.unwrap();
    assert!(meta(c, "cont").await.continuous);
}

/// Weight, interval and max_running changes show in the meta; other fields stay.
pub async fn control_changes_show_in_meta<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[("priority", int(2)), ("max_getwork", int(4))])).await.unwrap();
    let control = SpecControl { weight: Some(7), interval: Some(12.5), max_running: Some(3), ..SpecControl::default() };
    c.control_work_spec("s", control).await.unwrap();
    let m = meta(c, "s").await;
    assert_eq!((m.weight, m.interval, m.max_running), (7, 12.5, 3));
    assert_eq!((m.priority, m.max_getwork, m.paused), (2, 4, false));
    c.control_work_spec("s", SpecControl { weight: Some(1), ..SpecControl::default() }).await.unwrap();
    let m = meta(c, "s").await;
    assert_eq!((m.weight, m.interval, m.max_running), (1, 12.5, 3));
}

// ------------------------------------------------------------ 3. units --

/// Added units read back with their data, sorted by key.
pub async fn units_round_trip_sorted_by_key<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["c", "a", "b"]).await;
    let units = c.get_work_units("s", UnitQuery::default()).await.unwrap();
    let want =
        vec![(UnitKey::bytes(*b"a"), data(1)), (UnitKey::bytes(*b"b"), data(2)), (UnitKey::bytes(*b"c"), data(0))];
    assert_eq!(units, want);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Available, 3)]));
    let null = NewUnit::new(b"n".to_vec(), Value::Null);
    c.add_work_units("s", vec![null]).await.unwrap();
    assert_eq!(unit_data(c, "s", "n").await, Value::Null);
    let missing = Err(Error::NoSuchWorkSpec("zz".into()));
    assert_eq!(c.add_work_units("zz", vec![NewUnit::new(b"a".to_vec(), data(0))]).await, missing);
    assert_eq!(c.get_work_units("zz", UnitQuery::default()).await, Err(Error::NoSuchWorkSpec("zz".into())));
}

/// Within one add_work_units call, a later duplicate key wins.
pub async fn add_units_later_duplicates_win<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut first = NewUnit::new(b"a".to_vec(), data(1));
    first.priority = 5.0;
    let units = vec![first, NewUnit::new(b"b".to_vec(), data(2)), NewUnit::new(b"a".to_vec(), data(3))];
    c.add_work_units("s", units).await.unwrap();
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Available, 2)]));
    assert_eq!(unit_data(c, "s", "a").await, data(3));
    assert_eq!(hand_out_order(c, "s").await, ["a", "b"]);
}

/// Re-adding a unit replaces its data and resets its priority.
pub async fn readding_replaces_data_and_resets_priority<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut z = NewUnit::new(b"z".to_vec(), data(1));
    z.priority = 10.0;
    c.add_work_units("s", vec![z, NewUnit::new(b"a".to_vec(), data(2))]).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["z", "a"]);
    c.add_work_units("s", vec![NewUnit::new(b"z".to_vec(), data(99))]).await.unwrap();
    assert_eq!(unit_data(c, "s", "z").await, data(99));
    assert_eq!(hand_out_order(c, "s").await, ["a", "z"]);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Available, 2)]));
}

/// Re-adding a finished or failed unit makes it available with the new data.
pub async fn readding_done_units_makes_them_available<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    assert_eq!(keys_of(&work(c, "w", 2).await), ["a", "b"]);
    assert!(set_status(c, "s", "a", UnitStatus::Finished, Some(data(10))).await);
    assert!(set_status(c, "s", "b", UnitStatus::Failed, Some(data(11))).await);
    let again = vec![NewUnit::new(b"a".to_vec(), data(7)), NewUnit::new(b"b".to_vec(), data(8))];
    c.add_work_units("s", again).await.unwrap();
    for (k, n) in [("a", 7), ("b", 8)] {
        let i = info(c, "s", k).await;
        assert_eq!((i.status, i.worker_id), (UnitStatus::Available, None));
        assert_eq!(unit_data(c, "s", k).await, data(n));
    }
    assert_eq!(keys_of(&work(c, "w2", 2).await), ["a", "b"]);
}

/// Re-adding a pending unit keeps it pending, and its attempt keeps its own data.
pub async fn readding_pending_unit_keeps_its_attempt<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    c.add_work_units("s", vec![NewUnit::new(b"a".to_vec(), data(1))]).await.unwrap();
    assert_eq!(work(c, "w", 1).await[0].data, data(1));
    c.add_work_units("s", vec![NewUnit::new(b"a".to_vec(), data(2))]).await.unwrap();
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id.as_deref()), (UnitStatus::Pending, Some("w")));
    assert_eq!(unit_data(c, "s", "a").await, data(1));
    assert!(set_status(c, "s", "a", UnitStatus::Available, None).await);
    assert_eq!(unit_data(c, "s", "a").await, data(2));
    assert_eq!(work(c, "w", 1).await[0].data, data(2));
}

/// get_work_units: `start` is exclusive and `limit` caps the result.
pub async fn unit_query_start_is_exclusive_and_limit_caps<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["e", "d", "c", "b", "a"]).await;
    let q = |start: Option<&str>, limit| UnitQuery {
        start: start.map(|s| s.as_bytes().to_vec()),
        limit,
        ..UnitQuery::default()
    };
    assert_eq!(unit_keys(c, "s", q(Some("b"), 2)).await, ["c", "d"]);
    assert_eq!(unit_keys(c, "s", q(Some("bb"), 10)).await, ["c", "d", "e"]);
    assert_eq!(unit_keys(c, "s", q(None, 3)).await, ["a", "b", "c"]);
    assert!(unit_keys(c, "s", q(Some("e"), 10)).await.is_empty());
    assert!(unit_keys(c, "s", q(None, 0)).await.is_empty());
}

/// get_work_units `states` filters by status; Available excludes delayed units.
pub async fn unit_query_filters_by_state<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d"]).await;
    let mut late = NewUnit::new(b"e".to_vec(), data(0));
    late.delay = 60.0;
    c.add_work_units("s", vec![late]).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 3).await), ["a", "b", "c"]);
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    assert!(set_status(c, "s", "b", UnitStatus::Failed, None).await);
    use UnitStatus::*;
    assert_eq!(unit_keys(c, "s", in_states(&[Available])).await, ["d"]);
    assert_eq!(unit_keys(c, "s", in_states(&[Pending])).await, ["c"]);
    assert_eq!(unit_keys(c, "s", in_states(&[Finished])).await, ["a"]);
    assert_eq!(unit_keys(c, "s", in_states(&[Failed, Finished])).await, ["a", "b"]);
    assert_eq!(unit_keys(c, "s", in_states(&[Available, Pending])).await, ["c", "d"]);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["a", "b", "c", "d", "e"]);
}

/// get_work_units `keys` returns exactly those units, ignores the other options, omits missing ones.
pub async fn unit_query_by_keys<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    let by_keys = |keys: &[&str]| UnitQuery {
        keys: Some(keys.iter().map(|k| k.as_bytes().to_vec()).collect()),
        ..UnitQuery::default()
    };
    assert_eq!(unit_keys(c, "s", by_keys(&["c", "zz", "a"])).await, ["a", "c"]);
    assert!(unit_keys(c, "s", by_keys(&[])).await.is_empty());
    assert!(unit_keys(c, "s", by_keys(&["zz"])).await.is_empty());
    let q = UnitQuery {
        start: Some(b"b".to_vec()),
        limit: 1,
        states: Some(vec![UnitStatus::Pending]),
        ..by_keys(&["a", "c"])
    };
    assert_eq!(unit_keys(c, "s", q).await, ["a", "c"]);
}

/// Effective data is the active attempt's data while there is one, else the unit's data.
pub async fn effective_data_follows_the_active_attempt<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    c.add_work_units("s", vec![NewUnit::new(b"a".to_vec(), data(1))]).await.unwrap();
    assert_eq!(work(c, "w", 1).await[0].data, data(1));
    assert_eq!(unit_data(c, "s", "a").await, data(1));
    assert!(renew(c, "s", "a", 100.0, Some(data(2))).await);
    assert_eq!(unit_data(c, "s", "a").await, data(2));
    assert!(set_status(c, "s", "a", UnitStatus::Finished, Some(data(3))).await);
    assert_eq!(unit_data(c, "s", "a").await, data(3));
    assert!(set_status(c, "s", "a", UnitStatus::Available, None).await);
    assert_eq!(unit_data(c, "s", "a").await, data(1));
}

/// A key is answered in the string type it was last added with, from
/// every call that returns keys; its bytes alone identify the unit.
pub async fn keys_keep_their_string_type<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let units = vec![
        NewUnit::keyed(UnitKey::text("t"), data(0)),
        NewUnit::keyed(UnitKey::bytes(*b"b"), data(1)),
        NewUnit::keyed(UnitKey::bytes(*b"\xff"), data(2)),
    ];
    c.add_work_units("s", units).await.unwrap();
    let listed: Vec<UnitKey> =
        c.get_work_units("s", UnitQuery::default()).await.unwrap().into_iter().map(|u| u.0).collect();
    assert_eq!(listed, [UnitKey::bytes(*b"b"), UnitKey::text("t"), UnitKey::bytes(*b"\xff")]);
    let q = UnitQuery { keys: Some(vec![b"t".to_vec()]), ..UnitQuery::default() };
    assert_eq!(c.get_work_units("s", q).await.unwrap()[0].0, UnitKey::text("t"));
    c.worker_heartbeat(Heartbeat {
        worker: "p".into(),
        mode: "RUN".into(),
        expire_secs: 100.0,
        data: Value::Null,
        parent: None,
    })
    .await
    .unwrap();
    c.worker_heartbeat(Heartbeat {
        worker: "kid".into(),
        mode: "RUN".into(),
        expire_secs: 100.0,
        data: Value::Null,
        parent: Some("p".into()),
    })
    .await
    .unwrap();
    let granted: Vec<UnitKey> = work(c, "kid", 10).await.into_iter().map(|g| g.key).collect();
    assert_eq!(granted, [UnitKey::bytes(*b"b"), UnitKey::text("t"), UnitKey::bytes(*b"\xff")]);
    let children = c.get_child_work_units("p").await.unwrap();
    let held: Vec<UnitKey> = children["kid"].iter().map(|u| u.key.clone()).collect();
    assert_eq!(held, granted);
}

/// Re-adding a key with the other string type updates the same unit, and
/// it is answered in the new type; the type survives a retry.
pub async fn readding_a_key_as_the_other_type_switches_its_answer<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    c.add_work_units("s", vec![NewUnit::keyed(UnitKey::text("k"), data(0))]).await.unwrap();
    c.add_work_units("s", vec![NewUnit::keyed(UnitKey::bytes(*b"k"), data(1))]).await.unwrap();
    let units = c.get_work_units("s", UnitQuery::default()).await.unwrap();
    assert_eq!(units, vec![(UnitKey::bytes(*b"k"), data(1))]);
    c.add_work_units("s", vec![NewUnit::keyed(UnitKey::text("k"), data(2))]).await.unwrap();
    let grants = work(c, "w", 1).await;
    assert_eq!(grants, vec![WorkGrant { spec: "s".into(), key: UnitKey::text("k"), data: data(2) }]);
    assert!(set_status(c, "s", "k", UnitStatus::Failed, None).await);
    assert!(set_status(c, "s", "k", UnitStatus::Available, None).await);
    assert_eq!(work(c, "w", 1).await[0].key, UnitKey::text("k"));
}

/// Spec data reads back with every value in the type it was sent as:
/// `module` and `run_function` included; a byte-string name still names it.
pub async fn spec_values_keep_their_string_type<C: Coordinate>(c: &C, _clock: &MockClock) {
    let sent = vec![
        (text("name"), bytes(b"s".to_vec())),
        (text("module"), text("mod")),
        (text("run_function"), bytes(b"fn".to_vec())),
        (text("then"), bytes(b"t".to_vec())),
        (text("desc"), text("d")),
    ];
    c.set_work_spec(sent.clone()).await.unwrap();
    assert_eq!(c.get_work_spec("s").await.unwrap(), sent);
    assert_eq!(c.get_work_spec_meta("s").await.unwrap().then, "t");
    let (listed, _) = c.list_work_specs("", 10).await.unwrap();
    assert_eq!(listed, vec![sent]);
}

/// Keys are arbitrary bytes and sort bytewise.
pub async fn binary_keys_sort_bytewise<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let keys: [&[u8]; 5] = [b"\xff\x80", b"a", b"\x00", b"\x7f", b"\xff"];
    let units = keys.iter().map(|k| NewUnit::new(k.to_vec(), data(k.len() as i64))).collect();
    c.add_work_units("s", units).await.unwrap();
    let sorted: Vec<Key> =
        vec![b"\x00".to_vec(), b"a".to_vec(), b"\x7f".to_vec(), b"\xff".to_vec(), b"\xff\x80".to_vec()];
    let got: Vec<Key> =
        c.get_work_units("s", UnitQuery::default()).await.unwrap().into_iter().map(|u| u.0.bytes).collect();
    assert_eq!(got, sorted);
    let q = UnitQuery { start: Some(b"a".to_vec()), ..UnitQuery::default() };
    let got: Vec<Key> = c.get_work_units("s", q).await.unwrap().into_iter().map(|u| u.0.bytes).collect();
    assert_eq!(got, sorted[2..]);
    let st = c.get_work_unit_status("s", vec![b"\xff\x80".to_vec(), b"\xff\x81".to_vec()]).await.unwrap();
    assert_eq!(st[0].as_ref().map(|i| i.status), Some(UnitStatus::Available));
    assert_eq!(st[1], None);
    let granted: Vec<Key> = work(c, "w", 10).await.into_iter().map(|g| g.key.bytes).collect();
    assert_eq!(granted, sorted);
}

/// get_work_unit_status answers one entry per key, None for unknown keys.
pub async fn unit_status_is_none_for_unknown_keys<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    let keys = vec![b"b".to_vec(), b"zz".to_vec(), b"a".to_vec()];
    let st = c.get_work_unit_status("s", keys).await.unwrap();
    let statuses: Vec<Option<UnitStatus>> = st.iter().map(|i| i.as_ref().map(|i| i.status)).collect();
    assert_eq!(statuses, [Some(UnitStatus::Available), None, Some(UnitStatus::Available)]);
    let i = st[0].clone().unwrap();
    assert_eq!((i.worker_id, i.expiration, i.traceback), (None, None, None));
    assert_eq!(c.get_work_unit_status("zz", vec![]).await, Err(Error::NoSuchWorkSpec("zz".into())));
}

// ------------------------------------------------------- 4. priorities --

/// Units are handed out by priority, then key.
pub async fn units_by_priority_then_key<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut units: Vec<NewUnit> =
        ["b", "a", "d", "c"].iter().map(|k| NewUnit::new(k.as_bytes().to_vec(), data(0))).collect();
    units[2].priority = 5.0;
    c.add_work_units("s", units).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 10).await), ["d", "a", "b", "c"]);
}

/// Fractional and negative unit priorities order units too.
pub async fn fractional_and_negative_priorities<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let units = [("a", -1.0), ("b", 0.5), ("c", 0.0), ("d", 0.25), ("e", -0.5)]
        .iter()
        .map(|(k, p)| NewUnit { priority: *p, ..NewUnit::new(k.as_bytes().to_vec(), data(0)) })
        .collect();
    c.add_work_units("s", units).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["b", "d", "c", "e", "a"]);
}

/// prioritize_work_units sets or adjusts priorities, ignoring unknown keys.
pub async fn prioritize_set_and_adjust<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    let k = |keys: &[&str]| keys.iter().map(|k| k.as_bytes().to_vec()).collect::<Vec<Key>>();
    c.prioritize_work_units("s", k(&["c", "zz"]), PriorityChange::Set(5.0)).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["c", "a", "b"]);
    c.prioritize_work_units("s", k(&["b"]), PriorityChange::Adjust(10.0)).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["b", "c", "a"]);
    c.prioritize_work_units("s", k(&["b", "c"]), PriorityChange::Adjust(-7.0)).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["b", "a", "c"]);
    c.prioritize_work_units("s", k(&["a", "b", "c"]), PriorityChange::Set(1.0)).await.unwrap();
    assert_eq!(hand_out_order(c, "s").await, ["a", "b", "c"]);
    let r = c.prioritize_work_units("zz", k(&["a"]), PriorityChange::Set(1.0)).await;
    assert_eq!(r, Err(Error::NoSuchWorkSpec("zz".into())));
}

/// Prioritizing a pending unit takes effect when it is available again.
pub async fn prioritize_applies_to_pending_units<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    assert_eq!(keys_of(&work(c, "w", 1).await), ["a"]);
    c.prioritize_work_units("s", vec![b"a".to_vec()], PriorityChange::Adjust(-1.0)).await.unwrap();
    assert_eq!(status(c, "s", "a").await, UnitStatus::Pending);
    assert!(set_status(c, "s", "a", UnitStatus::Available, None).await);
    assert_eq!(hand_out_order(c, "s").await, ["b", "a"]);
}

// ----------------------------------------------------------- 5. delays --

/// A delayed unit counts and reports as Delayed and is not handed out until its delay passes.
pub async fn delayed_unit_waits_for_its_delay<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut late = NewUnit::new(b"a".to_vec(), data(0));
    late.delay = 60.0;
    c.add_work_units("s", vec![late]).await.unwrap();
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Delayed, 1)]));
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id), (UnitStatus::Delayed, None));
    assert!(unit_keys(c, "s", in_states(&[UnitStatus::Available])).await.is_empty());
    assert!(work(c, "w", 1).await.is_empty());
    clock.advance(30.0);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Delayed);
    assert!(work(c, "w", 1).await.is_empty());
    clock.advance(31.0);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Available);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Available, 1)]));
    assert_eq!(unit_keys(c, "s", in_states(&[UnitStatus::Available])).await, ["a"]);
    assert_eq!(meta(c, "s").await.available_count, 1);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["a"]);
}

/// A delayed unit, whatever its priority, lets available units go first.
pub async fn delayed_unit_lets_others_go_first<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut late = NewUnit::new(b"a".to_vec(), data(0));
    late.delay = 10.0;
    late.priority = 5.0;
    c.add_work_units("s", vec![late, NewUnit::new(b"b".to_vec(), data(1))]).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 10).await), ["b"]);
    clock.advance(11.0);
    assert_eq!(keys_of(&work(c, "w", 10).await), ["a"]);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Pending, 2)]));
}

// ----------------------------------------------------------- 6. counts --

/// count_work_units gives exact counts per status and omits zero counts.
pub async fn counts_are_exact_and_omit_zeros<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    assert_eq!(counts(c, "s").await, count_map(&[]));
    add_keys(c, "s", &["a", "b", "c", "d", "e", "f"]).await;
    let mut late = NewUnit::new(b"g".to_vec(), data(0));
    late.delay = 60.0;
    c.add_work_units("s", vec![late]).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 4).await), ["a", "b", "c", "d"]);
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    assert!(set_status(c, "s", "b", UnitStatus::Failed, None).await);
    use UnitStatus::*;
    let want = count_map(&[(Available, 2), (Pending, 2), (Finished, 1), (Failed, 1), (Delayed, 1)]);
    assert_eq!(counts(c, "s").await, want);
    c.del_work_units("s", DelQuery::State(Available)).await.unwrap();
    assert_eq!(counts(c, "s").await, count_map(&[(Pending, 2), (Finished, 1), (Failed, 1), (Delayed, 1)]));
    assert_eq!(c.count_work_units("zz").await, Err(Error::NoSuchWorkSpec("zz".into())));
}

// --------------------------------------------------------- 7. attempts --

/// get_work creates a pending attempt for the worker, leased for lease_secs.
pub async fn get_work_creates_a_leased_attempt<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    let grants = work_leased(c, "w1", 120.0).await;
    assert_eq!(grants, vec![WorkGrant { spec: "s".into(), key: UnitKey::bytes(*b"a"), data: data(0) }]);
    let i = info(c, "s", "a").await;
    assert_eq!(i.status, UnitStatus::Pending);
    assert_eq!(i.worker_id.as_deref(), Some("w1"));
    assert_eq!(i.expiration, Some(c.now().plus_secs(120.0)));
    assert_eq!(i.traceback, None);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Pending, 1)]));
    assert!(work(c, "w2", 1).await.is_empty());
}

/// The backend's time is the clock's and moves with it.
pub async fn now_follows_the_clock<C: Coordinate>(c: &C, clock: &MockClock) {
    let t0 = c.now();
    assert_eq!(t0.unix_secs(), 1_444_000_000);
    clock.advance(2.5);
    assert_eq!(c.now(), t0.plus_secs(2.5));
}

/// Once its lease has passed, a unit is available and can go to another worker.
pub async fn expired_lease_frees_the_unit<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    assert_eq!(keys_of(&work_leased(c, "w1", 60.0).await), ["a"]);
    clock.advance(59.0);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Pending);
    assert!(work(c, "w2", 1).await.is_empty());
    clock.advance(2.0);
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id, i.expiration), (UnitStatus::Available, None, None));
    assert_eq!(meta(c, "s").await.available_count, 1);
    assert_eq!(keys_of(&work(c, "w2", 1).await), ["a"]);
    assert_eq!(info(c, "s", "a").await.worker_id.as_deref(), Some("w2"));
}

/// A unit whose lease expired is handed out again even without any other call first.
pub async fn expired_lease_is_seen_by_get_work<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    assert_eq!(keys_of(&work_leased(c, "w1", 10.0).await), ["a"]);
    clock.advance(11.0);
    assert_eq!(keys_of(&work_leased(c, "w2", 10.0).await), ["a"]);
    assert_eq!(info(c, "s", "a").await.worker_id.as_deref(), Some("w2"));
}

/// A renewal (no status) extends the lease from now.
pub async fn renew_extends_the_lease_from_now<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work_leased(c, "w", 60.0).await;
    clock.advance(50.0);
    assert!(renew(c, "s", "a", 100.0, None).await);
    assert_eq!(info(c, "s", "a").await.expiration, Some(c.now().plus_secs(100.0)));
    clock.advance(20.0);
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id.as_deref()), (UnitStatus::Pending, Some("w")));
    clock.advance(81.0);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Available);
}

/// A renewal with lease_secs ≤ 0 lets the lease run out as soon as time moves.
pub async fn non_positive_lease_releases_the_unit<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    assert_eq!(keys_of(&work(c, "w", 3).await), ["a", "b", "c"]);
    assert!(renew(c, "s", "a", 0.0, None).await);
    assert!(renew(c, "s", "b", -1.0, None).await);
    clock.advance(1.0);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Available);
    assert_eq!(status(c, "s", "b").await, UnitStatus::Available);
    assert_eq!(status(c, "s", "c").await, UnitStatus::Pending);
    assert_eq!(keys_of(&work(c, "w2", 3).await), ["a", "b"]);
}

/// Finishing a unit records the final data, which get_work_units then shows.
pub async fn finish_records_the_final_data<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work(c, "w", 1).await;
    let result = map(&[("result", int(42))]);
    assert!(set_status(c, "s", "a", UnitStatus::Finished, Some(result.clone())).await);
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id.as_deref(), i.expiration), (UnitStatus::Finished, Some("w"), None));
    assert_eq!(unit_data(c, "s", "a").await, result);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Finished, 1)]));
    assert_eq!(meta(c, "s").await.pending_count, 0);
    assert!(work(c, "w", 1).await.is_empty());
}

/// Failing a unit records the traceback of its data.
pub async fn fail_records_the_traceback<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work(c, "w", 1).await;
    let failure = map(&[("traceback", text("boom"))]);
    assert!(set_status(c, "s", "a", UnitStatus::Failed, Some(failure.clone())).await);
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id.as_deref(), i.expiration), (UnitStatus::Failed, Some("w"), None));
    assert_eq!(i.traceback, Some(text("boom")));
    assert_eq!(unit_data(c, "s", "a").await, failure);
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Failed, 1)]));
    assert!(work(c, "w", 1).await.is_empty());
}

/// Retrying a finished or failed unit makes it available with its original data.
pub async fn retry_restores_the_original_data<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    work(c, "w", 2).await;
    assert!(set_status(c, "s", "a", UnitStatus::Finished, Some(data(10))).await);
    assert!(set_status(c, "s", "b", UnitStatus::Failed, Some(map(&[("traceback", text("x"))]))).await);
    for k in ["a", "b"] {
        let retry = UnitUpdate { status: Some(UnitStatus::Available), lease_secs: 0.0, ..upd() };
        assert!(c.update_work_unit("s", k.as_bytes(), retry).await.unwrap());
        let i = info(c, "s", k).await;
        assert_eq!((i.status, i.worker_id, i.traceback), (UnitStatus::Available, None, None));
    }
    assert_eq!(unit_data(c, "s", "a").await, data(0));
    assert_eq!(unit_data(c, "s", "b").await, data(1));
    let grants = work(c, "w2", 2).await;
    assert_eq!(keys_of(&grants), ["a", "b"]);
    assert_eq!(grants[0].data, data(0));
}

/// A late failure after a finish is a no-op returning false.
pub async fn finished_then_failed_is_a_noop<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work(c, "w", 1).await;
    assert!(set_status(c, "s", "a", UnitStatus::Finished, Some(data(10))).await);
    assert!(!set_status(c, "s", "a", UnitStatus::Failed, Some(map(&[("traceback", text("x"))]))).await);
    assert!(!set_status(c, "s", "a", UnitStatus::Finished, Some(data(11))).await);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Finished);
    assert_eq!(unit_data(c, "s", "a").await, data(10));
}

/// A late success after a failure wins.
pub async fn failed_then_finished_wins<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work(c, "w", 1).await;
    assert!(set_status(c, "s", "a", UnitStatus::Failed, Some(map(&[("traceback", text("x"))]))).await);
    assert!(!set_status(c, "s", "a", UnitStatus::Failed, None).await);
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.traceback), (UnitStatus::Finished, None));
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Finished, 1)]));
}

/// Setting a pending unit Available expires its attempt.
pub async fn pending_to_available_expires_the_attempt<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work(c, "w", 1).await;
    assert!(set_status(c, "s", "a", UnitStatus::Available, Some(data(5))).await);
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id, i.expiration), (UnitStatus::Available, None, None));
    assert_eq!(unit_data(c, "s", "a").await, data(0));
    assert_eq!(keys_of(&work(c, "w2", 1).await), ["a"]);
    assert_eq!(info(c, "s", "a").await.worker_id.as_deref(), Some("w2"));
}

/// Updating an unknown unit or spec is an error.
pub async fn update_of_missing_unit_or_spec_fails<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    let fin = UnitUpdate { status: Some(UnitStatus::Finished), ..upd() };
    let r = c.update_work_unit("s", b"nope", fin.clone()).await;
    assert_eq!(r, Err(Error::NoSuchWorkUnit(b"nope".to_vec())));
    let r = c.update_work_unit("zz", b"a", fin).await;
    assert_eq!(r, Err(Error::NoSuchWorkSpec("zz".into())));
    assert_eq!(status(c, "s", "a").await, UnitStatus::Available);
}

/// Finishing an available unit force-creates an attempt for the given worker.
pub async fn finishing_an_available_unit_forces_an_attempt<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    let update =
        UnitUpdate { status: Some(UnitStatus::Finished), data: Some(data(9)), worker_id: Some("w9".into()), ..upd() };
    assert!(c.update_work_unit("s", b"a", update).await.unwrap());
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id.as_deref()), (UnitStatus::Finished, Some("w9")));
    assert_eq!(unit_data(c, "s", "a").await, data(9));
    assert!(work(c, "w", 1).await.is_empty());
}

/// Updating an available unit without a status only replaces its data.
pub async fn updating_an_available_unit_replaces_its_data<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    let plain = upd();
    assert!(!c.update_work_unit("s", b"a", plain).await.unwrap());
    let with_data = UnitUpdate { data: Some(data(5)), ..upd() };
    assert!(c.update_work_unit("s", b"a", with_data).await.unwrap());
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id), (UnitStatus::Available, None));
    assert_eq!(unit_data(c, "s", "a").await, data(5));
    assert_eq!(work(c, "w", 1).await[0].data, data(5));
}

/// Making an available unit Pending force-creates an attempt with the requested lease.
pub async fn pending_on_an_available_unit_starts_an_attempt<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    let update =
        UnitUpdate { status: Some(UnitStatus::Pending), lease_secs: 50.0, worker_id: Some("w9".into()), ..upd() };
    assert!(c.update_work_unit("s", b"a", update).await.unwrap());
    let i = info(c, "s", "a").await;
    assert_eq!((i.status, i.worker_id.as_deref()), (UnitStatus::Pending, Some("w9")));
    assert_eq!(i.expiration, Some(c.now().plus_secs(50.0)));
    clock.advance(51.0);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Available);
}

/// A finished or failed unit cannot be made pending again.
pub async fn done_units_cannot_become_pending<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    work(c, "w", 2).await;
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    assert!(set_status(c, "s", "b", UnitStatus::Failed, None).await);
    for (k, st) in [("a", UnitStatus::Finished), ("b", UnitStatus::Failed)] {
        let pend = UnitUpdate { status: Some(UnitStatus::Pending), ..upd() };
        let r = c.update_work_unit("s", k.as_bytes(), pend).await;
        assert!(matches!(r, Err(Error::Conflict(_))), "{k}: {r:?}");
        assert_eq!(status(c, "s", k).await, st);
    }
}

// ------------------------------------------------------ 8. max_running --

/// A spec never has more than max_running pending units.
pub async fn max_running_caps_pending_units<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[("max_running", int(2))])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d", "e"]).await;
    assert_eq!(keys_of(&work(c, "w", 1).await), ["a"]);
    assert_eq!(keys_of(&work(c, "w", 10).await), ["b"]);
    assert!(work(c, "w", 10).await.is_empty());
    assert_eq!(meta(c, "s").await.pending_count, 2);
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    assert_eq!(keys_of(&work(c, "w", 10).await), ["c"]);
    assert!(work(c, "w", 10).await.is_empty());
    c.control_work_spec("s", SpecControl { max_running: Some(0), ..SpecControl::default() }).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 10).await), ["d", "e"]);
}

/// max_getwork caps the units of one get_work call.
pub async fn max_getwork_caps_one_call<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[("max_getwork", int(2))])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d", "e"]).await;
    assert_eq!(keys_of(&work(c, "w", 10).await), ["a", "b"]);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["c"]);
    assert_eq!(keys_of(&work(c, "w", 10).await), ["d", "e"]);
    assert!(work(c, "w", 10).await.is_empty());
}

/// One get_work hands out up to max_jobs units, all from one spec, with no spill-over.
pub async fn max_jobs_units_come_from_one_spec<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("hi", &[("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("lo", &[])).await.unwrap();
    add_keys(c, "hi", &["h1", "h2"]).await;
    add_keys(c, "lo", &["l1", "l2", "l3", "l4", "l5", "l6"]).await;
    let grants = work(c, "w", 5).await;
    assert_eq!(keys_of(&grants), ["h1", "h2"]);
    assert!(grants.iter().all(|g| g.spec == "hi"));
    let grants = work(c, "w", 5).await;
    assert_eq!(keys_of(&grants), ["l1", "l2", "l3", "l4", "l5"]);
    assert!(grants.iter().all(|g| g.spec == "lo"));
    c.set_work_spec(spec("x", &[])).await.unwrap();
    c.set_work_spec(spec("y", &[])).await.unwrap();
    let ten = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    add_keys(c, "x", &ten).await;
    add_keys(c, "y", &ten).await;
    for _ in 0..3 {
        let grants = c
            .get_work("w", GetWork { max_jobs: 3, work_spec_names: vec!["x".into(), "y".into()], ..gw() })
            .await
            .unwrap();
        assert_eq!(grants.len(), 3);
        assert!(grants.iter().all(|g| g.spec == grants[0].spec), "{grants:?}");
    }
}

// ------------------------------------------------------ 9. max_retries --

/// With max_retries 2, the third hand-out fails the unit with "too many retries".
pub async fn max_retries_fails_the_third_attempt<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[("max_retries", int(2))])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    for _ in 0..2 {
        assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["a"]);
        clock.advance(11.0);
        assert_eq!(status(c, "s", "a").await, UnitStatus::Available);
    }
    assert!(work_leased(c, "w", 10.0).await.is_empty());
    let i = info(c, "s", "a").await;
    assert_eq!(i.status, UnitStatus::Failed);
    assert_eq!(i.traceback, Some(text("too many retries")));
    assert_eq!(counts(c, "s").await, count_map(&[(UnitStatus::Failed, 1)]));
}

/// A unit out of retries is skipped and the next one handed out instead.
pub async fn max_retries_moves_on_to_the_next_unit<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[("max_retries", int(1))])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["a"]);
    clock.advance(11.0);
    add_keys(c, "s", &["b"]).await;
    assert_eq!(keys_of(&work_leased(c, "w", 10.0).await), ["b"]);
    assert_eq!(status(c, "s", "a").await, UnitStatus::Failed);
    assert_eq!(info(c, "s", "a").await.traceback, Some(text("too many retries")));
}

// -------------------------------------------------------- 10. scheduler --

/// Paused specs are never chosen.
pub async fn scheduler_skips_paused_specs<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("p", &[("disabled", Value::Bool(true)), ("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("q", &[])).await.unwrap();
    add_keys(c, "p", &["p1", "p2", "p3"]).await;
    add_keys(c, "q", &["q1", "q2", "q3"]).await;
    for _ in 0..3 {
        assert_eq!(work(c, "w", 1).await[0].spec, "q");
    }
    assert!(work(c, "w", 1).await.is_empty());
}

/// Only specs whose runtime is requested are chosen; the default runtime list is [""].
pub async fn scheduler_matches_runtimes<C: Coordinate>(c: &C, _clock: &MockClock) {
    assert_eq!(gw().runtimes, vec![String::new()]);
    c.set_work_spec(spec("go", &[("runtime", text("go")), ("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("py", &[])).await.unwrap();
    add_keys(c, "go", &["g1", "g2"]).await;
    add_keys(c, "py", &["p1"]).await;
    assert_eq!(keys_of(&work(c, "w", 10).await), ["p1"]);
    assert!(work(c, "w", 10).await.is_empty());
    let go = GetWork { max_jobs: 10, runtimes: vec!["go".into()], ..gw() };
    assert_eq!(keys_of(&c.get_work("w", go).await.unwrap()), ["g1", "g2"]);
}

/// Specs at max_running are skipped even when they have the top priority.
pub async fn scheduler_skips_specs_at_max_running<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("hi", &[("priority", int(1)), ("max_running", int(1))])).await.unwrap();
    c.set_work_spec(spec("lo", &[])).await.unwrap();
    add_keys(c, "hi", &["h1", "h2"]).await;
    add_keys(c, "lo", &["l1", "l2"]).await;
    assert_eq!(keys_of(&work(c, "w", 1).await), ["h1"]);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["l1"]);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["l2"]);
    assert!(work(c, "w", 1).await.is_empty());
}

/// Specs whose weight was set to ≤ 0 are never chosen.
pub async fn scheduler_skips_specs_without_weight<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("z", &[("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("n", &[("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("ok", &[])).await.unwrap();
    add_keys(c, "z", &["z1"]).await;
    add_keys(c, "n", &["n1"]).await;
    add_keys(c, "ok", &["o1", "o2"]).await;
    c.control_work_spec("z", SpecControl { weight: Some(0), ..SpecControl::default() }).await.unwrap();
    c.control_work_spec("n", SpecControl { weight: Some(-3), ..SpecControl::default() }).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 1).await), ["o1"]);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["o2"]);
    assert!(work(c, "w", 1).await.is_empty());
    c.control_work_spec("z", SpecControl { weight: Some(1), ..SpecControl::default() }).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 1).await), ["z1"]);
}

/// Only specs named in work_spec_names are chosen; unknown names are ignored.
pub async fn scheduler_honours_work_spec_names<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("a", &[("priority", int(1))])).await.unwrap();
    c.set_work_spec(spec("b", &[])).await.unwrap();
    add_keys(c, "a", &["a1", "a2"]).await;
    add_keys(c, "b", &["b1", "b2"]).await;
    let named = |names: &[&str]| GetWork { work_spec_names: names.iter().map(|n| n.to_string()).collect(), ..gw() };
    for k in ["b1", "b2"] {
        let grants = c.get_work("w", named(&["b", "nosuch"])).await.unwrap();
        assert_eq!((grants[0].spec.as_str(), keys_of(&grants)), ("b", vec![k.to_string()]));
    }
    assert!(c.get_work("w", named(&["b"])).await.unwrap().is_empty());
    assert!(c.get_work("w", named(&["nosuch"])).await.unwrap().is_empty());
    assert_eq!(counts(c, "a").await, count_map(&[(UnitStatus::Available, 2)]));
}

/// A higher spec priority always wins over a larger weight while it has work.
pub async fn scheduler_priority_beats_weight<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("hi", &[("priority", int(1)), ("weight", int(1))])).await.unwrap();
    c.set_work_spec(spec("lo", &[("weight", int(1000))])).await.unwrap();
    let keys: Vec<String> = (0..20).map(|i| format!("{i:02}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    add_keys(c, "hi", &keys).await;
    add_keys(c, "lo", &keys).await;
    for _ in 0..20 {
        assert_eq!(work(c, "w", 1).await[0].spec, "hi");
    }
    assert_eq!(work(c, "w", 1).await[0].spec, "lo");
}

/// Weighted choice brings the pending counts of weights 1 and 2 close to 1:2.
pub async fn scheduler_pending_counts_follow_weights<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("one", &[("weight", int(1))])).await.unwrap();
    c.set_work_spec(spec("two", &[("weight", int(2))])).await.unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("{i:03}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    add_keys(c, "one", &keys).await;
    add_keys(c, "two", &keys).await;
    for _ in 0..300 {
        assert_eq!(work(c, "w", 1).await.len(), 1);
    }
    let (one, two) = (meta(c, "one").await.pending_count, meta(c, "two").await.pending_count);
    assert_eq!(one + two, 300);
    let ratio = two as f64 / one.max(1) as f64;
    assert!((1.8..=2.2).contains(&ratio), "pending {one} vs {two}");
}

// ------------------------------------------------------- 11. continuous --

/// An idle continuous spec yields one synthetic unit keyed by the current time.
pub async fn continuous_spec_yields_a_synthetic_unit<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("c", &[("continuous", Value::Bool(true))])).await.unwrap();
    let grants = work(c, "w", 5).await;
    assert_eq!(grants, vec![WorkGrant { spec: "c".into(), key: UnitKey::text("1444000000.000"), data: map(&[]) }]);
    assert_eq!(status(c, "c", "1444000000.000").await, UnitStatus::Pending);
    assert!(set_status(c, "c", "1444000000.000", UnitStatus::Finished, None).await);
    clock.advance(2.5);
    assert_eq!(keys_of(&work(c, "w", 5).await), ["1444000002.500"]);
    assert_eq!(counts(c, "c").await, count_map(&[(UnitStatus::Pending, 1), (UnitStatus::Finished, 1)]));
}

/// No synthetic unit is made while a unit is pending or available.
pub async fn continuous_waits_for_pending_and_available_units<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("c", &[("continuous", Value::Bool(true))])).await.unwrap();
    add_keys(c, "c", &["x"]).await;
    assert_eq!(keys_of(&work(c, "w", 5).await), ["x"]);
    clock.advance(1.0);
    assert!(work(c, "w", 5).await.is_empty());
    assert!(set_status(c, "c", "x", UnitStatus::Finished, None).await);
    assert_eq!(keys_of(&work(c, "w", 5).await), ["1444000001.000"]);
    clock.advance(1.0);
    assert!(work(c, "w", 5).await.is_empty());
    assert_eq!(counts(c, "c").await, count_map(&[(UnitStatus::Pending, 1), (UnitStatus::Finished, 1)]));
}

/// `interval` gates the next synthetic unit until the clock passes it.
pub async fn continuous_interval_gates_synthetic_units<C: Coordinate>(c: &C, clock: &MockClock) {
    let data = spec("c", &[("continuous", Value::Bool(true)), ("interval", int(60))]);
    c.set_work_spec(data.clone()).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 1).await), ["1444000000.000"]);
    assert!(set_status(c, "c", "1444000000.000", UnitStatus::Finished, None).await);
    clock.advance(1.0);
    assert!(work(c, "w", 1).await.is_empty());
    clock.advance(58.0);
    assert!(work(c, "w", 1).await.is_empty());
    clock.advance(1.5);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["1444000060.500"]);
    assert!(set_status(c, "c", "1444000060.500", UnitStatus::Finished, None).await);
    clock.advance(1.0);
    assert!(work(c, "w", 1).await.is_empty());
    c.set_work_spec(data).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 1).await), ["1444000061.500"]);
}

/// Paused, switched-off and non-continuous specs get no synthetic units.
pub async fn continuous_needs_a_running_continuous_spec<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("plain", &[])).await.unwrap();
    c.set_work_spec(spec("paused", &[("continuous", Value::Bool(true)), ("disabled", Value::Bool(true))]))
        .await
        .unwrap();
    c.set_work_spec(spec("off", &[("continuous", Value::Bool(true))])).await.unwrap();
    let on = |b| SpecControl { continuous: Some(b), ..SpecControl::default() };
    c.control_work_spec("off", on(false)).await.unwrap();
    c.control_work_spec("plain", on(true)).await.unwrap();
    assert!(work(c, "w", 1).await.is_empty());
    c.control_work_spec("off", on(true)).await.unwrap();
    assert_eq!(work(c, "w", 1).await[0].spec, "off");
}

// --------------------------------------------------------- 12. chaining --

/// A map output creates one unit per entry in the `then` spec.
pub async fn chain_map_output<C: Coordinate>(c: &C, _clock: &MockClock) {
    finish_with_output(c, "b", map(&[("x", data(1)), ("y", data(2))])).await;
    let units = c.get_work_units("b", UnitQuery::default()).await.unwrap();
    assert_eq!(units, vec![(UnitKey::text("x"), data(1)), (UnitKey::text("y"), data(2))]);
    assert_eq!(counts(c, "b").await, count_map(&[(UnitStatus::Available, 2)]));
}

/// A list of keys creates units with empty data; unparseable items are skipped.
pub async fn chain_list_of_keys<C: Coordinate>(c: &C, _clock: &MockClock) {
    let output = list(vec![text("x"), int(5), list(vec![text("z")]), bytes(b"y".to_vec())]);
    finish_with_output(c, "b", output).await;
    let units = c.get_work_units("b", UnitQuery::default()).await.unwrap();
    assert_eq!(units, vec![(UnitKey::text("x"), map(&[])), (UnitKey::bytes(*b"y"), map(&[]))]);
}

/// A list of [key, data] items (lists or tuples) creates units with that data.
pub async fn chain_list_of_pairs<C: Coordinate>(c: &C, _clock: &MockClock) {
    let output = list(vec![list(vec![text("x"), data(1)]), tuple(vec![text("y"), data(2)])]);
    finish_with_output(c, "b", output).await;
    let units = c.get_work_units("b", UnitQuery::default()).await.unwrap();
    assert_eq!(units, vec![(UnitKey::text("x"), data(1)), (UnitKey::text("y"), data(2))]);
}

/// [key, data, {priority, delay}] items honour the priority and the delay.
pub async fn chain_items_with_meta<C: Coordinate>(c: &C, clock: &MockClock) {
    let output = list(vec![
        list(vec![text("x"), data(1), map(&[("priority", int(5))])]),
        list(vec![text("y"), data(2), map(&[("delay", int(30))])]),
        list(vec![text("z"), data(3)]),
    ]);
    finish_with_output(c, "b", output).await;
    assert_eq!(counts(c, "b").await, count_map(&[(UnitStatus::Available, 2), (UnitStatus::Delayed, 1)]));
    assert_eq!(keys_of(&work_from(c, "w", "b", 10).await), ["x", "z"]);
    clock.advance(31.0);
    assert_eq!(keys_of(&work_from(c, "w", "b", 10).await), ["y"]);
}

/// [key, data, meta, priority] items take the fourth element as the priority.
pub async fn chain_items_with_priority<C: Coordinate>(c: &C, _clock: &MockClock) {
    let output = list(vec![
        list(vec![text("x"), map(&[]), Value::Null, int(1)]),
        list(vec![text("y"), map(&[]), map(&[]), Value::Float(7.5)]),
        list(vec![text("z"), map(&[]), map(&[("priority", int(100))]), int(2)]),
        list(vec![text("w"), map(&[]), Value::Null, Value::Null]),
    ]);
    finish_with_output(c, "b", output).await;
    assert_eq!(hand_out_order(c, "b").await, ["y", "z", "x", "w"]);
}

/// A map output with a non-map value creates nothing.
pub async fn chain_map_with_a_bad_value_creates_nothing<C: Coordinate>(c: &C, _clock: &MockClock) {
    finish_with_output(c, "b", map(&[("x", data(1)), ("y", int(3))])).await;
    assert_eq!(counts(c, "b").await, count_map(&[]));
}

/// Chaining to a missing spec is ignored and the finish still succeeds.
pub async fn chain_to_a_missing_spec_is_ignored<C: Coordinate>(c: &C, _clock: &MockClock) {
    finish_with_output(c, "ghost", list(vec![text("x")])).await;
    assert_eq!(c.get_work_spec("ghost").await, Err(Error::NoSuchWorkSpec("ghost".into())));
    assert_eq!(counts(c, "b").await, count_map(&[]));
    assert_eq!(counts(c, "a").await, count_map(&[(UnitStatus::Finished, 1)]));
}

/// Only a finish chains: failing, expiring or renewing with output does not.
pub async fn chain_only_on_finish<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("a", &[("then", text("b"))])).await.unwrap();
    c.set_work_spec(spec("b", &[])).await.unwrap();
    add_keys(c, "a", &["f", "r", "x"]).await;
    work_from(c, "w", "a", 3).await;
    let out = |k: &str| map(&[("output", list(vec![text(k)]))]);
    assert!(set_status(c, "a", "f", UnitStatus::Failed, Some(out("f"))).await);
    assert!(renew(c, "a", "r", 100.0, Some(out("r"))).await);
    assert!(set_status(c, "a", "x", UnitStatus::Available, Some(out("x"))).await);
    assert_eq!(counts(c, "b").await, count_map(&[]));
    assert!(set_status(c, "a", "r", UnitStatus::Finished, None).await);
    assert_eq!(unit_keys(c, "b", UnitQuery::default()).await, ["r"]);
}

/// Chaining reads `output` from the final data: the attempt's, else the unit's.
pub async fn chain_uses_the_final_data<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("a", &[("then", text("b"))])).await.unwrap();
    c.set_work_spec(spec("b", &[])).await.unwrap();
    let own = map(&[("output", list(vec![text("from_unit")]))]);
    c.add_work_units("a", vec![NewUnit::new(b"u".to_vec(), own)]).await.unwrap();
    work_from(c, "w", "a", 1).await;
    assert!(set_status(c, "a", "u", UnitStatus::Finished, None).await);
    assert_eq!(unit_keys(c, "b", UnitQuery::default()).await, ["from_unit"]);
    add_keys(c, "a", &["v"]).await;
    work_from(c, "w", "a", 1).await;
    assert!(renew(c, "a", "v", 100.0, Some(map(&[("output", list(vec![text("from_renew")]))]))).await);
    assert!(set_status(c, "a", "v", UnitStatus::Finished, None).await);
    assert_eq!(unit_keys(c, "b", UnitQuery::default()).await, ["from_renew", "from_unit"]);
}

/// Chained units upsert: a finished unit in the target spec becomes available again.
pub async fn chain_upserts_into_the_target<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("b", &[])).await.unwrap();
    add_keys(c, "b", &["x"]).await;
    work_from(c, "w", "b", 1).await;
    assert!(set_status(c, "b", "x", UnitStatus::Finished, Some(data(9))).await);
    finish_with_output(c, "b", map(&[("x", data(1))])).await;
    let i = info(c, "b", "x").await;
    assert_eq!((i.status, i.worker_id), (UnitStatus::Available, None));
    assert_eq!(unit_data(c, "b", "x").await, data(1));
}

// ------------------------------------------------------ 13. del units --

/// DelQuery::All deletes every unit and returns the count.
pub async fn del_all_units<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    work(c, "w", 1).await;
    assert_eq!(c.del_work_units("s", DelQuery::All).await.unwrap(), 3);
    assert_eq!(counts(c, "s").await, count_map(&[]));
    assert!(work(c, "w", 1).await.is_empty());
    assert_eq!(c.del_work_units("s", DelQuery::All).await.unwrap(), 0);
    assert_eq!(c.del_work_units("zz", DelQuery::All).await, Err(Error::NoSuchWorkSpec("zz".into())));
}

/// DelQuery::Keys deletes the named units, optionally only those in a state.
pub async fn del_units_by_key_and_state<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d", "e"]).await;
    work(c, "w", 2).await;
    let k = |keys: &[&str]| keys.iter().map(|k| k.as_bytes().to_vec()).collect::<Vec<Key>>();
    let n = c.del_work_units("s", DelQuery::Keys(k(&["a", "c", "zz"]), Some(UnitStatus::Pending))).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["b", "c", "d", "e"]);
    let n = c.del_work_units("s", DelQuery::Keys(k(&["c", "e", "zz", "c"]), None)).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["b", "d"]);
    let n = c.del_work_units("s", DelQuery::Keys(k(&["b", "d"]), Some(UnitStatus::Finished))).await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(c.del_work_units("s", DelQuery::Keys(vec![], None)).await.unwrap(), 0);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["b", "d"]);
}

/// DelQuery::State deletes the units in that state; Available leaves delayed units.
pub async fn del_units_by_state<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d", "e"]).await;
    let mut late = NewUnit::new(b"f".to_vec(), data(0));
    late.delay = 60.0;
    c.add_work_units("s", vec![late]).await.unwrap();
    work(c, "w", 2).await;
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    assert_eq!(c.del_work_units("s", DelQuery::State(UnitStatus::Available)).await.unwrap(), 3);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["a", "b", "f"]);
    assert_eq!(c.del_work_units("s", DelQuery::State(UnitStatus::Finished)).await.unwrap(), 1);
    assert_eq!(c.del_work_units("s", DelQuery::State(UnitStatus::Failed)).await.unwrap(), 0);
    assert_eq!(c.del_work_units("s", DelQuery::State(UnitStatus::Pending)).await.unwrap(), 1);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["f"]);
}

/// Deleting a pending unit makes its worker's later updates fail.
pub async fn deleted_pending_unit_cannot_be_updated<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work(c, "w", 1).await;
    assert_eq!(c.del_work_units("s", DelQuery::Keys(vec![b"a".to_vec()], None)).await.unwrap(), 1);
    let fin = UnitUpdate { status: Some(UnitStatus::Finished), ..upd() };
    assert_eq!(c.update_work_unit("s", b"a", fin).await, Err(Error::NoSuchWorkUnit(b"a".to_vec())));
    let renewal = UnitUpdate { lease_secs: 100.0, ..upd() };
    assert_eq!(c.update_work_unit("s", b"a", renewal).await, Err(Error::NoSuchWorkUnit(b"a".to_vec())));
    assert_eq!(c.get_work_unit_status("s", vec![b"a".to_vec()]).await.unwrap(), vec![None]);
}

// ---------------------------------------------------------- 14. workers --

/// Heartbeats show in the worker lists, counts, info and stats.
pub async fn heartbeat_lists_the_worker<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.worker_heartbeat(heartbeat("w1", "RUN", 60.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("w2", "IDLE", 60.0, None)).await.unwrap();
    let modes: BTreeMap<String, String> =
        [("w1", "RUN"), ("w2", "IDLE")].iter().map(|(w, m)| (w.to_string(), m.to_string())).collect();
    assert_eq!(c.list_worker_modes().await.unwrap(), modes);
    let by_mode: BTreeMap<String, u64> = [("IDLE".to_string(), 1), ("RUN".to_string(), 1)].into();
    assert_eq!(c.mode_counts().await.unwrap(), by_mode);
    assert_eq!(c.get_worker_info("w1").await.unwrap(), Some(map(&[("worker_id", text("w1"))])));
    assert_eq!(c.get_worker_info("nobody").await.unwrap(), None);
    let stats = WorkerStats { num_workers: 2, num_children: 0, num_expirable: 2 };
    assert_eq!(c.worker_stats().await.unwrap(), stats);
    let mut again = heartbeat("w1", "IDLE", 60.0, None);
    again.data = map(&[("pid", int(7))]);
    c.worker_heartbeat(again).await.unwrap();
    assert_eq!(c.mode_counts().await.unwrap(), [("IDLE".to_string(), 2)].into());
    assert_eq!(c.get_worker_info("w1").await.unwrap(), Some(map(&[("pid", int(7))])));
}

/// An unregistered worker leaves the live lists.
pub async fn unregistered_worker_is_not_listed<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.worker_heartbeat(heartbeat("w1", "RUN", 60.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("w2", "RUN", 60.0, None)).await.unwrap();
    c.worker_unregister("w1").await.unwrap();
    assert_eq!(c.list_worker_modes().await.unwrap(), [("w2".to_string(), "RUN".to_string())].into());
    assert_eq!(c.mode_counts().await.unwrap(), [("RUN".to_string(), 1)].into());
    assert_eq!(c.worker_stats().await.unwrap().num_workers, 1);
    c.worker_heartbeat(heartbeat("w1", "RUN", 60.0, None)).await.unwrap();
    assert_eq!(c.worker_stats().await.unwrap().num_workers, 2);
}

/// A worker whose heartbeat expired leaves the live lists.
pub async fn expired_worker_is_not_listed<C: Coordinate>(c: &C, clock: &MockClock) {
    c.worker_heartbeat(heartbeat("w1", "RUN", 10.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("w2", "IDLE", 100.0, None)).await.unwrap();
    clock.advance(9.0);
    assert_eq!(c.worker_stats().await.unwrap().num_workers, 2);
    clock.advance(2.0);
    assert_eq!(c.list_worker_modes().await.unwrap(), [("w2".to_string(), "IDLE".to_string())].into());
    assert_eq!(c.mode_counts().await.unwrap(), [("IDLE".to_string(), 1)].into());
    let stats = WorkerStats { num_workers: 1, num_children: 0, num_expirable: 1 };
    assert_eq!(c.worker_stats().await.unwrap(), stats);
    c.worker_heartbeat(heartbeat("w1", "RUN", 10.0, None)).await.unwrap();
    assert_eq!(c.worker_stats().await.unwrap().num_workers, 2);
}

/// A child's pending units are listed under its parent; a child without any has an empty list.
pub async fn child_work_units_are_listed_under_the_parent<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.worker_heartbeat(heartbeat("p", "RUN", 600.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("c1", "RUN", 600.0, Some("p"))).await.unwrap();
    c.worker_heartbeat(heartbeat("c2", "RUN", 600.0, Some("p"))).await.unwrap();
    assert_eq!(c.worker_stats().await.unwrap(), WorkerStats { num_workers: 3, num_children: 2, num_expirable: 3 });
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b"]).await;
    assert_eq!(keys_of(&work_leased(c, "c1", 100.0).await), ["a"]);
    let children = c.get_child_work_units("p").await.unwrap();
    let unit = ChildUnit {
        spec: "s".into(),
        key: UnitKey::bytes(*b"a"),
        data: data(0),
        worker_id: "c1".into(),
        expires: c.now().plus_secs(100.0),
    };
    let want: BTreeMap<String, Vec<ChildUnit>> = [("c1".to_string(), vec![unit]), ("c2".to_string(), vec![])].into();
    assert_eq!(children, want);
    assert!(c.get_child_work_units("c1").await.unwrap().is_empty());
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    let empty: BTreeMap<String, Vec<ChildUnit>> = [("c1".to_string(), vec![]), ("c2".to_string(), vec![])].into();
    assert_eq!(c.get_child_work_units("p").await.unwrap(), empty);
}

/// A child's units leave the parent's list once their lease has expired.
pub async fn child_work_units_drop_expired_leases<C: Coordinate>(c: &C, clock: &MockClock) {
    c.worker_heartbeat(heartbeat("p", "RUN", 600.0, None)).await.unwrap();
    c.worker_heartbeat(heartbeat("c1", "RUN", 600.0, Some("p"))).await.unwrap();
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    work_leased(c, "c1", 10.0).await;
    assert_eq!(c.get_child_work_units("p").await.unwrap()["c1"].len(), 1);
    clock.advance(11.0);
    assert_eq!(c.get_child_work_units("p").await.unwrap(), [("c1".to_string(), vec![])].into());
}

/// An empty-string parent means no parent.
pub async fn empty_parent_means_no_parent<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.worker_heartbeat(heartbeat("w", "RUN", 60.0, Some(""))).await.unwrap();
    assert_eq!(c.worker_stats().await.unwrap(), WorkerStats { num_workers: 1, num_children: 0, num_expirable: 1 });
    assert_eq!(c.list_worker_modes().await.unwrap(), [("w".to_string(), "RUN".to_string())].into());
    assert!(c.get_child_work_units("").await.unwrap().is_empty());
}

// ---------------------------------------------------------- 15. archive --

/// archive with keep = 1 leaves only the newest finished and the newest failed unit.
pub async fn archive_keeps_the_newest<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d", "e"]).await;
    work(c, "w", 5).await;
    for (k, st) in [("c", UnitStatus::Finished), ("a", UnitStatus::Finished), ("b", UnitStatus::Finished)] {
        assert!(set_status(c, "s", k, st, None).await);
        clock.advance(1.0);
    }
    for k in ["e", "d"] {
        assert!(set_status(c, "s", k, UnitStatus::Failed, None).await);
        clock.advance(1.0);
    }
    add_keys(c, "s", &["x", "y"]).await;
    assert_eq!(keys_of(&work(c, "w", 1).await), ["x"]);
    let removed = c.archive(ArchivePolicy { keep: Some(1), older_than: None }).await.unwrap();
    assert_eq!(removed, 3);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["b", "d", "x", "y"]);
    use UnitStatus::*;
    assert_eq!(counts(c, "s").await, count_map(&[(Available, 1), (Pending, 1), (Finished, 1), (Failed, 1)]));
    assert_eq!(c.archive(ArchivePolicy { keep: Some(0), older_than: None }).await.unwrap(), 2);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["x", "y"]);
}

/// archive with older_than removes only finished and failed units completed that long ago.
pub async fn archive_removes_old_units<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c"]).await;
    work(c, "w", 3).await;
    assert!(set_status(c, "s", "a", UnitStatus::Finished, None).await);
    assert!(set_status(c, "s", "b", UnitStatus::Failed, None).await);
    clock.advance(100.0);
    assert!(set_status(c, "s", "c", UnitStatus::Finished, None).await);
    add_keys(c, "s", &["x", "y"]).await;
    assert_eq!(keys_of(&work_leased(c, "w", 10_000.0).await), ["x"]);
    clock.advance(10.0);
    let removed = c.archive(ArchivePolicy { older_than: Some(50.0), keep: None }).await.unwrap();
    assert_eq!(removed, 2);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["c", "x", "y"]);
    clock.advance(1000.0);
    assert_eq!(c.archive(ArchivePolicy { older_than: Some(50.0), keep: None }).await.unwrap(), 1);
    assert_eq!(c.archive(ArchivePolicy { older_than: Some(0.0), keep: Some(0) }).await.unwrap(), 0);
    assert_eq!(unit_keys(c, "s", UnitQuery::default()).await, ["x", "y"]);
    assert_eq!(status(c, "s", "x").await, UnitStatus::Pending);
}

/// Records of workers gone for over a day, holding nothing, are dropped;
/// live workers and workers holding units are kept.
pub async fn long_gone_workers_are_forgotten<C: Coordinate>(c: &C, clock: &MockClock) {
    let hb = |w: &str| Heartbeat {
        worker: w.into(),
        mode: "RUN".into(),
        expire_secs: 600.0,
        data: Value::Map(vec![(text("pid"), int(1))]),
        parent: None,
    };
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a"]).await;
    c.worker_heartbeat(hb("gone")).await.unwrap();
    c.worker_unregister("gone").await.unwrap();
    c.worker_heartbeat(hb("holder")).await.unwrap();
    assert_eq!(work(c, "holder", 1).await.len(), 1);
    clock.advance(3600.0);
    c.worker_unregister("someone").await.unwrap();
    assert!(c.get_worker_info("gone").await.unwrap().is_some(), "kept within the grace period");
    clock.advance(WORKER_RECORD_GRACE);
    c.get_work("holder", GetWork { lease_secs: 1e9, ..gw() }).await.unwrap();
    c.update_work_unit("s", b"a", UnitUpdate { lease_secs: 1e9, ..upd() }).await.unwrap();
    c.worker_heartbeat(hb("live")).await.unwrap();
    c.worker_unregister("someone-else").await.unwrap();
    assert_eq!(c.get_worker_info("gone").await.unwrap(), None, "forgotten after the grace period");
    assert!(c.get_worker_info("live").await.unwrap().is_some());
    let held = c.get_work_unit_status("s", vec![b"a".to_vec()]).await.unwrap();
    assert_eq!(held[0].as_ref().and_then(|i| i.worker_id.clone()).as_deref(), Some("holder"));
}

/// Expands to one `#[tokio::test]` per conformance rule for a backend
/// factory: an expression callable as `factory(clock: MockClock)` that
/// returns a future of a fresh backend.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@rules $factory;
            spec_round_trip_and_listing,
            spec_listing_start_is_inclusive,
            spec_reset_replaces_data_and_metadata,
            spec_delete_removes_spec_and_units,
            spec_clear_returns_the_count,
            spec_without_valid_name_is_refused,
            spec_with_mistyped_special_keys_is_refused,
            spec_weight_derivation,
            spec_meta_reports_the_derived_metadata,
            spec_meta_counts_available_and_pending,
            control_pause_and_resume,
            control_continuous_needs_declaration,
            control_changes_show_in_meta,
            units_round_trip_sorted_by_key,
            add_units_later_duplicates_win,
            readding_replaces_data_and_resets_priority,
            readding_done_units_makes_them_available,
            readding_pending_unit_keeps_its_attempt,
            unit_query_start_is_exclusive_and_limit_caps,
            unit_query_filters_by_state,
            unit_query_by_keys,
            effective_data_follows_the_active_attempt,
            binary_keys_sort_bytewise,
            keys_keep_their_string_type,
            readding_a_key_as_the_other_type_switches_its_answer,
            spec_values_keep_their_string_type,
            unit_status_is_none_for_unknown_keys,
            units_by_priority_then_key,
            fractional_and_negative_priorities,
            prioritize_set_and_adjust,
            prioritize_applies_to_pending_units,
            delayed_unit_waits_for_its_delay,
            delayed_unit_lets_others_go_first,
            counts_are_exact_and_omit_zeros,
            get_work_creates_a_leased_attempt,
            now_follows_the_clock,
            expired_lease_frees_the_unit,
            expired_lease_is_seen_by_get_work,
            renew_extends_the_lease_from_now,
            non_positive_lease_releases_the_unit,
            finish_records_the_final_data,
            fail_records_the_traceback,
            retry_restores_the_original_data,
            finished_then_failed_is_a_noop,
            failed_then_finished_wins,
            pending_to_available_expires_the_attempt,
            update_of_missing_unit_or_spec_fails,
            finishing_an_available_unit_forces_an_attempt,
            updating_an_available_unit_replaces_its_data,
            pending_on_an_available_unit_starts_an_attempt,
            done_units_cannot_become_pending,
            max_running_caps_pending_units,
            max_getwork_caps_one_call,
            max_jobs_units_come_from_one_spec,
            max_retries_fails_the_third_attempt,
            max_retries_moves_on_to_the_next_unit,
            scheduler_skips_paused_specs,
            scheduler_matches_runtimes,
            scheduler_skips_specs_at_max_running,
            scheduler_skips_specs_without_weight,
            scheduler_honours_work_spec_names,
            scheduler_priority_beats_weight,
            scheduler_pending_counts_follow_weights,
            continuous_spec_yields_a_synthetic_unit,
            continuous_waits_for_pending_and_available_units,
            continuous_interval_gates_synthetic_units,
            continuous_needs_a_running_continuous_spec,
            chain_map_output,
            chain_list_of_keys,
            chain_list_of_pairs,
            chain_items_with_meta,
            chain_items_with_priority,
            chain_map_with_a_bad_value_creates_nothing,
            chain_to_a_missing_spec_is_ignored,
            chain_only_on_finish,
            chain_uses_the_final_data,
            chain_upserts_into_the_target,
            del_all_units,
            del_units_by_key_and_state,
            del_units_by_state,
            deleted_pending_unit_cannot_be_updated,
            heartbeat_lists_the_worker,
            unregistered_worker_is_not_listed,
            long_gone_workers_are_forgotten,
            expired_worker_is_not_listed,
            child_work_units_are_listed_under_the_parent,
            child_work_units_drop_expired_leases,
            empty_parent_means_no_parent,
            archive_keeps_the_newest,
            archive_removes_old_units,
        );
    };
    (@rules $factory:expr; $($rule:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $rule() {
                let clock = $crate::clock::MockClock::new();
                let backend = ($factory)(clock.clone()).await;
                $crate::conformance::$rule(&backend, &clock).await;
            }
        )*
    };
}
