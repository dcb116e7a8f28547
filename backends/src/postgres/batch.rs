//! The queue both coalescing tasks (`claim`, `finish`) run on: one batch
//! at a time, of whatever arrived while the previous one ran.
//!
//! One, not several: with two batches in flight each is smaller, the
//! server commits (and flushes) twice as often, and two claims on one spec
//! scan past each other's locked rows. Ad hoc drains of 20,000 units on a
//! private cluster, four rounds each, one build with the count as a
//! setting: W=8 J=1 4,672-5,707 units/s with one against 3,969-4,316 with
//! two; W=64 J=1 16,996-18,860 against 15,132-15,858; W=64 J=10 the same
//! (15,750-16,732 against 15,596-16,452). Four or eight were slower still.
//!
//! A batch that stalls (a row lock another transaction holds, a server
//! that stops answering) holds up the ones behind it until it ends or the
//! backend's call timeout (`tx`) ends it.

use std::future::Future;

use tokio::sync::mpsc;

/// Most requests in one batch.
const MAX_BATCH: usize = 512;

/// Takes requests from `rx` until it closes and runs `apply` on each
/// batch: every request that arrived while the previous batch ran, up to
/// [`MAX_BATCH`].
pub(super) async fn run<J, F, Fut>(mut rx: mpsc::UnboundedReceiver<J>, apply: F)
where
    J: Send + 'static,
    F: Fn(Vec<J>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A task of its own, so a panic in one batch ends only that batch
        // (its requests, their replies dropped, take the general path).
        let _ = tokio::spawn(apply(batch)).await;
    }
}
