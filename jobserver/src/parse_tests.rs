//! Decoding alone, with no backend: each operation's `parse` turns CBOR
//! parameters into typed fields, applying the Python client's defaults.

use backends::model::{PriorityChange, UnitStatus};
use cborrpc::value::{int, text, Value};

use crate::error::ErrorKind;
use crate::op::Operation;
use crate::units::{DelWorkUnits, GetWorkUnits, PrioritizeWorkUnits};
use crate::wire::{DEFAULT_GET_WORK_LEASE, DEFAULT_UPDATE_LEASE, MAX_LEASE};
use crate::work::{GetWork, UpdateWorkUnit};

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

#[test]
fn get_work_defaults_and_lease_bounds() {
    let op = GetWork::parse(vec![text("w")]).unwrap();
    assert_eq!((op.worker.as_str(), op.options.max_jobs, op.options.lease_secs), ("w", 1, DEFAULT_GET_WORK_LEASE));
    let op = GetWork::parse(vec![text("w"), map([("lease_time", Value::Float(0.5)), ("max_jobs", int(0))])]).unwrap();
    assert_eq!((op.options.max_jobs, op.options.lease_secs), (1, DEFAULT_GET_WORK_LEASE));
    let op = GetWork::parse(vec![text("w"), map([("lease_time", int(1 << 40)), ("MAX_JOBS", int(7))])]).unwrap();
    assert_eq!((op.options.max_jobs, op.options.lease_secs), (7, MAX_LEASE));
    let names = map([("work_spec_names", Value::Array(vec![text("b"), Value::Bytes(b"a".to_vec()), text("b")]))]);
    let op = GetWork::parse(vec![text("w"), names]).unwrap();
    assert_eq!(op.options.work_spec_names.iter().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn update_work_unit_decodes_status_lease_and_data() {
    let op = UpdateWorkUnit::parse(vec![text("s"), Value::Bytes(vec![0xff]), map([("status", int(4))])]).unwrap();
    assert_eq!(
        (op.key, op.update.status, op.update.lease_secs),
        (vec![0xff], Some(UnitStatus::Finished), DEFAULT_UPDATE_LEASE)
    );
    let bad = UpdateWorkUnit::parse(vec![text("s"), text("k"), map([("status", int(2))])]).unwrap_err();
    assert_eq!((bad.kind(), bad.to_string()), (ErrorKind::InvalidRequest, "update_work_unit invalid status".into()));
    let bad = UpdateWorkUnit::parse(vec![text("s"), text("k"), map([("data", int(1))])]).unwrap_err();
    assert_eq!(bad.to_string(), "data: expected a map, got integer");
}

#[test]
fn unit_queries_and_deletions() {
    let op = GetWorkUnits::parse(vec![text("s"), map([("state", Value::Array(vec![int(1), int(5)]))])]).unwrap();
    assert_eq!(op.query.states, Some(vec![UnitStatus::Available, UnitStatus::Failed]));
    let op = GetWorkUnits::parse(vec![text("s"), map([("state", int(0)), ("limit", int(-3))])]).unwrap();
    assert_eq!((op.query.states, op.query.limit), (None, 1000));
    assert_eq!(DelWorkUnits::parse(vec![text("s"), map([])]).unwrap().query, None);
    let op = PrioritizeWorkUnits::parse(vec![text("s"), map([("adjustment", int(2))])]).unwrap();
    assert_eq!((op.keys, op.change), (None, PriorityChange::Adjust(2.0)));
}

#[test]
fn arity_and_types_are_checked_before_any_backend_call() {
    let e = GetWork::parse(vec![]).unwrap_err();
    assert_eq!(e.to_string(), "wrong number of parameters: expected 1 to 2, got 0");
    let e = GetWorkUnits::parse(vec![int(3), map([])]).unwrap_err();
    assert_eq!(
        (e.kind(), e.to_string()),
        (ErrorKind::InvalidRequest, "work_spec_name: expected a string, got integer".into())
    );
}
