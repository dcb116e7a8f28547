//! `coordinated`: the Coordinate job-queue daemon.
//!
//! Parses the command line, sets up logging and the runtime, and runs the
//! daemon (the `coordinated` library) until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use backends::locks::LockLimits;
use clap::Parser;
use coordinated::{config, limits, Options};
use tracing::{error, info};

/// The Coordinate job-queue daemon, compatible with the Python client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to serve CBOR-RPC on.
    #[arg(long, default_value = "127.0.0.1:5932")]
    cborrpc: String,
    /// Storage backend: `durable` (embedded, journaled in --data-dir),
    /// `memory` (volatile: everything is lost when the daemon stops), or a
    /// PostgreSQL address (`postgres://user@host/db`, `postgresql://...`,
    /// or `postgres:` to take everything from the `PG*` environment
    /// variables).
    #[arg(long, default_value = "durable")]
    backend: String,
    /// Data directory of the durable backend (created if missing).
    #[arg(long, default_value = "coordinate-data")]
    data_dir: PathBuf,
    /// When a change is answered, for the durable backend: `always` (after
    /// its journal record is synced; concurrent requests share a sync),
    /// `interval` or `interval=MS` (after it is written; synced every MS,
    /// default 50: a power loss loses at most that), `never` (after it is
    /// written: survives a daemon crash, not a power loss).
    #[arg(long, default_value = "always")]
    fsync: backends::journal::FsyncMode,
    /// Journal bytes after which the durable backend writes a snapshot and
    /// drops the journal it covers (it also waits for the journal to
    /// outgrow the previous snapshot).
    #[arg(long, default_value_t = 64 << 20)]
    snapshot_after_bytes: u64,
    /// Start even though a journal file is damaged in the middle,
    /// discarding every record from the damage on. Without it the daemon
    /// refuses to start and names the file and offset.
    #[arg(long)]
    truncate_corrupt_journal: bool,
    /// Connections in the PostgreSQL pool.
    #[arg(long, default_value_t = 8)]
    pg_pool_size: usize,
    /// Seconds one PostgreSQL call may take, waiting for a connection
    /// included; past it the client gets an error reply.
    #[arg(long, default_value_t = backends::postgres::DEFAULT_CALL_TIMEOUT.as_secs_f64())]
    pg_timeout: f64,
    /// YAML file returned by the `get_config` RPC.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log every request (method, id, outcome, error message, time).
    #[arg(long)]
    log_requests: bool,
    /// Log filter: a level (`info`, `debug`...) or a tracing directive.
    #[arg(long, default_value = "info", env = "COORDINATED_LOG")]
    log_level: String,
    /// Largest accepted request, in bytes: a CBOR-RPC frame (a larger one
    /// closes the connection) or an HTTP request body (answered 413).
    #[arg(long, default_value_t = cborrpc::connection::DEFAULT_MAX_FRAME)]
    max_frame_bytes: usize,
    /// Unsent reply bytes per connection after which the daemon stops
    /// reading that connection until its client reads the replies.
    #[arg(long, default_value_t = coordinated::daemon::DEFAULT_MAX_PENDING_REPLY)]
    max_pending_reply_bytes: usize,
    /// Connections served at once; one more is closed as soon as accepted.
    /// [default: the open-file limit less 64]
    #[arg(long)]
    max_connections: Option<usize>,
    /// Largest reply one call may build where a short request could name a
    /// large value many times (`get_work_unit_status`); over it the call
    /// gets an error.
    #[arg(long, default_value_t = jobserver::Limits::default().max_reply_bytes)]
    max_reply_bytes: usize,
    /// Key paths one lock call (`lock`, `locksome`, `renew`, `unlock`,
    /// `readlock`) may name.
    #[arg(long, default_value_t = LockLimits::default().max_paths)]
    max_lock_paths: usize,
    /// Labels one lock key path may have.
    #[arg(long, default_value_t = LockLimits::default().max_depth)]
    max_lock_depth: usize,
    /// Address to serve the HTTP JSON API and health checks on
    /// (docs/http-api.md), or `off`. An address other hosts can reach
    /// needs --http-token-file or --http-read-only.
    #[arg(long, default_value = "127.0.0.1:5980")]
    http: String,
    /// File holding the token every HTTP request must carry, as
    /// `Authorization: Bearer TOKEN` or the cookie `coordinate_token`
    /// (whitespace around it is ignored).
    #[arg(long)]
    http_token_file: Option<PathBuf>,
    /// Serve the HTTP API read-only: GET and HEAD only, every change
    /// refused with 405.
    #[arg(long)]
    http_read_only: bool,
    /// Threads that serve connections. Large requests and the durable
    /// journal run on threads of their own besides these.
    /// [default: one per CPU less one, at least one]
    #[arg(long, env = "COORDINATED_THREADS")]
    threads: Option<usize>,
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that
/// completes at the first of them. Installed before the daemon opens its
/// backend and logs its address: a signal sent as soon as the address is
/// logged must stop the daemon gracefully, not kill it with the default
/// action.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => info!("SIGINT received"),
            _ = term.recv() => info!("SIGTERM received"),
        }
    })
}

fn main() -> ExitCode {
    limits::tune_allocator();
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let config = match &args.config {
        None => None,
        Some(path) => match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|s| config::parse(&s)) {
            Ok(v) => Some(v),
            Err(e) => {
                error!(path = %path.display(), "cannot read config: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let http_token = match &args.http_token_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_owned()),
            Ok(_) => {
                error!(path = %path.display(), "the HTTP token file is empty");
                return ExitCode::from(2);
            }
            Err(e) => {
                error!(path = %path.display(), "cannot read the HTTP token file: {e}");
                return ExitCode::from(2);
            }
        },
    };
    limits::raise_fd_limit();
    let options = Options {
        listen: args.cborrpc,
        backend: args.backend,
        durable: coordinated::daemon::DurableSettings {
            data_dir: args.data_dir,
            fsync: args.fsync,
            snapshot_after_bytes: args.snapshot_after_bytes,
            truncate_corrupt_journal: args.truncate_corrupt_journal,
        },
        pg_pool_size: args.pg_pool_size,
        pg_timeout: std::time::Duration::try_from_secs_f64(args.pg_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| {
                eprintln!("coordinated: --pg-timeout must be a positive number of seconds");
                std::process::exit(2)
            }),
        config,
        log_requests: args.log_requests,
        max_frame_bytes: args.max_frame_bytes,
        max_pending_reply_bytes: args.max_pending_reply_bytes,
        max_connections: args.max_connections,
        call_limits: jobserver::Limits {
            max_reply_bytes: args.max_reply_bytes,
            locks: LockLimits {
                max_paths: args.max_lock_paths,
                max_depth: args.max_lock_depth,
                ..LockLimits::default()
            },
        },
        http: Some(args.http).filter(|h| h != "off"),
        http_token,
        http_read_only: args.http_read_only,
    };
    let threads = args.threads.unwrap_or_else(limits::default_threads).max(1);
    let rt = match limits::runtime(threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = rt.block_on(async {
        let shutdown = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
        coordinated::run(options, shutdown).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
