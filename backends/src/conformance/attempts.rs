//! Attempts: leases, renewal, expiry and the status transitions of
//! `update_work_unit`.

use cborrpc::value::{int, text};

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

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
