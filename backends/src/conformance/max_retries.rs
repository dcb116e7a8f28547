//! `max_retries`: a unit handed out too often fails instead.

use cborrpc::value::{int, text};

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

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
