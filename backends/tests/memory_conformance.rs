//! The conformance suite on the memory backend.

use std::sync::Arc;

use backends::memory::MemoryBackend;

backends::conformance_tests!(|clock| async move { MemoryBackend::with_seed(Arc::new(clock), 1) });
