//! Work units: upsert by key, queries, effective data, the string type of
//! keys, and counts per status.

use cborrpc::value::{bytes, text};
use cborrpc::Value;

use super::fixture::*;
use crate::clock::MockClock;
use crate::model::*;
use crate::Coordinate;

// ---------------------------------------------------------------- units --

/// get_work_unit_status reports attempts made and the priority.
pub async fn unit_status_counts_attempts_and_shows_priority<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    let mut u = NewUnit::new(b"u".to_vec(), data(0));
    u.priority = 2.5;
    c.add_work_units("s", vec![u]).await.unwrap();
    let i = info(c, "s", "u").await;
    assert_eq!((i.attempts, i.priority), (0, 2.5));
    assert_eq!(keys_of(&work(c, "w", 1).await), ["u"]);
    assert!(set_status(c, "s", "u", UnitStatus::Failed, None).await);
    assert!(set_status(c, "s", "u", UnitStatus::Available, None).await);
    assert_eq!(keys_of(&work(c, "w", 1).await), ["u"]);
    let i = info(c, "s", "u").await;
    assert_eq!((i.status, i.attempts), (UnitStatus::Pending, 2));
    c.prioritize_work_units("s", vec![b"u".to_vec()], PriorityChange::Set(-1.0)).await.unwrap();
    assert_eq!(info(c, "s", "u").await.priority, -1.0);
}

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

/// get_work_units `states` filters by status; Available excludes delayed
/// units; statuses no unit is in find nothing.
pub async fn unit_query_filters_by_state<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "b", "c", "d"]).await;
    let mut late = NewUnit::new(b"e".to_vec(), data(0));
    late.delay = 60.0;
    c.add_work_units("s", vec![late]).await.unwrap();
    assert!(unit_keys(c, "s", in_states(&[UnitStatus::Pending, UnitStatus::Failed])).await.is_empty());
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

/// get_work_units `prefix` keeps the keys that begin with it, with `start`
/// (exclusive), `limit` and `states`, bytes `0xff` included.
pub async fn unit_query_by_prefix<C: Coordinate>(c: &C, _clock: &MockClock) {
    c.set_work_spec(spec("s", &[])).await.unwrap();
    add_keys(c, "s", &["a", "ab", "abc", "abd", "ac", "b", "ba"]).await;
    let binary = [b"\xff".to_vec(), b"\xff\xff".to_vec(), b"\xff\x00".to_vec(), b"\xfe\xff".to_vec()];
    c.add_work_units("s", binary.iter().map(|k| NewUnit::new(k.clone(), data(0))).collect()).await.unwrap();
    let q = |prefix: &[u8], start: Option<&[u8]>, limit| UnitQuery {
        prefix: Some(prefix.to_vec()),
        start: start.map(<[u8]>::to_vec),
        limit,
        ..UnitQuery::default()
    };
    assert_eq!(unit_keys(c, "s", q(b"ab", None, 10)).await, ["ab", "abc", "abd"]);
    assert_eq!(unit_keys(c, "s", q(b"ab", None, 2)).await, ["ab", "abc"]);
    assert_eq!(unit_keys(c, "s", q(b"ab", Some(b"abc"), 10)).await, ["abd"]);
    assert_eq!(unit_keys(c, "s", q(b"ab", Some(b"a"), 10)).await, ["ab", "abc", "abd"]);
    assert!(unit_keys(c, "s", q(b"ab", Some(b"b"), 10)).await.is_empty());
    assert!(unit_keys(c, "s", q(b"zz", None, 10)).await.is_empty());
    assert_eq!(unit_keys(c, "s", q(b"", Some(b"b"), 2)).await, ["ba", "\u{fffd}\u{fffd}"]);
    let raw = |query| async move {
        c.get_work_units("s", query).await.unwrap().into_iter().map(|(k, _)| k.bytes).collect::<Vec<Key>>()
    };
    assert_eq!(raw(q(b"\xff", None, 10)).await, [b"\xff".to_vec(), b"\xff\x00".to_vec(), b"\xff\xff".to_vec()]);
    assert_eq!(raw(q(b"\xff", Some(b"\xff\x00"), 10)).await, [b"\xff\xff".to_vec()]);
    assert!(unit_keys(c, "s", q(b"\xff\xff\xff", None, 10)).await.is_empty());
    assert_eq!(keys_of(&work_from(c, "w", "s", 1).await), ["a"]);
    assert_eq!(keys_of(&work_from(c, "w", "s", 1).await), ["ab"]);
    let pending = UnitQuery { states: Some(vec![UnitStatus::Pending]), ..q(b"a", None, 10) };
    assert_eq!(unit_keys(c, "s", pending).await, ["a", "ab"]);
    let pending = UnitQuery { states: Some(vec![UnitStatus::Pending]), ..q(b"ab", None, 10) };
    assert_eq!(unit_keys(c, "s", pending).await, ["ab"]);
    let q = UnitQuery { prefix: Some(b"a".to_vec()), ..UnitQuery::default() };
    assert_eq!(c.get_work_units("zz", q).await, Err(Error::NoSuchWorkSpec("zz".into())));
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

// --------------------------------------------------------------- counts --

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
