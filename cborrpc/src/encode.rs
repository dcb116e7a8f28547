//! Encoding values to CBOR bytes.
//!
//! Integers use the shortest head, floats are always written as 8-byte
//! doubles (`0xFB`) as the Go daemon does, strings, arrays and maps have
//! definite lengths. Nothing here allocates beyond growing `out`.

use crate::value::Value;

/// Appends the CBOR encoding of `v` to `out`.
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Integer(i) => {
            let i = i128::from(*i);
            if i >= 0 {
                head(0, i as u64, out);
            } else {
                head(1, (-1 - i) as u64, out);
            }
        }
        Value::Bytes(b) => {
            head(2, b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            head(3, t.len() as u64, out);
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(items) => encode_array(items, out),
        Value::Map(entries) => encode_map(entries, out),
        Value::Tag(tag, inner) => {
            head(6, *tag, out);
            encode(inner, out);
        }
        Value::Float(f) => {
            out.push(0xfb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        _ => out.push(0xf6),
    }
}

/// Appends the CBOR array of `items`, as [`encode`] does a `Value::Array`,
/// for callers that hold the items without the `Value` around them.
pub fn encode_array(items: &[Value], out: &mut Vec<u8>) {
    head(4, items.len() as u64, out);
    for item in items {
        encode(item, out);
    }
}

/// Appends the CBOR map of `entries`, as [`encode`] does a `Value::Map`.
pub fn encode_map(entries: &[(Value, Value)], out: &mut Vec<u8>) {
    head(5, entries.len() as u64, out);
    for (k, v) in entries {
        encode(k, out);
        encode(v, out);
    }
}

/// Encodes `v` into a new vector.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

/// Appends a CBOR head with major type `major` and argument `n`, using the
/// shortest form.
pub fn head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Decodes one complete CBOR item from `bytes` (trailing bytes ignored).
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    crate::decode::decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{bytes, int, text, tuple};

    fn round_trip(v: Value) {
        let enc = to_vec(&v);
        assert_eq!(decode(&enc).unwrap(), v, "bytes {enc:02x?}");
    }

    #[test]
    fn heads_are_minimal() {
        assert_eq!(to_vec(&int(23)), [0x17]);
        assert_eq!(to_vec(&int(24)), [0x18, 24]);
        assert_eq!(to_vec(&int(900)), [0x19, 0x03, 0x84]);
        assert_eq!(to_vec(&int(-1)), [0x20]);
        assert_eq!(to_vec(&int(70000)), [0x1a, 0, 1, 0x11, 0x70]);
        assert_eq!(to_vec(&Value::Integer(u64::MAX.into())), [0x1b, 255, 255, 255, 255, 255, 255, 255, 255]);
    }

    #[test]
    fn floats_are_doubles() {
        assert_eq!(to_vec(&Value::Float(1.5)), [0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn values_round_trip() {
        round_trip(tuple(vec![text("spec"), bytes(&b"\xff\x00"[..]), Value::Null]));
        round_trip(Value::Tag(37, Box::new(bytes(vec![7u8; 16]))));
        round_trip(Value::Map(vec![(text("k"), Value::Float(-0.25)), (int(-5), Value::Bool(true))]));
        round_trip(Value::Integer((-(1i128 << 64)).try_into().unwrap()));
    }
}
