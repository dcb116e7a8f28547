//! Coalesced finishes: the common `update_work_unit`, a worker finishing
//! or failing the unit it holds with nothing to chain, is not run on its
//! own. Requests are queued to one task, which sends every request that
//! arrived while the previous batch ran as one `UPDATE … FROM unnest(…)`:
//! N finishes cost one statement, one run of the count trigger and one
//! commit (one WAL flush) instead of N. Each reply still waits for the
//! commit of its batch, so nothing is acknowledged before it is durable.
//!
//! A request the batch did not apply (the unit is not held by a live
//! lease, its spec chains, or it repeats a key of the same batch) is
//! answered `false`, and the caller takes the transaction path as before,
//! which decides every case. A batch that fails with a retryable error
//! (a deadlock between batches) is sent down that path whole too; any
//! other error is every request's answer.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::batch;
use super::error::E;
use super::spec_cache::SpecCache;
use super::sql::status;
use super::tx::Db;
use crate::model::Result;

/// Ends each held unit `(name $1, key $2)` with status `$3`, attempt data
/// `$4` (null: keep) at time `$5`, where it holds a live lease and
/// finishing chains nothing; answers the units ended.
const END_BATCH: &str = concat!(
    "UPDATE work_unit u SET status = b.st, attempt_data = coalesce(b.data, u.attempt_data), ended = b.at,
            lease_expires = NULL
     FROM unnest($1::text[], $2::bytea[], $3::smallint[], $4::bytea[], $5::bigint[]) AS b(name, key, st, data, at)
     JOIN work_spec s ON s.name = b.name
     WHERE u.spec_id = s.id AND u.key = b.key AND u.status = ",
    status!(PENDING),
    " AND u.lease_expires >= b.at AND (b.st = ",
    status!(FAILED),
    " OR s.next_spec = '')
     RETURNING s.name, u.key"
);

/// One finish or fail waiting for its batch.
struct Job {
    name: String,
    key: Vec<u8>,
    status: i16,
    data: Option<Vec<u8>>,
    at: i64,
    reply: oneshot::Sender<Result<bool>>,
}

/// The queue of the finishing task (which ends when this is dropped).
pub(super) struct Finisher {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Finisher {
    /// Starts the task on the current runtime.
    pub(super) fn start(db: Db, cache: Arc<SpecCache>) -> Finisher {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(batch::run(rx, move |jobs| {
            let (db, cache) = (db.clone(), cache.clone());
            async move { apply(&db, &cache, jobs).await }
        }));
        Finisher { jobs }
    }

    /// Ends the unit if it is held and chains nothing: `Ok(true)` once
    /// committed, `Ok(false)` when the caller must take the general path.
    pub(super) async fn end(
        &self,
        name: &str,
        key: &[u8],
        status: i16,
        data: Option<Vec<u8>>,
        at: i64,
    ) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        let job = Job { name: name.to_owned(), key: key.to_vec(), status, data, at, reply };
        if self.jobs.send(job).is_err() {
            return Ok(false);
        }
        // A batch dropped unanswered (its task gone): the general path.
        answer.await.unwrap_or(Ok(false))
    }
}

async fn apply(db: &Db, cache: &SpecCache, batch: Vec<Job>) {
    let names: Vec<&str> = batch.iter().map(|j| j.name.as_str()).collect();
    let keys: Vec<&[u8]> = batch.iter().map(|j| &j.key[..]).collect();
    let codes: Vec<i16> = batch.iter().map(|j| j.status).collect();
    let datas: Vec<Option<&[u8]>> = batch.iter().map(|j| j.data.as_deref()).collect();
    let ats: Vec<i64> = batch.iter().map(|j| j.at).collect();
    let ended = db
        .bounded(async |c| {
            let stmt = c.prepare_cached(END_BATCH).await?;
            let rows = c.query(&stmt, &[&names, &keys, &codes, &datas, &ats]).await?;
            Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1))).collect::<HashSet<_>>())
        })
        .await;
    match ended {
        Ok(mut ended) => {
            // The claims' spec list counts these units as pending no more.
            cache.ended(ended.iter().map(|(name, _)| name.as_str()));
            for job in batch {
                // Only the first request for a unit is its finish.
                let hit = ended.remove(&(job.name, job.key));
                let _ = job.reply.send(Ok(hit));
            }
        }
        Err(e) if e.retryable() => {
            for job in batch {
                let _ = job.reply.send(Ok(false));
            }
        }
        Err(e) => {
            let e = E::into_error(e);
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}
