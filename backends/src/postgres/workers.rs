//! Workers: their heartbeats, modes and parent/child links. A worker's
//! record outlives it for a grace period while it holds units or has
//! children, so their owner stays known.

use std::collections::BTreeMap;

use cborrpc::Value;

use super::expiry::refresh;
use super::sql::{dec, enc, status};
use super::PostgresBackend;
use crate::clock::Time;
use crate::model::*;

/// A live worker at time `$1`: registered, and not expired.
macro_rules! live {
    () => {
        "active AND (expiration IS NULL OR expiration > $1)"
    };
}

pub(super) async fn heartbeat(db: &PostgresBackend, hb: Heartbeat) -> Result<()> {
    let now = db.clock.now();
    let parent = &hb.parent.clone().filter(|p| !p.is_empty() && *p != hb.worker);
    let data = &enc(&hb.data);
    let expiration = now.plus_secs(hb.expire_secs).0;
    let hb = &hb;
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO worker (name, parent, active, mode, data, expiration, last_update)
                     VALUES ($1, $2, TRUE, $3, $4, $5, $6)
                     ON CONFLICT (name) DO UPDATE SET parent = EXCLUDED.parent, active = TRUE, mode = EXCLUDED.mode,
                         data = EXCLUDED.data, expiration = EXCLUDED.expiration, last_update = EXCLUDED.last_update",
                )
                .await?;
            tx.execute(&stmt, &[&hb.worker, parent, &hb.mode, data, &expiration, &now.0]).await?;
            Ok(())
        })
    })
    .await
}

pub(super) async fn unregister(db: &PostgresBackend, worker: &str) -> Result<()> {
    let now = db.clock.now();
    let cutoff = now.plus_secs(-WORKER_RECORD_GRACE).0;
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO worker (name, active, last_update) VALUES ($1, FALSE, $2)
                     ON CONFLICT (name) DO UPDATE SET active = FALSE, last_update = $2",
                )
                .await?;
            tx.execute(&stmt, &[&worker, &now.0]).await?;
            // Drop the records of workers long gone that hold nothing.
            let prune = tx
                .prepare_cached(concat!(
                    "DELETE FROM worker w
                     WHERE (NOT w.active OR w.expiration < $1) AND coalesce(w.last_update, 0) < $1
                       AND NOT EXISTS (SELECT 1 FROM work_unit u WHERE u.status = ",
                    status!(PENDING),
                    " AND u.worker = w.name)
                       AND NOT EXISTS (SELECT 1 FROM worker c WHERE c.parent = w.name)"
                ))
                .await?;
            tx.execute(&prune, &[&cutoff]).await?;
            Ok(())
        })
    })
    .await
}

pub(super) async fn modes(db: &PostgresBackend) -> Result<BTreeMap<String, String>> {
    let now = db.clock.now();
    db.autocommit(|c, _| {
        Box::pin(async move {
            let stmt = c.prepare_cached(concat!("SELECT name, mode FROM worker WHERE ", live!())).await?;
            Ok(c.query(&stmt, &[&now.0]).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    })
    .await
}

pub(super) async fn info(db: &PostgresBackend, worker: &str) -> Result<Option<Value>> {
    db.autocommit(|c, _| {
        Box::pin(async move {
            let stmt = c.prepare_cached("SELECT data FROM worker WHERE name = $1").await?;
            Ok(c.query_opt(&stmt, &[&worker]).await?.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)).map(|d| dec(&d)))
        })
    })
    .await
}

/// Live workers from `start`, with up to [`HELD_UNITS_LISTED`] of the units
/// each holds (found through the index of pending units by worker).
pub(super) async fn list(db: &PostgresBackend, start: &str, limit: usize) -> Result<(Vec<WorkerInfo>, Option<String>)> {
    let now = db.clock.now();
    db.in_tx(|tx, _| {
        Box::pin(async move {
            refresh(tx, None, now).await?;
            let stmt = tx
                .prepare_cached(concat!(
                    "SELECT name, mode, data, parent, last_update, expiration FROM worker WHERE ",
                    live!(),
                    " AND name >= $2 ORDER BY name LIMIT $3"
                ))
                .await?;
            let mut rows =
                tx.query(&stmt, &[&now.0, &start, &(limit.saturating_add(1).min(i64::MAX as usize) as i64)]).await?;
            let next = (rows.len() > limit).then(|| rows.remove(limit).get::<_, String>(0));
            rows.truncate(limit);
            let mut workers: Vec<WorkerInfo> = rows
                .iter()
                .map(|r| WorkerInfo {
                    id: r.get(0),
                    mode: r.get(1),
                    data: r.get::<_, Option<Vec<u8>>>(2).map(|d| dec(&d)),
                    parent: r.get(3),
                    last_heartbeat: r.get::<_, Option<i64>>(4).map(Time),
                    expires: r.get::<_, Option<i64>>(5).map(Time),
                    held: Vec::new(),
                    held_count: 0,
                })
                .collect();
            let names: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
            let held = tx
                .prepare_cached(concat!(
                    "SELECT worker, spec, key, key_text, lease_expires, n FROM (
                         SELECT u.worker, s.name AS spec, u.key, u.key_text, u.lease_expires,
                                row_number() OVER (PARTITION BY u.worker ORDER BY s.name, u.key) AS rn,
                                count(*) OVER (PARTITION BY u.worker) AS n
                         FROM work_unit u JOIN work_spec s ON s.id = u.spec_id
                         WHERE u.status = ",
                    status!(PENDING),
                    " AND u.worker = ANY($1)) h
                     WHERE rn <= $2 ORDER BY worker, rn"
                ))
                .await?;
            let rows = tx.query(&held, &[&names, &(HELD_UNITS_LISTED as i64)]).await?;
            let mut by_name: BTreeMap<String, &mut WorkerInfo> =
                workers.iter_mut().map(|w| (w.id.clone(), w)).collect();
            for r in rows {
                let Some(w) = by_name.get_mut(r.get::<_, &str>(0)) else { continue };
                w.held_count = r.get::<_, i64>(5) as u64;
                w.held.push(HeldUnit {
                    spec: r.get(1),
                    key: UnitKey::stored(r.get(2), r.get(3)),
                    expires: Time(r.get::<_, Option<i64>>(4).unwrap_or_default()),
                });
            }
            Ok((workers, next))
        })
    })
    .await
}

pub(super) async fn mode_counts(db: &PostgresBackend) -> Result<BTreeMap<String, u64>> {
    let now = db.clock.now();
    db.autocommit(|c, _| {
        Box::pin(async move {
            let stmt = c
                .prepare_cached(concat!("SELECT mode, count(*) FROM worker WHERE ", live!(), " GROUP BY mode"))
                .await?;
            Ok(c.query(&stmt, &[&now.0]).await?.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
        })
    })
    .await
}

pub(super) async fn stats(db: &PostgresBackend) -> Result<WorkerStats> {
    let now = db.clock.now();
    db.autocommit(|c, _| {
        Box::pin(async move {
            let stmt = c
                .prepare_cached(concat!(
                    "SELECT count(*), count(parent), count(expiration) FROM worker WHERE ",
                    live!()
                ))
                .await?;
            let r = c.query_one(&stmt, &[&now.0]).await?;
            Ok(WorkerStats {
                num_workers: r.get::<_, i64>(0) as u64,
                num_children: r.get::<_, i64>(1) as u64,
                num_expirable: r.get::<_, i64>(2) as u64,
            })
        })
    })
    .await
}

pub(super) async fn child_units(db: &PostgresBackend, worker: &str) -> Result<BTreeMap<String, Vec<ChildUnit>>> {
    let now = db.clock.now();
    db.in_tx(|tx, _| {
        Box::pin(async move {
            refresh(tx, None, now).await?;
            let children = tx.prepare_cached("SELECT name FROM worker WHERE parent = $1").await?;
            let mut out: BTreeMap<String, Vec<ChildUnit>> =
                tx.query(&children, &[&worker]).await?.iter().map(|r| (r.get(0), Vec::new())).collect();
            let names: Vec<&String> = out.keys().collect();
            let stmt = tx
                .prepare_cached(concat!(
                    "SELECT u.worker, s.name, u.key, coalesce(u.attempt_data, u.data), u.lease_expires, u.key_text
                     FROM work_unit u JOIN work_spec s ON s.id = u.spec_id
                     WHERE u.status = ",
                    status!(PENDING),
                    " AND u.worker = ANY($1) ORDER BY s.name, u.key"
                ))
                .await?;
            let rows = tx.query(&stmt, &[&names]).await?;
            for r in rows {
                let w: String = r.get(0);
                let unit = ChildUnit {
                    spec: r.get(1),
                    key: UnitKey::stored(r.get(2), r.get(5)),
                    data: dec(r.get(3)),
                    worker_id: w.clone(),
                    expires: Time(r.get::<_, Option<i64>>(4).unwrap_or_default()),
                };
                out.entry(w).or_default().push(unit);
            }
            Ok(out)
        })
    })
    .await
}
