//! The PostgreSQL backend: durable, and shared by any number of daemons.
//!
//! The daemon is stateless; the database holds the truth, so several
//! daemons can serve one database. Every trait call is one transaction at
//! READ COMMITTED, retried whole on a serialization failure or deadlock.
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
//! **Counting.** Statement-level triggers keep per-spec, per-status counts
//! in `unit_count`, sharded by backend PID, so `count_work_units` reads a
//! few rows and concurrent writers rarely contend on one counter row.
//!
//! **Time.** All times are microseconds from the backend's [`Clock`], never
//! the database's `now()`, so tests can move time by hand. Lease expiry and
//! delayed units are applied lazily: each call first turns due leases and
//! due delays into available units, found through partial indexes, and
//! does no writing when nothing is due.
//!
//! **Lost connections.** A failed query fails that call with an error reply;
//! the pool drops broken connections and opens new ones, so the daemon
//! serves again as soon as the database is back.

pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use cborrpc::encode::{decode, to_vec};
use cborrpc::Value;

use crate::clock::{Clock, Time};
use crate::model::*;
use crate::scheduler::{self, Candidate};
use crate::Coordinate;
use schema::{AVAILABLE, DELAYED, FAILED, FINISHED, PENDING};

/// Internal error: a database error (maybe retryable) or a Coordinate one.
enum E {
    Pg(tokio_postgres::Error),
    Pool(String),
    C(Error),
    /// The fast, autocommit path cannot do this call; run it in a transaction.
    NeedTx,
}

impl From<tokio_postgres::Error> for E {
    fn from(e: tokio_postgres::Error) -> Self {
        E::Pg(e)
    }
}

impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::C(e)
    }
}

impl E {
    fn retryable(&self) -> bool {
        matches!(self, E::Pg(e) if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED))
    }

    fn into_error(self) -> Error {
        match self {
            E::C(e) => e,
            E::Pool(msg) => Error::Backend(msg),
            E::NeedTx => Error::Backend("internal: transaction needed".into()),
            E::Pg(e) => Error::Backend(match e.as_db_error() {
                Some(db) => format!("{}: {}", db.code().code(), db.message()),
                None => e.to_string(),
            }),
        }
    }
}

type R<T> = std::result::Result<T, E>;

/// Runs `$body` (which uses the transaction `$tx`) in a transaction,
/// committing on success and retrying serialization failures and deadlocks.
macro_rules! in_tx {
    ($self:ident, $tx:ident => $body:expr) => {{
        let result: R<_> = async {
            let mut client = $self.client().await?;
            let mut tries = 0;
            loop {
                let $tx = client.transaction().await?;
                let r: R<_> = async { $body }.await;
                let r = match r {
                    Ok(v) => $tx.commit().await.map(|_| v).map_err(E::from),
                    Err(e) => Err(e),
                };
                match r {
                    Err(e) if e.retryable() && tries < 10 => tries += 1,
                    other => break other,
                }
            }
        }
        .await;
        result.map_err(E::into_error)
    }};
}

/// Runs `$body` with `$c`, a pooled connection in autocommit mode: for
/// calls that only read, or whose single writes are atomic on their own
/// (applying due expiries), this saves the BEGIN and COMMIT round trips.
macro_rules! without_tx {
    ($self:ident, $c:ident => $body:expr) => {{
        let result: R<_> = async {
            let $c = $self.client().await?;
            $body
        }
        .await;
        result.map_err(E::into_error)
    }};
}

fn enc(v: &Value) -> Vec<u8> {
    to_vec(v)
}

fn dec(b: &[u8]) -> Value {
    decode(b).unwrap_or(Value::Null)
}

fn status_of(code: i16) -> UnitStatus {
    match code {
        AVAILABLE => UnitStatus::Available,
        PENDING => UnitStatus::Pending,
        FINISHED => UnitStatus::Finished,
        FAILED => UnitStatus::Failed,
        _ => UnitStatus::Delayed,
    }
}

fn code_of(s: UnitStatus) -> i16 {
    match s {
        UnitStatus::Available => AVAILABLE,
        UnitStatus::Pending => PENDING,
        UnitStatus::Finished => FINISHED,
        UnitStatus::Failed => FAILED,
        UnitStatus::Delayed => DELAYED,
    }
}

const SPEC_COLS: &str = "id, name, priority, weight, paused, continuous, can_be_continuous, min_memory_gb, \
     interval_secs, next_continuous, max_running, max_getwork, max_retries, next_spec, runtime";

/// A spec row: its id, name and metadata.
struct SpecRow {
    id: i64,
    name: String,
    meta: SpecMeta,
}

fn spec_row(r: &Row) -> SpecRow {
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

/// How to reach the database, from a `postgres://` or `postgresql://` URL
/// or a `key=value` string; parts it leaves out come from the usual `PG*`
/// environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
/// `PGDATABASE`), then from libpq's defaults.
pub fn parse_config(url: &str) -> Result<tokio_postgres::Config> {
    let url = url.trim();
    // `postgres://…` and `postgresql://…` are URLs; `postgres:k=v …` (as
    // go-coordinate accepted) is a libpq key=value string.
    let spec = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url
    } else {
        url.strip_prefix("postgresql:").or_else(|| url.strip_prefix("postgres:")).unwrap_or(url).trim()
    };
    let mut cfg = if spec.is_empty() {
        tokio_postgres::Config::new()
    } else {
        tokio_postgres::Config::from_str(spec).map_err(|e| Error::Invalid(format!("bad PostgreSQL address: {e}")))?
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if cfg.get_hosts().is_empty() {
        let host = env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into());
        for h in host.split(',') {
            cfg.host(h);
        }
    }
    if cfg.get_ports().is_empty() {
        if let Some(p) = env("PGPORT").and_then(|p| p.parse().ok()) {
            cfg.port(p);
        }
    }
    if cfg.get_user().is_none() {
        if let Some(u) = env("PGUSER").or_else(|| env("USER")) {
            cfg.user(u);
        }
    }
    if cfg.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            cfg.password(p);
        }
    }
    if cfg.get_dbname().is_none() {
        if let Some(d) = env("PGDATABASE") {
            cfg.dbname(d);
        }
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("coordinated");
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    Ok(cfg)
}

/// The PostgreSQL [`Coordinate`] backend.
pub struct PostgresBackend {
    pool: Pool,
    clock: Arc<dyn Clock>,
    rng: Mutex<StdRng>,
}

impl PostgresBackend {
    /// Connects (see [`parse_config`]), applies migrations, and returns a
    /// backend with a pool of `pool_size` connections.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>, pool_size: usize) -> Result<Self> {
        Self::connect_config(parse_config(url)?, clock, pool_size, None).await
    }

    /// Like [`PostgresBackend::connect`] from a parsed configuration, with
    /// an optional scheduler seed (for tests).
    pub async fn connect_config(
        cfg: tokio_postgres::Config,
        clock: Arc<dyn Clock>,
        pool_size: usize,
        seed: Option<u64>,
    ) -> Result<Self> {
        let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(10)))
            .wait_timeout(Some(Duration::from_secs(60)))
            .build()
            .map_err(|e| Error::Backend(e.to_string()))?;
        {
            let mut client =
                pool.get().await.map_err(|e| Error::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
            schema::migrate(&mut client).await.map_err(|e| E::Pg(e).into_error())?;
            let have: i32 = client
                .query_one("SELECT max(version) FROM coordinate_migrations", &[])
                .await
                .map_err(|e| E::Pg(e).into_error())?
                .get(0);
            if have > schema::latest_version() {
                return Err(Error::Backend(format!(
                    "database schema version {have} is newer than this daemon's {}",
                    schema::latest_version()
                )));
            }
        }
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        Ok(PostgresBackend { pool, clock, rng: Mutex::new(rng) })
    }
}

impl PostgresBackend {
    /// A pooled connection; a dead database is an error for this call only.
    async fn client(&self) -> R<deadpool_postgres::Client> {
        self.pool.get().await.map_err(|e| E::Pool(format!("database unavailable: {e}")))
    }
}

async fn spec_by_name<G: GenericClient>(tx: &G, name: &str) -> R<SpecRow> {
    let sql = format!("SELECT {SPEC_COLS} FROM work_spec WHERE name = $1");
    let stmt = tx.prepare_cached(&sql).await?;
    match tx.query_opt(&stmt, &[&name]).await? {
        Some(r) => Ok(spec_row(&r)),
        None => Err(Error::NoSuchWorkSpec(name.to_owned()).into()),
    }
}

const PROBE: &str = "SELECT EXISTS (SELECT 1 FROM work_unit WHERE status = 1 AND lease_expires < $1 AND ($2::bigint IS NULL OR spec_id = $2)),
            EXISTS (SELECT 1 FROM work_unit WHERE status = 4 AND not_before <= $1 AND ($2::bigint IS NULL OR spec_id = $2))";

/// Applies due lease expiries and delays (for one spec, or all).
async fn refresh<G: GenericClient>(tx: &G, spec: Option<i64>, now: Time) -> R<()> {
    let probe = tx.prepare_cached(PROBE).await?;
    let row = tx.query_one(&probe, &[&now.0, &spec]).await?;
    apply_due(tx, spec, now, (row.get(0), row.get(1))).await
}

/// Runs the updates a [`PROBE`] found due: (leases to expire, delays over).
async fn apply_due<G: GenericClient>(tx: &G, spec: Option<i64>, now: Time, due: (bool, bool)) -> R<()> {
    if due.0 {
        let stmt = tx
            .prepare_cached(
                "UPDATE work_unit SET status = CASE WHEN not_before > $1 THEN 4 ELSE 0 END,
                        worker = NULL, attempt_data = NULL, lease_expires = NULL
                 WHERE status = 1 AND lease_expires < $1 AND ($2::bigint IS NULL OR spec_id = $2)",
            )
            .await?;
        tx.execute(&stmt, &[&now.0, &spec]).await?;
    }
    if due.1 {
        let stmt = tx
            .prepare_cached(
                "UPDATE work_unit SET status = 0 WHERE status = 4 AND not_before <= $1 AND ($2::bigint IS NULL OR spec_id = $2)",
            )
            .await?;
        tx.execute(&stmt, &[&now.0, &spec]).await?;
    }
    Ok(())
}

/// Counts per status of one spec.
async fn counts<G: GenericClient>(tx: &G, spec: i64) -> R<BTreeMap<UnitStatus, u64>> {
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

/// A unit claimed by `get_work`: `RETURNING key, data, priority, attempts,
/// key_text`.
struct ClaimRow {
    key: UnitKey,
    data: Vec<u8>,
    priority: f64,
    attempts: i32,
}

impl ClaimRow {
    fn of(r: &tokio_postgres::Row) -> ClaimRow {
        ClaimRow { key: UnitKey::stored(r.get(0), r.get(4)), data: r.get(1), priority: r.get(2), attempts: r.get(3) }
    }
}

/// Adds or replaces units (§2.2 upsert semantics) in one statement.
async fn upsert_units(tx: &Transaction<'_>, spec: i64, units: Vec<NewUnit>, now: Time) -> R<()> {
    let units = dedup_units(units);
    for chunk in units.chunks(5000) {
        let keys: Vec<&[u8]> = chunk.iter().map(|u| u.key.as_slice()).collect();
        let texts: Vec<bool> = chunk.iter().map(|u| u.text_key).collect();
        let datas: Vec<Vec<u8>> = chunk.iter().map(|u| enc(&u.data)).collect();
        let prios: Vec<f64> = chunk.iter().map(|u| u.priority).collect();
        let nbs: Vec<Option<i64>> = chunk.iter().map(|u| (u.delay > 0.0).then(|| now.plus_secs(u.delay).0)).collect();
        let stmt = tx
            .prepare_cached(
                "INSERT INTO work_unit (spec_id, key, data, priority, not_before, status, key_text)
                 SELECT $1, k, d, p, nb, CASE WHEN nb > $6 THEN 4 ELSE 0 END, kt
                 FROM unnest($2::bytea[], $3::bytea[], $4::float8[], $5::int8[], $7::bool[]) AS t(k, d, p, nb, kt)
                 ON CONFLICT (spec_id, key) DO UPDATE SET
                    data = EXCLUDED.data,
                    key_text = EXCLUDED.key_text,
                    priority = EXCLUDED.priority,
                    not_before = EXCLUDED.not_before,
                    attempt_data = CASE WHEN work_unit.status = 1 THEN coalesce(work_unit.attempt_data, work_unit.data) END,
                    worker = CASE WHEN work_unit.status = 1 THEN work_unit.worker END,
                    lease_expires = CASE WHEN work_unit.status = 1 THEN work_unit.lease_expires END,
                    ended = CASE WHEN work_unit.status = 1 THEN work_unit.ended END,
                    status = CASE WHEN work_unit.status = 1 THEN 1::smallint
                                  WHEN EXCLUDED.not_before > $6 THEN 4::smallint ELSE 0::smallint END",
            )
            .await?;
        tx.execute(&stmt, &[&spec, &keys, &datas, &prios, &nbs, &now.0, &texts]).await?;
    }
    Ok(())
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
    let stmt = tx.prepare_cached("SELECT id FROM work_spec WHERE name = $1").await?;
    if let Some(r) = tx.query_opt(&stmt, &[&then]).await? {
        refresh(tx, Some(r.get(0)), now).await?;
        upsert_units(tx, r.get(0), units, now).await?;
    }
    Ok(())
}

impl PostgresBackend {
    /// Hands out work. With `in_tx` false the statements autocommit, which
    /// saves two round trips; if the chosen spec needs several statements
    /// to be atomic (`max_running`, `max_retries`, a continuous unit) this
    /// answers [`E::NeedTx`] before changing anything.
    async fn get_work_in<G: GenericClient>(
        &self,
        tx: &G,
        worker: &str,
        opts: &GetWork,
        now: Time,
        in_tx: bool,
    ) -> R<Vec<WorkGrant>> {
        let lease = now.plus_secs(opts.lease_secs).0;
        let probe = tx.prepare_cached(PROBE).await?;
        let list = tx
            .prepare_cached(&format!(
                "SELECT {SPEC_COLS}, coalesce(c.avail, 0)::bigint, coalesce(c.pending, 0)::bigint
                 FROM work_spec s LEFT JOIN (
                     SELECT spec_id, sum(n) FILTER (WHERE status = 0) AS avail, sum(n) FILTER (WHERE status = 1) AS pending
                     FROM unit_count GROUP BY spec_id) c ON c.spec_id = s.id"
            ))
            .await?;
        let no_spec: Option<i64> = None;
        loop {
            // The probe for due leases and delays goes out pipelined with the
            // spec list; only when something is due does it cost more.
            let probe_args: [&(dyn ToSql + Sync); 2] = [&now.0, &no_spec];
            let (due, mut listed) = tokio::join!(tx.query_one(&probe, &probe_args), tx.query(&list, &[]));
            let due = due?;
            if due.get::<_, bool>(0) || due.get::<_, bool>(1) {
                apply_due(tx, None, now, (due.get(0), due.get(1))).await?;
                listed = tx.query(&list, &[]).await;
            }
            let mut specs = Vec::new();
            let mut cands = Vec::new();
            for r in listed? {
                let mut s = spec_row(&r);
                let (avail, pending) = (r.get::<_, i64>(15).max(0) as u64, r.get::<_, i64>(16).max(0) as u64);
                s.meta.available_count = avail;
                s.meta.pending_count = pending;
                if !scheduler::eligible(&s.name, &s.meta, avail, pending, opts, now) {
                    continue;
                }
                let continuous_ok = scheduler::can_start_continuous(&s.meta, avail, pending, now);
                cands.push(Candidate { priority: s.meta.priority, weight: s.meta.weight, pending });
                specs.push((s, continuous_ok));
            }
            let Some(i) = scheduler::choose(&cands, &mut *self.rng.lock()) else { return Ok(Vec::new()) };
            let (spec, continuous_ok) = &specs[i];
            let m = &spec.meta;
            if !in_tx && (m.max_running > 0 || m.max_retries > 0 || *continuous_ok) {
                return Err(E::NeedTx);
            }
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
            let claim = tx
                .prepare_cached(
                    "WITH picked AS MATERIALIZED (
                         SELECT key FROM work_unit WHERE spec_id = $1 AND status = 0
                         ORDER BY priority DESC, key LIMIT $2 FOR UPDATE SKIP LOCKED)
                     UPDATE work_unit u SET status = 1, worker = $3, attempt_data = NULL, lease_expires = $4,
                            ended = NULL, attempts = u.attempts + 1
                     WHERE u.spec_id = $1 AND u.key = ANY (ARRAY (SELECT key FROM picked))
                     RETURNING u.key, u.data, u.priority, u.attempts, u.key_text",
                )
                .await?;
            let mut rows: Vec<ClaimRow> =
                tx.query(&claim, &[&spec.id, &n, &worker, &lease]).await?.iter().map(ClaimRow::of).collect();
            if rows.is_empty() && *continuous_ok {
                let gate = tx
                    .prepare_cached(
                        "UPDATE work_spec SET next_continuous = $2
                         WHERE id = $1 AND continuous AND (next_continuous IS NULL OR next_continuous <= $3) RETURNING id",
                    )
                    .await?;
                let next = now.plus_secs(m.interval).0;
                if tx.query_opt(&gate, &[&spec.id, &next, &now.0]).await?.is_some() {
                    let key = continuous_key(now).bytes;
                    let empty = enc(&Value::Map(vec![]));
                    let ins = tx
                        .prepare_cached(
                            "INSERT INTO work_unit (spec_id, key, data, priority, status, worker, lease_expires, attempts, key_text)
                             VALUES ($1, $2, $3, 0, 1, $4, $5, 1, true) ON CONFLICT DO NOTHING
                             RETURNING key, data, priority, attempts, key_text",
                        )
                        .await?;
                    if let Some(r) = tx.query_opt(&ins, &[&spec.id, &key, &empty, &worker, &lease]).await? {
                        rows.push(ClaimRow::of(&r));
                    }
                }
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
                    .prepare_cached(
                        "UPDATE work_unit SET status = 3, attempt_data = $3, ended = $4, lease_expires = NULL
                         WHERE spec_id = $1 AND key = ANY($2)",
                    )
                    .await?;
                tx.execute(&fail, &[&spec.id, &failed, &enc(&too_many_retries()), &now.0]).await?;
            }
            if !grants.is_empty() || failed.is_empty() {
                return Ok(grants);
            }
        }
    }

    async fn update_tx(&self, tx: &Transaction<'_>, name: &str, key: &[u8], upd: &UnitUpdate, now: Time) -> R<bool> {
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
            let stmt = tx
                .prepare_cached(
                    "UPDATE work_unit SET status = CASE WHEN not_before > $3 THEN 4 ELSE 0 END,
                            worker = NULL, attempt_data = NULL, lease_expires = NULL
                     WHERE spec_id = $1 AND key = $2 RETURNING status",
                )
                .await?;
            status = tx.query_one(&stmt, &[&spec_id, &key, &now.0]).await?.get(0);
        }
        let (force, plan) = plan_update(status_of(status), upd.status)?;
        let lease = now.plus_secs(upd.lease_secs).0;
        let data = upd.data.as_ref().map(enc);
        if force {
            let worker = upd.worker_id.clone().unwrap_or_default();
            let stmt = tx
                .prepare_cached(
                    "UPDATE work_unit SET status = 1, worker = $3, attempt_data = NULL, lease_expires = $4,
                            ended = NULL, attempts = attempts + 1 WHERE spec_id = $1 AND key = $2",
                )
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
            UpdatePlan::Release | UpdatePlan::Retry => (
                "UPDATE work_unit SET status = CASE WHEN not_before > $3 THEN 4 ELSE 0 END, worker = NULL,
                        attempt_data = NULL, lease_expires = NULL, ended = NULL
                 WHERE spec_id = $1 AND key = $2",
                vec![&spec_id, &key, &now.0],
            ),
            UpdatePlan::Fail => (
                "UPDATE work_unit SET status = 3, attempt_data = coalesce($3, attempt_data), ended = $4, lease_expires = NULL
                 WHERE spec_id = $1 AND key = $2",
                vec![&spec_id, &key, &data, &now.0],
            ),
            UpdatePlan::Finish => (
                "UPDATE work_unit SET status = 2, attempt_data = coalesce($3, attempt_data), ended = $4, lease_expires = NULL
                 WHERE spec_id = $1 AND key = $2 RETURNING coalesce(attempt_data, data)",
                vec![&spec_id, &key, &data, &now.0],
            ),
            UpdatePlan::LateFinish => (
                "UPDATE work_unit SET status = 2, ended = $3, lease_expires = NULL
                 WHERE spec_id = $1 AND key = $2 RETURNING coalesce(attempt_data, data)",
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
}

const LIVE: &str = "active AND (expiration IS NULL OR expiration > $1)";

impl Coordinate for PostgresBackend {
    async fn list_work_specs(&self, start: &str, limit: usize) -> Result<(Vec<SpecData>, Option<String>)> {
        let limit = limit as i64;
        without_tx!(self, tx => {
            let stmt = tx.prepare_cached("SELECT name, data FROM work_spec WHERE name >= $1 ORDER BY name LIMIT $2").await?;
            let rows = tx.query(&stmt, &[&start, &(limit + 1)]).await?;
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
    }

    async fn set_work_spec(&self, mut data: SpecData) -> Result<()> {
        let (name, m) = prepare_spec(&mut data)?;
        let bytes = enc(&Value::Map(data));
        in_tx!(self, tx => {
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
                &[&name, &bytes, &m.priority, &m.weight, &m.paused, &m.continuous, &m.can_be_continuous,
                  &m.min_memory_gb, &m.interval, &m.max_running, &m.max_getwork, &m.max_retries, &m.then, &m.runtime],
            )
            .await?;
            Ok(())
        })
    }

    async fn del_work_spec(&self, name: &str) -> Result<()> {
        in_tx!(self, tx => {
            let stmt = tx.prepare_cached("DELETE FROM work_spec WHERE name = $1").await?;
            if tx.execute(&stmt, &[&name]).await? == 0 {
                return Err(Error::NoSuchWorkSpec(name.to_owned()).into());
            }
            Ok(())
        })
    }

    async fn clear(&self) -> Result<usize> {
        in_tx!(self, tx => Ok(tx.execute("DELETE FROM work_spec", &[]).await? as usize))
    }

    async fn get_work_spec(&self, name: &str) -> Result<SpecData> {
        without_tx!(self, tx => {
            let stmt = tx.prepare_cached("SELECT data FROM work_spec WHERE name = $1").await?;
            match tx.query_opt(&stmt, &[&name]).await? {
                Some(r) => match dec(r.get(0)) {
                    Value::Map(entries) => Ok(entries),
                    _ => Ok(Vec::new()),
                },
                None => Err(Error::NoSuchWorkSpec(name.to_owned()).into()),
            }
        })
    }

    async fn get_work_spec_meta(&self, name: &str) -> Result<SpecMeta> {
        let now = self.clock.now();
        without_tx!(self, tx => {
            let spec = spec_by_name(&tx, name).await?;
            refresh(&tx, Some(spec.id), now).await?;
            let c = counts(&tx, spec.id).await?;
            let mut meta = spec.meta;
            meta.available_count = c.get(&UnitStatus::Available).copied().unwrap_or(0);
            meta.pending_count = c.get(&UnitStatus::Pending).copied().unwrap_or(0);
            Ok(meta)
        })
    }

    async fn control_work_spec(&self, name: &str, control: SpecControl) -> Result<()> {
        in_tx!(self, tx => {
            let lock = tx.prepare_cached(&format!("SELECT {SPEC_COLS} FROM work_spec WHERE name = $1 FOR UPDATE")).await?;
            let Some(row) = tx.query_opt(&lock, &[&name]).await? else {
                return Err(Error::NoSuchWorkSpec(name.to_owned()).into());
            };
            let mut spec = spec_row(&row);
            spec.meta.apply(&control);
            let m = &spec.meta;
            let stmt = tx
                .prepare_cached(
                    "UPDATE work_spec SET paused = $2, continuous = $3, weight = $4, interval_secs = $5, max_running = $6 WHERE id = $1",
                )
                .await?;
            tx.execute(&stmt, &[&spec.id, &m.paused, &m.continuous, &m.weight, &m.interval, &m.max_running]).await?;
            Ok(())
        })
    }

    async fn add_work_units(&self, name: &str, units: Vec<NewUnit>) -> Result<()> {
        let now = self.clock.now();
        let units = &units;
        in_tx!(self, tx => {
            let spec = spec_by_name(&tx, name).await?;
            refresh(&tx, Some(spec.id), now).await?;
            upsert_units(&tx, spec.id, units.clone(), now).await
        })
    }

    async fn get_work_units(&self, name: &str, q: UnitQuery) -> Result<Vec<(UnitKey, Value)>> {
        let now = self.clock.now();
        let q = &q;
        without_tx!(self, tx => {
            let spec = spec_by_name(&tx, name).await?;
            refresh(&tx, Some(spec.id), now).await?;
            let rows = match &q.keys {
                Some(keys) => {
                    let stmt = tx
                        .prepare_cached("SELECT key, coalesce(attempt_data, data), key_text FROM work_unit WHERE spec_id = $1 AND key = ANY($2) ORDER BY key")
                        .await?;
                    tx.query(&stmt, &[&spec.id, keys]).await?
                }
                None => {
                    let states: Option<Vec<i16>> = q.states.as_ref().map(|s| s.iter().map(|&s| code_of(s)).collect());
                    let stmt = tx
                        .prepare_cached(
                            "SELECT key, coalesce(attempt_data, data), key_text FROM work_unit
                             WHERE spec_id = $1 AND ($2::bytea IS NULL OR key > $2) AND ($3::int2[] IS NULL OR status = ANY($3))
                             ORDER BY key LIMIT $4",
                        )
                        .await?;
                    tx.query(&stmt, &[&spec.id, &q.start, &states, &(q.limit as i64)]).await?
                }
            };
            Ok(rows.iter().map(|r| (UnitKey::stored(r.get(0), r.get(2)), dec(r.get(1)))).collect())
        })
    }

    async fn get_work_unit_status(&self, name: &str, keys: Vec<Key>) -> Result<Vec<Option<UnitStatusInfo>>> {
        let now = self.clock.now();
        let keys = &keys;
        without_tx!(self, tx => {
            let spec = spec_by_name(&tx, name).await?;
            refresh(&tx, Some(spec.id), now).await?;
            let stmt = tx
                .prepare_cached(
                    "SELECT key, status, worker, lease_expires, coalesce(attempt_data, data) FROM work_unit
                     WHERE spec_id = $1 AND key = ANY($2)",
                )
                .await?;
            let mut found: HashMap<Vec<u8>, UnitStatusInfo> = HashMap::new();
            for r in tx.query(&stmt, &[&spec.id, keys]).await? {
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
                };
                found.insert(r.get(0), info);
            }
            Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
        })
    }

    async fn prioritize_work_units(&self, name: &str, keys: Vec<Key>, change: PriorityChange) -> Result<()> {
        let keys = &keys;
        in_tx!(self, tx => {
            let spec = spec_by_name(&tx, name).await?;
            let (sql, v) = match change {
                PriorityChange::Set(p) => ("UPDATE work_unit SET priority = $3 WHERE spec_id = $1 AND key = ANY($2)", p),
                PriorityChange::Adjust(d) => ("UPDATE work_unit SET priority = priority + $3 WHERE spec_id = $1 AND key = ANY($2)", d),
            };
            let stmt = tx.prepare_cached(sql).await?;
            tx.execute(&stmt, &[&spec.id, keys, &v]).await?;
            Ok(())
        })
    }

    async fn count_work_units(&self, name: &str) -> Result<BTreeMap<UnitStatus, u64>> {
        let now = self.clock.now();
        without_tx!(self, tx => {
            let spec = spec_by_name(&tx, name).await?;
            refresh(&tx, Some(spec.id), now).await?;
            counts(&tx, spec.id).await
        })
    }

    async fn del_work_units(&self, name: &str, q: DelQuery) -> Result<u64> {
        let now = self.clock.now();
        let q = &q;
        in_tx!(self, tx => {
            let spec = spec_by_name(&tx, name).await?;
            refresh(&tx, Some(spec.id), now).await?;
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
    }

    async fn archive(&self, policy: ArchivePolicy) -> Result<u64> {
        let now = self.clock.now();
        in_tx!(self, tx => {
            let mut n = 0;
            if let Some(age) = policy.older_than {
                let cut = now.plus_secs(-age).0;
                n += tx.execute("DELETE FROM work_unit WHERE status IN (2, 3) AND ended < $1", &[&cut]).await?;
            }
            if let Some(keep) = policy.keep {
                n += tx
                    .execute(
                        "DELETE FROM work_unit w USING (
                             SELECT spec_id, key, row_number() OVER (PARTITION BY spec_id, status ORDER BY ended DESC NULLS LAST, key DESC) AS rn
                             FROM work_unit WHERE status IN (2, 3)) r
                         WHERE w.spec_id = r.spec_id AND w.key = r.key AND r.rn > $1",
                        &[&(keep as i64)],
                    )
                    .await?;
            }
            Ok(n)
        })
    }

    async fn get_work(&self, worker: &str, opts: GetWork) -> Result<Vec<WorkGrant>> {
        let now = self.clock.now();
        let opts = &opts;
        let fast: R<Vec<WorkGrant>> = async {
            let client = self.client().await?;
            self.get_work_in(&client, worker, opts, now, false).await
        }
        .await;
        match fast {
            Err(E::NeedTx) => in_tx!(self, tx => self.get_work_in(&tx, worker, opts, now, true).await),
            other => other.map_err(E::into_error),
        }
    }

    async fn update_work_unit(&self, name: &str, key: &[u8], upd: UnitUpdate) -> Result<bool> {
        let now = self.clock.now();
        if let Some(done @ (UnitStatus::Finished | UnitStatus::Failed)) = upd.status {
            // The common case, a worker finishing or failing the unit it
            // holds, with nothing to chain: one autocommitted statement.
            let data = upd.data.as_ref().map(enc);
            let fast: R<bool> = async {
                let client = self.client().await?;
                let stmt = client
                    .prepare_cached(
                        "UPDATE work_unit u SET status = $3::smallint, attempt_data = coalesce($4, u.attempt_data), ended = $5,
                                lease_expires = NULL
                         FROM work_spec s
                         WHERE s.name = $1 AND u.spec_id = s.id AND u.key = $2 AND u.status = 1
                           AND u.lease_expires >= $5 AND ($3::smallint = 3 OR s.next_spec = '')",
                    )
                    .await?;
                Ok(client.execute(&stmt, &[&name, &key, &code_of(done), &data, &now.0]).await? == 1)
            }
            .await;
            match fast {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => return Err(e.into_error()),
            }
        }
        let upd = &upd;
        in_tx!(self, tx => self.update_tx(&tx, name, key, upd, now).await)
    }

    async fn worker_heartbeat(&self, hb: Heartbeat) -> Result<()> {
        let now = self.clock.now();
        let parent = hb.parent.clone().filter(|p| !p.is_empty() && *p != hb.worker);
        let data = enc(&hb.data);
        let expiration = now.plus_secs(hb.expire_secs).0;
        let hb = &hb;
        in_tx!(self, tx => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO worker (name, parent, active, mode, data, expiration, last_update)
                     VALUES ($1, $2, TRUE, $3, $4, $5, $6)
                     ON CONFLICT (name) DO UPDATE SET parent = EXCLUDED.parent, active = TRUE, mode = EXCLUDED.mode,
                         data = EXCLUDED.data, expiration = EXCLUDED.expiration, last_update = EXCLUDED.last_update",
                )
                .await?;
            tx.execute(&stmt, &[&hb.worker, &parent, &hb.mode, &data, &expiration, &now.0]).await?;
            Ok(())
        })
    }

    async fn worker_unregister(&self, worker: &str) -> Result<()> {
        let now = self.clock.now();
        let cutoff = now.plus_secs(-WORKER_RECORD_GRACE).0;
        in_tx!(self, tx => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO worker (name, active, last_update) VALUES ($1, FALSE, $2)
                     ON CONFLICT (name) DO UPDATE SET active = FALSE, last_update = $2",
                )
                .await?;
            tx.execute(&stmt, &[&worker, &now.0]).await?;
            // Drop the records of workers long gone that hold nothing.
            let prune = tx
                .prepare_cached(
                    "DELETE FROM worker w
                     WHERE (NOT w.active OR w.expiration < $1) AND coalesce(w.last_update, 0) < $1
                       AND NOT EXISTS (SELECT 1 FROM work_unit u WHERE u.status = 1 AND u.worker = w.name)
                       AND NOT EXISTS (SELECT 1 FROM worker c WHERE c.parent = w.name)",
                )
                .await?;
            tx.execute(&prune, &[&cutoff]).await?;
            Ok(())
        })
    }

    async fn list_worker_modes(&self) -> Result<BTreeMap<String, String>> {
        let now = self.clock.now();
        without_tx!(self, tx => {
            let stmt = tx.prepare_cached(&format!("SELECT name, mode FROM worker WHERE {LIVE}")).await?;
            Ok(tx.query(&stmt, &[&now.0]).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    async fn get_worker_info(&self, worker: &str) -> Result<Option<Value>> {
        without_tx!(self, tx => {
            let stmt = tx.prepare_cached("SELECT data FROM worker WHERE name = $1").await?;
            Ok(tx.query_opt(&stmt, &[&worker]).await?.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)).map(|d| dec(&d)))
        })
    }

    async fn mode_counts(&self) -> Result<BTreeMap<String, u64>> {
        let now = self.clock.now();
        without_tx!(self, tx => {
            let stmt = tx.prepare_cached(&format!("SELECT mode, count(*) FROM worker WHERE {LIVE} GROUP BY mode")).await?;
            Ok(tx.query(&stmt, &[&now.0]).await?.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
        })
    }

    async fn worker_stats(&self) -> Result<WorkerStats> {
        let now = self.clock.now();
        without_tx!(self, tx => {
            let stmt = tx
                .prepare_cached(&format!("SELECT count(*), count(parent), count(expiration) FROM worker WHERE {LIVE}"))
                .await?;
            let r = tx.query_one(&stmt, &[&now.0]).await?;
            Ok(WorkerStats {
                num_workers: r.get::<_, i64>(0) as u64,
                num_children: r.get::<_, i64>(1) as u64,
                num_expirable: r.get::<_, i64>(2) as u64,
            })
        })
    }

    async fn get_child_work_units(&self, worker: &str) -> Result<BTreeMap<String, Vec<ChildUnit>>> {
        let now = self.clock.now();
        in_tx!(self, tx => {
            refresh(&tx, None, now).await?;
            let children = tx.prepare_cached("SELECT name FROM worker WHERE parent = $1").await?;
            let mut out: BTreeMap<String, Vec<ChildUnit>> =
                tx.query(&children, &[&worker]).await?.iter().map(|r| (r.get(0), Vec::new())).collect();
            let names: Vec<&String> = out.keys().collect();
            let stmt = tx
                .prepare_cached(
                    "SELECT u.worker, s.name, u.key, coalesce(u.attempt_data, u.data), u.lease_expires, u.key_text
                     FROM work_unit u JOIN work_spec s ON s.id = u.spec_id
                     WHERE u.status = 1 AND u.worker = ANY($1) ORDER BY s.name, u.key",
                )
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
    }

    fn now(&self) -> Time {
        self.clock.now()
    }
}
