//! Work specs: the spec data (CBOR) as sent, and the metadata derived from
//! it kept in columns, which the scheduler reads for every `get_work`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use cborrpc::Value;

use super::error::R;
use super::expiry::refresh;
use super::sql::{dec, enc};
use super::units::counts;
use super::PostgresBackend;
use crate::clock::Time;
use crate::model::*;

/// The spec columns [`spec_row`] reads, in its order.
macro_rules! spec_cols {
    () => {
        "id, name, priority, weight, paused, continuous, can_be_continuous, min_memory_gb, \
         interval_secs, next_continuous, max_running, max_getwork, max_retries, next_spec, runtime"
    };
}
pub(super) use spec_cols;

/// A spec row: its id, name and metadata.
#[derive(Clone)]
pub(super) struct SpecRow {
    pub id: i64,
    pub name: String,
    pub meta: SpecMeta,
}

/// Reads the [`spec_cols!`] columns at the start of a row.
pub(super) fn spec_row(r: &Row) -> SpecRow {
    SpecRow {
        id: r.get(0),
        name: r.get(1),
        meta: SpecMeta {
            priority: r.get(2),
            weight: r.get(3),
            paused: r.get(4),
            continuous: r.get(5),
            can_be_continuous: r.get(6),
            min_memory_gb: r.get(7),
            interval: r.get(8),
            next_continuous: r.get::<_, Option<i64>>(9).map(Time),
            max_running: r.get(10),
            max_getwork: r.get(11),
            max_retries: r.get(12),
            then: r.get(13),
            runtime: r.get(14),
            available_count: 0,
            pending_count: 0,
        },
    }
}

/// The spec named `name`, or [`Error::NoSuchWorkSpec`].
pub(super) async fn spec_by_name<G: GenericClient>(tx: &G, name: &str) -> R<SpecRow> {
    let stmt = tx.prepare_cached(concat!("SELECT ", spec_cols!(), " FROM work_spec WHERE name = $1")).await?;
    match tx.query_opt(&stmt, &[&name]).await? {
        Some(r) => Ok(spec_row(&r)),
        None => Err(Error::NoSuchWorkSpec(name.to_owned()).into()),
    }
}

/// The spec named `name`, after applying its due expiries and delays: the
/// start of every call that reads or changes a spec's units.
pub(super) async fn fresh_spec<G: GenericClient>(tx: &G, name: &str, now: Time) -> R<SpecRow> {
    let spec = spec_by_name(tx, name).await?;
    refresh(tx, Some(spec.id), now).await?;
    Ok(spec)
}

pub(super) async fn list(db: &PostgresBackend, start: &str, limit: usize) -> Result<(Vec<SpecData>, Option<String>)> {
    let limit = limit as i64;
    db.autocommit(|c, _| {
        Box::pin(async move {
            let stmt =
                c.prepare_cached("SELECT name, data FROM work_spec WHERE name >= $1 ORDER BY name LIMIT $2").await?;
            let rows = c.query(&stmt, &[&start, &(limit + 1)]).await?;
            let mut specs = Vec::new();
            let mut next = None;
            for (i, r) in rows.iter().enumerate() {
                if i as i64 == limit {
                    next = Some(r.get::<_, String>(0));
                    break;
                }
                match dec(r.get(1)) {
                    Value::Map(entries) => specs.push(entries),
                    _ => specs.push(Vec::new()),
                }
            }
            Ok((specs, next))
        })
    })
    .await
}

pub(super) async fn set(db: &PostgresBackend, mut data: SpecData) -> Result<()> {
    let (name, m) = prepare_spec(&mut data)?;
    let bytes = enc(&Value::Map(data));
    let (name, m, bytes) = (&name, &m, &bytes);
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO work_spec (name, data, priority, weight, paused, continuous, can_be_continuous,
                         min_memory_gb, interval_secs, next_continuous, max_running, max_getwork, max_retries, next_spec, runtime)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12, $13, $14)
                     ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data, priority = EXCLUDED.priority,
                         weight = EXCLUDED.weight, paused = EXCLUDED.paused, continuous = EXCLUDED.continuous,
                         can_be_continuous = EXCLUDED.can_be_continuous, min_memory_gb = EXCLUDED.min_memory_gb,
                         interval_secs = EXCLUDED.interval_secs, next_continuous = NULL,
                         max_running = EXCLUDED.max_running, max_getwork = EXCLUDED.max_getwork,
                         max_retries = EXCLUDED.max_retries, next_spec = EXCLUDED.next_spec, runtime = EXCLUDED.runtime",
                )
                .await?;
            tx.execute(
                &stmt,
                &[name, bytes, &m.priority, &m.weight, &m.paused, &m.continuous, &m.can_be_continuous,
                  &m.min_memory_gb, &m.interval, &m.max_running, &m.max_getwork, &m.max_retries, &m.then, &m.runtime],
            )
            .await?;
            Ok(())
        })
    })
    .await
}

pub(super) async fn delete(db: &PostgresBackend, name: &str) -> Result<()> {
    db.in_tx(|tx, _| {
        Box::pin(async move {
            // The spec row first: an insert holding it (units::hold_spec)
            // is waited for, so the next statement sees its units.
            let stmt = tx.prepare_cached("DELETE FROM work_spec WHERE name = $1 RETURNING id").await?;
            let Some(row) = tx.query_opt(&stmt, &[&name]).await? else {
                return Err(Error::NoSuchWorkSpec(name.to_owned()).into());
            };
            let units = tx.prepare_cached("DELETE FROM work_unit WHERE spec_id = $1").await?;
            tx.execute(&units, &[&row.get::<_, i64>(0)]).await?;
            Ok(())
        })
    })
    .await
}

pub(super) async fn clear(db: &PostgresBackend) -> Result<usize> {
    db.in_tx(|tx, _| {
        Box::pin(async move {
            // As in `delete`: spec rows first, then their units.
            let ids: Vec<i64> =
                tx.query("DELETE FROM work_spec RETURNING id", &[]).await?.iter().map(|r| r.get(0)).collect();
            tx.execute("DELETE FROM work_unit WHERE spec_id = ANY($1)", &[&ids]).await?;
            Ok(ids.len())
        })
    })
    .await
}

pub(super) async fn data(db: &PostgresBackend, name: &str) -> Result<SpecData> {
    db.autocommit(|c, _| {
        Box::pin(async move {
            let stmt = c.prepare_cached("SELECT data FROM work_spec WHERE name = $1").await?;
            match c.query_opt(&stmt, &[&name]).await? {
                Some(r) => match dec(r.get(0)) {
                    Value::Map(entries) => Ok(entries),
                    _ => Ok(Vec::new()),
                },
                None => Err(Error::NoSuchWorkSpec(name.to_owned()).into()),
            }
        })
    })
    .await
}

pub(super) async fn meta(db: &PostgresBackend, name: &str) -> Result<SpecMeta> {
    let now = db.clock.now();
    db.autocommit(|c, _| {
        Box::pin(async move {
            let spec = fresh_spec(c, name, now).await?;
            let counts = counts(c, spec.id).await?;
            let mut meta = spec.meta;
            meta.available_count = counts.get(&UnitStatus::Available).copied().unwrap_or(0);
            meta.pending_count = counts.get(&UnitStatus::Pending).copied().unwrap_or(0);
            Ok(meta)
        })
    })
    .await
}

pub(super) async fn control(db: &PostgresBackend, name: &str, control: SpecControl) -> Result<()> {
    let control = &control;
    db.in_tx(|tx, _| {
        Box::pin(async move {
            let lock =
                tx.prepare_cached(concat!("SELECT ", spec_cols!(), " FROM work_spec WHERE name = $1 FOR UPDATE")).await?;
            let Some(row) = tx.query_opt(&lock, &[&name]).await? else {
                return Err(Error::NoSuchWorkSpec(name.to_owned()).into());
            };
            let mut spec = spec_row(&row);
            spec.meta.apply(control);
            let m = &spec.meta;
            let stmt = tx
                .prepare_cached(
                    "UPDATE work_spec SET paused = $2, continuous = $3, weight = $4, interval_secs = $5, max_running = $6 WHERE id = $1",
                )
                .await?;
            tx.execute(&stmt, &[&spec.id, &m.paused, &m.continuous, &m.weight, &m.interval, &m.max_running]).await?;
            Ok(())
        })
    })
    .await
}
