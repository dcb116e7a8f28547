//! The CBOR value model and small helpers for building Python-shaped values.

pub use ciborium::value::Integer;
pub use ciborium::Value;

/// The tag the Python client uses for tuples.
pub const TAG_TUPLE: u64 = 128;
/// The tag for UUIDs (a 16-byte byte string).
pub const TAG_UUID: u64 = 37;
/// The tag wrapping every message (CBOR-in-CBOR).
pub const TAG_CBOR: u64 = 24;

/// A Python tuple: an array tagged 128.
pub fn tuple(items: Vec<Value>) -> Value {
    Value::Tag(TAG_TUPLE, Box::new(Value::Array(items)))
}

/// A text string.
pub fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// A byte string.
pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
    Value::Bytes(b.into())
}

/// An integer.
pub fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// A `[value, null]` or `[value, "message"]` pair, as Go returns
/// `(X, string, error)` methods: a plain array, not a tuple.
pub fn pair(v: Value, msg: Option<String>) -> Value {
    Value::Array(vec![v, msg.map(Value::Text).unwrap_or(Value::Null)])
}

/// If `v` is an array or a tuple, its items.
pub fn as_sequence(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) => Some(items),
        Value::Tag(TAG_TUPLE, inner) => match &**inner {
            Value::Array(items) => Some(items),
            _ => None,
        },
        _ => None,
    }
}

/// Consumes an array or tuple into its items.
pub fn into_sequence(v: Value) -> Result<Vec<Value>, Value> {
    match v {
        Value::Array(items) => Ok(items),
        Value::Tag(TAG_TUPLE, inner) => match *inner {
            Value::Array(items) => Ok(items),
            other => Err(Value::Tag(TAG_TUPLE, Box::new(other))),
        },
        other => Err(other),
    }
}

/// The string content of a byte or text string, as bytes.
pub fn string_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes(b) => Some(b),
        Value::Text(t) => Some(t.as_bytes()),
        _ => None,
    }
}

/// Rewrites every byte-string map key that is valid UTF-8 into a text key,
/// recursively, as the Go daemon does when it stores user data. Python 2
/// clients send `str` keys as bytes; storing them as text makes a Python 3
/// reader see the same dictionary a Python 2 writer meant.
pub fn normalize_map_keys(v: &mut Value) {
    match v {
        Value::Map(entries) => {
            for (k, val) in entries.iter_mut() {
                if let Value::Bytes(b) = k {
                    if let Ok(s) = std::str::from_utf8(b) {
                        *k = Value::Text(s.to_owned());
                    }
                }
                normalize_map_keys(val);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_map_keys),
        Value::Tag(_, inner) => normalize_map_keys(inner),
        _ => {}
    }
}

/// Looks up a text (or byte-string) key in a CBOR map.
pub fn map_get<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries.iter().find(|(k, _)| string_bytes(k) == Some(key.as_bytes())).map(|(_, v)| v)
}

/// A short human description of a value's type, for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) => "integer",
        Value::Bytes(_) => "byte string",
        Value::Float(_) => "float",
        Value::Text(_) => "text string",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Tag(TAG_TUPLE, _) => "tuple",
        Value::Tag(TAG_UUID, _) => "uuid",
        Value::Tag(_, _) => "tagged value",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        _ => "unknown value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_nested_byte_keys() {
        let mut v = Value::Map(vec![(
            bytes(&b"outer"[..]),
            Value::Array(vec![Value::Map(vec![(bytes(&b"in"[..]), bytes(&b"v"[..]))])]),
        )]);
        normalize_map_keys(&mut v);
        let expected =
            Value::Map(vec![(text("outer"), Value::Array(vec![Value::Map(vec![(text("in"), bytes(&b"v"[..]))])]))]);
        assert_eq!(v, expected);
    }

    #[test]
    fn invalid_utf8_keys_stay_bytes() {
        let mut v = Value::Map(vec![(bytes(vec![0xff]), int(1))]);
        normalize_map_keys(&mut v);
        assert_eq!(v, Value::Map(vec![(bytes(vec![0xff]), int(1))]));
    }
}
