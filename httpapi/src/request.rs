//! Reading a request: path and query parameters and JSON bodies, whose
//! failures answer 400 with a JSON error like every other (axum's own
//! extractors answer plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use backends::model::UnitStatus;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Items a page holds when the request names no `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// The largest `limit` a listing accepts.
pub const MAX_PAGE: usize = 1000;

/// Path parameters (percent-decoded).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| ApiQuery(t))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// A request body, read whole (up to [`crate::HttpConfig::max_body`]; 413
/// past it).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state).await.map(Body).map_err(|e| ApiError::new(e.status(), e.body_text()))
    }
}

/// A JSON body as `T`; an empty body reads as `{}`.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A page size: `limit` if given (1 to [`MAX_PAGE`]), else [`DEFAULT_PAGE`].
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n @ 1..=MAX_PAGE) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!("limit {n}: must be 1 to {MAX_PAGE}"))),
    }
}

/// A status by its name.
pub fn status(name: &str) -> Result<UnitStatus, ApiError> {
    UnitStatus::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown status {name:?} (expected available, pending, finished, failed or delayed)"
        ))
    })
}

/// A `status` filter: names separated by commas; absent, empty or `any`
/// means every status.
pub fn statuses(names: Option<&str>) -> Result<Option<Vec<UnitStatus>>, ApiError> {
    match names.map(str::trim) {
        None | Some("") | Some("any") => Ok(None),
        Some(list) => list.split(',').map(|n| status(n.trim())).collect::<Result<Vec<_>, _>>().map(Some),
    }
}

/// `?start=&limit=` of a listing paged by name (specs, workers).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The first name to list (inclusive).
    pub start: Option<String>,
    /// At most this many ([`DEFAULT_PAGE`] if absent, up to [`MAX_PAGE`]).
    pub limit: Option<usize>,
}
