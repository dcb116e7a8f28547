//! CBOR values as JSON, faithfully in both directions (docs/http-api.md,
//! "Values").
//!
//! JSON has no byte strings, tuples, UUIDs, non-text map keys, integers
//! past 64 bits or non-finite floats, all of which unit and spec data may
//! hold. Each is written as an object with a single key that starts with
//! `$` (`{"$bytes": "aGk="}`, `{"$tuple": [1, 2]}`, ...), and a map with a
//! key that is not text or starts with `$` is written as
//! `{"$map": [[key, value], ...]}`, so a plain object never reads as an
//! escape. Maps keep their order: output streams the entries as stored and
//! input is read entry by entry (no `serde_json::Value`, whose objects sort
//! their keys).

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use cborrpc::value::{Integer, TAG_TUPLE, TAG_UUID};
use cborrpc::Value;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Standard base64 that reads input with or without padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A CBOR value to serialize as JSON.
pub struct Json<'a>(pub &'a Value);

/// An owned CBOR value to serialize as JSON.
pub struct JsonValue(pub Value);

impl Serialize for JsonValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Json(&self.0).serialize(s)
    }
}

/// A time as JSON: seconds since the Unix epoch, with microseconds.
pub fn secs(t: backends::Time) -> f64 {
    t.0 as f64 / 1e6
}

/// A CBOR value read from JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct FromJson(pub Value);

/// A UUID's canonical text: 8-4-4-4-12 lower-case hex digits.
pub fn uuid_text(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn parse_uuid(s: &str) -> Option<Vec<u8>> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect()
}

/// A map is a plain JSON object when every key is text not starting with `$`.
fn plain_object(entries: &[(Value, Value)]) -> bool {
    entries.iter().all(|(k, _)| matches!(k, Value::Text(t) if !t.starts_with('$')))
}

/// `{"$name": value}`.
fn escape<S: Serializer, T: Serialize + ?Sized>(s: S, name: &str, value: &T) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry(name, value)?;
    m.end()
}

struct Seq<'a>(&'a [Value]);

impl Serialize for Seq<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&Json(v))?;
        }
        seq.end()
    }
}

struct Pairs<'a>(&'a [(Value, Value)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, v) in self.0 {
            seq.serialize_element(&[Json(k), Json(v)])?;
        }
        seq.end()
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Integer(i) => {
                let i = i128::from(*i);
                if let Ok(n) = i64::try_from(i) {
                    s.serialize_i64(n)
                } else if let Ok(n) = u64::try_from(i) {
                    s.serialize_u64(n)
                } else {
                    escape(s, "$int", &i.to_string())
                }
            }
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Value::Float(f) => {
                let name = if f.is_nan() {
                    "NaN"
                } else if *f > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                escape(s, "$float", name)
            }
            Value::Text(t) => s.serialize_str(t),
            Value::Bytes(b) => escape(s, "$bytes", &STANDARD.encode(b)),
            Value::Array(items) => Seq(items).serialize(s),
            Value::Map(entries) if plain_object(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(&Json(k), &Json(v))?;
                }
                m.end()
            }
            Value::Map(entries) => escape(s, "$map", &Pairs(entries)),
            Value::Tag(TAG_TUPLE, inner) => match &**inner {
                Value::Array(items) => escape(s, "$tuple", &Seq(items)),
                other => escape(s, "$tag", &(TAG_TUPLE, Json(other))),
            },
            Value::Tag(TAG_UUID, inner) => match &**inner {
                Value::Bytes(b) if b.len() == 16 => escape(s, "$uuid", &uuid_text(b)),
                other => escape(s, "$tag", &(TAG_UUID, Json(other))),
            },
            Value::Tag(tag, inner) => escape(s, "$tag", &(tag, Json(inner))),
            // ciborium's value is non-exhaustive; nothing else is stored.
            _ => s.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for FromJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor).map(FromJson)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Integer(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Integer(n.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Text(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Text(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(FromJson(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some((k, FromJson(v))) = map.next_entry::<String, FromJson>()? {
            entries.push((k, v));
        }
        if entries.len() == 1 && entries[0].0.starts_with('$') {
            let (name, v) = entries.pop().expect("one entry");
            return unescape(&name, v).map_err(de::Error::custom);
        }
        if let Some((k, _)) = entries.iter().find(|(k, _)| k.starts_with('$')) {
            return Err(de::Error::custom(format!(
                "object key {k:?} starts with '$': send such a map as {{\"$map\": [[key, value], ...]}}"
            )));
        }
        Ok(Value::Map(entries.into_iter().map(|(k, v)| (Value::Text(k), v)).collect()))
    }
}

/// The value an escape object `{name: v}` stands for.
fn unescape(name: &str, v: Value) -> Result<Value, String> {
    let bad = |what: &str| Err(format!("{name}: expected {what}"));
    match (name, v) {
        ("$bytes", Value::Text(t)) => LENIENT.decode(t.as_bytes()).map(Value::Bytes).or_else(|_| bad("base64 text")),
        ("$bytes", _) => bad("base64 text"),
        ("$tuple", Value::Array(items)) => Ok(Value::Tag(TAG_TUPLE, Box::new(Value::Array(items)))),
        ("$tuple", _) => bad("an array"),
        ("$uuid", Value::Text(t)) => match parse_uuid(&t) {
            Some(b) => Ok(Value::Tag(TAG_UUID, Box::new(Value::Bytes(b)))),
            None => bad("a UUID such as \"5f0c1c5e-7a44-4f4b-9c1a-2b8f6f7e0d11\""),
        },
        ("$uuid", _) => bad("UUID text"),
        ("$map", Value::Array(pairs)) => {
            let mut entries = Vec::with_capacity(pairs.len());
            for pair in pairs {
                match pair {
                    Value::Array(kv) if kv.len() == 2 => {
                        let mut kv = kv.into_iter();
                        entries.push((kv.next().expect("key"), kv.next().expect("value")));
                    }
                    _ => return bad("an array of [key, value] pairs"),
                }
            }
            Ok(Value::Map(entries))
        }
        ("$map", _) => bad("an array of [key, value] pairs"),
        ("$int", Value::Text(t)) => match t.parse::<i128>().ok().and_then(|i| Integer::try_from(i).ok()) {
            Some(i) => Ok(Value::Integer(i)),
            None => bad("a decimal integer from -2^64 to 2^64-1"),
        },
        ("$int", _) => bad("decimal text"),
        ("$float", Value::Text(t)) => match t.as_str() {
            "NaN" => Ok(Value::Float(f64::NAN)),
            "Infinity" => Ok(Value::Float(f64::INFINITY)),
            "-Infinity" => Ok(Value::Float(f64::NEG_INFINITY)),
            _ => bad("\"NaN\", \"Infinity\" or \"-Infinity\""),
        },
        ("$float", _) => bad("text"),
        ("$tag", Value::Array(parts)) if parts.len() == 2 => {
            let mut parts = parts.into_iter();
            match (parts.next(), parts.next()) {
                (Some(Value::Integer(tag)), Some(inner)) => match u64::try_from(tag) {
                    Ok(tag) => Ok(Value::Tag(tag, Box::new(inner))),
                    Err(_) => bad("[tag number, value]"),
                },
                _ => bad("[tag number, value]"),
            }
        }
        ("$tag", _) => bad("[tag number, value]"),
        (other, _) => Err(format!(
            "unknown escape {other:?} (known: $bytes, $tuple, $uuid, $map, $int, $float, $tag; \
             send a map with keys starting with '$' as {{\"$map\": [[key, value], ...]}})"
        )),
    }
}

/// Parses a JSON document into a CBOR value.
pub fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<FromJson>(body).map(|v| v.0).map_err(|e| format!("invalid JSON body: {e}"))
}

/// The JSON text of a CBOR value.
#[cfg(test)]
fn to_string(v: &Value) -> String {
    serde_json::to_string(&Json(v)).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cborrpc::value::{bytes, int, text, tuple};

    fn round_trip(v: Value, json: &str) {
        assert_eq!(to_string(&v), json);
        let back = parse(json.as_bytes()).unwrap();
        // NaN is not equal to itself; compare the encodings.
        assert_eq!(to_string(&back), json, "{json}");
        if !matches!(v, Value::Float(f) if f.is_nan()) {
            assert_eq!(back, v, "{json}");
        }
    }

    #[test]
    fn plain_values_are_plain_json() {
        round_trip(Value::Null, "null");
        round_trip(Value::Bool(true), "true");
        round_trip(int(-5), "-5");
        round_trip(Value::Integer(u64::MAX.into()), "18446744073709551615");
        round_trip(Value::Float(1.5), "1.5");
        round_trip(text("hé"), "\"hé\"");
        round_trip(Value::Array(vec![int(1), text("a")]), "[1,\"a\"]");
        round_trip(Value::Map(vec![(text("z"), int(1)), (text("a"), int(2))]), "{\"z\":1,\"a\":2}");
    }

    #[test]
    fn the_rest_is_escaped() {
        round_trip(bytes(*b"hi\xff"), r#"{"$bytes":"aGn/"}"#);
        round_trip(tuple(vec![int(1), text("a")]), r#"{"$tuple":[1,"a"]}"#);
        let uuid = Value::Tag(TAG_UUID, Box::new(bytes((0..16).collect::<Vec<u8>>())));
        round_trip(uuid, r#"{"$uuid":"00010203-0405-0607-0809-0a0b0c0d0e0f"}"#);
        round_trip(Value::Map(vec![(int(1), text("one"))]), r#"{"$map":[[1,"one"]]}"#);
        round_trip(Value::Map(vec![(text("$x"), int(1))]), r#"{"$map":[["$x",1]]}"#);
        let huge = Value::Integer(Integer::try_from(-(1i128 << 64)).unwrap());
        round_trip(huge, r#"{"$int":"-18446744073709551616"}"#);
        round_trip(Value::Float(f64::NEG_INFINITY), r#"{"$float":"-Infinity"}"#);
        round_trip(Value::Float(f64::NAN), r#"{"$float":"NaN"}"#);
        round_trip(
            Value::Tag(2, Box::new(bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0]))),
            r#"{"$tag":[2,{"$bytes":"AQAAAAAAAAAA"}]}"#,
        );
        let nested = Value::Map(vec![(text("k"), tuple(vec![bytes(*b"")]))]);
        round_trip(nested, r#"{"k":{"$tuple":[{"$bytes":""}]}}"#);
    }

    #[test]
    fn bad_escapes_are_refused_with_a_reason() {
        for (json, why) in [
            (r#"{"$bytes": 3}"#, "base64"),
            (r#"{"$bytes": "!!"}"#, "base64"),
            (r#"{"$uuid": "nope"}"#, "UUID"),
            (r#"{"$uuid": "+0010203-0405-0607-0809-0a0b0c0d0e0f"}"#, "UUID"),
            (r#"{"$map": [[1]]}"#, "pairs"),
            (r#"{"$what": 1}"#, "unknown escape"),
            (r#"{"$bytes": "", "b": 1}"#, "starts with '$'"),
            (r#"{"$int": "1e3"}"#, "decimal"),
            ("{", "invalid JSON"),
        ] {
            let err = parse(json.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{json}: {err}");
        }
        assert_eq!(parse(br#"{"$bytes": "aGk"}"#).unwrap(), bytes(*b"hi"), "padding is optional");
    }
}
