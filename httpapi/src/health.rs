//! `/healthz` (the process answers) and `/readyz` (the backend answers a
//! cheap read in time), for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use backends::Coordinate;
use serde::Serialize;

use crate::error::{ok, ApiError, ApiResult};
use crate::Jobs;

/// How long `/readyz` waits for the backend.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes of this file.
pub fn routes<C: Coordinate>() -> Router<Jobs<C>> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz::<C>))
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

async fn healthz() -> ApiResult {
    Ok(ok(&Status { status: "ok" }))
}

async fn readyz<C: Coordinate>(State(jobs): State<Jobs<C>>) -> ApiResult {
    let unready = |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("backend not ready: {why}"));
    match tokio::time::timeout(READY_TIMEOUT, jobs.backend().list_work_specs("", 1)).await {
        Ok(Ok(_)) => Ok(ok(&Status { status: "ready" })),
        Ok(Err(e)) => Err(unready(e.to_string())),
        Err(_) => Err(unready(format!("no answer within {} s", READY_TIMEOUT.as_secs()))),
    }
}
