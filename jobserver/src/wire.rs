//! Facts of the Python client's protocol that the backends need not know:
//! status codes, the leases it assumes when it names none, and its method
//! spellings (docs/protocol.md §2.3, §3, §5.1). go-coordinate keeps the same
//! facts in `jobserver/constants.go`.

use std::borrow::Cow;

use backends::model::UnitStatus;

/// Lease given by `get_work` when the client names none (go-coordinate's
/// fixed 15 minutes).
pub const DEFAULT_GET_WORK_LEASE: f64 = 900.0;
/// Lease of an attempt renewed or created by `update_work_unit` when the
/// client names none (as in Go).
pub const DEFAULT_UPDATE_LEASE: f64 = 300.0;
/// Longest lease a client may ask for: a day.
pub const MAX_LEASE: f64 = 86_400.0;
/// Items a listing returns when the client names no limit.
pub const DEFAULT_LIST_LIMIT: usize = 1000;

/// Python's `WORK_UNIT_STATUS` codes.
pub mod status {
    /// Ready to run (also reported for delayed units).
    pub const AVAILABLE: i64 = 1;
    /// Python's BLOCKED: never produced, refused in queries.
    pub const BLOCKED: i64 = 2;
    /// Leased to a worker.
    pub const PENDING: i64 = 3;
    /// Done.
    pub const FINISHED: i64 = 4;
    /// Failed.
    pub const FAILED: i64 = 5;
    /// `count_work_units` key of delayed units (Go's extension).
    pub const DELAYED_COUNT: i64 = 0;
}

/// Python's work spec status codes (`control_work_spec`, meta).
pub mod spec_status {
    /// Runnable.
    pub const RUNNABLE: i64 = 1;
    /// Paused.
    pub const PAUSED: i64 = 2;
}

/// The code `get_work_unit_status` reports (delayed reads as available).
pub fn status_code(s: UnitStatus) -> i64 {
    match s {
        UnitStatus::Available | UnitStatus::Delayed => status::AVAILABLE,
        UnitStatus::Pending => status::PENDING,
        UnitStatus::Finished => status::FINISHED,
        UnitStatus::Failed => status::FAILED,
    }
}

/// The key `count_work_units` reports a status under (delayed is 0).
pub fn count_code(s: UnitStatus) -> i64 {
    match s {
        UnitStatus::Delayed => status::DELAYED_COUNT,
        other => status_code(other),
    }
}

/// The status a query names by code; BLOCKED and unknown codes are `None`.
pub fn status_of_code(code: i64) -> Option<UnitStatus> {
    match code {
        status::AVAILABLE => Some(UnitStatus::Available),
        status::PENDING => Some(UnitStatus::Pending),
        status::FINISHED => Some(UnitStatus::Finished),
        status::FAILED => Some(UnitStatus::Failed),
        _ => None,
    }
}

/// A method name in snake case: clients may also send `CamelCase`
/// (`GetWorkSpecMeta`), as go-coordinate accepted.
pub fn snake(method: &str) -> Cow<'_, str> {
    if !method.bytes().any(|b| b.is_ascii_uppercase()) {
        return method.into();
    }
    let mut s = String::with_capacity(method.len() + 4);
    for (i, c) in method.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s.into()
}

/// Tags the Python client reads back: bignums (2, 3) of bytes, UUIDs (37)
/// of 16 bytes, and tuples (128) of an array.
fn readable_tag(tag: u64, inner: &cborrpc::Value) -> bool {
    use cborrpc::Value;
    match (tag, inner) {
        (2 | 3, Value::Bytes(_)) => true,
        (37, Value::Bytes(b)) => b.len() == 16,
        (128, Value::Array(_)) => true,
        _ => false,
    }
}

/// Checks that every value in a request is one the Python client can read
/// back, so nothing stored can break a later reply for everyone who reads
/// it (docs/protocol.md §1.6). The error names where the value is, as a
/// path into the parameters: `params[1][0]["data"]`. The walk allocates
/// nothing unless it finds something to refuse (it recurses: the decoder
/// has already bounded the nesting).
pub fn check_readable(params: &[cborrpc::Value]) -> Result<(), String> {
    let Some((v, why)) = params.iter().find_map(unreadable) else { return Ok(()) };
    let path = path_to(params, v).unwrap_or_else(|| "params".into());
    Err(format!("{path}: {why} is not accepted (the Python client could not read it back)"))
}

/// The first value in `v` the Python client could not read, and what it is.
fn unreadable(v: &cborrpc::Value) -> Option<(&cborrpc::Value, String)> {
    use cborrpc::value::type_name;
    use cborrpc::Value;
    match v {
        Value::Integer(_) | Value::Bytes(_) | Value::Float(_) | Value::Text(_) | Value::Bool(_) | Value::Null => None,
        Value::Array(items) => items.iter().find_map(unreadable),
        Value::Map(entries) => entries.iter().find_map(|(k, v)| unreadable(k).or_else(|| unreadable(v))),
        Value::Tag(tag, inner) if readable_tag(*tag, inner) => unreadable(inner),
        Value::Tag(tag, inner) => Some((v, format!("CBOR tag {tag} around {}", type_name(inner)))),
        other => Some((v, type_name(other).to_string())),
    }
}

/// Where `target` sits in `params` (found by address), for error messages.
fn path_to(params: &[cborrpc::Value], target: &cborrpc::Value) -> Option<String> {
    use cborrpc::Value;
    let mut stack: Vec<(&Value, String)> =
        params.iter().enumerate().map(|(i, v)| (v, format!("params[{i}]"))).collect();
    while let Some((v, path)) = stack.pop() {
        if std::ptr::eq(v, target) {
            return Some(path);
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().enumerate().map(|(i, v)| (v, format!("{path}[{i}]")))),
            Value::Map(entries) => {
                for (k, v) in entries {
                    let label = match k {
                        Value::Text(s) => format!("{s:?}"),
                        other => format!("<{}>", cborrpc::value::type_name(other)),
                    };
                    stack.push((k, format!("{path} (a key)")));
                    stack.push((v, format!("{path}[{label}]")));
                }
            }
            Value::Tag(_, inner) => stack.push((inner, path)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_delayed_reads_as_available() {
        for s in [UnitStatus::Available, UnitStatus::Pending, UnitStatus::Finished, UnitStatus::Failed] {
            assert_eq!(status_of_code(status_code(s)), Some(s));
        }
        assert_eq!(status_code(UnitStatus::Delayed), status::AVAILABLE);
        assert_eq!(count_code(UnitStatus::Delayed), 0);
        assert_eq!(status_of_code(status::BLOCKED), None);
    }

    #[test]
    fn camel_case_methods_become_snake_case() {
        assert_eq!(snake("GetWorkSpecMeta"), "get_work_spec_meta");
        assert_eq!(snake("get_work"), "get_work");
    }
}
