//! The conformance suite on the durable backend, each rule in a fresh data
//! directory with the default (sync always) journal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use backends::durable::{DurableBackend, DurableOptions};

fn fresh_dir() -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "durable-conformance-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

backends::conformance_tests!(|clock| async move {
    let opts = DurableOptions { seed: Some(1), ..DurableOptions::new(fresh_dir()) };
    DurableBackend::open(opts, Arc::new(clock)).expect("open durable backend")
});
