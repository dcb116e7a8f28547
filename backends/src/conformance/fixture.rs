//! Helpers the rules share: fixture values and one-line wrappers around
//! trait calls that unwrap, so each rule reads as the behaviour it checks.

use std::collections::BTreeMap;

use cborrpc::value::{int, text};
use cborrpc::Value;

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
    let opts = GetWork { max_jobs: n, work_spec_names: [name.to_string()].into(), ..gw() };
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
    let update = UnitUpdate { lease_secs, data, ..upd() };
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
