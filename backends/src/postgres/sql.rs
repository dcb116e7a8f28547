//! SQL text shared by the subjects, and the mapping between column values
//! and the model.
//!
//! Status codes stay literals in the SQL text: a partial index such as
//! `WHERE status = 0` serves a query only when the planner can prove the
//! query's predicate implies the index's, which it cannot do with a
//! parameter in a prepared statement. [`status!`] spells each code once, for
//! use in `concat!`; a test checks it against the `i16` constants of
//! [`super::schema`], which the Rust side compares with.

use cborrpc::encode::{decode, to_vec};
use cborrpc::Value;

use super::schema::{AVAILABLE, DELAYED, FAILED, FINISHED, PENDING};
use crate::model::UnitStatus;

/// A status code as a SQL literal, named as in [`super::schema`].
macro_rules! status {
    (AVAILABLE) => {
        "0"
    };
    (PENDING) => {
        "1"
    };
    (FINISHED) => {
        "2"
    };
    (FAILED) => {
        "3"
    };
    (DELAYED) => {
        "4"
    };
}
pub(super) use status;

/// The `SET` list that ends a unit's attempt, as when its lease runs out:
/// the unit is available again, or delayed while its `not_before` is after
/// `$now` (the placeholder holding the current time, e.g. `"$1"`).
macro_rules! release_set {
    ($now:literal) => {
        concat!(
            "status = CASE WHEN not_before > ",
            $now,
            " THEN ",
            $crate::postgres::sql::status!(DELAYED),
            " ELSE ",
            $crate::postgres::sql::status!(AVAILABLE),
            " END, worker = NULL, attempt_data = NULL, lease_expires = NULL, ended = NULL"
        )
    };
}
pub(super) use release_set;

/// Unit and spec data as stored: our CBOR encoding, so bytes vs text,
/// tuples, UUIDs and ints vs floats round-trip exactly.
pub(super) fn enc(v: &Value) -> Vec<u8> {
    to_vec(v)
}

pub(super) fn dec(b: &[u8]) -> Value {
    decode(b).unwrap_or(Value::Null)
}

pub(super) fn status_of(code: i16) -> UnitStatus {
    match code {
        AVAILABLE => UnitStatus::Available,
        PENDING => UnitStatus::Pending,
        FINISHED => UnitStatus::Finished,
        FAILED => UnitStatus::Failed,
        _ => UnitStatus::Delayed,
    }
}

pub(super) fn code_of(s: UnitStatus) -> i16 {
    match s {
        UnitStatus::Available => AVAILABLE,
        UnitStatus::Pending => PENDING,
        UnitStatus::Finished => FINISHED,
        UnitStatus::Failed => FAILED,
        UnitStatus::Delayed => DELAYED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_literals_match_the_schema_codes() {
        let pairs = [
            (status!(AVAILABLE), AVAILABLE),
            (status!(PENDING), PENDING),
            (status!(FINISHED), FINISHED),
            (status!(FAILED), FAILED),
            (status!(DELAYED), DELAYED),
        ];
        for (literal, code) in pairs {
            assert_eq!(literal.parse::<i16>(), Ok(code), "status literal {literal}");
        }
    }

    #[test]
    fn codes_and_statuses_round_trip() {
        for s in
            [UnitStatus::Available, UnitStatus::Pending, UnitStatus::Finished, UnitStatus::Failed, UnitStatus::Delayed]
        {
            assert_eq!(status_of(code_of(s)), s);
        }
    }
}
