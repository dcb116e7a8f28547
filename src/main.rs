//! `coordinated`: the Coordinate job-queue daemon.
//!
//! Parses the command line, builds the backend, and runs the CBOR-RPC
//! listener until SIGINT or SIGTERM.

mod config;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use backends::memory::MemoryBackend;
use backends::postgres::PostgresBackend;
use backends::{Coordinate, SystemClock};
use clap::Parser;
use jobserver::JobServer;
use tracing::{error, info};

/// The Coordinate job-queue daemon, compatible with the Python client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to serve CBOR-RPC on.
    #[arg(long, default_value = "127.0.0.1:5932")]
    cborrpc: String,
    /// Storage backend: `memory`, or a PostgreSQL address
    /// (`postgres://user@host/db`, `postgresql://...`, or `postgres:` to
    /// take everything from the `PG*` environment variables).
    #[arg(long, default_value = "memory")]
    backend: String,
    /// Connections in the PostgreSQL pool.
    #[arg(long, default_value_t = 8)]
    pg_pool_size: usize,
    /// YAML file returned by the `get_config` RPC.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log every request (method, id, outcome, time).
    #[arg(long)]
    log_requests: bool,
    /// Log filter: a level (`info`, `debug`...) or a tracing directive.
    #[arg(long, default_value = "info", env = "COORDINATED_LOG")]
    log_level: String,
    /// Largest accepted request frame, in bytes.
    #[arg(long, default_value_t = cborrpc::connection::DEFAULT_MAX_FRAME)]
    max_frame_bytes: usize,
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        _ = term.recv() => info!("SIGTERM received"),
    }
}

async fn run<C: Coordinate>(args: &Args, backend: C, config: Option<cborrpc::Value>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(&args.cborrpc)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.cborrpc))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let kind = if args.backend == "memory" { "memory" } else { "postgres" };
    info!(%addr, backend = kind, "coordinated listening for CBOR-RPC");
    let jobs = Arc::new(JobServer::new(backend, config));
    let cfg = server::ServerConfig { max_frame: args.max_frame_bytes, log_requests: args.log_requests };
    server::serve(listener, jobs, cfg, shutdown_signal()).await;
    info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
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
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match args.backend.as_str() {
            "memory" => run(&args, MemoryBackend::default(), config).await,
            url if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
                let backend = PostgresBackend::connect(url, Arc::new(SystemClock), args.pg_pool_size)
                    .await
                    .map_err(|e| format!("cannot open the PostgreSQL backend: {e}"))?;
                run(&args, backend, config).await
            }
            other => Err(format!("unknown backend {other:?} (expected `memory` or a postgres:// address)")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
