//! The data model shared by every backend: what goes into and comes out of
//! the [`crate::Coordinate`] trait, and the rules that derive a work spec's
//! metadata from its data and parse work-unit items. Keeping these rules
//! here means every backend applies them identically.

use cborrpc::value::{as_sequence, into_sequence, normalize_map_keys, string_bytes, type_name, Value};

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::clock::Time;

/// A work unit key: arbitrary bytes, sorted bytewise. A unit is identified
/// by these bytes alone: `b"u"` and `"u"` name the same unit.
pub type Key = Vec<u8>;

/// A unit's key as it leaves the daemon: its bytes and the CBOR string type
/// it was last added with. Python 3 clients tell `b"u"` from `"u"`, so a key
/// goes back as the type it came in (docs/protocol.md, "Strings").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnitKey {
    /// The key's bytes.
    pub bytes: Key,
    /// Whether it was added as a text string (only ever true for UTF-8).
    pub text: bool,
}

impl UnitKey {
    /// A key sent as a byte string.
    pub fn bytes(bytes: impl Into<Key>) -> UnitKey {
        UnitKey { bytes: bytes.into(), text: false }
    }

    /// A key sent as a text string.
    pub fn text(s: impl Into<String>) -> UnitKey {
        UnitKey { bytes: s.into().into_bytes(), text: true }
    }

    /// The key of a CBOR byte or text string, keeping its type; any other
    /// value is handed back.
    pub fn from_value(v: Value) -> std::result::Result<UnitKey, Value> {
        match v {
            Value::Bytes(b) => Ok(UnitKey::bytes(b)),
            Value::Text(t) => Ok(UnitKey::text(t)),
            other => Err(other),
        }
    }

    /// Bytes and a text flag as stored; the flag is dropped for bytes that
    /// are not UTF-8, which only a byte string can carry.
    pub fn stored(bytes: Key, text: bool) -> UnitKey {
        let text = text && std::str::from_utf8(&bytes).is_ok();
        UnitKey { bytes, text }
    }

    /// The key as a CBOR value: text or bytes, as it was added.
    pub fn into_value(self) -> Value {
        if self.text {
            match String::from_utf8(self.bytes) {
                Ok(s) => Value::Text(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            }
        } else {
            Value::Bytes(self.bytes)
        }
    }
}

/// A work spec's data: the CBOR map entries as the client sent them (map
/// keys turned into text, values as sent).
pub type SpecData = Vec<(Value, Value)>;

/// Errors reported by backends.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The named work spec does not exist.
    NoSuchWorkSpec(String),
    /// The named work unit does not exist.
    NoSuchWorkUnit(Key),
    /// A request that cannot be carried out as given (bad spec data, a
    /// malformed unit item...).
    Invalid(String),
    /// A request that is well-formed but conflicts with the current state
    /// (a transition the unit's status forbids).
    Conflict(String),
    /// The storage failed (lost database connection...); nothing was
    /// changed and the client may retry.
    Backend(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoSuchWorkSpec(name) => write!(f, "No such work spec {name}"),
            Error::NoSuchWorkUnit(key) => write!(f, "No such work unit {}", quote_key(key)),
            Error::Invalid(msg) | Error::Conflict(msg) => f.write_str(msg),
            Error::Backend(msg) => write!(f, "backend error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// Quotes a key the way Go's `%q` does, near enough: printable ASCII as is,
/// everything else escaped.
pub fn quote_key(key: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in key {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

/// Shorthand for backend results.
pub type Result<T> = std::result::Result<T, Error>;

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

/// The status of a work unit, as derived from its active attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitStatus {
    /// No active attempt, not delayed: may be handed out.
    Available,
    /// An attempt holds an unexpired lease.
    Pending,
    /// The active attempt finished.
    Finished,
    /// The active attempt failed.
    Failed,
    /// No active attempt, but not before some future time.
    Delayed,
}

impl UnitStatus {
    /// All statuses. (Their Python wire codes are the jobserver's business.)
    pub const ALL: [UnitStatus; 5] =
        [UnitStatus::Available, UnitStatus::Pending, UnitStatus::Finished, UnitStatus::Failed, UnitStatus::Delayed];

    /// A lower-case name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            UnitStatus::Available => "available",
            UnitStatus::Pending => "pending",
            UnitStatus::Finished => "finished",
            UnitStatus::Failed => "failed",
            UnitStatus::Delayed => "delayed",
        }
    }
}

/// A work spec's metadata: derived from the data by `set_work_spec`,
/// partly changeable through `control_work_spec`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecMeta {
    /// Spec priority: only specs of the highest priority are scheduled.
    pub priority: i64,
    /// Relative share of workers; ≤ 0 makes the spec unschedulable.
    pub weight: i64,
    /// Paused specs hand out no work.
    pub paused: bool,
    /// Whether synthetic units are generated when the spec runs dry.
    pub continuous: bool,
    /// Whether the data declared the spec continuous.
    pub can_be_continuous: bool,
    /// Memory the spec's jobs need; stored, not enforced.
    pub min_memory_gb: f64,
    /// Minimum seconds between synthetic continuous units.
    pub interval: f64,
    /// Earliest time of the next synthetic unit.
    pub next_continuous: Option<Time>,
    /// At most this many pending units at once (0 = unlimited).
    pub max_running: i64,
    /// At most this many units per `get_work` (0 = unlimited).
    pub max_getwork: i64,
    /// Fail a unit on its attempt number `max_retries + 1` (0 = unlimited).
    pub max_retries: i64,
    /// The spec finished units' `output` goes to (`""` = none).
    pub then: String,
    /// The runtime that may run this spec (`""` = Python workers).
    pub runtime: String,
    /// Units available now (filled in by `get_work_spec_meta`).
    pub available_count: u64,
    /// Units pending now (filled in by `get_work_spec_meta`).
    pub pending_count: u64,
}

fn num_field(data: &SpecData, key: &str) -> Result<Option<f64>> {
    match spec_get(data, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Integer(i)) => Ok(Some(i128::from(*i) as f64)),
        Some(Value::Float(f)) => Ok(Some(*f)),
        Some(other) => invalid(format!("work spec '{key}' must be a number, not {}", type_name(other))),
    }
}

fn int_field(data: &SpecData, key: &str) -> Result<i64> {
    Ok(num_field(data, key)?.map(|f| f.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64).unwrap_or(0))
}

fn bool_field(data: &SpecData, key: &str) -> Result<bool> {
    match spec_get(data, key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => invalid(format!("work spec '{key}' must be a bool, not {}", type_name(other))),
    }
}

fn str_field(data: &SpecData, key: &str) -> Result<String> {
    match spec_get(data, key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::Text(s)) => Ok(s.clone()),
        Some(Value::Bytes(b)) => match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => invalid(format!("work spec '{key}' must be valid UTF-8")),
        },
        Some(other) => invalid(format!("work spec '{key}' must be a string, not {}", type_name(other))),
    }
}

/// Looks up a top-level key of spec data.
pub fn spec_get<'a>(data: &'a SpecData, key: &str) -> Option<&'a Value> {
    data.iter().find(|(k, _)| matches!(k, Value::Text(t) if t == key)).map(|(_, v)| v)
}

/// Prepares a spec map for storage: map keys become text (so lookups need
/// one form), values keep the type they were sent with (a Python 3 worker
/// imports `module` by its text), and the name is checked. Returns the
/// spec's name and derived metadata.
pub fn prepare_spec(data: &mut SpecData) -> Result<(String, SpecMeta)> {
    for (k, v) in data.iter_mut() {
        if let Value::Bytes(b) = k {
            if let Ok(s) = std::str::from_utf8(b) {
                *k = Value::Text(s.to_owned());
            }
        }
        normalize_map_keys(v);
    }
    let name = match spec_get(data, "name") {
        None | Some(Value::Null) => return invalid("No 'name' key in work spec"),
        Some(Value::Text(s)) if s.is_empty() => return invalid("No 'name' key in work spec"),
        Some(Value::Text(s)) => s.clone(),
        Some(Value::Bytes(b)) if b.is_empty() => return invalid("No 'name' key in work spec"),
        Some(Value::Bytes(b)) => match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => return invalid("Work spec 'name' must be valid UTF-8"),
        },
        Some(_) => return invalid("Work spec 'name' must be a string"),
    };
    let meta = SpecMeta::from_data(data)?;
    Ok((name, meta))
}

impl SpecMeta {
    /// Derives metadata from spec data (docs/protocol.md §2.1, §2.2).
    pub fn from_data(data: &SpecData) -> Result<SpecMeta> {
        let nice = int_field(data, "nice")?;
        let mut weight = int_field(data, "weight")?;
        if weight <= 0 {
            weight = 20i64.saturating_sub(nice);
        }
        if weight <= 0 {
            weight = 1;
        }
        let continuous = bool_field(data, "continuous")?;
        // `then_preempts` is accepted but has no effect; check its type.
        bool_field(data, "then_preempts")?;
        Ok(SpecMeta {
            priority: int_field(data, "priority")?,
            weight,
            paused: bool_field(data, "disabled")?,
            continuous,
            can_be_continuous: continuous,
            min_memory_gb: num_field(data, "min_gb")?.unwrap_or(0.0),
            interval: num_field(data, "interval")?.unwrap_or(0.0).max(0.0),
            next_continuous: None,
            max_running: int_field(data, "max_running")?,
            max_getwork: int_field(data, "max_getwork")?,
            max_retries: int_field(data, "max_retries")?,
            then: str_field(data, "then")?,
            runtime: str_field(data, "runtime")?,
            available_count: 0,
            pending_count: 0,
        })
    }

    /// Applies `control_work_spec` changes.
    pub fn apply(&mut self, c: &SpecControl) {
        if let Some(paused) = c.paused {
            self.paused = paused;
        }
        if let Some(continuous) = c.continuous {
            self.continuous = continuous && self.can_be_continuous;
        }
        if let Some(weight) = c.weight {
            self.weight = weight;
        }
        if let Some(interval) = c.interval {
            self.interval = interval.max(0.0);
        }
        if let Some(max_running) = c.max_running {
            self.max_running = max_running;
        }
    }
}

/// Changes made by `control_work_spec`; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecControl {
    /// Pause or resume.
    pub paused: Option<bool>,
    /// Turn continuous generation on or off (only on if declared).
    pub continuous: Option<bool>,
    /// New weight.
    pub weight: Option<i64>,
    /// New interval in seconds.
    pub interval: Option<f64>,
    /// New running limit (≤ 0 = unlimited).
    pub max_running: Option<i64>,
}

/// A work unit to add or replace.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUnit {
    /// Its key.
    pub key: Key,
    /// Whether the key was sent as text (it is answered the same way).
    pub text_key: bool,
    /// Its data: a map, or null.
    pub data: Value,
    /// Its priority (higher runs first).
    pub priority: f64,
    /// Seconds before it may run (≤ 0: at once).
    pub delay: f64,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(i128::from(*i) as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

impl NewUnit {
    /// A unit with a byte-string key, the given data and default priority.
    pub fn new(key: impl Into<Key>, data: Value) -> NewUnit {
        NewUnit { key: key.into(), text_key: false, data, priority: 0.0, delay: 0.0 }
    }

    /// A unit with the given key (keeping its string type) and data.
    pub fn keyed(key: UnitKey, data: Value) -> NewUnit {
        NewUnit { text_key: key.text, ..NewUnit::new(key.bytes, data) }
    }

    /// Parses one item of `add_work_units` or of a chained `output` list:
    /// a key, `[key, data]`, `[key, data, meta]` or
    /// `[key, data, meta, priority]` (lists and tuples alike).
    pub fn from_item(item: &Value) -> Result<NewUnit> {
        Self::from_value(item.clone())
    }

    /// Like [`NewUnit::from_item`], consuming the item so its data is
    /// moved, not copied (the `add_work_units` hot path).
    pub fn from_value(item: Value) -> Result<NewUnit> {
        let item = match UnitKey::from_value(item) {
            Ok(key) => return Ok(NewUnit::keyed(key, Value::Map(vec![]))),
            Err(item) => item,
        };
        let mut parts = match into_sequence(item) {
            Ok(parts) => parts.into_iter(),
            Err(_) => return invalid("work unit not a list"),
        };
        if parts.len() < 2 {
            return invalid("too few parameters to work unit");
        }
        let key = match UnitKey::from_value(parts.next().unwrap_or(Value::Null)) {
            Ok(key) => key,
            Err(other) => return invalid(format!("work unit key must be a string, not {}", type_name(&other))),
        };
        let mut unit = NewUnit::keyed(key, Value::Null);
        unit.data = Self::check_data(parts.next().unwrap_or(Value::Null))?;
        match parts.next() {
            None | Some(Value::Null) => {}
            Some(Value::Map(entries)) => {
                for (k, v) in entries {
                    let Some(k) = string_bytes(&k) else { continue };
                    if v.is_null() {
                        continue;
                    }
                    if k.eq_ignore_ascii_case(b"priority") {
                        unit.priority = number(&v).ok_or(Error::Invalid("priority must be a number".into()))?;
                    } else if k.eq_ignore_ascii_case(b"delay") {
                        unit.delay = number(&v).ok_or(Error::Invalid("delay must be a number".into()))?;
                    }
                }
            }
            Some(other) => return invalid(format!("work unit metadata must be a map, not {}", type_name(&other))),
        }
        if let Some(p) = parts.next() {
            if !p.is_null() {
                unit.priority = number(&p).ok_or(Error::Invalid("priority must be a number".into()))?;
            }
        }
        Ok(unit)
    }

    /// Checks unit data: a map (keys normalised to text) or null.
    pub fn check_data(mut data: Value) -> Result<Value> {
        match data {
            Value::Null => Ok(Value::Null),
            Value::Map(_) => {
                normalize_map_keys(&mut data);
                Ok(data)
            }
            other => invalid(format!("work unit data must be a map, not {}", type_name(&other))),
        }
    }

    /// The units named by a finished unit's `output` (docs/protocol.md §5.3): a map of key
    /// to data (every value a map or null, else nothing), or a list of
    /// items (unparseable items skipped). Anything else yields nothing.
    pub fn from_output(output: &Value) -> Vec<NewUnit> {
        match output {
            Value::Map(entries) => {
                let mut units = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let (Ok(key), Ok(data)) = (UnitKey::from_value(k.clone()), Self::check_data(v.clone())) else {
                        return Vec::new();
                    };
                    units.push(NewUnit::keyed(key, data));
                }
                units
            }
            other => match as_sequence(other) {
                Some(items) => items.iter().filter_map(|i| NewUnit::from_item(i).ok()).collect(),
                None => Vec::new(),
            },
        }
    }
}

/// Which units `get_work_units` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitQuery {
    /// Exactly these keys (no limit applies); `None` = all.
    pub keys: Option<Vec<Key>>,
    /// Only units in these statuses; `None` = any.
    pub states: Option<Vec<UnitStatus>>,
    /// Only keys strictly greater than this.
    pub start: Option<Key>,
    /// Only keys that begin with these bytes (a seek, not a scan: backends
    /// read only the range of those keys, [`key_range`]).
    pub prefix: Option<Key>,
    /// At most this many units.
    pub limit: usize,
}

impl Default for UnitQuery {
    fn default() -> Self {
        UnitQuery { keys: None, states: None, start: None, prefix: None, limit: 1000 }
    }
}

/// The bounds of the keys a query without `keys` reads: after `start`,
/// within `prefix`. `None` when no key can match (a start past the
/// prefix's range).
pub fn key_range(start: Option<&[u8]>, prefix: Option<&[u8]>) -> Option<(Bound<Key>, Bound<Key>)> {
    use Bound::*;
    let lower = match (start, prefix) {
        (Some(s), Some(p)) if s < p => Included(p.to_vec()),
        (Some(s), _) => Excluded(s.to_vec()),
        (None, Some(p)) => Included(p.to_vec()),
        (None, None) => Unbounded,
    };
    let upper = match prefix.and_then(prefix_end) {
        Some(end) => Excluded(end),
        None => Unbounded,
    };
    let empty = match (&lower, &upper) {
        (Included(l) | Excluded(l), Excluded(u)) => l >= u,
        _ => false,
    };
    (!empty).then_some((lower, upper))
}

/// The least key greater than every key that begins with `prefix`, or
/// `None` when there is none (an empty prefix, or only `0xff` bytes): the
/// exclusive upper bound of a prefix's range in bytewise order.
fn prefix_end(prefix: &[u8]) -> Option<Key> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// What `get_work_unit_status` reports for one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitStatusInfo {
    /// Its status.
    pub status: UnitStatus,
    /// The worker of its active attempt, if any.
    pub worker_id: Option<String>,
    /// Lease expiry of a pending unit.
    pub expiration: Option<Time>,
    /// The `traceback` of a failed unit's data, if any.
    pub traceback: Option<Value>,
    /// Attempts ever made at it (a retry does not reset the count, which
    /// `max_retries` reads).
    pub attempts: u64,
    /// Its priority.
    pub priority: f64,
}

/// How `prioritize_work_units` changes priorities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PriorityChange {
    /// Set to this value.
    Set(f64),
    /// Add this value.
    Adjust(f64),
}

/// Which units `del_work_units` deletes.
#[derive(Debug, Clone, PartialEq)]
pub enum DelQuery {
    /// Every unit of the spec.
    All,
    /// These keys, if in `state` (when given).
    Keys(Vec<Key>, Option<UnitStatus>),
    /// Every unit in this status.
    State(UnitStatus),
}

/// What `archive` removes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ArchivePolicy {
    /// Remove finished/failed units that completed more than this many
    /// seconds ago.
    pub older_than: Option<f64>,
    /// Keep at most this many finished and this many failed units per
    /// spec, the most recently completed ones.
    pub keep: Option<u64>,
}

/// Options of `get_work`. There is no default lease: the protocol layer
/// chooses it (the Python client's defaults live in the jobserver).
#[derive(Debug, Clone, PartialEq)]
pub struct GetWork {
    /// Hand out at most this many units (at least 1).
    pub max_jobs: usize,
    /// Only from these specs (empty = any); a set, so that checking each
    /// spec against a client's long list costs a lookup, not a scan.
    pub work_spec_names: BTreeSet<String>,
    /// Lease length in seconds.
    pub lease_secs: f64,
    /// Only specs whose runtime is one of these.
    pub runtimes: Vec<String>,
}

impl UnitUpdate {
    /// An update to `status` (`None`: keep it) with a lease of
    /// `lease_secs`, no data and no worker.
    pub fn new(status: Option<UnitStatus>, lease_secs: f64) -> UnitUpdate {
        UnitUpdate { status, lease_secs, data: None, worker_id: None }
    }
}

impl GetWork {
    /// Up to `max_jobs` units from any Python-runtime spec, leased for
    /// `lease_secs`.
    pub fn new(max_jobs: usize, lease_secs: f64) -> GetWork {
        GetWork { max_jobs, work_spec_names: BTreeSet::new(), lease_secs, runtimes: vec![String::new()] }
    }
}

/// One unit handed out by `get_work`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkGrant {
    /// The spec's name.
    pub spec: String,
    /// The unit's key.
    pub key: UnitKey,
    /// The attempt's data.
    pub data: Value,
}

/// What `update_work_unit` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitUpdate {
    /// New status: Available (retry), Pending (renew), Finished, Failed.
    pub status: Option<UnitStatus>,
    /// Lease length in seconds from now, for an attempt this update renews
    /// or creates (≤ 0 lets the lease lapse at once).
    pub lease_secs: f64,
    /// New data.
    pub data: Option<Value>,
    /// The worker, used when an attempt must be created.
    pub worker_id: Option<String>,
}

/// A worker's heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// Worker id.
    pub worker: String,
    /// Mode (`RUN`, `IDLE`, `TERMINATE`).
    pub mode: String,
    /// Seconds until the worker counts as gone.
    pub expire_secs: f64,
    /// Its environment data.
    pub data: Value,
    /// Its parent worker, if any.
    pub parent: Option<String>,
}

/// A pending unit of a child worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildUnit {
    /// Spec name.
    pub spec: String,
    /// Unit key.
    pub key: UnitKey,
    /// The attempt's data.
    pub data: Value,
    /// The worker of the unit's active attempt.
    pub worker_id: String,
    /// Lease expiry.
    pub expires: Time,
}

/// How long the record of a worker that is gone (unregistered or expired)
/// is kept, in seconds, while it holds no pending unit and has no children.
/// Records are dropped after that so a daemon whose workers restart with
/// fresh ids for months does not grow without bound.
pub const WORKER_RECORD_GRACE: f64 = 86_400.0;

/// A live worker as an operator sees it (`list_workers`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    /// Worker id.
    pub id: String,
    /// Its mode (`RUN`, `IDLE`, `TERMINATE`...).
    pub mode: String,
    /// The last heartbeat's data (`None` before the first heartbeat).
    pub data: Option<Value>,
    /// Its parent worker, if any.
    pub parent: Option<String>,
    /// When it last sent a heartbeat.
    pub last_heartbeat: Option<Time>,
    /// When it counts as gone unless it sends another.
    pub expires: Option<Time>,
    /// Units it holds pending, sorted by spec and key, at most
    /// [`HELD_UNITS_LISTED`] of them.
    pub held: Vec<HeldUnit>,
    /// How many units it holds pending in all.
    pub held_count: u64,
}

/// A unit a worker holds.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldUnit {
    /// Spec name.
    pub spec: String,
    /// Unit key.
    pub key: UnitKey,
    /// Lease expiry.
    pub expires: Time,
}

/// Held units listed per worker by `list_workers` (a worker that asked for
/// a million units at once must not make the listing huge).
pub const HELD_UNITS_LISTED: usize = 100;

/// Worker totals.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WorkerStats {
    /// Live workers.
    pub num_workers: u64,
    /// Live workers with a parent.
    pub num_children: u64,
    /// Live workers with an expiry.
    pub num_expirable: u64,
}

/// What `update_work_unit` does to a unit, decided from its current status
/// and the requested one (docs/protocol.md §5.2). Shared by every backend so the state
/// machine is written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdatePlan {
    /// An idle unit and no status: replace the unit's data if given
    /// (changed = whether data was given).
    SetIdleData,
    /// Extend the lease to now + lease; new data goes to the attempt.
    Renew,
    /// Give up the attempt; the unit is available (or delayed) again.
    Release,
    /// Finish the attempt with the new data, then chain.
    Finish,
    /// Fail the attempt with the new data.
    Fail,
    /// Drop a finished or failed attempt so the unit runs again.
    Retry,
    /// A failed unit finishes after all (no new data), then chains.
    LateFinish,
    /// Nothing changes (changed = false).
    Nothing,
}

/// Plans an update: `(force, plan)`, where `force` means an idle unit first
/// gets a new pending attempt for the updating worker.
pub fn plan_update(current: UnitStatus, requested: Option<UnitStatus>) -> Result<(bool, UpdatePlan)> {
    use UnitStatus::*;
    let (force, current) = match (current, requested) {
        (Available | Delayed, None | Some(Available) | Some(Delayed)) => return Ok((false, UpdatePlan::SetIdleData)),
        (Available | Delayed, Some(_)) => (true, Pending),
        (c, _) => (false, c),
    };
    let plan = match (current, requested) {
        (Pending, None | Some(Pending)) => UpdatePlan::Renew,
        (Pending, Some(Available | Delayed)) => UpdatePlan::Release,
        (Pending, Some(Finished)) => UpdatePlan::Finish,
        (Pending, Some(Failed)) => UpdatePlan::Fail,
        (Finished, None | Some(Finished) | Some(Failed)) | (Failed, None | Some(Failed)) => UpdatePlan::Nothing,
        (Finished | Failed, Some(Available | Delayed)) => UpdatePlan::Retry,
        (Failed, Some(Finished)) => UpdatePlan::LateFinish,
        (Finished, Some(Pending)) => {
            return Err(Error::Conflict("update_work_unit cannot change finished unit".into()))
        }
        (Failed, Some(Pending)) => return Err(Error::Conflict("update_work_unit cannot change failed unit".into())),
        (Available | Delayed, _) => unreachable!("idle units are planned above"),
    };
    Ok((force, plan))
}

/// The units a finished unit's effective data sends to the next spec: the
/// `output` entry of the data, parsed by [`NewUnit::from_output`].
pub fn chained_units(effective_data: &Value) -> Vec<NewUnit> {
    match effective_data {
        Value::Map(entries) => cborrpc::value::map_get(entries, "output").map(NewUnit::from_output).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The key of a synthetic continuous unit created at `now`:
/// `"%d.%03d"` of the Unix seconds and milliseconds, as text.
pub fn continuous_key(now: Time) -> UnitKey {
    UnitKey::text(format!("{}.{:03}", now.unix_secs(), now.subsec_millis()))
}

/// The data of an attempt failed for running out of retries.
pub fn too_many_retries() -> Value {
    Value::Map(vec![(Value::Text("traceback".into()), Value::Text("too many retries".into()))])
}

/// Keeps the last occurrence of each key, in first-seen order: within one
/// `add_work_units` call later duplicates win, as in go-coordinate.
pub fn dedup_units(units: Vec<NewUnit>) -> Vec<NewUnit> {
    let mut last: std::collections::HashMap<Key, usize> = std::collections::HashMap::with_capacity(units.len());
    for (i, u) in units.iter().enumerate() {
        last.insert(u.key.clone(), i);
    }
    if last.len() == units.len() {
        return units;
    }
    units.into_iter().enumerate().filter(|(i, u)| last.get(&u.key) == Some(i)).map(|(_, u)| u).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cborrpc::value::{bytes, int, text, tuple};

    #[test]
    fn items_parse_in_every_shape() {
        assert_eq!(NewUnit::from_item(&bytes(&b"k"[..])).unwrap(), NewUnit::new(b"k".to_vec(), Value::Map(vec![])));
        let u = NewUnit::from_item(&tuple(vec![
            text("k"),
            Value::Map(vec![(bytes(&b"a"[..]), int(1))]),
            Value::Map(vec![(text("Priority"), int(3)), (text("delay"), Value::Float(2.5))]),
        ]))
        .unwrap();
        assert_eq!(u.data, Value::Map(vec![(text("a"), int(1))]));
        assert_eq!((u.priority, u.delay), (3.0, 2.5));
        let u = NewUnit::from_item(&Value::Array(vec![text("k"), Value::Null, Value::Null, int(7)])).unwrap();
        assert_eq!(u.priority, 7.0);
        assert!(NewUnit::from_item(&int(1)).is_err());
        assert!(NewUnit::from_item(&Value::Array(vec![text("k")])).is_err());
        assert!(NewUnit::from_item(&Value::Array(vec![int(1), Value::Null])).is_err());
    }

    #[test]
    fn output_map_needs_every_value_a_map() {
        let ok = Value::Map(vec![(text("a"), Value::Map(vec![])), (text("b"), Value::Null)]);
        assert_eq!(NewUnit::from_output(&ok).len(), 2);
        let bad = Value::Map(vec![(text("a"), Value::Map(vec![])), (text("b"), int(1))]);
        assert!(NewUnit::from_output(&bad).is_empty());
        let list = Value::Array(vec![text("a"), int(5), Value::Array(vec![text("b"), Value::Map(vec![])])]);
        assert_eq!(NewUnit::from_output(&list).len(), 2);
    }

    #[test]
    fn prefix_ranges() {
        use Bound::*;
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
        assert_eq!(key_range(None, None), Some((Unbounded, Unbounded)));
        assert_eq!(key_range(Some(b"a"), Some(b"b")), Some((Included(b"b".to_vec()), Excluded(b"c".to_vec()))));
        assert_eq!(key_range(Some(b"bb"), Some(b"b")), Some((Excluded(b"bb".to_vec()), Excluded(b"c".to_vec()))));
        assert_eq!(key_range(Some(b"c"), Some(b"b")), None);
        assert_eq!(key_range(Some(b"\xff\xff"), Some(b"\xff")), Some((Excluded(b"\xff\xff".to_vec()), Unbounded)));
    }

    #[test]
    fn spec_metadata_defaults_and_weight() {
        let mut data = vec![(bytes(&b"name"[..]), bytes(&b"s"[..])), (text("nice"), int(5))];
        let (name, meta) = prepare_spec(&mut data).unwrap();
        assert_eq!(name, "s");
        assert_eq!(meta.weight, 15);
        assert_eq!(data[0], (text("name"), bytes(&b"s"[..])), "map keys become text, values keep their type");
        let mut data = vec![(text("name"), text("s")), (text("nice"), int(40))];
        assert_eq!(prepare_spec(&mut data).unwrap().1.weight, 1);
        let mut data = vec![(text("name"), text("s")), (text("weight"), text("x"))];
        assert!(prepare_spec(&mut data).is_err());
        let mut data = vec![(text("name"), text(""))];
        assert_eq!(prepare_spec(&mut data).unwrap_err(), Error::Invalid("No 'name' key in work spec".into()));
        let mut data = vec![(text("name"), int(3))];
        assert!(prepare_spec(&mut data).is_err());
    }
}
