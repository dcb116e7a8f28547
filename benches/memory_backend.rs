//! `get_work` + `update_work_unit(status Finished)` on the memory backend
//! holding 10k, 100k and 1M units: the cost of handing out and finishing
//! one unit should not grow with the number of units held.
//!
//! Each backend is built once per size outside the timed loop. When the
//! spec runs dry the units are re-added (upsert makes finished units
//! available again), also outside the timed part.

use std::hint::black_box;
use std::time::{Duration, Instant};

use backends::memory::MemoryBackend;
use backends::{Coordinate, GetWork, NewUnit, UnitStatus, UnitUpdate, Value};
use cborrpc::value::{int, text};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SPEC: &str = "bench";

fn unit(i: u64) -> NewUnit {
    let data = Value::Map(vec![
        (text("payload"), text(format!("{:0>80}", format!("payload-{i}-abcdefghijklmnopqrstuvwxyz")))),
        (text("n"), int(i as i64)),
    ]);
    NewUnit::new(format!("k{i:010}").into_bytes(), data)
}

fn fill(rt: &tokio::runtime::Runtime, b: &MemoryBackend, n: u64) {
    const BATCH: u64 = 10_000;
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        rt.block_on(b.add_work_units(SPEC, (i..end).map(unit).collect())).unwrap();
        i = end;
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut g = c.benchmark_group("memory_get_work_finish");
    g.throughput(Throughput::Elements(1));
    let opts = GetWork {
        max_jobs: 1,
        work_spec_names: [SPEC.to_string()].into(),
        lease_secs: 900.0,
        runtimes: vec![String::new()],
    };
    let finish = UnitUpdate::new(Some(UnitStatus::Finished), 300.0);
    for n in [10_000u64, 100_000, 1_000_000] {
        let backend = MemoryBackend::default();
        rt.block_on(backend.set_work_spec(vec![(text("name"), text(SPEC)), (text("min_gb"), Value::Float(0.1))]))
            .unwrap();
        let t = Instant::now();
        fill(&rt, &backend, n);
        eprintln!("memory_backend: {n} units loaded in {:.2?}", t.elapsed());
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let t = Instant::now();
                    let grants = rt.block_on(backend.get_work("bench-worker", opts.clone())).unwrap();
                    let Some(g) = grants.into_iter().next() else {
                        // Drained: make every unit available again, untimed.
                        fill(&rt, &backend, n);
                        continue;
                    };
                    let changed = rt.block_on(backend.update_work_unit(SPEC, &g.key.bytes, finish.clone())).unwrap();
                    total += t.elapsed();
                    black_box(changed);
                    done += 1;
                }
                total
            })
        });
        drop(backend);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
