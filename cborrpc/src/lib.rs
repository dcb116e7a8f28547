//! The CBOR-RPC wire format spoken by the Python Coordinate client.
//!
//! This crate owns the bytes on the wire and nothing else: it knows
//! nothing of work specs or work units.
//!
//! * [`value`] — the CBOR value model. We use [`ciborium::Value`] directly:
//!   it keeps byte strings apart from text strings, integers apart from
//!   floats, and keeps tags (24 CBOR-in-CBOR, 37 UUID, 128 Python tuple) as
//!   `Value::Tag`, which is every distinction Coordinate users rely on.
//! * [`encode`](mod@encode) — our own encoder. We write it by hand because the reply
//!   format must match the Go daemon's (minimal integer heads, floats always
//!   as 8-byte doubles, which every Python `cbor` decoder reads) and because
//!   the hot path wants to encode into a reused buffer.
//! * [`scan`] — finds where one complete CBOR item ends in a byte stream
//!   without decoding it. The protocol has no length prefix, so this is the
//!   framing; it also enforces the frame size cap before anything is
//!   allocated.
//! * [`message`] — requests and responses: the tag-24 wrapper, the request
//!   map with byte- or text-string keys, the response map with text keys.
//! * [`decode`](mod@decode) — one CBOR item from a byte slice, bignums of any size kept.
//! * [`connection`] — reading frames from and writing replies to an async
//!   stream, with pipelining.

pub mod connection;
pub mod decode;
pub mod encode;
pub mod message;
pub mod scan;
pub mod value;

pub use connection::{Connection, ReadError};
pub use encode::encode;
pub use message::{decode_request, encode_request, encode_response, Request, RequestError};
pub use value::Value;
