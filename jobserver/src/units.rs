//! Work unit methods (docs/protocol.md §3.2): add, list, status,
//! prioritize, count, delete and archive.

use std::collections::{BTreeMap, HashMap};

use backends::model::{
    ArchivePolicy, DelQuery, Key, NewUnit, PriorityChange, UnitKey, UnitQuery, UnitStatus, UnitStatusInfo,
};
use backends::Coordinate;
use cborrpc::value::{as_sequence, int, into_sequence, text, tuple, Value};

use crate::error::{RpcError, RpcResult};
use crate::op::{in_band, in_band_or_refused, Operation, Refused};
use crate::params::{boolean, integer, key, keys, number, Options, Params};
use crate::wire::{count_code, status_code, status_of_code, DEFAULT_LIST_LIMIT};
use crate::JobServer;

/// `add_work_units(name, items)`: adds or replaces units.
#[derive(Debug, Clone, PartialEq)]
pub struct AddWorkUnits {
    /// The spec.
    pub name: String,
    /// The units, parsed from `key`, `[key, data]`, `[key, data, meta]` or
    /// `[key, data, meta, priority]` items.
    pub units: Vec<NewUnit>,
}

impl Operation for AddWorkUnits {
    type Output = ();

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let mut p = Params::new(params, 2, 2)?;
        let name = p.spec_name(0)?;
        let items =
            into_sequence(p.take(1)).map_err(|_| RpcError::invalid("work_unit_kvps: expected a list of work units"))?;
        let units = items.into_iter().map(NewUnit::from_value).collect::<Result<Vec<_>, _>>()?;
        Ok(AddWorkUnits { name, units })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<()> {
        Ok(s.backend().add_work_units(&self.name, self.units).await?)
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        in_band(out, Value::Bool(false), |()| Value::Bool(true))
    }
}

/// Statuses named in a query: one code or a list; 0 anywhere means any.
fn states(v: &Value) -> RpcResult<Option<Vec<UnitStatus>>> {
    let codes: Vec<i64> = match as_sequence(v) {
        Some(items) => items.iter().map(|i| integer(i, "state")).collect::<RpcResult<_>>()?,
        None => vec![integer(v, "state")?],
    };
    if codes.contains(&0) {
        return Ok(None);
    }
    let statuses =
        codes.into_iter().map(|c| status_of_code(c).ok_or_else(|| RpcError::invalid("invalid work unit status")));
    statuses.collect::<RpcResult<Vec<_>>>().map(Some)
}

/// `get_work_units(name, options)`: units by key, with their effective
/// data.
#[derive(Debug, Clone, PartialEq)]
pub struct GetWorkUnits {
    /// The spec.
    pub name: String,
    /// Which units.
    pub query: UnitQuery,
}

impl Operation for GetWorkUnits {
    type Output = Vec<(UnitKey, Value)>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let mut p = Params::new(params, 2, 2)?;
        let name = p.spec_name(0)?;
        let o = p.options(1)?;
        let query = UnitQuery {
            keys: o.opt("work_unit_keys", keys)?,
            states: o.get("state").map(states).transpose()?.flatten(),
            start: o.opt("start", key)?,
            prefix: None,
            limit: o.opt("limit", integer)?.filter(|&l| l > 0).map_or(DEFAULT_LIST_LIMIT, |l| l as usize),
        };
        Ok(GetWorkUnits { name, query })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        Ok(s.backend().get_work_units(&self.name, self.query).await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        in_band(out, Value::Null, |units| {
            Value::Array(units.into_iter().map(|(k, d)| tuple(vec![k.into_value(), d])).collect())
        })
    }
}

/// `get_work_unit_status(name, keys)`: one status map (or null) per key,
/// in the order asked.
#[derive(Debug, Clone, PartialEq)]
pub struct GetWorkUnitStatus {
    /// The spec.
    pub name: String,
    /// The keys, repeats allowed.
    pub keys: Vec<Key>,
}

/// Bytes a status map costs in a reply besides its traceback.
const STATUS_OVERHEAD: usize = 64;

fn traceback_size(tb: &Value) -> usize {
    match tb {
        Value::Text(s) => s.len(),
        Value::Bytes(b) => b.len(),
        other => cborrpc::encode::to_vec(other).len(),
    }
}

impl Operation for GetWorkUnitStatus {
    type Output = Vec<Option<UnitStatusInfo>>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let p = Params::new(params, 2, 2)?;
        Ok(GetWorkUnitStatus { name: p.spec_name(0)?, keys: keys(p.get(1), "work_unit_keys")? })
    }

    /// Each distinct key is looked up once; the answer repeats it where the
    /// client repeated it, within the reply budget, so a short request
    /// naming one large traceback many times cannot build a huge reply.
    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        let mut unique = self.keys.clone();
        unique.sort();
        unique.dedup();
        let infos = s.backend().get_work_unit_status(&self.name, unique.clone()).await?;
        let found: HashMap<Key, Option<UnitStatusInfo>> = unique.into_iter().zip(infos).collect();
        let budget = s.limits().max_reply_bytes;
        let mut total = 0usize;
        let mut out = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            let info = found.get(k).cloned().flatten();
            total += STATUS_OVERHEAD + info.as_ref().and_then(|i| i.traceback.as_ref()).map_or(0, traceback_size);
            if total > budget {
                return Err(RpcError::invalid(format!(
                    "get_work_unit_status: the reply would exceed the {budget}-byte reply limit; ask for fewer keys"
                )));
            }
            out.push(info);
        }
        Ok(out)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        in_band(out, Value::Null, |infos| {
            Value::Array(infos.into_iter().map(|i| i.map(status_out).unwrap_or(Value::Null)).collect())
        })
    }
}

fn status_out(i: UnitStatusInfo) -> Value {
    let mut m = vec![(text("status"), int(status_code(i.status)))];
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

/// `prioritize_work_units(name, options)`: sets (`priority`) or adjusts
/// (`adjustment`) the priority of the named units.
#[derive(Debug, Clone, PartialEq)]
pub struct PrioritizeWorkUnits {
    /// The spec.
    pub name: String,
    /// The units; `None` declines in band (the client sent none).
    pub keys: Option<Vec<Key>>,
    /// The change.
    pub change: PriorityChange,
}

impl Operation for PrioritizeWorkUnits {
    type Output = Result<(), Refused>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let mut p = Params::new(params, 2, 2)?;
        let name = p.spec_name(0)?;
        let o = p.options(1)?;
        let change = match (o.opt("priority", number)?, o.opt("adjustment", number)?) {
            (Some(p), _) => PriorityChange::Set(p),
            (None, Some(a)) => PriorityChange::Adjust(a),
            (None, None) => PriorityChange::Adjust(0.0),
        };
        Ok(PrioritizeWorkUnits { name, keys: o.opt("work_unit_keys", keys)?, change })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        let Some(keys) = self.keys else { return Ok(Err(Refused("missing work_unit_keys".into()))) };
        s.backend().prioritize_work_units(&self.name, keys, self.change).await?;
        Ok(Ok(()))
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        in_band_or_refused(out, Value::Bool(false), |()| Value::Bool(true))
    }
}

/// `count_work_units(name)`: units per status code (zero counts omitted).
#[derive(Debug, Clone, PartialEq)]
pub struct CountWorkUnits {
    /// The spec.
    pub name: String,
}

impl Operation for CountWorkUnits {
    type Output = BTreeMap<UnitStatus, u64>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        Ok(CountWorkUnits { name: Params::new(params, 1, 1)?.spec_name(0)? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        Ok(s.backend().count_work_units(&self.name).await?)
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        in_band(out, Value::Null, |counts| {
            let mut by_code: BTreeMap<i64, u64> = BTreeMap::new();
            for (s, n) in counts {
                *by_code.entry(count_code(s)).or_default() += n;
            }
            Value::Map(by_code.into_iter().map(|(k, n)| (int(k), int(n as i64))).collect())
        })
    }
}

/// `del_work_units(name, options)`: deletes every unit (`all`), the named
/// ones (in `state`, if given), or those in `state`; answers how many.
#[derive(Debug, Clone, PartialEq)]
pub struct DelWorkUnits {
    /// The spec.
    pub name: String,
    /// Which units; `None` declines in band (no usable option).
    pub query: Option<DelQuery>,
}

fn del_query(o: &Options) -> RpcResult<Option<DelQuery>> {
    let state = match o.opt("state", integer)? {
        None | Some(0) => None,
        Some(code) => Some(status_of_code(code).ok_or_else(|| RpcError::invalid("invalid work unit status"))?),
    };
    Ok(if o.opt("all", boolean)? == Some(true) {
        Some(DelQuery::All)
    } else if let Some(ks) = o.opt("work_unit_keys", keys)? {
        Some(DelQuery::Keys(ks, state))
    } else {
        state.map(DelQuery::State)
    })
}

impl Operation for DelWorkUnits {
    type Output = Result<u64, Refused>;

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let mut p = Params::new(params, 2, 2)?;
        let name = p.spec_name(0)?;
        Ok(DelWorkUnits { name, query: del_query(&p.options(1)?)? })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<Self::Output> {
        let Some(query) = self.query else { return Ok(Err(Refused("no usable options to del_work_units".into()))) };
        Ok(Ok(s.backend().del_work_units(&self.name, query).await?))
    }

    fn answer(out: RpcResult<Self::Output>) -> RpcResult<Value> {
        in_band_or_refused(out, int(0), |n| int(n as i64))
    }
}

/// `archive(options)`: removes finished and failed units older than
/// `older_than` seconds, or beyond the newest `keep` per spec and status;
/// with no option it removes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    /// What to remove.
    pub policy: ArchivePolicy,
}

impl Operation for Archive {
    type Output = ();

    fn parse(params: Vec<Value>) -> RpcResult<Self> {
        let o = Params::new(params, 0, 1)?.options(0)?;
        let policy = ArchivePolicy {
            older_than: o.opt("older_than", number)?,
            keep: o.opt("keep", integer)?.map(|k| k.max(0) as u64),
        };
        Ok(Archive { policy })
    }

    async fn execute<C: Coordinate>(self, s: &JobServer<C>) -> RpcResult<()> {
        if self.policy != ArchivePolicy::default() {
            s.backend().archive(self.policy).await?;
        }
        Ok(())
    }

    fn answer(out: RpcResult<()>) -> RpcResult<Value> {
        out.map(|()| Value::Null)
    }
}
