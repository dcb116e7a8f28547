//! Arbitrary CBOR values biased toward what Coordinate clients send: a
//! small vocabulary of spec names, unit keys, worker ids and option keys
//! (so that calls meet each other's state), small integers, awkward
//! floats, tuples, and maps keyed by text or bytes. Pure noise would only
//! exercise the parameter checks; plausible shapes reach the backend.

use arbitrary::{Result, Unstructured};
use cborrpc::value::{Integer, Value, TAG_TUPLE, TAG_UUID};

pub const SPECS: &[&str] = &["s1", "s2", "s3", ""];
pub const KEYS: &[&str] = &["k1", "k2", "k3", "", "k\u{e9}"];
pub const WORKERS: &[&str] = &["w1", "w2", "w3", ""];
pub const LABELS: &[&str] = &["a", "b", "c", ""];
/// Option and spec-map keys the methods read.
pub const OPTION_KEYS: &[&str] = &[
    "max_jobs",
    "work_unit_keys",
    "status",
    "lease_time",
    "priority",
    "adjustment",
    "work_spec_names",
    "limit",
    "start",
    "state",
    "all",
    "continuous",
    "weight",
    "interval",
    "max_running",
    "older_than",
    "keep",
    "data",
    "worker_id",
    "available_gb",
    "name",
    "then",
    "min_gb",
    "module",
    "run_function",
    "max_getwork",
    "traceback",
    "output",
    "MAX_JOBS",
];

const FLOATS: &[f64] = &[0.0, -0.0, 0.5, 1.0, -1.0, 1e300, -1e300, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 86401.0];
const INTS: &[i64] = &[0, 1, 2, 3, 4, 5, 6, -1, 10, 1000, i64::MAX, i64::MIN, 86_401, 1 << 40];

/// Some string from `vocab` as text (mostly) or bytes, or a short arbitrary one.
pub fn name(u: &mut Unstructured, vocab: &[&str]) -> Result<Value> {
    let s: String =
        if u.ratio(7, 8)? { (*u.choose(vocab)?).into() } else { u.arbitrary::<&str>()?.chars().take(16).collect() };
    Ok(if u.ratio(3, 4)? { Value::Text(s) } else { Value::Bytes(s.into_bytes()) })
}

pub fn integer(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Value::Integer((*u.choose(INTS)?).into()),
        1 => Value::Integer(u.arbitrary::<i64>()?.into()),
        // Beyond i64: CBOR carries up to u64::MAX and down to -2^64.
        2 => Value::Integer(Integer::from(u.arbitrary::<u64>()? | 1 << 63)),
        _ => Value::Integer(u.int_in_range(-2i64..=12)?.into()),
    })
}

pub fn float(u: &mut Unstructured) -> Result<Value> {
    Ok(Value::Float(if u.ratio(3, 4)? { *u.choose(FLOATS)? } else { u.arbitrary()? }))
}

/// A number as clients send them: integer or float.
pub fn number(u: &mut Unstructured) -> Result<Value> {
    if u.ratio(2, 3)? {
        integer(u)
    } else {
        float(u)
    }
}

/// A sequence as a list or a tuple.
pub fn seq(u: &mut Unstructured, items: Vec<Value>) -> Result<Value> {
    Ok(if u.ratio(3, 4)? { Value::Array(items) } else { Value::Tag(TAG_TUPLE, Box::new(Value::Array(items))) })
}

/// Up to `max` items made by `f`.
pub fn some<F>(u: &mut Unstructured, max: usize, mut f: F) -> Result<Vec<Value>>
where
    F: FnMut(&mut Unstructured) -> Result<Value>,
{
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| f(u)).collect()
}

/// Any value, `depth` levels of containers at most.
pub fn value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let top = if depth == 0 { 7 } else { 11 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 | 3 => integer(u)?,
        4 => float(u)?,
        5 => name(u, KEYS)?,
        6 => name(u, SPECS)?,
        7 => name(u, OPTION_KEYS)?,
        8 => {
            let items = some(u, 4, |u| value(u, depth - 1))?;
            seq(u, items)?
        }
        9 => map(u, depth - 1)?,
        10 => Value::Tag(TAG_UUID, Box::new(Value::Bytes(u.arbitrary::<[u8; 16]>()?.to_vec()))),
        _ => Value::Tag(u.arbitrary()?, Box::new(value(u, depth - 1)?)),
    })
}

/// A map with option-like keys and any values.
pub fn map(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let entries = (0..u.int_in_range(0..=4)?)
        .map(|_| Ok((name(u, OPTION_KEYS)?, value(u, depth)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Value::Map(entries))
}

/// A list of unit keys.
pub fn keys(u: &mut Unstructured) -> Result<Value> {
    let items = some(u, 4, |u| name(u, KEYS))?;
    seq(u, items)
}

/// Lock key paths: a list of lists of labels.
pub fn paths(u: &mut Unstructured) -> Result<Value> {
    let items = some(u, 3, |u| {
        let labels = some(u, 3, |u| if u.ratio(7, 8)? { name(u, LABELS) } else { value(u, 1) })?;
        seq(u, labels)
    })?;
    seq(u, items)
}

/// The value of option `key`, usually of the type the method expects.
pub fn option_value(u: &mut Unstructured, key: &str) -> Result<Value> {
    if u.ratio(1, 8)? {
        return value(u, 2);
    }
    match key {
        "work_unit_keys" => keys(u),
        "work_spec_names" => {
            let items = some(u, 3, |u| name(u, SPECS))?;
            seq(u, items)
        }
        "status" | "state" => Ok(Value::Integer(u.int_in_range(-1i64..=6)?.into())),
        "all" | "continuous" => Ok(Value::Bool(u.arbitrary()?)),
        "start" | "then" | "name" => name(u, if key == "start" { KEYS } else { SPECS }),
        "worker_id" => name(u, WORKERS),
        "data" | "output" => map(u, 2),
        _ => number(u),
    }
}

/// An options map: keys from the vocabulary, values mostly well-typed.
pub fn options(u: &mut Unstructured) -> Result<Value> {
    let mut entries = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let key = *u.choose(OPTION_KEYS)?;
        let k = if u.ratio(7, 8)? { Value::Text(key.into()) } else { Value::Bytes(key.into()) };
        entries.push((k, option_value(u, key)?));
    }
    Ok(Value::Map(entries))
}
