//! Requests and responses, and the tag-24 CBOR-in-CBOR wrapper around them.
//!
//! Requests are maps whose keys `id`, `method` and `params` may be byte
//! strings (the Python 2 client, whose `str` is bytes) or text strings
//! (Python 3). We accept `method` as either string type, `id` as any
//! integer, and `params` as an array or a tuple, which is strictly more
//! lenient than the Go daemon and still compatible.
//!
//! Responses always use **text** keys `id` and `result` (or `error`), and a
//! successful response always carries `result`, even when it is `null`: the
//! client tests `'result' in response` and raises otherwise.

use std::borrow::Cow;

use crate::decode::decode_prefix;
use crate::encode::{decode, encode, head};
use crate::scan::{item_len, Scan};
use crate::value::{map_get, string_bytes, type_name, Value, TAG_CBOR, TAG_TUPLE};

/// One decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The client's id, echoed in the response (always an integer).
    pub id: Value,
    /// The method name, e.g. `get_work`.
    pub method: String,
    /// The positional parameters.
    pub params: Vec<Value>,
}

/// A request that could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// The request id, when it could still be read: then the client gets an
    /// error response; otherwise the connection is closed.
    pub id: Option<Value>,
    /// What was wrong.
    pub message: String,
}

impl RequestError {
    fn new(id: Option<Value>, message: impl Into<String>) -> Self {
        RequestError { id, message: message.into() }
    }
}

/// Reads a head at `buf[0..]`: (major type, argument or None if
/// indefinite, head length).
fn read_head(buf: &[u8]) -> Option<(u8, Option<u64>, usize)> {
    let ib = *buf.first()?;
    let (major, ai) = (ib >> 5, ib & 0x1f);
    match ai {
        0..=23 => Some((major, Some(ai as u64), 1)),
        24..=27 => {
            let n = 1usize << (ai - 24);
            let raw = buf.get(1..1 + n)?;
            Some((major, Some(raw.iter().fold(0u64, |a, &b| (a << 8) | b as u64)), 1 + n))
        }
        31 => Some((major, None, 1)),
        _ => None,
    }
}

/// If `frame` is tag 24 around a definite byte string, the inner bytes.
fn unwrap_tag24(frame: &[u8]) -> Option<&[u8]> {
    let (major, tag, n) = read_head(frame)?;
    if major != 6 || tag != Some(TAG_CBOR) {
        return None;
    }
    let rest = &frame[n..];
    let (major, len, m) = read_head(rest)?;
    if major != 2 {
        return None;
    }
    let len = usize::try_from(len?).ok()?;
    rest.get(m..m.checked_add(len)?)
}

/// Decodes one complete frame (as delimited by [`crate::scan::item_len`])
/// into a request.
///
/// The request map is walked in place rather than decoded into a value:
/// keys are matched where they lie, the method name is read from the
/// frame, and the parameters are decoded one by one into the request's
/// vector. A worker's small calls then cost a handful of allocations
/// instead of one per key and container. What is accepted and refused is
/// what decoding the whole map would accept and refuse.
pub fn decode_request(frame: &[u8]) -> Result<Request, RequestError> {
    let Some(inner) = unwrap_tag24(frame) else {
        // Not CBOR-in-CBOR. If it is a bare request map we can still name
        // the request in our error; the Go daemon would just hang up.
        let id = decode(frame).ok().and_then(|v| match v {
            Value::Map(entries) => map_get(&entries, "id").filter(|v| v.is_integer()).cloned(),
            _ => None,
        });
        return Err(RequestError::new(id, "request must be a CBOR tag 24 item wrapping the encoded request map"));
    };
    let Envelope { id, method, params } = match read_envelope(inner) {
        Ok(Some(e)) => e,
        Ok(None) => return Err(RequestError::new(None, "request is not a map")),
        Err(e) => return Err(RequestError::new(recover_id(inner), e)),
    };
    let id = match id {
        Some(v @ Value::Integer(_)) => v,
        Some(other) => {
            return Err(RequestError::new(None, format!("request id must be an integer, not {}", type_name(&other))))
        }
        None => return Err(RequestError::new(None, "request has no id")),
    };
    let method = match method {
        Some(Ok(m)) => match std::str::from_utf8(&m) {
            Ok(m) => m.to_owned(),
            Err(_) => return Err(RequestError::new(Some(id), "method name is not valid UTF-8")),
        },
        Some(Err(_)) | None => return Err(RequestError::new(Some(id), "request method must be a string")),
    };
    let params = match params {
        None => Vec::new(),
        Some(Ok(items)) => items,
        Some(Err(other)) => {
            return Err(RequestError::new(Some(id), format!("params must be an array, not {}", type_name(&other))))
        }
    };
    Ok(Request { id, method, params })
}

/// The three entries of a request map that matter, each as last given.
struct Envelope<'a> {
    id: Option<Value>,
    /// The method's string content, or what was there instead.
    method: Option<Result<Cow<'a, [u8]>, Value>>,
    /// The parameters (`null` or `undefined` reads as none), or what was
    /// there instead.
    params: Option<Result<Vec<Value>, Value>>,
}

/// Walks the request map at the start of `inner`; `None` if it is a valid
/// item but not a map. Fails, with the decoder's message, on anything that
/// is not valid CBOR.
///
/// Depths, for the decoder's nesting limit: the map is 0, its keys and
/// values 1, the items of `params` 2 (3 inside a tuple's tag).
fn read_envelope(inner: &[u8]) -> Result<Option<Envelope<'_>>, String> {
    let Some((5, count, mut pos)) = read_head(inner) else {
        // Not a map: say why exactly as decoding the whole item would.
        return decode(inner).map(|_| None);
    };
    let mut env = Envelope { id: None, method: None, params: None };
    let mut left = count;
    while more_items(&mut left, inner, &mut pos) {
        let rest = inner.get(pos..).ok_or_else(truncated)?;
        let (key, klen) = match definite_string(rest) {
            Some((k, n)) => (Ok(k), n),
            None => decode_prefix(rest, 1).map(|(k, n)| (Err(k), n))?,
        };
        pos += klen;
        let key = match &key {
            Ok(k) => Some(*k),
            Err(k) => string_bytes(k),
        };
        let rest = inner.get(pos..).ok_or_else(truncated)?;
        pos += match key {
            Some(b"method") => match definite_string(rest) {
                Some((m, n)) => {
                    env.method = Some(Ok(Cow::Borrowed(m)));
                    n
                }
                None => {
                    // An indefinite-length string, or not a string.
                    let (v, n) = decode_prefix(rest, 1)?;
                    env.method = Some(match v {
                        Value::Text(t) => Ok(Cow::Owned(t.into_bytes())),
                        Value::Bytes(b) => Ok(Cow::Owned(b)),
                        other => Err(other),
                    });
                    n
                }
            },
            Some(b"params") => {
                let (params, n) = read_params(rest)?;
                env.params = params;
                n
            }
            Some(b"id") => {
                let (v, n) = decode_prefix(rest, 1)?;
                env.id = Some(v);
                n
            }
            _ => decode_prefix(rest, 1)?.1,
        };
    }
    Ok(Some(env))
}

fn truncated() -> String {
    "invalid CBOR: truncated item".to_string()
}

/// Whether another item of a container follows at `*pos`: counts `left`
/// down (a definite length) or steps over the closing break (`None`, an
/// indefinite one).
fn more_items(left: &mut Option<u64>, buf: &[u8], pos: &mut usize) -> bool {
    match left {
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
        None if buf.get(*pos) == Some(&0xff) => {
            *pos += 1;
            false
        }
        None => true,
    }
}

/// If `buf` starts with a definite-length byte string or valid text
/// string, its content and the length of the whole item (anything else is
/// left to the decoder, which also makes the errors).
fn definite_string(buf: &[u8]) -> Option<(&[u8], usize)> {
    let (major, len, n) = read_head(buf)?;
    if major != 2 && major != 3 {
        return None;
    }
    let len = usize::try_from(len?).ok()?;
    let end = n.checked_add(len)?;
    let content = buf.get(n..end)?;
    if major == 3 && std::str::from_utf8(content).is_err() {
        return None;
    }
    Some((content, end))
}

/// The `params` value at the start of `buf`: an array or a tuple's items
/// decoded straight into a vector, `None` for null, or the value found
/// instead; with the bytes it took.
#[allow(clippy::type_complexity)]
fn read_params(buf: &[u8]) -> Result<(Option<Result<Vec<Value>, Value>>, usize), String> {
    let Some((mut major, mut count, mut pos)) = read_head(buf) else {
        // Say what is wrong with the head as the decoder says it.
        return decode_prefix(buf, 1).map(|(v, n)| (Some(Err(v)), n));
    };
    let mut depth = 2;
    if major == 6 && count == Some(TAG_TUPLE) {
        match read_head(&buf[pos..]) {
            Some((4, c, n)) => {
                (major, count) = (4, c);
                pos += n;
                depth = 3;
            }
            _ => {
                // A tuple's tag around something else: name what it is.
                let (v, n) = decode_prefix(&buf[pos..], 2)?;
                return Ok((Some(Err(v)), pos + n));
            }
        }
    }
    if major != 4 {
        let (v, n) = decode_prefix(buf, 1)?;
        return Ok((if v.is_null() { None } else { Some(Err(v)) }, n));
    }
    let mut items = Vec::new();
    if let Some(c) = count {
        // Every item takes a byte at least: a count beyond the input is
        // refused before anything is reserved for it.
        if c > (buf.len() - pos) as u64 {
            return Err(truncated());
        }
        items.reserve(c as usize);
    }
    let mut left = count;
    while more_items(&mut left, buf, &mut pos) {
        let (v, n) = decode_prefix(buf.get(pos..).ok_or_else(truncated)?, depth)?;
        items.push(v);
        pos += n;
    }
    Ok((Some(Ok(items)), pos))
}

/// Best effort: find an integer `id` in a request map that failed to decode
/// as a whole (say, because a parameter held invalid UTF-8 text).
fn recover_id(inner: &[u8]) -> Option<Value> {
    let (major, count, mut pos) = read_head(inner)?;
    if major != 5 {
        return None;
    }
    let limit = inner.len();
    for _ in 0..count? {
        let Ok(Scan::Complete(klen)) = item_len(&inner[pos..], limit) else { return None };
        let key = decode(&inner[pos..pos + klen]).ok();
        pos += klen;
        let Ok(Scan::Complete(vlen)) = item_len(&inner[pos..], limit) else { return None };
        if key.as_ref().and_then(string_bytes) == Some(b"id") {
            return decode(&inner[pos..pos + vlen]).ok().filter(Value::is_integer);
        }
        pos += vlen;
    }
    None
}

/// Wraps an encoded message in tag 24, appending to `out`.
fn wrap(inner: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xd8, 0x18]);
    head(2, inner.len() as u64, out);
    out.extend_from_slice(inner);
}

/// Appends a text string whose content is `s`.
fn text_item(s: &str, out: &mut Vec<u8>) {
    head(3, s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Appends a complete response frame to `out`. `scratch` is a reusable
/// buffer for the inner encoding.
pub fn encode_response(id: &Value, outcome: Result<&Value, &str>, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    scratch.clear();
    scratch.push(0xa2);
    text_item("id", scratch);
    encode(id, scratch);
    match outcome {
        Ok(result) => {
            text_item("result", scratch);
            encode(result, scratch);
        }
        Err(message) => {
            text_item("error", scratch);
            scratch.push(0xa1);
            text_item("message", scratch);
            text_item(message, scratch);
        }
    }
    wrap(scratch, out);
}

/// Appends a complete request frame (text keys, as Python 3 sends) to
/// `out`. Used by clients: the load generator and the tests.
pub fn encode_request(id: u64, method: &str, params: &[Value], out: &mut Vec<u8>) {
    let mut inner = Vec::with_capacity(64);
    inner.push(0xa3);
    text_item("id", &mut inner);
    head(0, id, &mut inner);
    text_item("method", &mut inner);
    text_item(method, &mut inner);
    text_item("params", &mut inner);
    head(4, params.len() as u64, &mut inner);
    for p in params {
        encode(p, &mut inner);
    }
    wrap(&inner, out);
}

/// A decoded response, for clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The echoed request id.
    pub id: Value,
    /// `result`, or the `error.message` text.
    pub outcome: Result<Value, String>,
}

/// Decodes a response frame, for clients.
pub fn decode_response(frame: &[u8]) -> Result<Response, String> {
    let inner = unwrap_tag24(frame).ok_or("response is not wrapped in tag 24")?;
    let Value::Map(mut entries) = decode(inner)? else {
        return Err("response is not a map".into());
    };
    let mut take = |key: &str| {
        let i = entries.iter().position(|(k, _)| string_bytes(k) == Some(key.as_bytes()))?;
        Some(entries.swap_remove(i).1)
    };
    let id = take("id").ok_or("response has no id")?;
    if let Some(result) = take("result") {
        return Ok(Response { id, outcome: Ok(result) });
    }
    let message = match map_get(&entries, "error") {
        Some(Value::Map(e)) => match map_get(e, "message") {
            Some(Value::Text(m)) => m.clone(),
            _ => format!("{e:?}"),
        },
        _ => format!("{entries:?}"),
    };
    Ok(Response { id, outcome: Err(message) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{bytes, int, pair, text, tuple};

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    #[test]
    fn decodes_python2_get_work() {
        // docs/protocol.md §1.9: byte-string keys and method.
        let frame = hex("D8 18 58 3F A3 42 69 64 07 46 6D 65 74 68 6F 64 48 67 65 74 5F 77 6F 72 6B \
             46 70 61 72 61 6D 73 82 48 77 6F 72 6B 65 72 2D 31 A2 48 6D 61 78 5F 6A 6F 62 73 01 \
             4A 6C 65 61 73 65 5F 74 69 6D 65 19 03 84");
        let req = decode_request(&frame).unwrap();
        assert_eq!(req.id, int(7));
        assert_eq!(req.method, "get_work");
        assert_eq!(req.params[0], bytes(&b"worker-1"[..]));
        assert_eq!(
            req.params[1],
            Value::Map(vec![(bytes(&b"max_jobs"[..]), int(1)), (bytes(&b"lease_time"[..]), int(900))])
        );
    }

    #[test]
    fn encodes_text_keyed_responses() {
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        let result = pair(Value::Array(vec![]), None);
        encode_response(&int(1), Ok(&result), &mut scratch, &mut out);
        // {"id": 1, "result": [[], null]}
        assert_eq!(out, hex("D8 18 4F A2 62 69 64 01 66 72 65 73 75 6C 74 82 80 F6"));
        let back = decode_response(&out).unwrap();
        assert_eq!(back.outcome, Ok(result));

        out.clear();
        let result = pair(
            tuple(vec![text("spec"), bytes(&b"unit1"[..]), Value::Map(vec![(text("k"), bytes(&b"v"[..]))])]),
            None,
        );
        encode_response(&int(7), Ok(&result), &mut scratch, &mut out);
        assert_eq!(decode_response(&out).unwrap().outcome, Ok(result));
    }

    #[test]
    fn error_responses_carry_the_message() {
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        encode_response(&int(3), Err("no such method FooBar"), &mut scratch, &mut out);
        let back = decode_response(&out).unwrap();
        assert_eq!(back.id, int(3));
        assert_eq!(back.outcome, Err("no such method FooBar".to_string()));
    }

    #[test]
    fn request_round_trip_and_tuple_params() {
        let mut out = Vec::new();
        encode_request(9, "list_work_specs", &[Value::Map(vec![])], &mut out);
        let req = decode_request(&out).unwrap();
        assert_eq!(req, Request { id: int(9), method: "list_work_specs".into(), params: vec![Value::Map(vec![])] });
    }

    /// How requests were decoded before the map was walked in place: the
    /// whole map as one value, then its entries picked out.
    fn decode_request_whole(frame: &[u8]) -> Result<Request, RequestError> {
        let Some(inner) = unwrap_tag24(frame) else { return Err(RequestError::new(None, "")) };
        let value = decode(inner).map_err(|e| RequestError::new(recover_id(inner), e))?;
        let Value::Map(entries) = value else { return Err(RequestError::new(None, "request is not a map")) };
        let (mut id, mut method, mut params) = (None, None, None);
        for (k, v) in entries {
            match string_bytes(&k) {
                Some(b"id") => id = Some(v),
                Some(b"method") => method = Some(v),
                Some(b"params") => params = Some(v),
                _ => {}
            }
        }
        let id = match id {
            Some(v @ Value::Integer(_)) => v,
            Some(other) => {
                return Err(RequestError::new(
                    None,
                    format!("request id must be an integer, not {}", type_name(&other)),
                ))
            }
            None => return Err(RequestError::new(None, "request has no id")),
        };
        let method = match method.as_ref().and_then(string_bytes).map(std::str::from_utf8) {
            Some(Ok(m)) => m.to_owned(),
            Some(Err(_)) => return Err(RequestError::new(Some(id), "method name is not valid UTF-8")),
            None => return Err(RequestError::new(Some(id), "request method must be a string")),
        };
        let params = match params {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(Value::Tag(TAG_TUPLE, inner)) => match *inner {
                Value::Array(items) => items,
                other => {
                    return Err(RequestError::new(
                        Some(id),
                        format!("params must be an array, not {}", type_name(&other)),
                    ))
                }
            },
            Some(other) => {
                return Err(RequestError::new(Some(id), format!("params must be an array, not {}", type_name(&other))))
            }
        };
        Ok(Request { id, method, params })
    }

    #[test]
    fn walking_the_map_decides_as_decoding_it_whole() {
        // Envelopes with every shape of key, method and params, then each
        // byte of each one altered or cut: both decoders must agree.
        let mut frames = Vec::new();
        let envelopes: Vec<Vec<u8>> = vec![
            hex("A3 62 69 64 07 66 6D 65 74 68 6F 64 63 6E 6F 77 66 70 61 72 61 6D 73 82 01 A1 61 6B F6"),
            hex("A3 42 69 64 07 46 6D 65 74 68 6F 64 43 6E 6F 77 46 70 61 72 61 6D 73 D8 80 82 01 02"),
            hex("BF 62 69 64 07 66 6D 65 74 68 6F 64 7F 62 6E 6F 61 77 FF 66 70 61 72 61 6D 73 9F 01 FF FF"),
            hex("A4 62 69 64 07 61 78 82 01 02 66 6D 65 74 68 6F 64 63 6E 6F 77 66 70 61 72 61 6D 73 F6"),
            hex("A3 62 69 64 07 66 6D 65 74 68 6F 64 03 66 70 61 72 61 6D 73 A0"),
            hex("A3 62 69 64 07 66 6D 65 74 68 6F 64 63 6E 6F 77 66 70 61 72 61 6D 73 D8 80 01"),
            hex("A2 62 69 64 07 66 6D 65 74 68 6F 64 62 FF FE"),
            hex("A3 62 69 64 07 66 6D 65 74 68 6F 64 42 FF FE 66 70 61 72 61 6D 73 81 62 FF FE"),
            hex("A2 62 69 64 61 78 66 6D 65 74 68 6F 64 63 6E 6F 77"),
            hex("A3 62 69 64 07 62 69 64 08 66 6D 65 74 68 6F 64 63 6E 6F 77"),
            hex("A3 62 69 64 07 66 6D 65 74 68 6F 64 63 6E 6F 77 66 70 61 72 61 6D 73 9B FF FF FF FF FF FF FF FF"),
            hex("A4 62 69 64 07 66 6D 65 74 68 6F 64 63 6E 6F 77 66 70 61 72 61 6D 73 81 01 66 70 61 72 61 6D 73 F6"),
            hex("A3 62 69 64 07 66 6D 65 74 68 6F 64 63 6E 6F 77 66 70 61 72 61 6D 73 F7"),
            hex("A3 62 69 64 07 66 6D 65 74 68 6F 64 63 6E 6F 77 66 70 61 72 61 6D 73 D8 80 F6"),
            hex("BC 01"),
        ];
        // Nesting at the decoder's limit and one past it, in an array and
        // in a tuple.
        let params_prefix = hex("A3 62 69 64 07 66 6D 65 74 68 6F 64 63 6E 6F 77 66 70 61 72 61 6D 73");
        for (tuple, depth) in [(false, 198), (false, 199), (true, 197), (true, 198)] {
            let mut e = params_prefix.clone();
            if tuple {
                e.extend_from_slice(&[0xd8, 0x80]);
            }
            e.push(0x81);
            e.extend(std::iter::repeat_n(0x81, depth));
            e.push(0x01);
            let mut frame = Vec::new();
            wrap(&e, &mut frame);
            let at_limit = depth == if tuple { 197 } else { 198 };
            assert_eq!(decode_request(&frame).is_ok(), at_limit, "tuple {tuple}, depth {depth}");
            frames.push(e);
        }
        for e in &envelopes {
            frames.push(e.clone());
            for i in 0..e.len() {
                frames.push(e[..i].to_vec());
                for b in [0x00, 0x18, 0x1c, 0x1f, 0x5f, 0x7f, 0x9c, 0x9f, 0xbf, 0xd8, 0xf6, 0xff, e[i] ^ 0x20] {
                    let mut m = e.clone();
                    m[i] = b;
                    frames.push(m);
                }
            }
        }
        for inner in frames {
            let mut frame = Vec::new();
            wrap(&inner, &mut frame);
            let walked = decode_request(&frame);
            let whole = decode_request_whole(&frame);
            match (&walked, &whole) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{inner:02x?}"),
                (Err(a), Err(b)) => assert_eq!(a, b, "{inner:02x?}"),
                _ => panic!("{inner:02x?}: walked {walked:?}, whole {whole:?}"),
            }
        }
    }

    #[test]
    fn bad_requests_name_their_id_when_possible() {
        // A bare map (no tag 24) with an id.
        let mut inner = Vec::new();
        encode(&Value::Map(vec![(text("id"), int(5)), (text("method"), text("now"))]), &mut inner);
        let err = decode_request(&inner).unwrap_err();
        assert_eq!(err.id, Some(int(5)));
        // Invalid UTF-8 in a text string inside params: the id is recovered.
        let mut inner = vec![0xa3];
        encode(&text("id"), &mut inner);
        encode(&int(6), &mut inner);
        encode(&text("method"), &mut inner);
        encode(&text("now"), &mut inner);
        encode(&text("params"), &mut inner);
        inner.extend_from_slice(&[0x81, 0x62, 0xff, 0xfe]);
        let mut frame = Vec::new();
        wrap(&inner, &mut frame);
        let err = decode_request(&frame).unwrap_err();
        assert_eq!(err.id, Some(int(6)));
        // Not a map at all.
        let mut frame = Vec::new();
        wrap(&[0x01], &mut frame);
        assert_eq!(decode_request(&frame).unwrap_err().id, None);
        // A string id.
        let mut inner = Vec::new();
        encode(&Value::Map(vec![(text("id"), text("x")), (text("method"), text("now"))]), &mut inner);
        let mut frame = Vec::new();
        wrap(&inner, &mut frame);
        assert_eq!(decode_request(&frame).unwrap_err().id, None);
    }
}
