//! Structure-aware: a short script of RPC calls (real method names with
//! plausible, often almost-valid parameters, see `coordinated_fuzz::script`)
//! run through `JobServer::call` over a fresh memory backend on a mock
//! clock. Nothing may panic, whatever the calls.
#![no_main]

use std::sync::Arc;

use backends::memory::MemoryBackend;
use backends::MockClock;
use coordinated_fuzz::script::{Script, Step};
use futures_executor::block_on;
use jobserver::JobServer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: Script| {
    let clock = MockClock::new();
    let server = JobServer::new(MemoryBackend::with_seed(Arc::new(clock.clone()), 0), script.config);
    for step in script.steps {
        match step {
            Step::Call { method, params } => {
                let _ = block_on(server.call(&method, params));
            }
            Step::Advance(secs) => clock.advance(secs),
        }
    }
});
