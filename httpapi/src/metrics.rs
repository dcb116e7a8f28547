//! `GET /metrics`: the Prometheus exposition that `jobserver::metrics`
//! renders (docs/metrics.md). It sits behind the same guard as the API, so
//! a token-protected daemon wants the token from its scraper too
//! (Prometheus's `authorization` setting sends it as a bearer token).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use backends::Coordinate;

use crate::error::ApiError;
use crate::Jobs;

/// The routes of this file.
pub fn routes<C: Coordinate>() -> Router<Jobs<C>> {
    Router::new().route("/metrics", get(metrics::<C>))
}

async fn metrics<C: Coordinate>(State(jobs): State<Jobs<C>>) -> Result<Response, ApiError> {
    let text = jobserver::metrics::render(&jobs).await?;
    Ok(([(CONTENT_TYPE, jobserver::metrics::CONTENT_TYPE)], text).into_response())
}
