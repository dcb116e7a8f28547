//! `del_work_units` by all, keys and state.

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

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
