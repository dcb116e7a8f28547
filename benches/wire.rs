//! CBOR-RPC wire costs: decoding typical request frames with
//! `cborrpc::decode_request` and encoding typical responses with
//! `cborrpc::encode_response`.

use std::hint::black_box;
use std::time::Duration;

use cborrpc::value::{bytes, int, pair, text, tuple};
use cborrpc::{decode_request, encode_request, encode_response, Value};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A ~100-byte unit data map, as the load generator sends.
fn unit_data(i: u64) -> Value {
    Value::Map(vec![
        (text("payload"), text(format!("{:0>80}", format!("payload-{i}-abcdefghijklmnopqrstuvwxyz")))),
        (text("n"), int(i as i64)),
    ])
}

fn get_work_frame() -> Vec<u8> {
    let opts = Value::Map(vec![
        (text("max_jobs"), int(1)),
        (text("lease_time"), int(900)),
        (text("work_spec_names"), Value::Array(vec![text("bench-spec")])),
    ]);
    let mut out = Vec::new();
    encode_request(17, "get_work", &[text("worker-6f1c2a3b-1f7e-4c1d-9f3a-2b6d7e8f9a0b"), opts], &mut out);
    out
}

fn update_frame() -> Vec<u8> {
    let mut out = Vec::new();
    let opts = Value::Map(vec![(text("status"), int(4))]);
    encode_request(18, "update_work_unit", &[text("bench-spec"), bytes(&b"k0000012345"[..]), opts], &mut out);
    out
}

fn add_frame(n: u64) -> Vec<u8> {
    let items = (0..n).map(|i| tuple(vec![text(format!("k{i:010}")), unit_data(i)])).collect();
    let mut out = Vec::new();
    encode_request(19, "add_work_units", &[text("bench-spec"), Value::Array(items)], &mut out);
    out
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_request");
    for (name, frame) in [("get_work", get_work_frame()), ("update_work_unit", update_frame())] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| b.iter(|| decode_request(black_box(&frame)).unwrap()));
    }
    let frame = add_frame(1000);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("add_work_units_1000", |b| b.iter(|| decode_request(black_box(&frame)).unwrap()));
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_response");
    g.throughput(Throughput::Elements(1));
    let one = pair(tuple(vec![text("bench-spec"), bytes(&b"k0000012345"[..]), unit_data(12345)]), None);
    let ten = pair(
        Value::Array(
            (0..10).map(|i| tuple(vec![text("bench-spec"), bytes(format!("k{i:010}")), unit_data(i)])).collect(),
        ),
        None,
    );
    let updated = pair(Value::Bool(true), None);
    let counts = pair(Value::Map(vec![(int(1), int(90_000)), (int(3), int(64)), (int(4), int(9_936))]), None);
    let id = int(12345);
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    for (name, result) in
        [("get_work_1", &one), ("get_work_10", &ten), ("update_work_unit", &updated), ("count_work_units", &counts)]
    {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode_response(black_box(&id), Ok(black_box(result)), &mut scratch, &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = decode, encode
}
criterion_main!(benches);
