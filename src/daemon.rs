//! Options, backend wiring, start and stop of one daemon.
//!
//! [`run`] is what the binary does: open the backend, listen, serve until
//! a shutdown future completes. [`Daemon::start`] does the same inside a
//! running tokio runtime and hands back the bound addresses and a handle
//! to stop it, which is how the end-to-end tests run a daemon.
//!
//! CBOR-RPC and the HTTP API (the `httpapi` crate) serve one
//! [`JobServer`] in one runtime; a shutdown stops both, and each lets its
//! requests in flight finish (HTTP waits up to 30 s for them).

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
use tokio::sync::{oneshot, watch};
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
    /// How long one PostgreSQL call may take.
    pub pg_timeout: std::time::Duration,
    /// The value the `get_config` RPC returns.
    pub config: Option<Value>,
    /// Log every request at info level.
    pub log_requests: bool,
    /// Largest accepted request, in bytes: a CBOR-RPC frame or an HTTP
    /// body.
    pub max_frame_bytes: usize,
    /// Unsent reply bytes after which a connection stops reading until its
    /// client takes them.
    pub max_pending_reply_bytes: usize,
    /// Open connections served at once; `None` derives it from the
    /// open-file limit ([`crate::limits::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// What one call may ask of the job server: reply size, lock paths.
    pub call_limits: jobserver::Limits,
    /// Where to serve the HTTP API (port 0 picks a free one); `None` turns
    /// it off.
    pub http: Option<String>,
    /// The token every HTTP request must carry (from `--http-token-file`).
    pub http_token: Option<String>,
    /// Serve the HTTP API read-only.
    pub http_read_only: bool,
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
            pg_timeout: backends::postgres::DEFAULT_CALL_TIMEOUT,
            config: None,
            log_requests: false,
            max_frame_bytes: cborrpc::connection::DEFAULT_MAX_FRAME,
            max_pending_reply_bytes: DEFAULT_MAX_PENDING_REPLY,
            max_connections: None,
            call_limits: jobserver::Limits::default(),
            http: Some("127.0.0.1:5980".into()),
            http_token: None,
            http_read_only: false,
        }
    }
}

impl Options {
    /// Options for a test daemon: memory backend, CBOR-RPC and HTTP on
    /// free loopback ports.
    pub fn loopback() -> Self {
        Options {
            listen: "127.0.0.1:0".into(),
            backend: "memory".into(),
            http: Some("127.0.0.1:0".into()),
            ..Options::default()
        }
    }

    fn http_config(&self) -> httpapi::HttpConfig {
        httpapi::HttpConfig {
            token: self.http_token.clone(),
            read_only: self.http_read_only,
            max_body: self.max_frame_bytes,
        }
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
    http_addr: Option<SocketAddr>,
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
        let http = bind_http(&options).await?;
        let http_addr = http.as_ref().map(|(_, a)| *a);
        let jobs = Arc::new(JobServer::with_limits(backend, options.config.clone(), options.call_limits.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_both(listener, http.map(|(l, _)| l), jobs, &options, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Daemon { addr, http_addr, stop: Some(stop), task: Some(task) })
    }

    /// The address the daemon listens on for CBOR-RPC.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the HTTP API, unless it is off.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Stops accepting, lets in-flight requests finish, and waits (for
    /// HTTP requests, up to 30 s: one still running then is left to the
    /// runtime).
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
    let http = bind_http(options).await?;
    let cfg = options.server_config();
    let kind = match options.backend.as_str() {
        "memory" | "durable" => options.backend.as_str(),
        _ => "postgres",
    };
    // Logged first: tests read the CBOR-RPC line as "started", and find
    // this one before it.
    if let Some((_, addr)) = &http {
        let token = options.http_token.is_some();
        info!(%addr, read_only = options.http_read_only, token, "coordinated listening for HTTP");
    }
    info!(%addr, backend = kind, max_connections = cfg.max_connections, "coordinated listening for CBOR-RPC");
    let jobs = Arc::new(JobServer::with_limits(backend, options.config.clone(), options.call_limits.clone()));
    serve_both(listener, http.map(|(l, _)| l), jobs, options, shutdown).await;
    info!("stopped");
    Ok(())
}

/// Serves CBOR-RPC, and HTTP if it has a listener, until `shutdown`
/// completes; then both drain.
async fn serve_both<C: Coordinate>(
    listener: TcpListener,
    http: Option<TcpListener>,
    jobs: Arc<JobServer<C>>,
    options: &Options,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let http = http.map(|l| {
        let app = httpapi::router(jobs.clone(), &options.http_config());
        let mut stop = stop_rx.clone();
        tokio::spawn(httpapi::serve(l, app, async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    });
    server::serve(listener, jobs, options.server_config(), async {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await;
    let _ = stop_tx.send(true);
    if let Some(task) = http {
        let _ = task.await;
    }
}

async fn bind(options: &Options) -> Result<(TcpListener, SocketAddr), String> {
    let listener =
        TcpListener::bind(&options.listen).await.map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, addr))
}

/// Binds the HTTP API's address, refusing one that other hosts can reach
/// unless requests need a token or cannot change anything. The check is
/// on the address bound, so a name is looked up once, by the bind.
async fn bind_http(options: &Options) -> Result<Option<(TcpListener, SocketAddr)>, String> {
    let Some(http) = &options.http else { return Ok(None) };
    let listener = TcpListener::bind(http).await.map_err(|e| format!("cannot listen for HTTP on {http}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if options.http_token.is_none() && !options.http_read_only && !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to serve HTTP on {http} without a token: other hosts can reach that address, and the API \
             changes the queue. Give --http-token-file FILE (every request must then carry the token), or \
             --http-read-only, or a loopback address such as 127.0.0.1:5980"
        ));
    }
    Ok(Some((listener, addr)))
}

/// The backends the command line can name.
// One value, built once at start-up and moved into the server: its size
// does not matter.
#[allow(clippy::large_enum_variant)]
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
                PostgresBackend::connect(url, Arc::new(SystemClock), options.pg_pool_size, options.pg_timeout)
                    .await
                    .map(Backend::Postgres)
                    .map_err(|e| format!("cannot open the PostgreSQL backend: {e}"))
            }
            other => Err(format!("unknown backend {other:?} (expected `durable`, `memory` or a postgres:// address)")),
        }
    }
}
