//! How one trait call runs against the database.
//!
//! [`PostgresBackend::in_tx`] runs the call's body in a transaction at
//! READ COMMITTED, committing on success and running the whole body again
//! on a serialization failure or deadlock. [`PostgresBackend::autocommit`]
//! runs it on a pooled connection without BEGIN and COMMIT: for calls that
//! only read, or whose single writes are atomic on their own (applying due
//! expiries), this saves two round trips.
//!
//! **Every call is bounded** by the backend's call timeout (`--pg-timeout`):
//! waiting for a connection and running the body together. A database that
//! stops answering (a partition, a stalled server) gets the caller an error
//! reply at the timeout instead of a hang, and the connection the body was
//! using is closed rather than returned to the pool, where the next call
//! would wait on it again.
//!
//! The body is a closure returning a boxed future (one allocation per call,
//! against at least one network round trip), so a `return` or `?` in it
//! leaves the body, as it looks. The closure's second argument, a
//! [`Scope`], carries no data: its type tells the compiler that the
//! transaction's borrow is shorter than the borrows the body captures,
//! which it could not otherwise assume for a borrow made inside the helper.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use std::time::Duration;

use deadpool_postgres::{Client, Pool, Transaction};
use tokio::time::{timeout_at, Instant};

use super::error::{E, R};
use super::PostgresBackend;
use crate::model::Result;

/// The future a call's body returns, borrowing the connection for `'a`.
pub(super) type Body<'a, T> = Pin<Box<dyn Future<Output = R<T>> + Send + 'a>>;

/// Proof that `'env` (the borrows a body captures) outlives `'a` (its
/// connection or transaction); see the module doc.
pub(super) struct Scope<'a, 'env>(PhantomData<&'a &'env ()>);

/// How often a transaction is run again after a serialization failure or
/// deadlock before the error is the answer.
const RETRIES: u32 = 10;

/// Where calls run: the pool, and how long one call may take.
#[derive(Clone)]
pub(super) struct Db {
    pub(super) pool: Pool,
    pub(super) call_timeout: Duration,
}

impl Db {
    /// A pooled connection by `deadline`; a dead database is an error for
    /// this call only.
    async fn client(&self, deadline: Instant) -> R<Client> {
        match timeout_at(deadline, self.pool.get()).await {
            Ok(got) => got.map_err(|e| E::Pool(format!("database unavailable: {e}"))),
            Err(_) => Err(self.late()),
        }
    }

    /// The error of a call that ran out of time.
    fn late(&self) -> E {
        E::Pool(format!(
            "database did not answer within {:.1} s (--pg-timeout); the call may or may not have been applied",
            self.call_timeout.as_secs_f64()
        ))
    }

    /// Runs `work` on a pooled connection within the call timeout; past
    /// it, closes the connection instead of pooling it again.
    pub(super) async fn bounded<T>(&self, work: impl AsyncFnOnce(&mut Client) -> R<T>) -> R<T> {
        let deadline = Instant::now() + self.call_timeout;
        let mut client = self.client(deadline).await?;
        match timeout_at(deadline, work(&mut client)).await {
            Ok(r) => r,
            Err(_) => {
                drop(deadpool_postgres::Object::take(client));
                Err(self.late())
            }
        }
    }
}

impl PostgresBackend {
    /// Runs `body` in a transaction (see the module doc).
    pub(super) async fn in_tx<'env, T, F>(&'env self, body: F) -> Result<T>
    where
        F: for<'a> FnMut(&'a Transaction<'a>, Scope<'a, 'env>) -> Body<'a, T>,
    {
        self.try_in_tx(body).await.map_err(E::into_error)
    }

    /// [`PostgresBackend::in_tx`], answering the internal error.
    async fn try_in_tx<'env, T, F>(&'env self, mut body: F) -> R<T>
    where
        F: for<'a> FnMut(&'a Transaction<'a>, Scope<'a, 'env>) -> Body<'a, T>,
    {
        self.db
            .bounded(async |client: &mut Client| {
                let mut tries = 0;
                loop {
                    let tx = client.transaction().await?;
                    let r = body(&tx, Scope(PhantomData)).await;
                    let r = match r {
                        Ok(v) => tx.commit().await.map(|_| v).map_err(E::from),
                        // Dropping the transaction rolls it back.
                        Err(e) => Err(e),
                    };
                    match r {
                        Err(e) if e.retryable() && tries < RETRIES => tries += 1,
                        other => return other,
                    }
                }
            })
            .await
    }

    /// Runs `body` on a connection in autocommit mode (see the module doc).
    pub(super) async fn autocommit<'env, T, F>(&'env self, body: F) -> Result<T>
    where
        F: for<'a> FnOnce(&'a Client, Scope<'a, 'env>) -> Body<'a, T>,
    {
        self.db.bounded(async |client: &mut Client| body(client, Scope(PhantomData)).await).await.map_err(E::into_error)
    }
}
