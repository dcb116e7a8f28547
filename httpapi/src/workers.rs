//! `/api/v1/workers`: the live workers, with what each holds.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use backends::model::WorkerInfo;
use backends::Coordinate;
use serde::Serialize;

use crate::error::{ok, ApiResult};
use crate::json::{secs, JsonValue};
use crate::keys::key_ref;
use crate::request::{page_limit, ApiQuery, PageQuery};
use crate::Jobs;

/// The routes of this file.
pub fn routes<C: Coordinate>() -> Router<Jobs<C>> {
    Router::new().route("/workers", get(list::<C>))
}

#[derive(Serialize)]
struct Held {
    work_spec: String,
    key: JsonValue,
    #[serde(rename = "ref")]
    key_ref: String,
    lease_expires: f64,
}

#[derive(Serialize)]
struct Worker {
    id: String,
    mode: String,
    data: Option<JsonValue>,
    parent: Option<String>,
    last_heartbeat: Option<f64>,
    expires: Option<f64>,
    held_count: u64,
    held: Vec<Held>,
}

impl From<WorkerInfo> for Worker {
    fn from(w: WorkerInfo) -> Worker {
        let held = w
            .held
            .into_iter()
            .map(|h| Held {
                work_spec: h.spec,
                key_ref: key_ref(&h.key.bytes),
                key: JsonValue(h.key.into_value()),
                lease_expires: secs(h.expires),
            })
            .collect();
        Worker {
            id: w.id,
            mode: w.mode,
            data: w.data.map(JsonValue),
            parent: w.parent,
            last_heartbeat: w.last_heartbeat.map(secs),
            expires: w.expires.map(secs),
            held_count: w.held_count,
            held,
        }
    }
}

/// `GET /workers?start=&limit=`: live workers by id from `start`
/// (inclusive); `next` names the first one not listed.
async fn list<C: Coordinate>(State(jobs): State<Jobs<C>>, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult {
    let limit = page_limit(q.limit)?;
    let (workers, next) = jobs.backend().list_workers(q.start.as_deref().unwrap_or(""), limit).await?;
    #[derive(Serialize)]
    struct Page {
        workers: Vec<Worker>,
        next: Option<String>,
    }
    Ok(ok(&Page { workers: workers.into_iter().map(Worker::from).collect(), next }))
}
