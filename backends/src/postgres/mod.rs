//! The PostgreSQL backend: durable, and shared by any number of daemons.
//!
//! The daemon is stateless; the database holds the truth, so several
//! daemons can serve one database. Every trait call is one transaction at
//! READ COMMITTED, retried whole on a serialization failure or deadlock
//! (`tx`); calls that cannot need one run in autocommit.
//!
//! All times are microseconds from the backend's [`Clock`], never the
//! database's `now()`, so tests can move time by hand.
//!
//! **Lost connections.** A failed query fails that call with an error reply;
//! the pool drops broken connections and opens new ones, so the daemon
//! serves again as soon as the database is back. A database that stops
//! answering fails each call at the call timeout (`--pg-timeout`).
//!
//! The files follow the subjects: [`config`] (where the database is),
//! `error` and `tx` (how a call runs), `sql` (shared SQL text and column
//! mappings), `expiry` (due leases and delays), `specs`, `units`, `work`
//! (handing out and updating work) with `claim` and `finish` (its common
//! cases, coalesced across workers on `batch`'s queue), `workers`, `locks`
//! (the lock methods' locks, shared by the daemons), and [`schema`]. The
//! [`Coordinate`] impl here only delegates.

mod batch;
mod claim;
pub mod config;
mod error;
mod expiry;
mod finish;
mod locks;
pub mod schema;
mod spec_cache;
mod specs;
mod sql;
mod tx;
mod units;
mod work;
mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio_postgres::NoTls;

use cborrpc::Value;

use crate::clock::{Clock, Time};
use crate::model::*;
use crate::Coordinate;
pub use config::parse_config;
use error::E;

/// The PostgreSQL [`Coordinate`] backend.
pub struct PostgresBackend {
    /// The pool and the call timeout.
    db: tx::Db,
    clock: Arc<dyn Clock>,
    /// The scheduler's randomness, shared with `claimer`.
    rng: Arc<Mutex<StdRng>>,
    /// Coalesces the common claims (`claim`).
    claimer: claim::Claimer,
    /// Coalesces the common finishes (`finish`).
    finisher: finish::Finisher,
    /// The claims' spec list, dropped by every other change to specs or
    /// unit counts made here (`spec_cache`).
    spec_cache: Arc<spec_cache::SpecCache>,
}

/// The default bound on one call (`--pg-timeout`).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl PostgresBackend {
    /// Connects (see [`parse_config`]), applies migrations, and returns a
    /// backend with a pool of `pool_size` connections whose calls each take
    /// at most `call_timeout`, waiting for a connection included: past it
    /// a call fails with an error saying so, and its connection is closed
    /// (see `tx`).
    pub async fn connect(url: &str, clock: Arc<dyn Clock>, pool_size: usize, call_timeout: Duration) -> Result<Self> {
        Self::connect_config(parse_config(url)?, clock, pool_size, call_timeout, None).await
    }

    /// Like [`PostgresBackend::connect`] from a parsed configuration, with
    /// an optional scheduler seed (for tests).
    pub async fn connect_config(
        cfg: tokio_postgres::Config,
        clock: Arc<dyn Clock>,
        pool_size: usize,
        call_timeout: Duration,
        seed: Option<u64>,
    ) -> Result<Self> {
        let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(pool_size.max(1))
            // No timeouts of the pool's own: each call's deadline bounds
            // waiting and connecting (see `tx`), with one message.
            .runtime(Runtime::Tokio1)
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
        let db = tx::Db { pool, call_timeout };
        let rng = Arc::new(Mutex::new(rng));
        let spec_cache = Arc::new(spec_cache::SpecCache::default());
        let claimer = claim::Claimer::start(db.clone(), rng.clone(), spec_cache.clone());
        let finisher = finish::Finisher::start(db.clone(), spec_cache.clone());
        Ok(PostgresBackend { db, clock, rng, claimer, finisher, spec_cache })
    }

    /// Runs a change to specs or unit counts that the coalesced paths do
    /// not count themselves, and drops the claims' spec list after it
    /// (whatever its outcome: a failed call may have changed things too).
    async fn changing<T>(&self, change: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let out = change.await;
        self.spec_cache.drop_list();
        out
    }
}

impl Coordinate for PostgresBackend {
    async fn list_work_specs(&self, start: &str, limit: usize) -> Result<(Vec<SpecData>, Option<String>)> {
        specs::list(self, start, limit).await
    }

    async fn set_work_spec(&self, data: SpecData) -> Result<()> {
        self.changing(specs::set(self, data)).await
    }

    async fn del_work_spec(&self, name: &str) -> Result<()> {
        self.changing(specs::delete(self, name)).await
    }

    async fn clear(&self) -> Result<usize> {
        self.changing(specs::clear(self)).await
    }

    async fn get_work_spec(&self, name: &str) -> Result<SpecData> {
        specs::data(self, name).await
    }

    async fn get_work_spec_meta(&self, name: &str) -> Result<SpecMeta> {
        specs::meta(self, name).await
    }

    async fn control_work_spec(&self, name: &str, control: SpecControl) -> Result<()> {
        self.changing(specs::control(self, name, control)).await
    }

    async fn add_work_units(&self, name: &str, units: Vec<NewUnit>) -> Result<()> {
        self.changing(units::add(self, name, units)).await
    }

    async fn get_work_units(&self, name: &str, q: UnitQuery) -> Result<Vec<(UnitKey, Value)>> {
        units::list(self, name, q).await
    }

    async fn get_work_unit_status(&self, name: &str, keys: Vec<Key>) -> Result<Vec<Option<UnitStatusInfo>>> {
        units::unit_status(self, name, keys).await
    }

    async fn prioritize_work_units(&self, name: &str, keys: Vec<Key>, change: PriorityChange) -> Result<()> {
        units::prioritize(self, name, keys, change).await
    }

    async fn count_work_units(&self, name: &str) -> Result<BTreeMap<UnitStatus, u64>> {
        units::count(self, name).await
    }

    async fn del_work_units(&self, name: &str, q: DelQuery) -> Result<u64> {
        self.changing(units::delete(self, name, q)).await
    }

    async fn retry_work_units(&self, name: &str, keys: Option<Vec<Key>>) -> Result<u64> {
        self.changing(units::retry(self, name, keys)).await
    }

    async fn archive(&self, policy: ArchivePolicy) -> Result<u64> {
        units::archive(self, policy).await
    }

    async fn get_work(&self, worker: &str, opts: GetWork) -> Result<Vec<WorkGrant>> {
        work::get_work(self, worker, opts).await
    }

    async fn update_work_unit(&self, name: &str, key: &[u8], upd: UnitUpdate) -> Result<bool> {
        work::update(self, name, key, upd).await
    }

    async fn worker_heartbeat(&self, hb: Heartbeat) -> Result<()> {
        workers::heartbeat(self, hb).await
    }

    async fn worker_unregister(&self, worker: &str) -> Result<()> {
        workers::unregister(self, worker).await
    }

    async fn list_worker_modes(&self) -> Result<BTreeMap<String, String>> {
        workers::modes(self).await
    }

    async fn get_worker_info(&self, worker: &str) -> Result<Option<Value>> {
        workers::info(self, worker).await
    }

    async fn list_workers(&self, start: &str, limit: usize) -> Result<(Vec<WorkerInfo>, Option<String>)> {
        workers::list(self, start, limit).await
    }

    async fn mode_counts(&self) -> Result<BTreeMap<String, u64>> {
        workers::mode_counts(self).await
    }

    async fn worker_stats(&self) -> Result<WorkerStats> {
        workers::stats(self).await
    }

    async fn get_child_work_units(&self, worker: &str) -> Result<BTreeMap<String, Vec<ChildUnit>>> {
        workers::child_units(self, worker).await
    }

    async fn lock_call(
        &self,
        call: &crate::locks::LockCall,
        limits: &crate::locks::LockLimits,
    ) -> Result<crate::locks::LockAnswer> {
        locks::call(self, call, limits).await
    }

    fn now(&self) -> Time {
        self.clock.now()
    }

    async fn spec_stats(&self) -> Result<Vec<crate::stats::SpecStats>> {
        units::all_counts(self).await
    }
}
