//! The lock family, shared by every daemon on the database and kept
//! across restarts.
//!
//! Locks are rows of `lock_path`, keyed as [`crate::locks::RowScope`]
//! describes. A call that can change locks first takes one
//! transaction-scoped advisory lock, so such calls run one at a time
//! across all daemons: a conflict lies between a path and its prefixes or
//! extensions, which are different rows, so row locks could not exclude
//! it, and lock calls are rare and short. The call then loads the live
//! rows that can decide it, applies itself to a [`LockTree`] built from
//! them (the rules are the embedded backends' own), and writes back the
//! difference in two statements. `readlock` reads the same rows in one
//! statement, without the advisory lock. Deadlines are the daemon clock's
//! microseconds, as leases are; rows past theirs are deleted by the next
//! call that writes.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;

use super::error::{E, R};
use super::PostgresBackend;
use crate::clock::Time;
use crate::locks::{LockAnswer, LockCall, LockLimits, LockRow, LockTree, RowScope};
use crate::model::{Error, Result};

/// Advisory lock key serialising lock calls that write ("coordlck").
const LOCK_CALLS: i64 = 0x636f_6f72_646c_636b;

/// The live rows that can decide a call: `$1` the time, `$2` the exact
/// keys, `$3`/`$4` the low and high ends of the open ranges.
const LOAD: &str = "SELECT key, owner, deadline FROM lock_path WHERE key = ANY($2) AND deadline >= $1
    UNION
    SELECT l.key, l.owner, l.deadline FROM unnest($3::bytea[], $4::bytea[]) AS r(lo, hi)
    CROSS JOIN LATERAL (SELECT key, owner, deadline FROM lock_path
                        WHERE key > r.lo AND key < r.hi AND deadline >= $1) AS l";

pub(super) async fn call(db: &PostgresBackend, call: &LockCall, limits: &LockLimits) -> Result<LockAnswer> {
    let now = db.clock.now();
    let Some(scope) = call.row_scope(limits) else {
        // Over a limit: refused whatever the rows hold.
        return Ok(LockTree::new().apply(limits, now, call));
    };
    let scope = &scope;
    if !call.writes() {
        return db
            .autocommit(|c, _| {
                Box::pin(async move {
                    let rows = load(c, scope, now).await?;
                    Ok(tree(rows)?.apply(limits, now, call))
                })
            })
            .await;
    }
    db.in_tx(|tx, _| {
        Box::pin(async move {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CALLS]).await?;
            let expire = tx.prepare_cached("DELETE FROM lock_path WHERE deadline < $1").await?;
            tx.execute(&expire, &[&now.0]).await?;
            let before = load(tx, scope, now).await?;
            let tree = tree(before.clone())?;
            let answer = tree.apply(limits, now, call);
            if answer.is_ok() {
                write_back(tx, before, tree.rows(now)).await?;
            }
            Ok(answer)
        })
    })
    .await
}

async fn load<G: GenericClient>(c: &G, scope: &RowScope, now: Time) -> R<Vec<LockRow>> {
    let stmt = c.prepare_cached(LOAD).await?;
    let (lo, hi): (Vec<&[u8]>, Vec<&[u8]>) = scope.ranges.iter().map(|(l, h)| (&l[..], &h[..])).unzip();
    let exact: Vec<&[u8]> = scope.exact.iter().map(|k| &k[..]).collect();
    let rows = c.query(&stmt, &[&now.0, &exact, &lo, &hi]).await?;
    Ok(rows.into_iter().map(|r| LockRow { key: r.get(0), owner: r.get(1), deadline: Time(r.get(2)) }).collect())
}

fn tree(rows: Vec<LockRow>) -> R<LockTree> {
    LockTree::from_rows(rows).map_err(|e| E::C(Error::Backend(format!("lock_path holds a bad row: {e}"))))
}

/// Deletes the rows no longer held and writes the new or changed ones.
async fn write_back<G: GenericClient>(c: &G, before: Vec<LockRow>, after: Vec<LockRow>) -> R<()> {
    let old: HashMap<Vec<u8>, LockRow> = before.into_iter().map(|r| (r.key.clone(), r)).collect();
    let kept: std::collections::HashSet<&[u8]> = after.iter().map(|r| &r.key[..]).collect();
    let gone: Vec<&[u8]> = old.keys().map(|k| &k[..]).filter(|k| !kept.contains(k)).collect();
    let changed: Vec<&LockRow> = after.iter().filter(|r| old.get(&r.key) != Some(*r)).collect();
    if !gone.is_empty() {
        let stmt = c.prepare_cached("DELETE FROM lock_path WHERE key = ANY($1)").await?;
        c.execute(&stmt, &[&gone]).await?;
    }
    if !changed.is_empty() {
        let keys: Vec<&[u8]> = changed.iter().map(|r| &r.key[..]).collect();
        let owners: Vec<&str> = changed.iter().map(|r| r.owner.as_str()).collect();
        let deadlines: Vec<i64> = changed.iter().map(|r| r.deadline.0).collect();
        let stmt = c
            .prepare_cached(
                "INSERT INTO lock_path (key, owner, deadline)
                 SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[])
                 ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, deadline = EXCLUDED.deadline",
            )
            .await?;
        c.execute(&stmt, &[&keys, &owners, &deadlines]).await?;
    }
    Ok(())
}
