//! Coalesced claims: the common `get_work` (a spec that needs no
//! transaction: no `max_running`, no `max_retries`, no continuous unit to
//! start) is not run on its own. Requests are queued to one task, which
//! takes every request that arrived while the previous batch ran, reads the
//! spec list and the due probe once for all of them, lets the scheduler
//! choose a spec for each in arrival order (each choice counting the units
//! the earlier ones took, as if they had run one after another), and
//! claims each chosen spec's units for all its requests with one
//! statement. N claims then cost one spec list, one statement, one run of
//! the count trigger and one commit, instead of N of each.
//!
//! The statement numbers its slots: request j of the batch owns as many
//! consecutive slots as units it may take, each slot carrying its worker
//! and lease, and the units locked (in hand-out order) are paired with the
//! slots in order. So the earliest request gets the best units, as it
//! would have alone, and a spec that runs short leaves the last requests
//! with fewer units or none, as they would have found it.
//!
//! The spec list may be one a recent batch read (`spec_cache`); then a
//! request it leaves with nothing, no spec to choose or no unit claimed,
//! is answered `None` too, and the statement checks that the spec is
//! still unpaused and needs no transaction before it claims.
//!
//! A request whose chosen spec needs a transaction is answered `None`, and
//! the caller takes the transaction path, which decides every case; so is
//! every request of a statement (or spec read) that failed with a
//! retryable error. Any other error is the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};

use super::batch;
use super::error::E;
use super::spec_cache::SpecCache;
use super::sql::{dec, status};
use super::tx::Db;
use super::work::{all_specs, candidates_among, continuous_ok, ClaimRow};
use crate::clock::Time;
use crate::model::*;
use crate::scheduler;

/// Claims up to `$4` available units of spec `$1`, pairing them in
/// hand-out order with the slots of `$2` (workers) and `$3` (lease ends).
/// Rows are updated by `ctid` (`work::CLAIM` says why).
///
/// The limit stays a parameter, on purpose. The server then picks a custom
/// or a generic plan by cost: on fresh databases it keeps a generic one
/// (ad hoc, `pg_stat_statements`: 12 plans for 6,022 claims), on a
/// long-lived one with many dead index entries it planned every claim (up
/// to 0.16 ms each). A limit written in makes it keep a generic plan
/// always, and in the build that tried it (`35b3ca3`, reverted) one made
/// while the statistics were stale was a bitmap scan and sort of the
/// spec's whole backlog on every claim: 12 ms each (`auto_explain`), and
/// ad hoc W=8 drains of `coordbench drain --backdrop 100000` ran at
/// 1,201-1,326 units/s against 4,174-4,981 with this statement.
const CLAIM_SLOTS: &str = concat!(
    "WITH picked AS MATERIALIZED (
         SELECT ctid, row_number() OVER (ORDER BY priority DESC, key) AS ord
         FROM (SELECT ctid, key, priority FROM work_unit WHERE spec_id = $1 AND status = ",
    status!(AVAILABLE),
    "
                 AND EXISTS (SELECT 1 FROM work_spec WHERE id = $1 AND NOT paused AND max_running = 0
                             AND max_retries = 0)
               ORDER BY priority DESC, key LIMIT $4 FOR UPDATE SKIP LOCKED) AS p)
     UPDATE work_unit u SET status = ",
    status!(PENDING),
    ", worker = s.w, attempt_data = NULL, lease_expires = s.l,
            ended = NULL, attempts = u.attempts + 1
     FROM picked JOIN unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS s(w, l, ord) ON s.ord = picked.ord
     WHERE u.ctid = picked.ctid
     RETURNING picked.ord, u.key, u.data, u.priority, u.attempts, u.key_text"
);

/// The answer of one request: `None` sends it down the transaction path.
type Answer = Result<Option<Vec<WorkGrant>>>;

/// One `get_work` waiting for its batch.
struct Job {
    worker: String,
    opts: GetWork,
    now: Time,
    reply: oneshot::Sender<Answer>,
}

/// The queue of the claiming task (which ends when this is dropped).
pub(super) struct Claimer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Claimer {
    /// Starts the task on the current runtime; it draws from `rng`, the
    /// backend's scheduler randomness.
    pub(super) fn start(db: Db, rng: Arc<Mutex<StdRng>>, cache: Arc<SpecCache>) -> Claimer {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(batch::run(rx, move |jobs| {
            let (db, rng, cache) = (db.clone(), rng.clone(), cache.clone());
            async move { apply(&db, &rng, &cache, jobs).await }
        }));
        Claimer { jobs }
    }

    /// Hands out work if the chosen spec needs no transaction:
    /// `Ok(Some(grants))` once committed, `Ok(None)` when the caller must
    /// take the transaction path.
    pub(super) async fn get_work(&self, worker: &str, opts: &GetWork, now: Time) -> Answer {
        let (reply, answer) = oneshot::channel();
        let job = Job { worker: worker.to_owned(), opts: opts.clone(), now, reply };
        if self.jobs.send(job).is_err() {
            return Ok(None);
        }
        // A batch dropped unanswered (its task gone): the general path.
        answer.await.unwrap_or(Ok(None))
    }
}

/// One spec's claim in a batch: its slots (worker names borrowed from the
/// batch's requests) and which request owns each.
struct Group<'a> {
    /// The spec's index in the batch's spec list.
    idx: usize,
    workers: Vec<&'a str>,
    leases: Vec<i64>,
    owner: Vec<usize>,
}

async fn apply(db: &Db, rng: &Mutex<StdRng>, cache: &SpecCache, batch: Vec<Job>) {
    let mut answers: Vec<Option<Answer>> = (0..batch.len()).map(|_| None).collect();
    let mut grants: Vec<Vec<(f64, WorkGrant)>> = (0..batch.len()).map(|_| Vec::new()).collect();
    // The newest request time reads the spec list; leases stay each
    // request's own.
    let now = batch.iter().map(|j| j.now).max().unwrap_or(Time(0));
    let cached = cache.get(now);
    let reused = cached.is_some();
    let outcome = db
        .bounded(async |c| {
            let (mut specs, generation) = match cached {
                Some(reused) => reused,
                None => {
                    let generation = cache.generation();
                    (all_specs(&*c, now).await?, generation)
                }
            };
            let mut groups: BTreeMap<i64, Group> = BTreeMap::new();
            for (j, job) in batch.iter().enumerate() {
                let (idx, cands) = candidates_among(&specs, &job.opts, job.now);
                let Some(i) = scheduler::choose(&cands, &mut *rng.lock()) else {
                    // Nothing to do, unless a reused list missed new work.
                    answers[j] = Some(Ok(if reused { None } else { Some(Vec::new()) }));
                    continue;
                };
                let spec = &mut specs[idx[i]];
                let m = &spec.meta;
                if m.max_running > 0 || m.max_retries > 0 || continuous_ok(spec, job.now) {
                    answers[j] = Some(Ok(None));
                    continue;
                }
                let n = scheduler::batch_size(m, job.opts.max_jobs, m.pending_count).max(0) as u64;
                let g = groups.entry(spec.id).or_insert_with(|| Group {
                    idx: idx[i],
                    workers: Vec::new(),
                    leases: Vec::new(),
                    owner: Vec::new(),
                });
                let lease = job.now.plus_secs(job.opts.lease_secs).0;
                for _ in 0..n {
                    g.workers.push(&job.worker);
                    g.leases.push(lease);
                    g.owner.push(j);
                }
                // The next choice sees this one's units as taken.
                spec.meta.available_count = spec.meta.available_count.saturating_sub(n);
                spec.meta.pending_count += n;
            }
            let stmt = c.prepare_cached(CLAIM_SLOTS).await?;
            let claims = groups.iter().map(|(id, g)| {
                let limit = g.workers.len() as i64;
                let c = &*c;
                let stmt = &stmt;
                async move { c.query(stmt, &[id, &g.workers, &g.leases, &limit]).await }
            });
            let results = futures_util::future::join_all(claims).await;
            Ok((groups.into_values().zip(results).collect::<Vec<_>>(), specs, generation))
        })
        .await;
    match outcome {
        Ok((claimed, mut specs, generation)) => {
            for (g, rows) in claimed {
                match rows {
                    Ok(rows) => {
                        if rows.len() < g.workers.len() {
                            // The spec ran short: the next batches know.
                            let m = &mut specs[g.idx].meta;
                            m.pending_count = m.pending_count.saturating_sub((g.workers.len() - rows.len()) as u64);
                            m.available_count = 0;
                        }
                        for r in &rows {
                            let ord: i64 = r.get(0);
                            let row = ClaimRow::of_at(r, 1);
                            let owner = g.owner[ord as usize - 1];
                            let grant =
                                WorkGrant { spec: specs[g.idx].name.clone(), key: row.key, data: dec(&row.data) };
                            grants[owner].push((row.priority, grant));
                        }
                    }
                    Err(e) => {
                        let answer = fallback(E::from(e));
                        for &j in &g.owner {
                            answers[j] = Some(answer.clone());
                        }
                    }
                }
            }
            // This batch's claims counted, for the batches that reuse it.
            cache.put(generation, now, specs, !reused);
        }
        Err(e) => {
            let answer = fallback(e);
            for a in answers.iter_mut().filter(|a| a.is_none()) {
                *a = Some(answer.clone());
            }
        }
    }
    for ((job, answer), mut got) in batch.into_iter().zip(answers).zip(grants) {
        let answer = answer.unwrap_or_else(|| {
            if got.is_empty() && reused {
                // Perhaps only the reused list thought this spec had work.
                return Ok(None);
            }
            got.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.key.cmp(&b.1.key)));
            Ok(Some(got.into_iter().map(|(_, g)| g).collect()))
        });
        let _ = job.reply.send(answer);
    }
}

/// A failed batch's answer: the transaction path when trying again may
/// work, else the error.
fn fallback(e: E) -> Answer {
    if e.retryable() {
        Ok(None)
    } else {
        Err(e.into_error())
    }
}
