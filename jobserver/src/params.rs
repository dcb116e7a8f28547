//! Decoding RPC parameters the way go-coordinate's mapstructure did, but
//! with readable errors (docs/protocol.md §1.7).
//!
//! Strings accept byte or text strings (Python 2 sends `str` as bytes);
//! integers accept floats (truncated) and floats accept integers; `null`
//! means "not given". Option maps match their keys case-insensitively and
//! ignore unknown keys. Every failure is an invalid-request error.

use backends::model::Key;
use cborrpc::value::{as_sequence, string_bytes, type_name, Value};

use crate::error::{RpcError, RpcResult};

/// A parameter decoding result.
pub type ParamResult<T> = RpcResult<T>;

fn mismatch<T>(what: &str, expected: &str, got: &Value) -> ParamResult<T> {
    Err(RpcError::invalid(format!("{what}: expected {expected}, got {}", type_name(got))))
}

/// The positional parameters of one call.
pub struct Params {
    items: Vec<Value>,
}

impl Params {
    /// Checks the count (`min..=max`); missing optional ones read as null.
    pub fn new(mut items: Vec<Value>, min: usize, max: usize) -> ParamResult<Params> {
        if items.len() < min || items.len() > max {
            return Err(RpcError::invalid(format!(
                "wrong number of parameters: expected {}, got {}",
                if min == max { min.to_string() } else { format!("{min} to {max}") },
                items.len()
            )));
        }
        items.resize(max, Value::Null);
        Ok(Params { items })
    }

    /// Parameter `i` (null if it was not sent).
    pub fn get(&self, i: usize) -> &Value {
        &self.items[i]
    }

    /// Takes parameter `i` by value.
    pub fn take(&mut self, i: usize) -> Value {
        std::mem::replace(&mut self.items[i], Value::Null)
    }

    /// Parameter `i` as the name of a work spec.
    pub fn spec_name(&self, i: usize) -> ParamResult<String> {
        string(self.get(i), "work_spec_name")
    }

    /// Parameter `i` as a worker id.
    pub fn worker_id(&self, i: usize) -> ParamResult<String> {
        string(self.get(i), "worker_id")
    }

    /// Parameter `i` as an options map.
    pub fn options(&mut self, i: usize) -> ParamResult<Options> {
        Options::new(self.take(i), "options")
    }
}

/// A UTF-8 string from a byte or text string (`null` → "").
pub fn string(v: &Value, what: &str) -> ParamResult<String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::Text(s) => Ok(s.clone()),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(RpcError::invalid(format!("{what}: not valid UTF-8"))),
        },
        other => mismatch(what, "a string", other),
    }
}

/// Raw bytes from a byte or text string (work unit keys).
pub fn key(v: &Value, what: &str) -> ParamResult<Key> {
    match string_bytes(v) {
        Some(b) => Ok(b.to_vec()),
        None => mismatch(what, "a string", v),
    }
}

/// A list (or tuple) of keys.
pub fn keys(v: &Value, what: &str) -> ParamResult<Vec<Key>> {
    match as_sequence(v) {
        Some(items) => items.iter().map(|i| key(i, what)).collect(),
        None => mismatch(what, "a list of strings", v),
    }
}

/// A list (or tuple) of UTF-8 strings, as a set.
pub fn string_set(v: &Value, what: &str) -> ParamResult<std::collections::BTreeSet<String>> {
    match v {
        Value::Null => Ok(Default::default()),
        _ => match as_sequence(v) {
            Some(items) => items.iter().map(|i| string(i, what)).collect(),
            None => mismatch(what, "a list of strings", v),
        },
    }
}

/// An integer; floats are truncated toward zero.
pub fn integer(v: &Value, what: &str) -> ParamResult<i64> {
    match v {
        Value::Integer(i) => i64::try_from(*i).map_err(|_| RpcError::invalid(format!("{what}: integer out of range"))),
        Value::Float(f) if f.is_finite() => Ok(f.trunc() as i64),
        other => mismatch(what, "an integer", other),
    }
}

/// A number as a float.
pub fn number(v: &Value, what: &str) -> ParamResult<f64> {
    match v {
        Value::Integer(i) => Ok(i128::from(*i) as f64),
        Value::Float(f) => Ok(*f),
        other => mismatch(what, "a number", other),
    }
}

/// A boolean.
pub fn boolean(v: &Value, what: &str) -> ParamResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => mismatch(what, "a bool", other),
    }
}

/// The entries of a map (`null` → empty).
pub fn map(v: Value, what: &str) -> ParamResult<Vec<(Value, Value)>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Map(entries) => Ok(entries),
        other => mismatch(what, "a map", &other),
    }
}

/// An options map: case-insensitive keys, null values treated as absent.
pub struct Options {
    entries: Vec<(Value, Value)>,
}

impl Options {
    /// Decodes parameter `v` as an options map.
    pub fn new(v: Value, what: &str) -> ParamResult<Options> {
        Ok(Options { entries: map(v, what)? })
    }

    /// The value of option `name`, unless absent or null.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, v)| !v.is_null() && string_bytes(k).is_some_and(|k| k.eq_ignore_ascii_case(name.as_bytes())))
            .map(|(_, v)| v)
    }

    /// Takes option `name` by value.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, v)| {
            !v.is_null() && string_bytes(k).is_some_and(|k| k.eq_ignore_ascii_case(name.as_bytes()))
        })?;
        Some(self.entries.swap_remove(i).1)
    }

    /// Option `name` decoded by `f`, if given.
    pub fn opt<T>(&self, name: &str, f: impl Fn(&Value, &str) -> ParamResult<T>) -> ParamResult<Option<T>> {
        self.get(name).map(|v| f(v, name)).transpose()
    }
}
