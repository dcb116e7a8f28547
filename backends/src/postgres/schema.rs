//! The schema, as numbered migrations embedded in the binary.
//!
//! [`migrate`] runs at start-up in one transaction that first takes an
//! advisory lock, so two daemons starting at once apply each migration
//! exactly once; a daemon finding a newer schema than it knows refuses to
//! run. Append new migrations; never edit an applied one.
//!
//! Design (the why of each part is in the module that uses it):
//! * `work_spec` holds the spec data (CBOR) and its metadata as columns.
//! * `work_unit` holds each unit with its active attempt inline: status,
//!   worker, lease expiry, the attempt's own data. It has no foreign key
//!   to `work_spec` (migration 4 says why); the code keeps units and specs
//!   consistent. Keys are `BYTEA`
//!   (bytewise order, any bytes); data is our CBOR encoding, so bytes vs
//!   text, tuples, UUIDs and ints vs floats round-trip exactly.
//! * Partial indexes serve the hot paths: available units of a spec in
//!   hand-out order, pending leases by expiry, delayed units by due time,
//!   pending units by worker.
//! * `unit_count` keeps per-spec, per-status counts in 64 shards, updated by
//!   statement-level triggers from the transition tables, so counting never
//!   scans units and concurrent writers rarely touch the same counter row.
//! * `lock_path` holds the `lock` methods' locks, one row per locked path.

use tokio_postgres::Client;

/// Status codes stored in `work_unit.status` (the order of
/// [`crate::model::UnitStatus`]); SQL text spells them with `sql::status!`,
/// which a test checks against these.
pub const AVAILABLE: i16 = 0;
pub const PENDING: i16 = 1;
pub const FINISHED: i16 = 2;
pub const FAILED: i16 = 3;
pub const DELAYED: i16 = 4;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE work_spec (
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    data BYTEA NOT NULL,
    priority BIGINT NOT NULL,
    weight BIGINT NOT NULL,
    paused BOOLEAN NOT NULL,
    continuous BOOLEAN NOT NULL,
    can_be_continuous BOOLEAN NOT NULL,
    min_memory_gb DOUBLE PRECISION NOT NULL,
    interval_secs DOUBLE PRECISION NOT NULL,
    next_continuous BIGINT,
    max_running BIGINT NOT NULL,
    max_getwork BIGINT NOT NULL,
    max_retries BIGINT NOT NULL,
    next_spec TEXT NOT NULL,
    runtime TEXT NOT NULL
);

CREATE TABLE work_unit (
    spec_id BIGINT NOT NULL REFERENCES work_spec(id) ON DELETE CASCADE,
    key BYTEA NOT NULL,
    data BYTEA NOT NULL,
    priority DOUBLE PRECISION NOT NULL DEFAULT 0,
    not_before BIGINT,
    status SMALLINT NOT NULL,
    worker TEXT,
    attempt_data BYTEA,
    lease_expires BIGINT,
    ended BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (spec_id, key)
);
CREATE INDEX work_unit_available ON work_unit (spec_id, priority DESC, key) WHERE status = 0;
CREATE INDEX work_unit_leases ON work_unit (lease_expires) WHERE status = 1;
CREATE INDEX work_unit_delayed ON work_unit (not_before) WHERE status = 4;
CREATE INDEX work_unit_by_status ON work_unit (spec_id, status, key);
CREATE INDEX work_unit_by_worker ON work_unit (worker) WHERE status = 1;

CREATE TABLE unit_count (
    spec_id BIGINT NOT NULL REFERENCES work_spec(id) ON DELETE CASCADE,
    status SMALLINT NOT NULL,
    shard SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (spec_id, status, shard)
);

CREATE FUNCTION unit_count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO unit_count (spec_id, status, shard, n)
        SELECT spec_id, status, (pg_backend_pid() % 64)::smallint, count(*)
        FROM new_units GROUP BY spec_id, status ORDER BY spec_id, status
        ON CONFLICT (spec_id, status, shard) DO UPDATE SET n = unit_count.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO unit_count (spec_id, status, shard, n)
        SELECT spec_id, status, (pg_backend_pid() % 64)::smallint, sum(d)
        FROM (SELECT spec_id, status, -1 AS d FROM old_units
              UNION ALL SELECT spec_id, status, 1 AS d FROM new_units) AS delta
        GROUP BY spec_id, status HAVING sum(d) <> 0 ORDER BY spec_id, status
        ON CONFLICT (spec_id, status, shard) DO UPDATE SET n = unit_count.n + EXCLUDED.n;
    ELSE
        INSERT INTO unit_count (spec_id, status, shard, n)
        SELECT o.spec_id, o.status, (pg_backend_pid() % 64)::smallint, -count(*)
        FROM old_units o WHERE EXISTS (SELECT 1 FROM work_spec s WHERE s.id = o.spec_id)
        GROUP BY o.spec_id, o.status ORDER BY o.spec_id, o.status
        ON CONFLICT (spec_id, status, shard) DO UPDATE SET n = unit_count.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER work_unit_count_insert AFTER INSERT ON work_unit
    REFERENCING NEW TABLE AS new_units FOR EACH STATEMENT EXECUTE FUNCTION unit_count_apply();
CREATE TRIGGER work_unit_count_update AFTER UPDATE ON work_unit
    REFERENCING OLD TABLE AS old_units NEW TABLE AS new_units FOR EACH STATEMENT EXECUTE FUNCTION unit_count_apply();
CREATE TRIGGER work_unit_count_delete AFTER DELETE ON work_unit
    REFERENCING OLD TABLE AS old_units FOR EACH STATEMENT EXECUTE FUNCTION unit_count_apply();

CREATE TABLE worker (
    name TEXT COLLATE "C" PRIMARY KEY,
    parent TEXT COLLATE "C",
    active BOOLEAN NOT NULL DEFAULT FALSE,
    mode TEXT NOT NULL DEFAULT '',
    data BYTEA,
    expiration BIGINT,
    last_update BIGINT
);
CREATE INDEX worker_parent ON worker (parent);
"#,
    // 2: keys are answered in the string type they were added with. Rows
    // from version 1 were answered as bytes and keep that answer.
    r#"
ALTER TABLE work_unit ADD COLUMN key_text BOOLEAN NOT NULL DEFAULT false;
"#,
    // 3: the lock methods' locks, shared by every daemon (postgres/locks.rs).
    r#"
CREATE TABLE lock_path (
    key BYTEA PRIMARY KEY,
    owner TEXT NOT NULL,
    deadline BIGINT NOT NULL
);
CREATE INDEX lock_path_deadline ON lock_path (deadline);
"#,
    // 4: no foreign key from units to their spec. Its check ran once per
    // inserted unit (a query taking a share lock on the spec row): 100,000
    // units inserted in one statement took 2.2 s with it and 1.4 s without.
    // What it guaranteed is kept by the code: an insert holds the spec row
    // (`FOR KEY SHARE`, once per statement: units::hold_spec), and deleting
    // a spec deletes its units in the same transaction (specs::delete).
    r#"
ALTER TABLE work_unit DROP CONSTRAINT IF EXISTS work_unit_spec_id_fkey;
"#,
];

/// Advisory lock key serialising migrations ("coordmig").
const MIGRATION_LOCK: i64 = 0x636f_6f72_646d_6967;

/// Brings the schema up to date.
pub async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    migrate_to(client, latest_version()).await
}

/// Applies the migrations up to version `target` (tests build an older
/// schema with it to check that upgrades keep existing rows).
pub async fn migrate_to(client: &mut Client, target: i32) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS coordinate_migrations (
             version INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let row = tx.query_one("SELECT coalesce(max(version), 0) FROM coordinate_migrations", &[]).await?;
    let have: i32 = row.get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i32 + 1;
        if version <= have || version > target {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO coordinate_migrations (version) VALUES ($1)", &[&version]).await?;
    }
    tx.commit().await
}

/// The newest schema version this binary knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.len() as i32
}
