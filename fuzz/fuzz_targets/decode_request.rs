//! `cborrpc::message::decode_request` over arbitrary bytes: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cborrpc::decode_request(data);
});
