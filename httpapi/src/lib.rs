//! The daemon's HTTP API: JSON over HTTP/1.1 beside CBOR-RPC, in the same
//! process and tokio runtime, on the same [`JobServer`].
//!
//! It owns the HTTP side only: routes, the JSON shapes, the safety rules
//! (`guard`) and the health checks. What a request does is the job
//! server's: handlers run its typed operations (`jobserver::specs`,
//! `jobserver::units`) and, where no RPC method fits (retrying failed
//! units, listing workers) or the RPC's own bookkeeping does not apply
//! (every spec's counts at once, the statuses of listed units), a backend
//! call through [`JobServer::backend`]. So the HTTP API and the Python
//! client see one behaviour. docs/http-api.md is the reference for
//! clients (the web dashboard included); docs/openapi.yaml says the same
//! for tools. Only [`router`], [`serve`] and [`HttpConfig`] are public:
//! the modules below are the crate's own.
//!
//! * `specs` — `/api/v1/work_specs`, `/api/v1/work_specs/{name}`, pause, resume;
//! * `units` — `/api/v1/work_specs/{name}/work_units[/{key}]`, retry, prioritize;
//! * `workers` — `/api/v1/workers`;
//! * `health` — `/healthz`, `/readyz`;
//! * `metrics` — `/metrics`, the Prometheus exposition (docs/metrics.md);
//! * `dashboard` — the web dashboard at `/` (outside the guard but for
//!   its Host rule: it holds no data and must load to ask for the token);
//! * `json` — CBOR values as JSON (tuples, bytes, UUIDs, non-text map keys);
//! * `keys` — work unit keys in URLs (`b64:` for keys that are not text);
//! * `guard` — Host names, token, read-only mode, JSON-only mutations;
//! * `request`, `error` — reading requests, answering errors as JSON.

mod dashboard;
mod error;
mod guard;
mod health;
mod json;
mod keys;
mod metrics;
mod request;
mod specs;
mod units;
mod workers;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router};
use backends::Coordinate;
use cborrpc::Value;
use jobserver::JobServer;
use tokio::net::TcpListener;
use tracing::{info, warn};

use error::ApiError;
use guard::Guard;

/// The job server the handlers share.
pub type Jobs<C> = Arc<JobServer<C>>;

/// How the HTTP API is served.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The token every request must carry (`--http-token-file`).
    pub token: Option<String>,
    /// Serve GET and HEAD only (`--http-read-only`).
    pub read_only: bool,
    /// The largest request body accepted (a batch of units to add), as
    /// for a CBOR-RPC frame (`--max-frame-bytes`); 413 past it.
    pub max_body: usize,
}

/// Every route: the dashboard's files, and the rest behind the guard; the
/// Host rule before all of them.
pub fn router<C: Coordinate>(jobs: Jobs<C>, cfg: &HttpConfig) -> Router {
    let guard = Arc::new(Guard { token: cfg.token.as_ref().map(|t| t.as_bytes().into()), read_only: cfg.read_only });
    let api = Router::new().merge(specs::routes()).merge(units::routes()).merge(workers::routes());
    Router::new()
        .nest("/api/v1", api)
        .merge(health::routes())
        .merge(metrics::routes())
        .with_state(jobs)
        .fallback(not_found)
        // Set on each part before its layers: set once on the whole after
        // them, it would answer the API's wrong methods outside the guard.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.max_body))
        .layer(middleware::from_fn_with_state(guard.clone(), guard::check))
        .merge(dashboard::routes(cfg).method_not_allowed_fallback(method_not_allowed))
        .layer(middleware::from_fn_with_state(guard, guard::check_host))
}

async fn not_found() -> Response {
    ApiError::not_found("no such route (the API is under /api/v1; see docs/http-api.md)").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method").into_response()
}

/// Refuses data the Python client could not read back, as the CBOR-RPC
/// door does (docs/protocol.md §1.6). The error's path starts with
/// `name()`, where the request holds `v` (`units[3].data`).
fn check_readable(v: &Value, name: impl FnOnce() -> String) -> Result<(), ApiError> {
    jobserver::wire::check_readable(std::slice::from_ref(v))
        .map_err(|e| ApiError::bad_request(e.replacen("params[0]", &name(), 1)))
}

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` completes, then waits up to
/// 30 s for the requests in flight to finish. Connections still busy then
/// are not closed here: axum runs each in its own task, which lives on
/// until it ends or the runtime does (the binary exits right after).
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()> + Send + 'static) {
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping.send(());
        })
        .into_future();
    tokio::pin!(server);
    let deadline = async {
        if stopped.await.is_ok() {
            tokio::time::sleep(DRAIN).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = &mut server => if let Err(e) = r { warn!(error = %e, "HTTP server failed") },
        _ = deadline => warn!("HTTP requests still busy after 30 s; stopping without waiting for them"),
    }
    info!("HTTP stopped");
}
