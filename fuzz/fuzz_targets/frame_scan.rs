//! `cborrpc::scan::item_len` over arbitrary bytes and limits: it must never
//! panic; a `Complete(n)` must lie within the buffer and the limit, be found
//! again in the first `n` bytes alone (and not in fewer), and those bytes
//! must decode or fail cleanly. The first input byte picks the limit so that
//! plain CBOR seeds stay usable.
#![no_main]

use cborrpc::scan::{item_len, Scan};
use libfuzzer_sys::fuzz_target;

fn limit(sel: u8) -> usize {
    match sel {
        0..=127 => sel as usize,
        128..=254 => ((sel - 127) as usize) << 10,
        255 => usize::MAX,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, buf)) = data.split_first() else { return };
    let limit = limit(sel);
    if let Ok(Scan::Complete(n)) = item_len(buf, limit) {
        assert!(n >= 1 && n <= buf.len() && n <= limit, "Complete({n}) of {} bytes, limit {limit}", buf.len());
        assert_eq!(item_len(&buf[..n], limit), Ok(Scan::Complete(n)), "the item alone");
        assert_eq!(item_len(&buf[..n - 1], limit), Ok(Scan::Incomplete), "one byte short");
        let _ = cborrpc::encode::decode(&buf[..n]);
    }
});
