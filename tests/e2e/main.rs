//! The end-to-end tests, one module per subject, built as one test binary.
//!
//! Each file under `tests/` used to be a test crate of its own, and each
//! compiled the whole daemon stack (server, jobserver, backends) again for
//! the backends it starts: most of the test build's time. As modules of
//! one crate they share that code.

mod common;

mod bench;
mod concurrency;
mod dashboard;
mod durable;
mod durable_locks;
mod hostile;
mod http_api;
mod postgres;
mod strings;
mod wire;
