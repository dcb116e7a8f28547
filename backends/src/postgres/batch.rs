//! The queue both coalescing tasks (`claim`, `finish`) run on: one batch
//! at a time, of whatever arrived while the previous one ran.
//!
//! One, not several: with two in flight the batches are smaller (at W=8,
//! 7,994 claim statements for 20,000 units against 6,179 with one, by
//! `pg_stat_statements`), so the server commits and flushes more often.
//! Ad hoc drains of 20,000 units on a private cluster like the one
//! `scripts/bench postgres` makes, one build with the count as a setting,
//! interleaved (one against two): W=8 J=1 5,409/5,447/5,501/5,170 against
//! 4,920/5,251/5,077/5,123 units/s; W=64 J=1 17,661/18,146/13,838 against
//! 13,742/15,302/10,811; W=64 J=10 within the noise. Four or eight in
//! flight were slower still at W=8 (3,734-4,675 units/s, measured with
//! `pg_stat_statements` loaded, which slows every batch a little).
//!
//! A batch that stalls (a row lock another transaction holds, a server
//! that stops answering) holds up the ones behind it until it ends or the
//! backend's call timeout (`tx`) ends it.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::mpsc;

/// Most requests in one batch.
const MAX_BATCH: usize = 512;

/// Takes requests from `rx` until it closes and runs `apply` on each
/// batch: every request that arrived while the previous batch ran, up to
/// [`MAX_BATCH`].
pub(super) async fn run<J, F, Fut>(mut rx: mpsc::UnboundedReceiver<J>, apply: F)
where
    F: Fn(Vec<J>) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A panic ends only its batch, as the server's does only its
        // request: the batch's requests, their replies dropped, take the
        // general path, and the next batch runs.
        let _ = AssertUnwindSafe(apply(batch)).catch_unwind().await;
    }
}
