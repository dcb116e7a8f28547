//! Options, backend wiring, start and stop of one daemon.
//!
//! [`run`] is what the binary does: open the backend, listen, serve until
//! a shutdown future completes. [`Daemon::start`] does the same inside a
//! running tokio runtime and hands back the bound address and a handle to
//! stop it, which is how the end-to-end tests run a daemon.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::path::PathBuf;

use backends::durable::{DurableBackend, DurableOptions};
use backends::journal::FsyncMode;
use backends::memory::MemoryBackend;
use backends::postgres::PostgresBackend;
use backends::{Coordinate, SystemClock};
use cborrpc::Value;
use jobserver::JobServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::info;

use crate::server::{self, ServerConfig};

/// Default budget of unsent reply bytes per connection.
pub const DEFAULT_MAX_PENDING_REPLY: usize = 4 << 20;

/// Everything the daemon is configured with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free one.
    pub listen: String,
    /// `durable`, `memory`, or a PostgreSQL address (`postgres://...`,
    /// `postgresql://...`, `postgres:`).
    pub backend: String,
    /// Where and how the durable backend keeps its journal.
    pub durable: DurableSettings,
    /// Connections in the PostgreSQL pool.
    pub pg_pool_size: usize,
    /// The value the `get_config` RPC returns.
    pub config: Option<Value>,
    /// Log every request at info level.
    pub log_requests: bool,
    /// Largest accepted request frame, in bytes.
    pub max_frame_bytes: usize,
    /// Unsent reply bytes after which a connection stops reading until its
    /// client takes them.
    pub max_pending_reply_bytes: usize,
    /// Open connections served at once; `None` derives it from the
    /// open-file limit ([`crate::limits::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// What one call may ask of the job server: reply size, lock paths.
    pub call_limits: jobserver::Limits,
}

/// The durable backend's settings.
#[derive(Debug, Clone)]
pub struct DurableSettings {
    /// The data directory.
    pub data_dir: PathBuf,
    /// When a change is answered relative to the disk.
    pub fsync: FsyncMode,
    /// Journal bytes that start a snapshot.
    pub snapshot_after_bytes: u64,
    /// Start despite a damaged journal, discarding from the damage on.
    pub truncate_corrupt_journal: bool,
}

impl Default for DurableSettings {
    fn default() -> Self {
        DurableSettings {
            data_dir: "coordinate-data".into(),
            fsync: FsyncMode::Always,
            snapshot_after_bytes: 64 << 20,
            truncate_corrupt_journal: false,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "127.0.0.1:5932".into(),
            backend: "durable".into(),
            durable: DurableSettings::default(),
            pg_pool_size: 8,
            config: None,
            log_requests: false,
            max_frame_bytes: cborrpc::connection::DEFAULT_MAX_FRAME,
            max_pending_reply_bytes: DEFAULT_MAX_PENDING_REPLY,
            max_connections: None,
            call_limits: jobserver::Limits::default(),
        }
    }
}

impl Options {
    /// Options for a test daemon: memory backend on a free loopback port.
    pub fn loopback() -> Self {
        Options { listen: "127.0.0.1:0".into(), backend: "memory".into(), ..Options::default() }
    }

    fn server_config(&self) -> ServerConfig {
        ServerConfig {
            max_frame: self.max_frame_bytes,
            max_pending_reply: self.max_pending_reply_bytes,
            max_connections: self.max_connections.unwrap_or_else(crate::limits::default_max_connections),
            log_requests: self.log_requests,
        }
    }
}

/// A daemon serving in the current tokio runtime. Dropping it asks it to
/// stop without waiting; [`Daemon::shutdown`] waits.
pub struct Daemon {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Opens the backend named in `options` and starts serving.
    pub async fn start(options: Options) -> Result<Daemon, String> {
        match Backend::open(&options).await? {
            Backend::Memory(b) => Daemon::start_with(b, options).await,
            Backend::Durable(b) => Daemon::start_with(b, options).await,
            Backend::Postgres(b) => Daemon::start_with(b, options).await,
        }
    }

    /// Starts serving over a backend the caller built (tests wrap one to
    /// inject faults).
    pub async fn start_with<C: Coordinate>(backend: C, options: Options) -> Result<Daemon, String> {
        let (listener, addr) = bind(&options).await?;
        let jobs = Arc::new(JobServer::with_limits(backend, options.config.clone(), options.call_limits.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, jobs, options.server_config(), async {
            let _ = stopped.await;
        }));
        Ok(Daemon { addr, stop: Some(stop), task: Some(task) })
    }

    /// The address the daemon listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Dropping the sender completes the shutdown future.
        self.stop.take();
    }
}

/// Serves as the binary does until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    match Backend::open(&options).await? {
        Backend::Memory(b) => run_with(b, &options, shutdown).await,
        Backend::Durable(b) => run_with(b, &options, shutdown).await,
        Backend::Postgres(b) => run_with(b, &options, shutdown).await,
    }
}

async fn run_with<C: Coordinate>(
    backend: C,
    options: &Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let (listener, addr) = bind(options).await?;
    let cfg = options.server_config();
    let kind = match options.backend.as_str() {
        "memory" | "durable" => options.backend.as_str(),
        _ => "postgres",
    };
    info!(%addr, backend = kind, max_connections = cfg.max_connections, "coordinated listening for CBOR-RPC");
    let jobs = Arc::new(JobServer::with_limits(backend, options.config.clone(), options.call_limits.clone()));
    server::serve(listener, jobs, cfg, shutdown).await;
    info!("stopped");
    Ok(())
}

async fn bind(options: &Options) -> Result<(TcpListener, SocketAddr), String> {
    let listener =
        TcpListener::bind(&options.listen).await.map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, addr))
}

/// The backends the command line can name.
enum Backend {
    Memory(MemoryBackend),
    Durable(DurableBackend),
    Postgres(PostgresBackend),
}

impl Backend {
    async fn open(options: &Options) -> Result<Backend, String> {
        match options.backend.as_str() {
            "memory" => Ok(Backend::Memory(MemoryBackend::default())),
            "durable" => {
                let d = &options.durable;
                let opts = DurableOptions {
                    fsync: d.fsync,
                    snapshot_after: d.snapshot_after_bytes,
                    truncate_corrupt: d.truncate_corrupt_journal,
                    ..DurableOptions::new(&d.data_dir)
                };
                // Recovery reads files: keep it off the runtime's threads.
                tokio::task::spawn_blocking(move || DurableBackend::open(opts, Arc::new(SystemClock)))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(Backend::Durable)
                    .map_err(|e| e.to_string())
            }
            url if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
                PostgresBackend::connect(url, Arc::new(SystemClock), options.pg_pool_size)
                    .await
                    .map(Backend::Postgres)
                    .map_err(|e| format!("cannot open the PostgreSQL backend: {e}"))
            }
            other => Err(format!("unknown backend {other:?} (expected `durable`, `memory` or a postgres:// address)")),
        }
    }
}
