//! Work specs: set, list, delete and clear; the metadata derived from a
//! spec's special keys; `control_work_spec`.

use cborrpc::value::{int, text};
use cborrpc::Value;

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

// ---------------------------------------------------------------- specs --

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

// -------------------------------------------------------------- control --

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
