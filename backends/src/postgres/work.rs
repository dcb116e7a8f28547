//! Handing out work (`get_work`) and updating the units workers hold
//! (`update_work_unit`).
//!
//! **Handing out work.** `get_work` claims units with one statement:
//! `UPDATE … FROM (SELECT … ORDER BY priority DESC, key LIMIT n FOR UPDATE
//! SKIP LOCKED) … RETURNING`. Row locks make a unit go to one worker only,
//! across connections and daemons; `SKIP LOCKED` lets concurrent workers
//! take the next units instead of queueing behind each other, and the
//! re-check of `status = available` on the locked row drops units another
//! transaction claimed meanwhile. We chose this over go-coordinate's
//! REPEATABLE READ with per-spec advisory locks and retries, which measured
//! tens of thousands of serialization failures under 64 workers. Only specs
//! with `max_running` take a transaction-scoped advisory lock on the spec,
//! so that the pending count they check cannot change under them.
//!
//! `get_work`'s common case, a spec that needs no transaction, is
//! coalesced with other workers' requests: one spec list and one claim
//! statement per spec for every request that arrived together (`claim`).
//! A spec that needs several statements to be atomic takes a transaction
//! here. `update_work_unit`'s common case, a worker ending the unit it
//! holds, is coalesced the same way into one statement (`finish`); every
//! other case is one transaction.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::types::ToSql;

use cborrpc::Value;

use super::error::R;
use super::expiry::{apply_due, expire_unit, refresh, PROBE, RELEASE_UNIT};
use super::schema::PENDING;
use super::specs::{spec_by_name, spec_cols, spec_row, SpecRow};
use super::sql::{code_of, dec, enc, status, status_of};
use super::units::{counts, upsert_units};
use super::PostgresBackend;
use crate::clock::Time;
use crate::model::*;
use crate::scheduler::{self, Candidate};

/// Every spec with its available and pending counts (columns 15 and 16).
const LIST_SPECS: &str = concat!(
    "SELECT ",
    spec_cols!(),
    ", coalesce(c.avail, 0)::bigint, coalesce(c.pending, 0)::bigint
     FROM work_spec s LEFT JOIN (
         SELECT spec_id, sum(n) FILTER (WHERE status = ",
    status!(AVAILABLE),
    ") AS avail, sum(n) FILTER (WHERE status = ",
    status!(PENDING),
    ") AS pending
         FROM unit_count GROUP BY spec_id) c ON c.spec_id = s.id"
);

/// Claims up to `$2` available units of spec `$1` for worker `$3` with a
/// lease until `$4` (see the module doc). The rows locked are updated by
/// `ctid` (they cannot move while locked): a lookup that needs no index,
/// and no plan that walks the spec's keys to join them (the planner chose
/// such a merge join once an index it preferred was gone).
const CLAIM: &str = concat!(
    "WITH picked AS MATERIALIZED (
         SELECT ctid FROM work_unit WHERE spec_id = $1 AND status = ",
    status!(AVAILABLE),
    "
         ORDER BY priority DESC, key LIMIT $2 FOR UPDATE SKIP LOCKED)
     UPDATE work_unit u SET status = ",
    status!(PENDING),
    ", worker = $3, attempt_data = NULL, lease_expires = $4,
            ended = NULL, attempts = u.attempts + 1
     WHERE u.ctid = ANY (ARRAY (SELECT ctid FROM picked))
     RETURNING u.key, u.data, u.priority, u.attempts, u.key_text"
);

/// A unit claimed by `get_work`: `RETURNING key, data, priority, attempts,
/// key_text`.
pub(super) struct ClaimRow {
    pub(super) key: UnitKey,
    pub(super) data: Vec<u8>,
    pub(super) priority: f64,
    attempts: i32,
}

impl ClaimRow {
    fn of(r: &tokio_postgres::Row) -> ClaimRow {
        ClaimRow::of_at(r, 0)
    }

    /// The row's columns from `at` on.
    pub(super) fn of_at(r: &tokio_postgres::Row, at: usize) -> ClaimRow {
        ClaimRow {
            key: UnitKey::stored(r.get(at), r.get(at + 4)),
            data: r.get(at + 1),
            priority: r.get(at + 2),
            attempts: r.get(at + 3),
        }
    }
}

pub(super) async fn get_work(db: &PostgresBackend, worker: &str, opts: GetWork) -> Result<Vec<WorkGrant>> {
    let now = db.clock.now();
    let opts = &opts;
    // The common case, a spec that needs no transaction: coalesced with
    // the requests of other workers (`claim`).
    if let Some(grants) = db.claimer.get_work(worker, opts, now).await? {
        return Ok(grants);
    }
    db.changing(db.in_tx(|tx, _| Box::pin(hand_out(db, tx, worker, opts, now)))).await
}

/// Hands out work in a transaction: every case, including specs that need
/// several statements to be atomic (`max_running`, `max_retries`, a
/// continuous unit).
async fn hand_out(
    db: &PostgresBackend,
    tx: &Transaction<'_>,
    worker: &str,
    opts: &GetWork,
    now: Time,
) -> R<Vec<WorkGrant>> {
    let lease = now.plus_secs(opts.lease_secs).0;
    loop {
        let specs = all_specs(tx, now).await?;
        let (idx, cands) = candidates_among(&specs, opts, now);
        let Some(i) = scheduler::choose(&cands, &mut *db.rng.lock()) else { return Ok(Vec::new()) };
        let spec = &specs[idx[i]];
        let m = &spec.meta;
        let mut pending = m.pending_count;
        if m.max_running > 0 {
            // Under the spec's lock, the pending count cannot change.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&spec.id]).await?;
            pending = counts(tx, spec.id).await?.get(&UnitStatus::Pending).copied().unwrap_or(0);
        }
        let n = scheduler::batch_size(m, opts.max_jobs, pending);
        if n <= 0 {
            return Ok(Vec::new());
        }
        let claim = tx.prepare_cached(CLAIM).await?;
        let mut rows: Vec<ClaimRow> =
            tx.query(&claim, &[&spec.id, &n, &worker, &lease]).await?.iter().map(ClaimRow::of).collect();
        if rows.is_empty() && continuous_ok(spec, now) {
            rows.extend(start_continuous(tx, spec, worker, lease, now).await?);
        }
        rows.sort_by(|a, b| b.priority.total_cmp(&a.priority).then_with(|| a.key.cmp(&b.key)));
        let mut failed = Vec::new();
        let mut grants = Vec::with_capacity(rows.len());
        for r in rows {
            if m.max_retries > 0 && r.attempts as i64 > m.max_retries {
                failed.push(r.key.bytes);
            } else {
                grants.push(WorkGrant { spec: spec.name.clone(), key: r.key, data: dec(&r.data) });
            }
        }
        if !failed.is_empty() {
            let fail = tx
                .prepare_cached(concat!(
                    "UPDATE work_unit SET status = ",
                    status!(FAILED),
                    ", attempt_data = $3, ended = $4, lease_expires = NULL
                     WHERE spec_id = $1 AND key = ANY($2)"
                ))
                .await?;
            tx.execute(&fail, &[&spec.id, &failed, &enc(&too_many_retries()), &now.0]).await?;
        }
        if !grants.is_empty() || failed.is_empty() {
            return Ok(grants);
        }
    }
}

/// Every spec with its available and pending counts, after applying due
/// expiries and delays.
pub(super) async fn all_specs<G: GenericClient>(tx: &G, now: Time) -> R<Vec<SpecRow>> {
    let probe = tx.prepare_cached(PROBE).await?;
    let list = tx.prepare_cached(LIST_SPECS).await?;
    // The probe for due leases and delays goes out pipelined with the spec
    // list; only when something is due does it cost more.
    let no_spec: Option<i64> = None;
    let probe_args: [&(dyn ToSql + Sync); 2] = [&now.0, &no_spec];
    let (due, mut listed) = tokio::join!(tx.query_one(&probe, &probe_args), tx.query(&list, &[]));
    let due = due?;
    if due.get::<_, bool>(0) || due.get::<_, bool>(1) {
        apply_due(tx, None, now, (due.get(0), due.get(1))).await?;
        listed = tx.query(&list, &[]).await;
    }
    Ok(listed?
        .iter()
        .map(|r| {
            let mut s = spec_row(r);
            s.meta.available_count = r.get::<_, i64>(15).max(0) as u64;
            s.meta.pending_count = r.get::<_, i64>(16).max(0) as u64;
            s
        })
        .collect())
}

/// Of `specs`, those a request with `opts` may draw from: their indexes
/// and their scheduler candidates, in the same order.
pub(super) fn candidates_among(specs: &[SpecRow], opts: &GetWork, now: Time) -> (Vec<usize>, Vec<Candidate>) {
    let mut idx = Vec::new();
    let mut cands = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let (avail, pending) = (s.meta.available_count, s.meta.pending_count);
        if scheduler::eligible(&s.name, &s.meta, avail, pending, opts, now) {
            idx.push(i);
            cands.push(Candidate { priority: s.meta.priority, weight: s.meta.weight, pending });
        }
    }
    (idx, cands)
}

/// Whether the chosen spec may start a continuous unit, by the counts it
/// was listed with.
pub(super) fn continuous_ok(s: &SpecRow, now: Time) -> bool {
    scheduler::can_start_continuous(&s.meta, s.meta.available_count, s.meta.pending_count, now)
}

/// Creates a continuous spec's synthetic unit, already claimed by
/// `worker`, if the spec's interval has passed (which this moves on).
async fn start_continuous<G: GenericClient>(
    tx: &G,
    spec: &SpecRow,
    worker: &str,
    lease: i64,
    now: Time,
) -> R<Option<ClaimRow>> {
    let gate = tx
        .prepare_cached(
            "UPDATE work_spec SET next_continuous = $2
             WHERE id = $1 AND continuous AND (next_continuous IS NULL OR next_continuous <= $3) RETURNING id",
        )
        .await?;
    let next = now.plus_secs(spec.meta.interval).0;
    if tx.query_opt(&gate, &[&spec.id, &next, &now.0]).await?.is_none() {
        return Ok(None);
    }
    let key = continuous_key(now).bytes;
    let empty = enc(&Value::Map(vec![]));
    let ins = tx
        .prepare_cached(concat!(
            "INSERT INTO work_unit (spec_id, key, data, priority, status, worker, lease_expires, attempts, key_text)
             VALUES ($1, $2, $3, 0, ",
            status!(PENDING),
            ", $4, $5, 1, true) ON CONFLICT DO NOTHING
             RETURNING key, data, priority, attempts, key_text"
        ))
        .await?;
    Ok(tx.query_opt(&ins, &[&spec.id, &key, &empty, &worker, &lease]).await?.map(|r| ClaimRow::of(&r)))
}

pub(super) async fn update(db: &PostgresBackend, name: &str, key: &[u8], upd: UnitUpdate) -> Result<bool> {
    let now = db.clock.now();
    if let Some(done @ (UnitStatus::Finished | UnitStatus::Failed)) = upd.status {
        // The common case, a worker finishing or failing the unit it
        // holds, with nothing to chain: coalesced with the finishes of
        // other workers into one statement (`finish`).
        let data = upd.data.as_ref().map(enc);
        if db.finisher.end(name, key, code_of(done), data, now.0).await? {
            return Ok(true);
        }
    }
    let upd = &upd;
    db.changing(db.in_tx(|tx, _| Box::pin(update_tx(tx, name, key, upd, now)))).await
}

/// `update_work_unit` in a transaction: every case.
async fn update_tx(tx: &Transaction<'_>, name: &str, key: &[u8], upd: &UnitUpdate, now: Time) -> R<bool> {
    // One round trip finds the spec and locks the unit.
    let lock = tx
        .prepare_cached(
            "SELECT s.id, s.next_spec, u.status, u.lease_expires FROM work_spec s
             JOIN work_unit u ON u.spec_id = s.id AND u.key = $2 WHERE s.name = $1 FOR UPDATE OF u",
        )
        .await?;
    let Some(row) = tx.query_opt(&lock, &[&name, &key]).await? else {
        spec_by_name(tx, name).await?;
        return Err(Error::NoSuchWorkUnit(key.to_vec()).into());
    };
    let spec_id: i64 = row.get(0);
    let then: String = row.get(1);
    let mut status: i16 = row.get(2);
    if status == PENDING && row.get::<_, Option<i64>>(3).is_some_and(|t| t < now.0) {
        // The lease ran out: expire it first, as a refresh would.
        status = expire_unit(tx, spec_id, key, now).await?;
    }
    let (force, plan) = plan_update(status_of(status), upd.status)?;
    let lease = now.plus_secs(upd.lease_secs).0;
    let data = upd.data.as_ref().map(enc);
    if force {
        let worker = upd.worker_id.clone().unwrap_or_default();
        let stmt = tx
            .prepare_cached(concat!(
                "UPDATE work_unit SET status = ",
                status!(PENDING),
                ", worker = $3, attempt_data = NULL, lease_expires = $4,
                        ended = NULL, attempts = attempts + 1 WHERE spec_id = $1 AND key = $2"
            ))
            .await?;
        tx.execute(&stmt, &[&spec_id, &key, &worker, &lease]).await?;
    }
    let (sql, args): (&str, Vec<&(dyn ToSql + Sync)>) = match plan {
        UpdatePlan::Nothing => return Ok(false),
        UpdatePlan::SetIdleData if data.is_none() => return Ok(false),
        UpdatePlan::SetIdleData => {
            ("UPDATE work_unit SET data = $3 WHERE spec_id = $1 AND key = $2", vec![&spec_id, &key, &data])
        }
        UpdatePlan::Renew => (
            "UPDATE work_unit SET lease_expires = $4, attempt_data = coalesce($3, attempt_data)
             WHERE spec_id = $1 AND key = $2",
            vec![&spec_id, &key, &data, &lease],
        ),
        UpdatePlan::Release | UpdatePlan::Retry => (RELEASE_UNIT, vec![&spec_id, &key, &now.0]),
        UpdatePlan::Fail => (
            concat!(
                "UPDATE work_unit SET status = ",
                status!(FAILED),
                ", attempt_data = coalesce($3, attempt_data), ended = $4, lease_expires = NULL
                 WHERE spec_id = $1 AND key = $2"
            ),
            vec![&spec_id, &key, &data, &now.0],
        ),
        UpdatePlan::Finish => (
            concat!(
                "UPDATE work_unit SET status = ",
                status!(FINISHED),
                ", attempt_data = coalesce($3, attempt_data), ended = $4, lease_expires = NULL
                 WHERE spec_id = $1 AND key = $2 RETURNING coalesce(attempt_data, data)"
            ),
            vec![&spec_id, &key, &data, &now.0],
        ),
        UpdatePlan::LateFinish => (
            concat!(
                "UPDATE work_unit SET status = ",
                status!(FINISHED),
                ", ended = $3, lease_expires = NULL
                 WHERE spec_id = $1 AND key = $2 RETURNING coalesce(attempt_data, data)"
            ),
            vec![&spec_id, &key, &now.0],
        ),
    };
    let stmt = tx.prepare_cached(sql).await?;
    let rows = tx.query(&stmt, &args).await?;
    if matches!(plan, UpdatePlan::Finish | UpdatePlan::LateFinish) {
        if let Some(row) = rows.first() {
            chain(tx, &then, row.get(0), now).await?;
        }
    }
    Ok(true)
}

/// Sends a finished unit's output to the `then` spec, if both exist.
async fn chain(tx: &Transaction<'_>, then: &str, effective: &[u8], now: Time) -> R<()> {
    if then.is_empty() {
        return Ok(());
    }
    let units = chained_units(&dec(effective));
    if units.is_empty() {
        return Ok(());
    }
    // Held until the transaction ends, as units::hold_spec does.
    let stmt = tx.prepare_cached("SELECT id FROM work_spec WHERE name = $1 FOR KEY SHARE").await?;
    if let Some(r) = tx.query_opt(&stmt, &[&then]).await? {
        refresh(tx, Some(r.get(0)), now).await?;
        upsert_units(tx, r.get(0), units, now).await?;
    }
    Ok(())
}
