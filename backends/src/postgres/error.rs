//! Errors inside the backend. A database error may be worth retrying (a
//! serialization failure or deadlock only means another transaction won a
//! race), while a Coordinate error is the call's answer; every one leaves
//! the backend as a [`crate::model::Error`].

use tokio_postgres::error::SqlState;

use crate::model::Error;

/// Internal error: a database error (maybe retryable) or a Coordinate one.
pub(super) enum E {
    Pg(tokio_postgres::Error),
    Pool(String),
    C(Error),
}

pub(super) type R<T> = std::result::Result<T, E>;

impl From<tokio_postgres::Error> for E {
    fn from(e: tokio_postgres::Error) -> Self {
        E::Pg(e)
    }
}

impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::C(e)
    }
}

impl E {
    /// Whether running the whole transaction again may succeed.
    pub(super) fn retryable(&self) -> bool {
        matches!(self, E::Pg(e) if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED))
    }

    pub(super) fn into_error(self) -> Error {
        match self {
            E::C(e) => e,
            E::Pool(msg) => Error::Backend(msg),
            E::Pg(e) => Error::Backend(match e.as_db_error() {
                Some(db) => format!("{}: {}", db.code().code(), db.message()),
                None => e.to_string(),
            }),
        }
    }
}
