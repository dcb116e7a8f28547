//! Work unit keys in URLs, query strings and request bodies.
//!
//! A key is any bytes. Its *ref* is the key itself when it is non-empty
//! UTF-8 that does not start with `b64:` and is not `.` or `..` (which
//! URL path normalisation would take as steps), and otherwise `b64:`
//! followed by the bytes in URL-safe base64 without padding: `"b64:__8"`
//! is the two bytes `ff ff`, `"b64:"` the empty key, `"b64:Lg"` the key
//! `.`. Every listing gives each unit's
//! ref, and every route that names a unit takes one (percent-encoded in a
//! path, as any text is), so an operator can reach any unit, and most
//! refs are the key as typed.

use backends::model::Key;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::error::ApiError;

/// The prefix of a base64url ref.
pub const B64: &str = "b64:";

/// URL-safe base64 that reads input with or without padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The ref of a key.
pub fn key_ref(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !matches!(s, "" | "." | "..") && !s.starts_with(B64) => s.to_owned(),
        _ => format!("{B64}{}", URL_SAFE_NO_PAD.encode(key)),
    }
}

/// The key a ref names.
pub fn parse_ref(r: &str) -> Result<Key, ApiError> {
    match r.strip_prefix(B64) {
        Some(b64) => LENIENT
            .decode(b64)
            .map_err(|_| ApiError::bad_request(format!("key {r:?}: not valid base64url after \"{B64}\""))),
        None => Ok(r.as_bytes().to_vec()),
    }
}

/// The keys a list of refs names.
pub fn parse_refs(refs: &[String]) -> Result<Vec<Key>, ApiError> {
    refs.iter().map(|r| parse_ref(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_round_trip() {
        for (key, r) in [
            (&b"plain key/with slash"[..], "plain key/with slash"),
            (b"\xff\xff", "b64:__8"),
            (b"", "b64:"),
            (b"b64:x", "b64:YjY0Ong"),
            ("é".as_bytes(), "é"),
            (b".", "b64:Lg"),
            (b"..", "b64:Li4"),
            (b"...", "..."),
        ] {
            assert_eq!(key_ref(key), r);
            assert_eq!(parse_ref(r).unwrap(), key);
        }
        assert_eq!(parse_ref("b64:__8=").unwrap(), b"\xff\xff", "padding is optional");
        assert!(parse_ref("b64:***").is_err());
    }
}
