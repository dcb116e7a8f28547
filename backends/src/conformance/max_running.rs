//! The caps on handing out work: `max_running`, `max_getwork`, `max_jobs`.

use cborrpc::value::int;

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

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
            .get_work("w", GetWork { max_jobs: 3, work_spec_names: ["x".to_string(), "y".to_string()].into(), ..gw() })
            .await
            .unwrap();
        assert_eq!(grants.len(), 3);
        assert!(grants.iter().all(|g| g.spec == grants[0].spec), "{grants:?}");
    }
}
