//! Decoding one CBOR item from a byte slice into a [`Value`].
//!
//! Our own rather than ciborium's deserializer for one reason: ciborium
//! refuses a bignum (tag 2 or 3) that fits 128 bits but not its integer
//! type (−2^128 is the classic), so a valid request from a Python client
//! was answered "integer too large". Here a bignum that fits 64 bits
//! becomes an integer, as before, and any other stays a tagged byte string,
//! which the encoder writes back unchanged. Working on a slice also means
//! a length claim larger than what is left fails at once, with nothing
//! allocated for it.

use crate::scan::MAX_DEPTH;
use crate::value::Value;

/// Decodes the first CBOR item of `bytes` (anything after it is ignored).
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    decode_prefix(bytes, 0).map(|(v, _)| v)
}

/// Decodes the first CBOR item of `bytes`, which sits at nesting level
/// `depth` of an enclosing item (0: it is the outermost; the nesting limit
/// counts from there), and
/// returns it with the number of bytes it took. This lets a caller walk a
/// container itself and decode only the parts it keeps.
pub fn decode_prefix(bytes: &[u8], depth: usize) -> Result<(Value, usize), String> {
    let mut d = Decoder { buf: bytes, pos: 0 };
    let v = d.value(depth).map_err(|e| format!("invalid CBOR: {e}"))?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, &'static str>;

const BREAK: u8 = 0xff;

impl<'a> Decoder<'a> {
    fn byte(&mut self) -> R<u8> {
        let b = *self.buf.get(self.pos).ok_or("truncated item")?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> R<&'a [u8]> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err("truncated item");
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    /// The argument of a head; `None` for an indefinite length.
    fn arg(&mut self, info: u8) -> R<Option<u64>> {
        let n = match info {
            0..=23 => info as u64,
            24 => self.byte()? as u64,
            25 => u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as u64,
            26 => u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as u64,
            27 => u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")),
            31 => return Ok(None),
            _ => return Err("reserved additional information"),
        };
        Ok(Some(n))
    }

    fn at_break(&mut self) -> bool {
        if self.buf.get(self.pos) == Some(&BREAK) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A byte or text string's content: definite, or indefinite chunks of
    /// the same major type.
    fn string(&mut self, major: u8, len: Option<u64>) -> R<Vec<u8>> {
        let Some(n) = len else {
            let mut out = Vec::new();
            while !self.at_break() {
                let ib = self.byte()?;
                if ib >> 5 != major {
                    return Err("bad chunk in an indefinite-length string");
                }
                let n = self.arg(ib & 31)?.ok_or("nested indefinite-length string")?;
                out.extend_from_slice(self.take(n)?);
            }
            return Ok(out);
        };
        Ok(self.take(n)?.to_vec())
    }

    fn value(&mut self, depth: usize) -> R<Value> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply");
        }
        let ib = self.byte()?;
        let (major, info) = (ib >> 5, ib & 31);
        if major == 7 {
            return simple(self, info);
        }
        let len = self.arg(info)?;
        Ok(match (major, len) {
            (0, Some(n)) => Value::Integer(n.into()),
            (1, Some(n)) => Value::Integer((-1 - n as i128).try_into().map_err(|_| "integer out of range")?),
            (0 | 1 | 6, None) => return Err("indefinite length on an integer or tag"),
            (2, len) => Value::Bytes(self.string(2, len)?),
            (3, len) => Value::Text(String::from_utf8(self.string(3, len)?).map_err(|_| "text is not UTF-8")?),
            (4, len) => Value::Array(self.items(len, depth, |d, depth| d.value(depth + 1))?),
            (5, len) => Value::Map(self.items(len, depth, |d, depth| Ok((d.value(depth + 1)?, d.value(depth + 1)?)))?),
            (6, Some(tag)) => bignum_or_tag(tag, self.value(depth + 1)?),
            _ => unreachable!("major types are 0 to 7"),
        })
    }

    /// The elements of an array or map, counted or up to a break.
    fn items<T>(&mut self, len: Option<u64>, depth: usize, mut one: impl FnMut(&mut Self, usize) -> R<T>) -> R<Vec<T>> {
        let mut out = Vec::new();
        match len {
            Some(n) => {
                // Every element takes at least a byte: a claim beyond the
                // input is refused before anything is reserved for it.
                if n > (self.buf.len() - self.pos) as u64 {
                    return Err("truncated item");
                }
                out.reserve(n as usize);
                for _ in 0..n {
                    out.push(one(self, depth)?);
                }
            }
            None => {
                while !self.at_break() {
                    out.push(one(self, depth)?);
                }
            }
        }
        Ok(out)
    }
}

fn simple(d: &mut Decoder, info: u8) -> R<Value> {
    Ok(match info {
        20 => Value::Bool(false),
        21 => Value::Bool(true),
        22 | 23 => Value::Null,
        25 => Value::Float(half(u16::from_be_bytes(d.take(2)?.try_into().expect("2 bytes")))),
        26 => Value::Float(f32::from_be_bytes(d.take(4)?.try_into().expect("4 bytes")) as f64),
        27 => Value::Float(f64::from_be_bytes(d.take(8)?.try_into().expect("8 bytes"))),
        31 => return Err("unexpected break"),
        _ => return Err("unsupported simple value"),
    })
}

/// An IEEE half-precision float.
fn half(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e as i32 - 15),
    }
}

/// Tags 2 and 3 (positive and negative bignums) become integers when they
/// fit 64 bits; everything else stays tagged.
fn bignum_or_tag(tag: u64, inner: Value) -> Value {
    if let (2 | 3, Value::Bytes(b)) = (tag, &inner) {
        let digits = &b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..];
        if digits.len() <= 8 {
            let n = digits.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
            return Value::Integer(if tag == 2 {
                n.into()
            } else {
                (-1 - n as i128).try_into().expect("fits 65 bits")
            });
        }
    }
    Value::Tag(tag, Box::new(inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::to_vec;

    #[test]
    fn big_bignums_stay_tagged_and_small_ones_become_integers() {
        let minus_2_128 = [&[0xc3, 0x50][..], &[0xff; 16]].concat();
        assert_eq!(decode(&minus_2_128).unwrap(), Value::Tag(3, Box::new(Value::Bytes(vec![0xff; 16]))));
        assert_eq!(to_vec(&decode(&minus_2_128).unwrap()), minus_2_128);
        assert_eq!(decode(&[0xc2, 0x42, 1, 0]).unwrap(), Value::Integer(256.into()));
        assert_eq!(decode(&[0xc3, 0x41, 0]).unwrap(), Value::Integer((-1).into()));
        let two_64 = [0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&two_64).unwrap(), Value::Tag(2, Box::new(Value::Bytes(two_64[2..].to_vec()))));
    }

    #[test]
    fn floats_strings_and_indefinite_containers() {
        assert_eq!(decode(&[0xf9, 0x3c, 0x00]).unwrap(), Value::Float(1.0));
        assert_eq!(decode(&[0xf9, 0xc0, 0x00]).unwrap(), Value::Float(-2.0));
        assert_eq!(decode(&[0xfa, 0x3f, 0xc0, 0, 0]).unwrap(), Value::Float(1.5));
        let text = [0x7f, 0x61, b'a', 0x62, b'b', b'c', 0xff];
        assert_eq!(decode(&text).unwrap(), Value::Text("abc".into()));
        let arr = [0x9f, 0x01, 0xa1, 0x61, b'k', 0xf6, 0xff];
        let want =
            Value::Array(vec![Value::Integer(1.into()), Value::Map(vec![(Value::Text("k".into()), Value::Null)])]);
        assert_eq!(decode(&arr).unwrap(), want);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic_or_an_allocation() {
        for bad in [
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x62, 0xff, 0xfe],
            &[0x7f, 0x41, b'a', 0xff],
            &[0xff],
            &[0xf0],
            &[0x1c],
            &[0xdf, 0x01],
        ] {
            assert!(decode(bad).is_err(), "{bad:02x?}");
        }
        let deep = [vec![0x81u8; 300], vec![0x01]].concat();
        assert_eq!(decode(&deep).unwrap_err(), "invalid CBOR: nested too deeply");
    }
}
