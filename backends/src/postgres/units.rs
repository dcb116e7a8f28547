//! Work units: adding (with upsert semantics), listing, status, priority,
//! deletion, and counting.
//!
//! **Counting.** Statement-level triggers keep per-spec, per-status counts
//! in `unit_count`, sharded by backend PID, so counting reads a few rows and
//! concurrent writers rarely contend on one counter row.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::types::ToSql;

use cborrpc::Value;

use super::error::R;
use super::expiry::{apply_due, refresh, PROBE};
use super::specs::{fresh_spec, spec_by_name};
use super::sql::{code_of, dec, enc, release_set, status, status_of};
use super::PostgresBackend;
use crate::clock::Time;
use crate::model::*;
use crate::stats::SpecStats;

/// Counts per status of one spec.
pub(super) async fn counts<G: GenericClient>(tx: &G, spec: i64) -> R<BTreeMap<UnitStatus, u64>> {
    let stmt = tx
        .prepare_cached(
            "SELECT status, sum(n)::bigint FROM unit_count WHERE spec_id = $1 GROUP BY status HAVING sum(n) <> 0",
        )
        .await?;
    Ok(tx
        .query(&stmt, &[&spec])
        .await?
        .iter()
        .map(|r| (status_of(r.get(0)), r.get::<_, i64>(1).max(0) as u64))
        .filter(|&(_, n)| n > 0)
        .collect())
}

/// Adds or replaces units (docs/protocol.md §2.4: upsert semantics) in one statement per
/// 5000 units: a replaced unit keeps a running attempt, whose effective
/// data stays what the worker was given.
const UPSERT: &str = concat!(
    "INSERT INTO work_unit (spec_id, key, data, priority, not_before, status, key_text)
     SELECT $1, k, d, p, nb, CASE WHEN nb > $6 THEN ",
    status!(DELAYED),
    " ELSE ",
    status!(AVAILABLE),
    " END, kt
     FROM unnest($2::bytea[], $3::bytea[], $4::float8[], $5::int8[], $7::bool[]) AS t(k, d, p, nb, kt)
     ON CONFLICT (spec_id, key) DO UPDATE SET
        data = EXCLUDED.data,
        key_text = EXCLUDED.key_text,
        priority = EXCLUDED.priority,
        not_before = EXCLUDED.not_before,
        attempt_data = CASE WHEN work_unit.status = ",
    status!(PENDING),
    " THEN coalesce(work_unit.attempt_data, work_unit.data) END,
        worker = CASE WHEN work_unit.status = ",
    status!(PENDING),
    " THEN work_unit.worker END,
        lease_expires = CASE WHEN work_unit.status = ",
    status!(PENDING),
    " THEN work_unit.lease_expires END,
        ended = CASE WHEN work_unit.status = ",
    status!(PENDING),
    " THEN work_unit.ended END,
        status = CASE WHEN work_unit.status = ",
    status!(PENDING),
    " THEN ",
    status!(PENDING),
    "::smallint
                      WHEN EXCLUDED.not_before > $6 THEN ",
    status!(DELAYED),
    "::smallint ELSE ",
    status!(AVAILABLE),
    "::smallint END"
);

/// Adds or replaces units of spec `spec` (see [`UPSERT`]).
pub(super) async fn upsert_units(tx: &Transaction<'_>, spec: i64, units: Vec<NewUnit>, now: Time) -> R<()> {
    let units = dedup_units(units);
    for chunk in units.chunks(5000) {
        let keys: Vec<&[u8]> = chunk.iter().map(|u| u.key.as_slice()).collect();
        let texts: Vec<bool> = chunk.iter().map(|u| u.text_key).collect();
        let datas: Vec<Vec<u8>> = chunk.iter().map(|u| enc(&u.data)).collect();
        let prios: Vec<f64> = chunk.iter().map(|u| u.priority).collect();
        let nbs: Vec<Option<i64>> = chunk.iter().map(|u| (u.delay > 0.0).then(|| now.plus_secs(u.delay).0)).collect();
        let stmt = tx.prepare_cached(UPSERT).await?;
        tx.execute(&stmt, &[&spec, &keys, &datas, &prios, &nbs, &now.0, &texts]).await?;
    }
    Ok(())
}

/// Holds spec `spec` until the transaction ends, so a concurrent deletion
/// waits for it and then deletes what it inserted (units have no foreign
/// key to their spec: schema migration 4). False if the spec is gone.
pub(super) async fn hold_spec(tx: &Transaction<'_>, spec: i64) -> R<bool> {
    let stmt = tx.prepare_cached("SELECT 1 FROM work_spec WHERE id = $1 FOR KEY SHARE").await?;
    Ok(tx.query_opt(&stmt, &[&spec]).await?.is_some())
}

pub(super) async fn add(db: &PostgresBackend, name: &str, units: Vec<NewUnit>) -> Result<()> {
    let now = db.clock.now();
    let units = &units;
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let spec = fresh_spec(tx, name, now).await?;
            if !hold_spec(tx, spec.id).await? {
                return Err(Error::NoSuchWorkSpec(name.to_owned()).into());
            }
            upsert_units(tx, spec.id, units.clone(), now).await
        })
    })
    .await
}

pub(super) async fn list(db: &PostgresBackend, name: &str, q: UnitQuery) -> Result<Vec<(UnitKey, Value)>> {
    let now = db.clock.now();
    let q = &q;
    db.autocommit(|c, _| {
        Box::pin(async move {
            let spec = fresh_spec(c, name, now).await?;
            let rows = match &q.keys {
                Some(keys) => {
                    let stmt = c
                        .prepare_cached("SELECT key, coalesce(attempt_data, data), key_text FROM work_unit WHERE spec_id = $1 AND key = ANY($2) ORDER BY key")
                        .await?;
                    c.query(&stmt, &[&spec.id, keys]).await?
                }
                None => {
                    let Some((lower, upper)) = key_range(q.start.as_deref(), q.prefix.as_deref()) else {
                        return Ok(Vec::new());
                    };
                    let states: Option<Vec<i16>> = q.states.as_ref().map(|s| s.iter().map(|&s| code_of(s)).collect());
                    let (sql, lower, upper) = range_query(lower, upper);
                    let stmt = c.prepare_cached(&sql).await?;
                    let limit = q.limit as i64;
                    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&spec.id, &states, &limit, &lower];
                    if let Some(u) = &upper {
                        args.push(u);
                    }
                    c.query(&stmt, &args).await?
                }
            };
            Ok(rows.iter().map(|r| (UnitKey::stored(r.get(0), r.get(2)), dec(r.get(1)))).collect())
        })
    })
    .await
}

/// The listing of a key range (spec `$1`, statuses `$2`, limit `$3`): the
/// bounds are plain comparisons, never `$n IS NULL OR ...`, so even a
/// generic plan seeks the primary key to the range instead of reading the
/// spec from its first key. An exclusive lower bound `k` is the inclusive
/// bound `k || 0x00`, its successor in bytewise order; a range with no
/// upper bound uses a statement without one.
fn range_query(lower: Bound<Key>, upper: Bound<Key>) -> (String, Key, Option<Key>) {
    let lower = match lower {
        Bound::Included(k) => k,
        Bound::Excluded(mut k) => {
            k.push(0);
            k
        }
        Bound::Unbounded => Vec::new(),
    };
    let upper = match upper {
        Bound::Excluded(k) | Bound::Included(k) => Some(k),
        Bound::Unbounded => None,
    };
    let sql = format!(
        "SELECT key, coalesce(attempt_data, data), key_text FROM work_unit
         WHERE spec_id = $1 AND key >= $4{} AND ($2::int2[] IS NULL OR status = ANY($2))
         ORDER BY key LIMIT $3",
        if upper.is_some() { " AND key < $5" } else { "" }
    );
    (sql, lower, upper)
}

pub(super) async fn unit_status(
    db: &PostgresBackend,
    name: &str,
    keys: Vec<Key>,
) -> Result<Vec<Option<UnitStatusInfo>>> {
    let now = db.clock.now();
    let keys = &keys;
    db.autocommit(|c, _| {
        Box::pin(async move {
            let spec = fresh_spec(c, name, now).await?;
            let stmt = c
                .prepare_cached(
                    "SELECT key, status, worker, lease_expires, coalesce(attempt_data, data), attempts, priority
                     FROM work_unit WHERE spec_id = $1 AND key = ANY($2)",
                )
                .await?;
            let mut found: HashMap<Vec<u8>, UnitStatusInfo> = HashMap::new();
            for r in c.query(&stmt, &[&spec.id, keys]).await? {
                let status = status_of(r.get(1));
                let traceback = if status == UnitStatus::Failed {
                    match dec(r.get(4)) {
                        Value::Map(e) => cborrpc::value::map_get(&e, "traceback").filter(|v| !v.is_null()).cloned(),
                        _ => None,
                    }
                } else {
                    None
                };
                let info = UnitStatusInfo {
                    status,
                    worker_id: r.get(2),
                    expiration: r.get::<_, Option<i64>>(3).filter(|_| status == UnitStatus::Pending).map(Time),
                    traceback,
                    attempts: r.get::<_, i32>(5).max(0) as u64,
                    priority: r.get(6),
                };
                found.insert(r.get(0), info);
            }
            Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
        })
    })
    .await
}

pub(super) async fn prioritize(db: &PostgresBackend, name: &str, keys: Vec<Key>, change: PriorityChange) -> Result<()> {
    let keys = &keys;
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let spec = spec_by_name(tx, name).await?;
            let (sql, v) = match change {
                PriorityChange::Set(p) => {
                    ("UPDATE work_unit SET priority = $3 WHERE spec_id = $1 AND key = ANY($2)", p)
                }
                PriorityChange::Adjust(d) => {
                    ("UPDATE work_unit SET priority = priority + $3 WHERE spec_id = $1 AND key = ANY($2)", d)
                }
            };
            let stmt = tx.prepare_cached(sql).await?;
            tx.execute(&stmt, &[&spec.id, keys, &v]).await?;
            Ok(())
        })
    })
    .await
}

/// `count_work_units` in one round trip: the spec's id, the probe for due
/// leases and delays, and the counts go out pipelined; only when something
/// is due does it cost more (apply, count again).
pub(super) async fn count(db: &PostgresBackend, name: &str) -> Result<BTreeMap<UnitStatus, u64>> {
    let now = db.clock.now();
    db.autocommit(|c, _| {
        Box::pin(async move {
            let id = c.prepare_cached("SELECT id FROM work_spec WHERE name = $1").await?;
            let probe = c.prepare_cached(PROBE).await?;
            let counted = c
                .prepare_cached(
                    "SELECT c.status, sum(c.n)::bigint FROM unit_count c JOIN work_spec s ON s.id = c.spec_id
                     WHERE s.name = $1 GROUP BY c.status HAVING sum(c.n) <> 0",
                )
                .await?;
            let by_name: Option<i64> = None;
            let probe_args: [&(dyn ToSql + Sync); 2] = [&now.0, &by_name];
            let name_arg: [&(dyn ToSql + Sync); 1] = [&name];
            let (spec, due, listed) = tokio::join!(
                c.query_opt(&id, &name_arg),
                // The probe over every spec: as cheap, and no id is needed.
                c.query_one(&probe, &probe_args),
                c.query(&counted, &name_arg)
            );
            let Some(spec) = spec? else { return Err(Error::NoSuchWorkSpec(name.to_owned()).into()) };
            let spec: i64 = spec.get(0);
            let due = due?;
            if due.get::<_, bool>(0) || due.get::<_, bool>(1) {
                apply_due(c, None, now, (due.get(0), due.get(1))).await?;
                return counts(c, spec).await;
            }
            Ok(listed?
                .iter()
                .map(|r| (status_of(r.get(0)), r.get::<_, i64>(1).max(0) as u64))
                .filter(|&(_, n)| n > 0)
                .collect())
        })
    })
    .await
}

/// Every spec's counts per status, for the metrics: one aggregate over
/// `unit_count` (a few rows per spec, never the units), after applying
/// due expiries and delays as `count_work_units` does. This backend keeps
/// no event counters (see docs/metrics.md).
pub(super) async fn all_counts(db: &PostgresBackend) -> Result<Vec<SpecStats>> {
    let now = db.clock.now();
    db.autocommit(|c, _| {
        Box::pin(async move {
            refresh(c, None, now).await?;
            let stmt = c
                .prepare_cached(
                    "SELECT s.name, c.status, coalesce(sum(c.n), 0)::bigint
                     FROM work_spec s LEFT JOIN unit_count c ON c.spec_id = s.id
                     GROUP BY s.name, c.status ORDER BY s.name",
                )
                .await?;
            let mut out: Vec<SpecStats> = Vec::new();
            for r in c.query(&stmt, &[]).await? {
                let name: String = r.get(0);
                if out.last().is_none_or(|s| s.name != name) {
                    out.push(SpecStats { name, counts: [0; 5], counters: None });
                }
                if let (Some(code), Some(last)) = (r.get::<_, Option<i16>>(1), out.last_mut()) {
                    last.counts[status_of(code) as usize] = r.get::<_, i64>(2).max(0) as u64;
                }
            }
            Ok(out)
        })
    })
    .await
}

pub(super) async fn delete(db: &PostgresBackend, name: &str, q: DelQuery) -> Result<u64> {
    let now = db.clock.now();
    let q = &q;
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let spec = fresh_spec(tx, name, now).await?;
            let n = match q {
                DelQuery::All => tx.execute("DELETE FROM work_unit WHERE spec_id = $1", &[&spec.id]).await?,
                DelQuery::Keys(keys, state) => {
                    let state = state.map(code_of);
                    let stmt = tx
                        .prepare_cached("DELETE FROM work_unit WHERE spec_id = $1 AND key = ANY($2) AND ($3::int2 IS NULL OR status = $3)")
                        .await?;
                    tx.execute(&stmt, &[&spec.id, keys, &state]).await?
                }
                DelQuery::State(s) => {
                    let stmt = tx.prepare_cached("DELETE FROM work_unit WHERE spec_id = $1 AND status = $2").await?;
                    tx.execute(&stmt, &[&spec.id, &code_of(*s)]).await?
                }
            };
            Ok(n)
        })
    })
    .await
}

/// Makes failed units available again, as `update_work_unit`'s retry does.
pub(super) async fn retry(db: &PostgresBackend, name: &str, keys: Option<Vec<Key>>) -> Result<u64> {
    let now = db.clock.now();
    let keys = &keys;
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let spec = spec_by_name(tx, name).await?;
            let retry = concat!(
                "UPDATE work_unit SET ",
                release_set!("$2"),
                " WHERE spec_id = $1 AND status = ",
                status!(FAILED)
            );
            let n = match keys {
                Some(keys) => {
                    let stmt = tx.prepare_cached(&format!("{retry} AND key = ANY($3)")).await?;
                    tx.execute(&stmt, &[&spec.id, &now.0, keys]).await?
                }
                None => {
                    let stmt = tx.prepare_cached(retry).await?;
                    tx.execute(&stmt, &[&spec.id, &now.0]).await?
                }
            };
            Ok(n)
        })
    })
    .await
}

/// Finished and failed units, the ones `archive` may remove.
macro_rules! ended {
    () => {
        concat!("status IN (", status!(FINISHED), ", ", status!(FAILED), ")")
    };
}

pub(super) async fn archive(db: &PostgresBackend, policy: ArchivePolicy) -> Result<u64> {
    let now = db.clock.now();
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let mut n = 0;
            if let Some(age) = policy.older_than {
                let cut = now.plus_secs(-age).0;
                n += tx.execute(concat!("DELETE FROM work_unit WHERE ", ended!(), " AND ended < $1"), &[&cut]).await?;
            }
            if let Some(keep) = policy.keep {
                n += tx
                    .execute(
                        concat!(
                            "DELETE FROM work_unit w USING (
                             SELECT spec_id, key, row_number() OVER (PARTITION BY spec_id, status ORDER BY ended DESC NULLS LAST, key DESC) AS rn
                             FROM work_unit WHERE ",
                            ended!(),
                            ") r
                         WHERE w.spec_id = r.spec_id AND w.key = r.key AND r.rn > $1"
                        ),
                        &[&(keep as i64)],
                    )
                    .await?;
            }
            Ok(n)
        })
    })
    .await
}
