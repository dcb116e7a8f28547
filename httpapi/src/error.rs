//! Errors as JSON: `{"error": "message"}` with the status the failure's
//! kind calls for.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use jobserver::{ErrorKind, RpcError};
use serde::Serialize;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Its status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
}

impl ApiError {
    /// An error with the given status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: what the URL names does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> ApiError {
        let status = match e.kind() {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if e.is_server_fault() {
            tracing::warn!(error = %e, "HTTP request failed");
        }
        ApiError::new(status, e.to_string())
    }
}

impl From<backends::Error> for ApiError {
    fn from(e: backends::Error) -> ApiError {
        RpcError::from(e).into()
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&Body { error: &self.message }).unwrap_or_default();
        (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the answer: {e}")).into_response()
        }
    }
}

/// A 200 JSON response.
pub fn ok<T: Serialize>(body: &T) -> Response {
    json(StatusCode::OK, body)
}

/// What a handler returns.
pub type ApiResult = Result<Response, ApiError>;
