//! Applying due lease expiries and delays.
//!
//! They are applied lazily: each call first turns due leases and due delays
//! into available units (of the spec it reads, or of all specs), found
//! through the partial indexes on `lease_expires` and `not_before`, and
//! does no writing when nothing is due. A probe asks first, so the common
//! case costs one cheap read.

use deadpool_postgres::GenericClient;

use super::error::R;
use super::sql::{release_set, status};
use crate::clock::Time;

/// Whether any lease (column 0) or delay (column 1) is due at `$1`, for the
/// spec `$2` or all specs when it is NULL.
pub(super) const PROBE: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM work_unit WHERE status = ",
    status!(PENDING),
    " AND lease_expires < $1 AND ($2::bigint IS NULL OR spec_id = $2)),
            EXISTS (SELECT 1 FROM work_unit WHERE status = ",
    status!(DELAYED),
    " AND not_before <= $1 AND ($2::bigint IS NULL OR spec_id = $2))"
);

/// Applies due lease expiries and delays (for one spec, or all).
pub(super) async fn refresh<G: GenericClient>(tx: &G, spec: Option<i64>, now: Time) -> R<()> {
    let probe = tx.prepare_cached(PROBE).await?;
    let row = tx.query_one(&probe, &[&now.0, &spec]).await?;
    apply_due(tx, spec, now, (row.get(0), row.get(1))).await
}

/// Runs the updates a [`PROBE`] found due: (leases to expire, delays over).
pub(super) async fn apply_due<G: GenericClient>(tx: &G, spec: Option<i64>, now: Time, due: (bool, bool)) -> R<()> {
    if due.0 {
        let stmt = tx
            .prepare_cached(concat!(
                "UPDATE work_unit SET ",
                release_set!("$1"),
                " WHERE status = ",
                status!(PENDING),
                " AND lease_expires < $1 AND ($2::bigint IS NULL OR spec_id = $2)"
            ))
            .await?;
        tx.execute(&stmt, &[&now.0, &spec]).await?;
    }
    if due.1 {
        let stmt = tx
            .prepare_cached(concat!(
                "UPDATE work_unit SET status = ",
                status!(AVAILABLE),
                " WHERE status = ",
                status!(DELAYED),
                " AND not_before <= $1 AND ($2::bigint IS NULL OR spec_id = $2)"
            ))
            .await?;
        tx.execute(&stmt, &[&now.0, &spec]).await?;
    }
    Ok(())
}

/// Expires the lease of one unit whose lease ran out, as [`refresh`] would,
/// and answers its new status code.
pub(super) async fn expire_unit<G: GenericClient>(tx: &G, spec: i64, key: &[u8], now: Time) -> R<i16> {
    let stmt = tx.prepare_cached(RELEASE_UNIT).await?;
    Ok(tx.query_one(&stmt, &[&spec, &key, &now.0]).await?.get(0))
}

/// Ends the attempt of the unit `$2` of spec `$1` at time `$3` (see
/// [`release_set!`]); answers the new status.
pub(super) const RELEASE_UNIT: &str =
    concat!("UPDATE work_unit SET ", release_set!("$3"), " WHERE spec_id = $1 AND key = $2 RETURNING status");
