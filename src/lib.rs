//! The `coordinated` daemon as a library: the binary parses its command
//! line and calls [`run`]; tests start the same daemon in-process with
//! [`Daemon::start`] on port 0 and get back the address it bound, so no
//! test races another for a port that was free a moment earlier.
//!
//! * [`daemon`] — options, backend wiring, start and stop.
//! * [`server`] — the listener and the per-connection loop.
//! * [`limits`] — the process's open-file limit.
//! * [`config`] — the `--config` YAML file.

pub mod config;
pub mod daemon;
pub mod limits;
pub mod server;

pub use daemon::{run, Daemon, Options};
