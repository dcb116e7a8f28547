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

use cborrpc::value::{int, text};
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
    c.get_work(worker, GetWork { max_jobs: n, ..GetWork::default() }).await.unwrap()
}

/// Keys of grants, as strings.
pub fn keys_of(grants: &[WorkGrant]) -> Vec<String> {
    grants.iter().map(|g| String::from_utf8_lossy(&g.key).into_owned()).collect()
}

// ---------------------------------------------------------------- rules --

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

/// Units are handed out by priority, then key.
pub async fn units_by_priority_then_key<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut units: Vec<NewUnit> = ["b", "a", "d", "c"].iter().map(|k| NewUnit::new(k.as_bytes().to_vec(), data(0))).collect();
    units[2].priority = 5.0;
    c.add_work_units("s", units).await.unwrap();
    assert_eq!(keys_of(&work(c, "w", 10).await), ["d", "a", "b", "c"]);
}

/// Expands to one `#[tokio::test]` per conformance rule for a backend
/// factory: an expression callable as `factory(clock: MockClock)` that
/// returns a future of a fresh backend.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@rules $factory;
            spec_round_trip_and_listing,
            units_by_priority_then_key,
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
