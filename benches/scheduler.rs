//! The scheduler's choice of a work spec among many candidates
//! (`backends::scheduler::choose`).

use std::hint::black_box;
use std::time::Duration;

use backends::scheduler::{choose, Candidate};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` candidates, all of the same priority (so every one is scored),
/// with varied weights and pending counts.
fn candidates(n: usize) -> Vec<Candidate> {
    let mut rng = StdRng::seed_from_u64(n as u64);
    (0..n)
        .map(|_| Candidate { priority: 0, weight: rng.random_range(1..=40), pending: rng.random_range(0..200) })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler_choose");
    for n in [10usize, 100, 1000] {
        let cands = candidates(n);
        let mut rng = StdRng::seed_from_u64(7);
        g.bench_with_input(BenchmarkId::from_parameter(n), &cands, |b, cands| {
            b.iter(|| choose(black_box(cands), &mut rng))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
