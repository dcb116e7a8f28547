//! The queue both coalescing tasks (`claim`, `finish`) run on: batches of
//! whatever arrived while earlier batches ran, a few in flight at once.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

/// Batches run at once: while they run, the next one gathers.
const IN_FLIGHT: usize = 2;
/// Most requests in one batch.
const MAX_BATCH: usize = 512;

/// Takes requests from `rx` until it closes and spawns `apply` on each
/// batch: every request that arrived while a batch slot was busy, up to
/// [`MAX_BATCH`].
pub(super) async fn run<J, F, Fut>(mut rx: mpsc::UnboundedReceiver<J>, apply: F)
where
    J: Send + 'static,
    F: Fn(Vec<J>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot lets the batch grow.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let applied = apply(batch);
        tokio::spawn(async move {
            applied.await;
            drop(permit);
        });
    }
}
