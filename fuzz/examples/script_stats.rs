//! Prints how often each method's generated calls succeed (generator check).
use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use backends::memory::MemoryBackend;
use backends::MockClock;
use coordinated_fuzz::script::{Script, Step};
use jobserver::JobServer;

fn main() {
    let mut stats: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let mut seed = 1u64;
    for _ in 0..3000 {
        let data: Vec<u8> = (0..400)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let script = Script::arbitrary(&mut Unstructured::new(&data)).unwrap();
        let clock = MockClock::new();
        let server = JobServer::new(MemoryBackend::with_seed(Arc::new(clock.clone()), 0), script.config);
        for step in script.steps {
            if let Step::Call { method, params } = step {
                let shown = format!("{params:?}");
                let r = futures_executor::block_on(server.call(&method, params));
                if let (Err(e), true) = (&r, std::env::var("SHOW").is_ok_and(|m| m == method)) {
                    println!("{e}   <- {shown}");
                }
                let e = stats.entry(method).or_default();
                match r {
                    Ok(cborrpc::Value::Array(a)) if a.len() == 2 && !a[1].is_null() => e.1 += 1,
                    Ok(_) => e.0 += 1,
                    Err(_) => e.2 += 1,
                }
            }
        }
    }
    for (m, (ok, inband, err)) in stats {
        println!("{m:28} ok {ok:5} msg {inband:5} err {err:5}");
    }
}
