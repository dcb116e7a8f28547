//! What can go wrong in a call, by kind.
//!
//! The kind decides what the daemon does beyond answering: a client's
//! mistake (bad parameters, an unknown spec, a forbidden transition) is the
//! client's business and is logged at debug level, while a backend that is
//! unreachable or a bug in a handler is the operator's and is logged at
//! warn or error level. The HTTP API maps kinds to status codes. The
//! message a client sees is unchanged by the kind: it is the error's
//! `Display`, as before.

use backends::model::Error as BackendError;

/// The kind of an [`RpcError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or breaks a limit.
    InvalidRequest,
    /// A named work spec or unit does not exist.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// The storage failed; nothing changed and the call may be retried.
    Unavailable,
    /// A bug in the daemon (a handler panicked).
    Internal,
}

/// The error of one call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// The request cannot be decoded or breaks a limit.
    #[error("{0}")]
    InvalidRequest(String),
    /// The backend refused or failed; its kind decides ours.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A bug: the handler did not finish normally.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RpcError {
    /// An invalid-request error.
    pub fn invalid(msg: impl Into<String>) -> RpcError {
        RpcError::InvalidRequest(msg.into())
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RpcError::InvalidRequest(_) => ErrorKind::InvalidRequest,
            RpcError::Backend(BackendError::Invalid(_)) => ErrorKind::InvalidRequest,
            RpcError::Backend(BackendError::NoSuchWorkSpec(_) | BackendError::NoSuchWorkUnit(_)) => ErrorKind::NotFound,
            RpcError::Backend(BackendError::Conflict(_)) => ErrorKind::Conflict,
            RpcError::Backend(BackendError::Backend(_)) => ErrorKind::Unavailable,
            RpcError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// True when the daemon, not the client, is at fault: worth a log line
    /// at warn level or above.
    pub fn is_server_fault(&self) -> bool {
        matches!(self.kind(), ErrorKind::Unavailable | ErrorKind::Internal)
    }
}

/// Shorthand for call results.
pub type RpcResult<T> = Result<T, RpcError>;
