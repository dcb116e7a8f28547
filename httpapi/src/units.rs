//! `/api/v1/work_specs/{name}/work_units` and the actions on units: list
//! (paged by key), read one, add, delete, retry failed ones, prioritize.
//! Keys in URLs and bodies are refs ([`crate::keys`]).

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use backends::model::{DelQuery, Key, NewUnit, PriorityChange, UnitKey, UnitQuery, UnitStatusInfo};
use backends::Coordinate;
use cborrpc::Value;
use jobserver::op::Refused;
use jobserver::units::{AddWorkUnits, DelWorkUnits, GetWorkUnits, PrioritizeWorkUnits};
use jobserver::Operation;
use serde::{Deserialize, Serialize};

use crate::error::{ok, ApiError, ApiResult};
use crate::json::{secs, FromJson, JsonValue};
use crate::keys::{key_ref, parse_ref, parse_refs};
use crate::request::{body, page_limit, status, statuses, ApiPath, ApiQuery, Body};
use crate::Jobs;

/// The routes of this file.
pub fn routes<C: Coordinate>() -> Router<Jobs<C>> {
    Router::new()
        .route("/work_specs/{name}/work_units", get(list::<C>).post(add::<C>).delete(delete::<C>))
        .route("/work_specs/{name}/work_units/{key}", get(read::<C>))
        .route("/work_specs/{name}/retry", post(retry::<C>))
        .route("/work_specs/{name}/prioritize", post(prioritize::<C>))
}

/// A unit as listed, and (with data and traceback) as read.
#[derive(Serialize)]
struct Unit {
    /// The key as a value: text, or `{"$bytes": ...}` for a byte string.
    key: JsonValue,
    /// The key as URLs and bodies name it.
    #[serde(rename = "ref")]
    key_ref: String,
    status: &'static str,
    worker: Option<String>,
    lease_expires: Option<f64>,
    attempts: u64,
    priority: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceback: Option<JsonValue>,
}

impl Unit {
    fn new(key: UnitKey, info: UnitStatusInfo, data: Option<Value>) -> Unit {
        Unit {
            key_ref: key_ref(&key.bytes),
            key: JsonValue(key.into_value()),
            status: info.status.name(),
            worker: info.worker_id,
            lease_expires: info.expiration.map(secs),
            attempts: info.attempts,
            priority: info.priority,
            data: data.map(JsonValue),
            traceback: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    start: Option<String>,
    prefix: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    data: bool,
}

/// `GET …/work_units?status=&start=&prefix=&limit=&data=`: units by key
/// after `start` (exclusive), beginning with `prefix`, in the given
/// statuses; `next` is the `start` of the following page.
async fn list<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult {
    let limit = page_limit(q.limit)?;
    let query = UnitQuery {
        keys: None,
        states: statuses(q.status.as_deref())?,
        start: q.start.as_deref().map(parse_ref).transpose()?,
        prefix: q.prefix.as_deref().map(parse_ref).transpose()?,
        // One more than asked tells whether another page follows.
        limit: limit + 1,
    };
    let mut units = GetWorkUnits { name: name.clone(), query }.execute(&jobs).await?;
    let next = (units.len() > limit).then(|| {
        units.truncate(limit);
        key_ref(&units[limit - 1].0.bytes)
    });
    // Straight to the backend: the keys are distinct and sorted already,
    // and the listing shows no traceback, so the RPC's dedup and reply
    // budget (with an error naming the RPC method) do not apply.
    let keys = units.iter().map(|(k, _)| k.bytes.clone()).collect();
    let infos = jobs.backend().get_work_unit_status(&name, keys).await?;
    let items: Vec<Unit> = units
        .into_iter()
        .zip(infos)
        // A unit deleted between the two reads is left out.
        .filter_map(|((key, data), info)| Some(Unit::new(key, info?, q.data.then_some(data))))
        .collect();
    #[derive(Serialize)]
    struct Page {
        work_units: Vec<Unit>,
        next: Option<String>,
    }
    Ok(ok(&Page { work_units: items, next }))
}

/// `GET …/work_units/{key}`: one unit with its data and traceback.
async fn read<C: Coordinate>(State(jobs): State<Jobs<C>>, ApiPath((name, r)): ApiPath<(String, String)>) -> ApiResult {
    let key = parse_ref(&r)?;
    let missing = || ApiError::not_found(format!("No such work unit {} in {name}", backends::model::quote_key(&key)));
    let info = jobs.backend().get_work_unit_status(&name, vec![key.clone()]).await?;
    let info = info.into_iter().next().flatten().ok_or_else(missing)?;
    let query = UnitQuery { keys: Some(vec![key.clone()]), ..UnitQuery::default() };
    let (unit_key, data) =
        GetWorkUnits { name: name.clone(), query }.execute(&jobs).await?.pop().ok_or_else(missing)?;
    let traceback = info.traceback.clone();
    let mut unit = Unit::new(unit_key, info, Some(data));
    unit.traceback = Some(JsonValue(traceback.unwrap_or(Value::Null)));
    Ok(ok(&unit))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    units: Vec<NewUnitJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUnitJson {
    key: FromJson,
    data: Option<FromJson>,
    #[serde(default)]
    priority: f64,
    #[serde(default)]
    delay: f64,
}

/// `POST …/work_units` `{"units": [{"key", "data", "priority", "delay"}]}`:
/// adds units, or replaces those whose key exists (as `add_work_units`).
async fn add<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    Body(bytes): Body,
) -> ApiResult {
    let AddBody { units } = body(&bytes)?;
    let n = units.len();
    let units = units
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let key = UnitKey::from_value(u.key.0).map_err(|_| {
                ApiError::bad_request(format!("units[{i}].key: expected text or {{\"$bytes\": \"...\"}}"))
            })?;
            let data = NewUnit::check_data(u.data.map_or(Value::Map(vec![]), |d| d.0))
                .map_err(|e| ApiError::bad_request(format!("units[{i}].data: {e}")))?;
            crate::check_readable(&data, || format!("units[{i}].data"))?;
            Ok(NewUnit { priority: u.priority, delay: u.delay, ..NewUnit::keyed(key, data) })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    AddWorkUnits { name, units }.execute(&jobs).await?;
    #[derive(Serialize)]
    struct Added {
        added: usize,
    }
    Ok(ok(&Added { added: n }))
}

/// Which units an action applies to.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Selection {
    keys: Option<Vec<String>>,
    status: Option<String>,
    #[serde(default)]
    all: bool,
}

/// `DELETE …/work_units` with `{"keys": [...]}` (optionally with a
/// `status` they must be in), `{"status": "..."}` or `{"all": true}`.
async fn delete<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    Body(bytes): Body,
) -> ApiResult {
    let sel: Selection = body(&bytes)?;
    let state = sel.status.as_deref().map(status).transpose()?;
    let query = match (sel.all, sel.keys, state) {
        (true, None, None) => DelQuery::All,
        (true, _, _) => return Err(ApiError::bad_request("\"all\": true cannot be combined with keys or a status")),
        (false, Some(refs), state) => DelQuery::Keys(parse_refs(&refs)?, state),
        (false, None, Some(s)) => DelQuery::State(s),
        (false, None, None) => {
            return Err(ApiError::bad_request("name the units to delete: \"keys\", a \"status\", or \"all\": true"))
        }
    };
    let deleted = (DelWorkUnits { name, query: Some(query) })
        .execute(&jobs)
        .await?
        .map_err(|Refused(msg)| ApiError::bad_request(msg))?;
    #[derive(Serialize)]
    struct Deleted {
        deleted: u64,
    }
    Ok(ok(&Deleted { deleted }))
}

/// `POST …/retry` with `{"keys": [...]}` or `{"all": true}`: failed units
/// become available again; units in other statuses are left alone.
async fn retry<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    Body(bytes): Body,
) -> ApiResult {
    let sel: Selection = body(&bytes)?;
    let keys: Option<Vec<Key>> = match (sel.all, sel.keys, sel.status) {
        (_, _, Some(_)) => return Err(ApiError::bad_request("retry takes failed units only: no \"status\"")),
        (true, None, None) => None,
        (false, Some(refs), None) => Some(parse_refs(&refs)?),
        (true, Some(_), None) => return Err(ApiError::bad_request("\"all\": true cannot be combined with keys")),
        (false, None, None) => return Err(ApiError::bad_request("name the units to retry: \"keys\" or \"all\": true")),
    };
    let retried = jobs.backend().retry_work_units(&name, keys).await?;
    #[derive(Serialize)]
    struct Retried {
        retried: u64,
    }
    Ok(ok(&Retried { retried }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrioritizeBody {
    keys: Vec<String>,
    priority: Option<f64>,
    adjustment: Option<f64>,
}

/// `POST …/prioritize` with `{"keys": [...], "priority": p}` (set) or
/// `{"keys": [...], "adjustment": d}` (add); unknown keys are ignored.
async fn prioritize<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    Body(bytes): Body,
) -> ApiResult {
    let b: PrioritizeBody = body(&bytes)?;
    let change = match (b.priority, b.adjustment) {
        (Some(p), None) if p.is_finite() => PriorityChange::Set(p),
        (None, Some(d)) if d.is_finite() => PriorityChange::Adjust(d),
        _ => return Err(ApiError::bad_request("give exactly one of \"priority\" and \"adjustment\", a finite number")),
    };
    let keys = parse_refs(&b.keys)?;
    let n = keys.len();
    (PrioritizeWorkUnits { name, keys: Some(keys), change })
        .execute(&jobs)
        .await?
        .map_err(|Refused(msg)| ApiError::bad_request(msg))?;
    #[derive(Serialize)]
    struct Prioritized {
        keys: usize,
    }
    Ok(ok(&Prioritized { keys: n }))
}
