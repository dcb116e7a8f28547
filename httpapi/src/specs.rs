//! `/api/v1/work_specs`: list, read, create or replace, delete, pause and
//! resume specs.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use backends::model::{spec_get, SpecControl, SpecData, SpecMeta, UnitStatus};
use backends::Coordinate;
use cborrpc::Value;
use jobserver::specs::{ControlWorkSpec, DelWorkSpec, GetWorkSpec, GetWorkSpecMeta, ListWorkSpecs, SetWorkSpec};
use jobserver::units::CountWorkUnits;
use jobserver::{ErrorKind, Operation, RpcResult};
use serde::{Deserialize, Serialize};

use crate::error::{json, ok, ApiError, ApiResult};
use crate::json::{secs, JsonValue};
use crate::request::{body, page_limit, ApiPath, ApiQuery, Body, PageQuery};
use crate::Jobs;

/// The routes of this file.
pub fn routes<C: Coordinate>() -> Router<Jobs<C>> {
    Router::new()
        .route("/work_specs", get(list::<C>))
        .route("/work_specs/{name}", get(read::<C>).put(put::<C>).delete(delete::<C>))
        .route("/work_specs/{name}/pause", post(pause::<C>))
        .route("/work_specs/{name}/resume", post(resume::<C>))
}

/// Units per status, every status present.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    available: u64,
    pending: u64,
    finished: u64,
    failed: u64,
    delayed: u64,
}

impl Counts {
    /// The counts `n` gives per status.
    fn of(n: impl Fn(UnitStatus) -> u64) -> Counts {
        Counts {
            available: n(UnitStatus::Available),
            pending: n(UnitStatus::Pending),
            finished: n(UnitStatus::Finished),
            failed: n(UnitStatus::Failed),
            delayed: n(UnitStatus::Delayed),
        }
    }
}

/// A spec in a listing.
#[derive(Serialize)]
struct Summary {
    name: String,
    paused: bool,
    priority: i64,
    weight: i64,
    counts: Counts,
}

impl Summary {
    fn new(name: String, meta: &SpecMeta, counts: Counts) -> Summary {
        Summary { name, paused: meta.paused, priority: meta.priority, weight: meta.weight, counts }
    }
}

/// A spec's metadata as JSON.
#[derive(Serialize)]
struct Meta {
    priority: i64,
    weight: i64,
    paused: bool,
    continuous: bool,
    can_be_continuous: bool,
    min_memory_gb: f64,
    interval: f64,
    next_continuous: Option<f64>,
    max_running: i64,
    max_getwork: i64,
    max_retries: i64,
    then: String,
    runtime: String,
}

impl From<SpecMeta> for Meta {
    fn from(m: SpecMeta) -> Meta {
        Meta {
            priority: m.priority,
            weight: m.weight,
            paused: m.paused,
            continuous: m.continuous,
            can_be_continuous: m.can_be_continuous,
            min_memory_gb: m.min_memory_gb,
            interval: m.interval,
            next_continuous: m.next_continuous.map(secs),
            max_running: m.max_running,
            max_getwork: m.max_getwork,
            max_retries: m.max_retries,
            then: m.then,
            runtime: m.runtime,
        }
    }
}

/// One spec in full.
#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    summary: Summary,
    meta: Meta,
    data: JsonValue,
}

async fn summary<C: Coordinate>(jobs: &Jobs<C>, name: &str) -> RpcResult<(Summary, SpecMeta)> {
    let meta = GetWorkSpecMeta { name: name.to_owned() }.execute(jobs).await?;
    let counts = CountWorkUnits { name: name.to_owned() }.execute(jobs).await?;
    let counts = Counts::of(|s| counts.get(&s).copied().unwrap_or(0));
    Ok((Summary::new(name.to_owned(), &meta, counts), meta))
}

fn spec_name(data: &SpecData) -> Option<String> {
    match spec_get(data, "name")? {
        Value::Text(t) => Some(t.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

fn no_such_spec(name: &str) -> ApiError {
    ApiError::not_found(format!("No such work spec {name}"))
}

/// `GET /work_specs?start=&limit=`: specs by name from `start`
/// (inclusive), with `next` naming the first one not listed.
async fn list<C: Coordinate>(State(jobs): State<Jobs<C>>, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult {
    let limit = page_limit(q.limit)?;
    let (specs, next) = ListWorkSpecs { start: q.start.unwrap_or_default(), limit }.execute(&jobs).await?;
    // Every spec's counts in one read (what /metrics reads: one aggregate
    // query, or one hold of the memory backend's lock), not one per spec.
    let mut counts: HashMap<String, Counts> = jobs
        .backend()
        .spec_stats()
        .await?
        .into_iter()
        .map(|st| (st.name.clone(), Counts::of(|s| st.count(s))))
        .collect();
    let mut out = Vec::with_capacity(specs.len());
    for name in specs.iter().filter_map(spec_name) {
        // Missing from the counts or the metadata: deleted since it was listed.
        let Some(counts) = counts.remove(&name) else { continue };
        match (GetWorkSpecMeta { name: name.clone() }).execute(&jobs).await {
            Ok(meta) => out.push(Summary::new(name, &meta, counts)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    #[derive(Serialize)]
    struct Page {
        work_specs: Vec<Summary>,
        next: Option<String>,
    }
    Ok(ok(&Page { work_specs: out, next }))
}

async fn detail<C: Coordinate>(jobs: &Jobs<C>, name: &str) -> Result<Detail, ApiError> {
    let data = GetWorkSpec { name: name.to_owned() }.execute(jobs).await?.ok_or_else(|| no_such_spec(name))?;
    let (summary, meta) = summary(jobs, name).await?;
    Ok(Detail { summary, meta: meta.into(), data: JsonValue(Value::Map(data)) })
}

/// `GET /work_specs/{name}`.
async fn read<C: Coordinate>(State(jobs): State<Jobs<C>>, ApiPath(name): ApiPath<String>) -> ApiResult {
    Ok(ok(&detail(&jobs, &name).await?))
}

/// `PUT /work_specs/{name}`: the body is the spec document; its `name`,
/// if given, must be the URL's. 201 when the spec is new, else 200.
async fn put<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    Body(bytes): Body,
) -> ApiResult {
    let doc = crate::json::parse(&bytes).map_err(ApiError::bad_request)?;
    crate::check_readable(&doc, || "data".into())?;
    let Value::Map(mut data) = doc else {
        return Err(ApiError::bad_request("the body must be a JSON object: the spec document"));
    };
    match spec_name(&data) {
        None if spec_get(&data, "name").is_none() => {
            data.insert(0, (Value::Text("name".into()), Value::Text(name.clone())))
        }
        Some(n) if n == name => {}
        _ => return Err(ApiError::bad_request(format!("the document's \"name\" must be the URL's, {name:?}"))),
    }
    let existed = GetWorkSpec { name: name.clone() }.execute(&jobs).await?.is_some();
    SetWorkSpec { data }.execute(&jobs).await?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json(status, &detail(&jobs, &name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// `DELETE /work_specs/{name}`: the spec and all its units.
async fn delete<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    Body(bytes): Body,
) -> ApiResult {
    let NoFields {} = body(&bytes)?;
    DelWorkSpec { name: name.clone() }.execute(&jobs).await?;
    #[derive(Serialize)]
    struct Deleted {
        deleted: String,
    }
    Ok(ok(&Deleted { deleted: name }))
}

async fn set_paused<C: Coordinate>(jobs: Jobs<C>, name: String, bytes: &[u8], paused: bool) -> ApiResult {
    let NoFields {} = body(bytes)?;
    let control = SpecControl { paused: Some(paused), ..SpecControl::default() };
    ControlWorkSpec { name: name.clone(), control }.execute(&jobs).await?;
    Ok(ok(&summary(&jobs, &name).await?.0))
}

/// `POST /work_specs/{name}/pause`: hand out no more of its units.
async fn pause<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    Body(bytes): Body,
) -> ApiResult {
    set_paused(jobs, name, &bytes, true).await
}

/// `POST /work_specs/{name}/resume`.
async fn resume<C: Coordinate>(
    State(jobs): State<Jobs<C>>,
    ApiPath(name): ApiPath<String>,
    Body(bytes): Body,
) -> ApiResult {
    set_paused(jobs, name, &bytes, false).await
}
