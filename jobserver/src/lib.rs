//! The Python-compatible Coordinate RPC methods.
//!
//! [`JobServer::call`] takes a method name and its CBOR parameters, decodes
//! them (see [`params`]), makes one call on the [`Coordinate`] backend, and
//! shapes the answer exactly as the Python client unpacks it. It knows
//! nothing of sockets; the daemon's connection loop feeds it.
//!
//! Answer shapes follow go-coordinate: methods that return a value and a
//! message answer a plain two-element array `[value, message-or-null]`;
//! `get_work` items and `get_work_units` pairs are tuples (tag 128); spec
//! names and worker ids are text. A missing work spec is an in-band
//! `[zero, "No such work spec NAME"]` for the pair-returning methods.
//!
//! Strings come back as they were sent, as from the Python daemon (Go
//! answered bytes, which a Python 3 client sees as `b'...'`): a work unit
//! key is answered in the string type it was last added with (text or
//! bytes; a key that is not UTF-8 can only be bytes), and spec data keeps
//! every value's type, `module` and `run_function` included.
//!
//! Decisions where go-coordinate and the Python daemon differ (PROTOCOL.md
//! §9.3 and §9.4), taken here for every backend:
//!
//! * `archive` always answers `result: null` (Go omitted `result`, which
//!   makes the client raise). Its options `older_than` (seconds) and `keep`
//!   (per spec and status) remove old finished and failed units; with no
//!   options it removes nothing.
//! * `list_work_specs` is sorted by name, `start` inclusive, `limit`
//!   honoured, `next` names the first spec not returned.
//! * Empty results are `[]`, never `null`.
//! * `worker_heartbeat` with a null or empty parent means "no parent".
//! * A chained `output` to a missing `then` spec is ignored.
//! * The 4th element of a unit item may be any number.
//! * `del_work_units({})` deletes nothing and says so; `work_unit_keys`
//!   with `state` deletes only the named units in that state.
//! * `get_work_unit_status` answers `null` for unknown keys.
//! * `update_work_unit` checks the status code before touching anything.
//! * `list_worker_modes` and `mode_counts` answer `[map, null]` and count
//!   only live workers (active and not expired); so does `worker_stats`.
//! * Worker records are kept while a worker is live, holds a unit or has
//!   children, and for a day after it unregisters or expires; then they are
//!   dropped (Go kept every worker forever, Python dropped them at once).
//! * Responses use text keys `id`, `result`, `error` (Go used byte strings;
//!   Python 2 clients accept both, Python 3 clients need text).
//! * `get_work_spec` of a missing spec answers `null`, as the client
//!   documents.
//! * `get_config` of a daemon started without `--config` answers an empty
//!   map (the Python daemon always had a config to return).
//! * Synthetic keys of continuous specs are text.
//! * `get_work` honours `lease_time`: absent or below 1 s means go-coordinate's
//!   fixed 15 minutes, above 86,400 s is clamped to a day.
//! * `update_work_unit`'s `lease_time` extends the lease to now + value; a
//!   value ≤ 0 (what workers send to abandon a unit) lets the lease lapse at
//!   once, so the unit is available again on the next call. Absent means
//!   300 s, as in Go.
//! * Work unit data follows go-coordinate's attempt model: data written by
//!   a worker belongs to that attempt, and a retried unit shows its
//!   original data again.
//! * Method names may also be sent in CamelCase (`GetWorkSpecMeta`), and
//!   missing trailing optional parameters read as null.

pub mod params;
pub mod wire;

use std::collections::BTreeMap;

use backends::locks::LockTree;
use backends::model::*;
use backends::Coordinate;
use cborrpc::value::{as_sequence, int, into_sequence, pair, text, tuple, Value};

use params::{boolean, integer, key, keys, number, string, strings, Options, ParamResult, Params};

/// Lease given by `get_work` when the client names none (go-coordinate's
/// fixed lease).
pub const DEFAULT_GET_WORK_LEASE: f64 = 900.0;
/// Longest lease a client may ask for.
pub const MAX_LEASE: f64 = 86_400.0;

/// The RPC front of a Coordinate backend.
pub struct JobServer<C> {
    backend: C,
    locks: LockTree,
    config: Option<Value>,
}

/// The outcome of one call: a result value or an error message.
pub type CallResult = std::result::Result<Value, String>;

fn err(e: Error) -> String {
    e.to_string()
}

/// Maps a backend result to `[value, null]`, turning a missing work spec
/// into the in-band `[zero, "No such work spec NAME"]`.
fn in_band<T>(r: Result<T>, zero: Value, f: impl FnOnce(T) -> Value) -> CallResult {
    match r {
        Ok(v) => Ok(pair(f(v), None)),
        Err(e @ Error::NoSuchWorkSpec(_)) => Ok(pair(zero, Some(e.to_string()))),
        Err(e) => Err(err(e)),
    }
}

/// Converts `CamelCase` to `snake_case`; snake names pass unchanged.
fn snake(method: &str) -> std::borrow::Cow<'_, str> {
    if !method.bytes().any(|b| b.is_ascii_uppercase()) {
        return method.into();
    }
    let mut s = String::with_capacity(method.len() + 4);
    for (i, c) in method.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s.into()
}

/// A lock timeout in seconds; null means 0 (the lock tree's default).
fn lock_timeout(v: &Value) -> ParamResult<f64> {
    if v.is_null() {
        Ok(0.0)
    } else {
        number(v, "timeout")
    }
}

fn key_paths(v: &Value) -> ParamResult<Vec<Vec<Value>>> {
    let bad = || "cannot decode key paths".to_string();
    let outer = as_sequence(v).ok_or_else(bad)?;
    outer.iter().map(|p| as_sequence(p).map(|labels| labels.to_vec()).ok_or_else(bad)).collect()
}

fn states(v: &Value) -> ParamResult<Option<Vec<UnitStatus>>> {
    let codes: Vec<i64> = match as_sequence(v) {
        Some(items) => items.iter().map(|i| integer(i, "state")).collect::<ParamResult<_>>()?,
        None => vec![integer(v, "state")?],
    };
    if codes.contains(&0) {
        return Ok(None);
    }
    codes
        .into_iter()
        .map(|c| wire::status_of_code(c).ok_or_else(|| "invalid work unit status".to_string()))
        .collect::<ParamResult<_>>()
        .map(Some)
}

impl<C: Coordinate> JobServer<C> {
    /// A job server over `backend`; `config` is what `get_config` returns.
    pub fn new(backend: C, config: Option<Value>) -> Self {
        JobServer { backend, locks: LockTree::new(), config }
    }

    /// The backend.
    pub fn backend(&self) -> &C {
        &self.backend
    }

    /// Runs one RPC method.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> CallResult {
        let m = snake(method);
        let mut params = Some(params);
        let mut p = move |min, max| Params::new(params.take().unwrap_or_default(), min, max);
        let b = &self.backend;
        match &*m {
            "list_work_specs" => {
                let o = Options::new(p(0, 1)?.take(0), "options")?;
                let start = o.opt("start", string)?.unwrap_or_default();
                let limit = o.opt("limit", integer)?.filter(|&l| l > 0).unwrap_or(1000) as usize;
                let (specs, next) = b.list_work_specs(&start, limit).await.map_err(err)?;
                let specs = Value::Array(specs.into_iter().map(Value::Map).collect());
                Ok(Value::Array(vec![specs, next.map(Value::Text).unwrap_or(Value::Null)]))
            }
            "set_work_spec" => {
                let data = match p(1, 1)?.take(0) {
                    Value::Map(entries) => entries,
                    other => return Err(format!("work spec must be a map, not {}", cborrpc::value::type_name(&other))),
                };
                b.set_work_spec(data).await.map_err(err)?;
                Ok(pair(Value::Bool(true), None))
            }
            "del_work_spec" => {
                let name = string(p(1, 1)?.get(0), "work_spec_name")?;
                in_band(b.del_work_spec(&name).await, Value::Bool(false), |_| Value::Bool(true))
            }
            "clear" => {
                p(0, 0)?;
                Ok(int(b.clear().await.map_err(err)? as i64))
            }
            "get_work_spec" => {
                let name = string(p(1, 1)?.get(0), "work_spec_name")?;
                match b.get_work_spec(&name).await {
                    Ok(data) => Ok(Value::Map(data)),
                    Err(Error::NoSuchWorkSpec(_)) => Ok(Value::Null),
                    Err(e) => Err(err(e)),
                }
            }
            "control_work_spec" => {
                let mut ps = p(2, 2)?;
                let name = string(ps.get(0), "work_spec_name")?;
                let o = Options::new(ps.take(1), "options")?;
                let control = SpecControl {
                    paused: o.opt("status", integer)?.map(|s| s == 2),
                    continuous: o.opt("continuous", boolean)?,
                    weight: o.opt("weight", integer)?,
                    interval: o.opt("interval", number)?,
                    max_running: o.opt("max_running", integer)?,
                };
                in_band(b.control_work_spec(&name, control).await, Value::Bool(false), |_| Value::Bool(true))
            }
            "get_work_spec_meta" => {
                let name = string(p(1, 1)?.get(0), "work_spec_name")?;
                in_band(b.get_work_spec_meta(&name).await, Value::Null, |m| {
                    Value::Map(vec![
                        (text("status"), int(if m.paused { 2 } else { 1 })),
                        (text("continuous"), Value::Bool(m.continuous)),
                        (text("interval"), Value::Float(m.interval)),
                        (text("max_running"), int(m.max_running)),
                        (text("weight"), int(m.weight)),
                    ])
                })
            }
            "now" => {
                p(0, 0)?;
                Ok(int(b.now().unix_secs()))
            }
            "add_work_units" => {
                let mut ps = p(2, 2)?;
                let name = string(ps.get(0), "work_spec_name")?;
                let items = into_sequence(ps.take(1)).map_err(|_| "work_unit_kvps: expected a list of work units")?;
                let units = items.into_iter().map(NewUnit::from_value).collect::<Result<Vec<_>>>().map_err(err)?;
                in_band(b.add_work_units(&name, units).await, Value::Bool(false), |_| Value::Bool(true))
            }
            "get_work_units" => {
                let mut ps = p(2, 2)?;
                let name = string(ps.get(0), "work_spec_name")?;
                let o = Options::new(ps.take(1), "options")?;
                let q = UnitQuery {
                    keys: o.opt("work_unit_keys", keys)?,
                    states: match o.get("state") {
                        Some(v) => states(v)?,
                        None => None,
                    },
                    start: o.opt("start", key)?,
                    limit: o.opt("limit", integer)?.filter(|&l| l > 0).unwrap_or(1000) as usize,
                };
                in_band(b.get_work_units(&name, q).await, Value::Null, |units| {
                    Value::Array(units.into_iter().map(|(k, d)| tuple(vec![k.into_value(), d])).collect())
                })
            }
            "get_work_unit_status" => {
                let ps = p(2, 2)?;
                let name = string(ps.get(0), "work_spec_name")?;
                let ks = keys(ps.get(1), "work_unit_keys")?;
                in_band(b.get_work_unit_status(&name, ks).await, Value::Null, |infos| {
                    Value::Array(infos.into_iter().map(|i| i.map(status_out).unwrap_or(Value::Null)).collect())
                })
            }
            "prioritize_work_units" => {
                let mut ps = p(2, 2)?;
                let name = string(ps.get(0), "work_spec_name")?;
                let o = Options::new(ps.take(1), "options")?;
                let Some(ks) = o.opt("work_unit_keys", keys)? else {
                    return Ok(pair(Value::Bool(false), Some("missing work_unit_keys".into())));
                };
                let change = match (o.opt("priority", number)?, o.opt("adjustment", number)?) {
                    (Some(p), _) => PriorityChange::Set(p),
                    (None, Some(a)) => PriorityChange::Adjust(a),
                    (None, None) => PriorityChange::Adjust(0.0),
                };
                in_band(b.prioritize_work_units(&name, ks, change).await, Value::Bool(false), |_| Value::Bool(true))
            }
            "count_work_units" => {
                let name = string(p(1, 1)?.get(0), "work_spec_name")?;
                in_band(b.count_work_units(&name).await, Value::Null, |counts| {
                    let mut by_key: BTreeMap<i64, u64> = BTreeMap::new();
                    for (s, n) in counts {
                        *by_key.entry(wire::count_code(s)).or_default() += n;
                    }
                    Value::Map(by_key.into_iter().map(|(k, n)| (int(k), int(n as i64))).collect())
                })
            }
            "del_work_units" => {
                let mut ps = p(2, 2)?;
                let name = string(ps.get(0), "work_spec_name")?;
                let o = Options::new(ps.take(1), "options")?;
                let state = match o.opt("state", integer)? {
                    None | Some(0) => None,
                    Some(code) => Some(wire::status_of_code(code).ok_or("invalid work unit status")?),
                };
                let query = if o.opt("all", boolean)? == Some(true) {
                    DelQuery::All
                } else if let Some(ks) = o.opt("work_unit_keys", keys)? {
                    DelQuery::Keys(ks, state)
                } else if let Some(s) = state {
                    DelQuery::State(s)
                } else {
                    return Ok(pair(int(0), Some("no usable options to del_work_units".into())));
                };
                in_band(b.del_work_units(&name, query).await, int(0), |n| int(n as i64))
            }
            "archive" => {
                let o = Options::new(p(0, 1)?.take(0), "options")?;
                let policy = ArchivePolicy {
                    older_than: o.opt("older_than", number)?,
                    keep: o.opt("keep", integer)?.map(|k| k.max(0) as u64),
                };
                if policy != ArchivePolicy::default() {
                    b.archive(policy).await.map_err(err)?;
                }
                Ok(Value::Null)
            }
            "get_work" => {
                let mut ps = p(1, 2)?;
                let worker = string(ps.get(0), "worker_id")?;
                let o = Options::new(ps.take(1), "options")?;
                let max_jobs = o.opt("max_jobs", integer)?.unwrap_or(1).max(1);
                let lease = match o.opt("lease_time", number)? {
                    Some(l) if l >= 1.0 => l.min(MAX_LEASE),
                    _ => DEFAULT_GET_WORK_LEASE,
                };
                o.opt("available_gb", number)?;
                let opts = GetWork {
                    max_jobs: max_jobs as usize,
                    work_spec_names: o.opt("work_spec_names", strings)?.unwrap_or_default(),
                    lease_secs: lease,
                    runtimes: vec![String::new()],
                };
                let grants = b.get_work(&worker, opts).await.map_err(err)?;
                let item = |g: WorkGrant| tuple(vec![text(g.spec), g.key.into_value(), g.data]);
                let result = if max_jobs == 1 {
                    match grants.into_iter().next() {
                        Some(g) => item(g),
                        None => tuple(vec![Value::Null, Value::Null, Value::Null]),
                    }
                } else {
                    Value::Array(grants.into_iter().map(item).collect())
                };
                Ok(pair(result, None))
            }
            "update_work_unit" => {
                let mut ps = p(3, 3)?;
                let name = string(ps.get(0), "work_spec_name")?;
                let k = key(ps.get(1), "work_unit_key")?;
                let mut o = Options::new(ps.take(2), "options")?;
                let status = match o.opt("status", integer)? {
                    None | Some(0) => None,
                    Some(1) => Some(UnitStatus::Available),
                    Some(3) => Some(UnitStatus::Pending),
                    Some(4) => Some(UnitStatus::Finished),
                    Some(5) => Some(UnitStatus::Failed),
                    Some(_) => return Err("update_work_unit invalid status".into()),
                };
                let data = match o.take("data") {
                    None => None,
                    Some(d @ Value::Map(_)) => Some(NewUnit::check_data(d).map_err(err)?),
                    Some(other) => {
                        return Err(format!("data: expected a map, got {}", cborrpc::value::type_name(&other)))
                    }
                };
                let update = UnitUpdate {
                    status,
                    lease_secs: o
                        .opt("lease_time", number)?
                        .map(|l| l.min(MAX_LEASE))
                        .unwrap_or(wire::DEFAULT_UPDATE_LEASE),
                    data,
                    worker_id: o.opt("worker_id", string)?,
                };
                in_band(b.update_work_unit(&name, &k, update).await, Value::Bool(false), Value::Bool)
            }
            "worker_heartbeat" => {
                let mut ps = p(1, 5)?;
                let worker = string(ps.get(0), "worker_id")?;
                let mode = string(ps.get(1), "mode")?;
                let expire_secs = match ps.get(2) {
                    Value::Null => 0.0,
                    v => number(v, "expire_seconds")?,
                };
                let data = match ps.take(3) {
                    d @ (Value::Map(_) | Value::Null) => NewUnit::check_data(d).map_err(err)?,
                    other => return Err(format!("data: expected a map, got {}", cborrpc::value::type_name(&other))),
                };
                let parent = Some(string(ps.get(4), "parent")?).filter(|p| !p.is_empty());
                b.worker_heartbeat(Heartbeat { worker, mode, expire_secs, data, parent }).await.map_err(err)?;
                Ok(pair(Value::Bool(true), None))
            }
            "worker_unregister" => {
                let worker = string(p(1, 1)?.get(0), "worker_id")?;
                b.worker_unregister(&worker).await.map_err(err)?;
                Ok(pair(Value::Bool(true), None))
            }
            "list_worker_modes" => {
                p(0, 0)?;
                let modes = b.list_worker_modes().await.map_err(err)?;
                Ok(pair(Value::Map(modes.into_iter().map(|(w, m)| (text(w), text(m))).collect()), None))
            }
            "get_worker_info" => {
                let worker = string(p(1, 1)?.get(0), "worker_id")?;
                Ok(pair(b.get_worker_info(&worker).await.map_err(err)?.unwrap_or(Value::Null), None))
            }
            "mode_counts" => {
                p(0, 0)?;
                let counts = b.mode_counts().await.map_err(err)?;
                Ok(pair(Value::Map(counts.into_iter().map(|(m, n)| (text(m), int(n as i64))).collect()), None))
            }
            "worker_stats" => {
                p(0, 0)?;
                let s = b.worker_stats().await.map_err(err)?;
                Ok(Value::Map(vec![
                    (text("num_workers"), int(s.num_workers as i64)),
                    (text("num_children"), int(s.num_children as i64)),
                    (text("num_expirable"), int(s.num_expirable as i64)),
                ]))
            }
            "get_child_work_units" => {
                let worker = string(p(1, 1)?.get(0), "worker_id")?;
                let children = b.get_child_work_units(&worker).await.map_err(err)?;
                let out = children
                    .into_iter()
                    .map(|(child, units)| {
                        let units = units
                            .into_iter()
                            .map(|u| {
                                Value::Map(vec![
                                    (text("work_spec_name"), text(u.spec)),
                                    (text("work_unit_key"), u.key.into_value()),
                                    (text("work_unit_data"), u.data),
                                    (text("worker_id"), text(u.worker_id)),
                                    (text("expires"), int(u.expires.unix_secs())),
                                ])
                            })
                            .collect();
                        (text(child), Value::Array(units))
                    })
                    .collect();
                Ok(pair(Value::Map(out), None))
            }
            "get_config" => {
                p(0, 0)?;
                Ok(pair(self.config.clone().unwrap_or(Value::Map(Vec::new())), None))
            }
            "lock" | "renew" => {
                let ps = p(3, 3)?;
                let owner = string(ps.get(0), "locker_id")?;
                let timeout = lock_timeout(ps.get(1))?;
                let paths = key_paths(ps.get(2))?;
                let now = b.now();
                let r = if m == "lock" {
                    self.locks.lock(now, &owner, timeout, &paths)
                } else {
                    self.locks.renew(now, &owner, timeout, &paths)
                };
                Ok(match r {
                    Ok(()) => pair(Value::Bool(true), None),
                    Err(msg) => pair(Value::Bool(false), Some(msg)),
                })
            }
            "locksome" => {
                let ps = p(3, 3)?;
                let owner = string(ps.get(0), "locker_id")?;
                let timeout = lock_timeout(ps.get(1))?;
                let paths = key_paths(ps.get(2))?;
                let got = self.locks.locksome(b.now(), &owner, timeout, &paths);
                let got = got.into_iter().map(|p| p.map(Value::Array).unwrap_or(Value::Null)).collect();
                Ok(pair(Value::Array(got), None))
            }
            "readlock" => {
                let paths = key_paths(p(1, 1)?.get(0))?;
                let owners = self.locks.readlock(b.now(), &paths);
                Ok(Value::Array(owners.into_iter().map(|o| o.map(Value::Text).unwrap_or(Value::Null)).collect()))
            }
            "unlock" => {
                let ps = p(2, 2)?;
                let owner = string(ps.get(0), "locker_id")?;
                let paths = key_paths(ps.get(1))?;
                Ok(match self.locks.unlock(b.now(), &owner, &paths) {
                    Ok(()) => pair(Value::Bool(true), None),
                    Err(msg) => pair(Value::Bool(false), Some(msg)),
                })
            }
            "delete_namespace" => {
                let ps = p(1, 1)?;
                self.locks.delete_namespace(b.now(), ps.get(0));
                Ok(int(0))
            }
            _ => Err(format!("no such method {method}")),
        }
    }
}

fn status_out(i: UnitStatusInfo) -> Value {
    let mut m = vec![(text("status"), int(wire::status_code(i.status)))];
    if let Some(w) = i.worker_id {
        m.push((text("worker_id"), text(w)));
    }
    if let Some(e) = i.expiration {
        m.push((text("expiration"), int(e.unix_secs())));
    }
    if let Some(tb) = i.traceback {
        m.push((text("traceback"), tb));
    }
    Value::Map(m)
}

#[cfg(test)]
mod tests;
