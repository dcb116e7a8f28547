//! `retry_work_units`: failed units made available again, by key or all.

use cborrpc::value::text;

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

/// Fails the units `keys` of spec "s" (after taking them), with a traceback.
async fn fail_all<C: Coordinate>(c: &C, keys: &[&str]) {
    for k in keys {
        let tb = map(&[("traceback", text(format!("{k} broke")))]);
        assert!(set_status(c, "s", k, UnitStatus::Failed, Some(tb)).await);
    }
}

/// Named failed units become available with their original data; named
/// units in other statuses and unknown keys are left alone.
pub async fn retry_named_failed_units<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d"]).await;
    fail_all(c, &["a", "b"]).await;
    assert_eq!(keys_of(&work(c, "w", 1).await), ["c"]);
    let k = |keys: &[&str]| keys.iter().map(|k| k.as_bytes().to_vec()).collect::<Vec<Key>>();
    assert_eq!(c.retry_work_units("s", Some(k(&["a", "c", "d", "zz"]))).await.unwrap(), 1);
    use UnitStatus::*;
    assert_eq!(counts(c, "s").await, count_map(&[(Available, 2), (Pending, 1), (Failed, 1)]));
    let a = info(c, "s", "a").await;
    assert_eq!((a.status, a.worker_id, a.traceback), (Available, None, None));
    assert_eq!(unit_data(c, "s", "a").await, data(0));
    assert_eq!(c.retry_work_units("s", Some(k(&["a"]))).await.unwrap(), 0);
    assert_eq!(c.retry_work_units("zz", Some(k(&["a"]))).await, Err(Error::NoSuchWorkSpec("zz".into())));
}

/// With no keys every failed unit is retried; a delayed unit's delay still
/// holds, and the attempt count is kept for `max_retries`.
pub async fn retry_all_failed_units<C: Coordinate>(c: &C, clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d"]).await;
    let mut late = NewUnit::new(b"e".to_vec(), data(9));
    late.delay = 60.0;
    c.add_work_units("s", vec![late]).await.unwrap();
    fail_all(c, &["a", "b", "e"]).await;
    assert!(set_status(c, "s", "c", UnitStatus::Finished, None).await);
    assert_eq!(c.retry_work_units("s", None).await.unwrap(), 3);
    use UnitStatus::*;
    assert_eq!(counts(c, "s").await, count_map(&[(Available, 3), (Finished, 1), (Delayed, 1)]));
    assert_eq!(info(c, "s", "a").await.attempts, 1);
    assert_eq!(c.retry_work_units("s", None).await.unwrap(), 0);
    clock.advance(61.0);
    assert_eq!(counts(c, "s").await, count_map(&[(Available, 4), (Finished, 1)]));
}
