//! A script of RPC calls for the `dispatch` target: method names from the
//! 31 real ones (sometimes CamelCased) plus a few bogus ones, parameters
//! from a per-method template (mostly) or anything at all, and now and then
//! a move of the mock clock so leases and lock timeouts expire.

use arbitrary::{Arbitrary, Result, Unstructured};
use cborrpc::value::Value;

use crate::values::{keys, map, name, number, options, paths, seq, some, value, KEYS, SPECS, WORKERS};

/// The 31 methods `JobServer::call` answers (jobserver/src/lib.rs).
pub const METHODS: &[&str] = &[
    "list_work_specs",
    "set_work_spec",
    "del_work_spec",
    "clear",
    "get_work_spec",
    "control_work_spec",
    "get_work_spec_meta",
    "now",
    "add_work_units",
    "get_work_units",
    "get_work_unit_status",
    "prioritize_work_units",
    "count_work_units",
    "del_work_units",
    "archive",
    "get_work",
    "update_work_unit",
    "worker_heartbeat",
    "worker_unregister",
    "list_worker_modes",
    "get_worker_info",
    "mode_counts",
    "worker_stats",
    "get_child_work_units",
    "get_config",
    "lock",
    "renew",
    "locksome",
    "readlock",
    "unlock",
    "delete_namespace",
];

const BOGUS: &[&str] = &["", "no_such_method", "Get_Work", "_", "GET_WORK", "get_work\0", "\u{c9}tat"];

#[derive(Debug)]
pub enum Step {
    Call {
        method: String,
        params: Vec<Value>,
    },
    /// Move the mock clock forward by this many seconds.
    Advance(f64),
}

/// What the `dispatch` target runs: `get_config`'s answer, then the steps.
#[derive(Debug)]
pub struct Script {
    pub config: Option<Value>,
    pub steps: Vec<Step>,
}

fn camel(m: &str) -> String {
    m.split('_').map(|w| w[..1.min(w.len())].to_ascii_uppercase() + &w[1.min(w.len())..]).collect()
}

fn method(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=15)? {
        14 => camel(u.choose(METHODS)?),
        15 => (*u.choose(BOGUS)?).into(),
        _ => (*u.choose(METHODS)?).into(),
    })
}

/// A spec definition map, as `set_work_spec` takes it.
fn spec_map(u: &mut Unstructured) -> Result<Value> {
    let mut entries = vec![(Value::Text("name".into()), name(u, SPECS)?)];
    if let Value::Map(more) = options(u)? {
        entries.extend(more);
    }
    Ok(Value::Map(entries))
}

/// A unit item for `add_work_units`: `(key, data[, {"priority": n}[, n]])`.
fn unit(u: &mut Unstructured) -> Result<Value> {
    let mut items = vec![name(u, KEYS)?, if u.ratio(7, 8)? { map(u, 2)? } else { value(u, 2)? }];
    if u.ratio(1, 3)? {
        items.push(Value::Map(vec![(Value::Text("priority".into()), number(u)?)]));
        if u.ratio(1, 3)? {
            items.push(number(u)?);
        }
    }
    seq(u, items)
}

/// Parameters shaped as `method` expects them.
fn template(u: &mut Unstructured, method: &str) -> Result<Vec<Value>> {
    let spec = |u: &mut Unstructured| name(u, SPECS);
    let worker = |u: &mut Unstructured| name(u, WORKERS);
    Ok(match method {
        "list_work_specs" | "archive" => vec![options(u)?],
        "set_work_spec" => vec![spec_map(u)?],
        "del_work_spec" | "get_work_spec" | "get_work_spec_meta" | "count_work_units" => vec![spec(u)?],
        "control_work_spec" | "get_work_units" | "prioritize_work_units" | "del_work_units" => {
            vec![spec(u)?, options(u)?]
        }
        "add_work_units" => {
            let units = some(u, 5, unit)?;
            vec![spec(u)?, seq(u, units)?]
        }
        "get_work_unit_status" => vec![spec(u)?, keys(u)?],
        "get_work" => vec![worker(u)?, options(u)?],
        "update_work_unit" => vec![spec(u)?, name(u, KEYS)?, options(u)?],
        "worker_heartbeat" => vec![worker(u)?, name(u, &["idle", "run", ""])?, number(u)?, map(u, 1)?, worker(u)?],
        "worker_unregister" | "get_worker_info" | "get_child_work_units" => vec![worker(u)?],
        "lock" | "renew" | "locksome" => vec![worker(u)?, number(u)?, paths(u)?],
        "readlock" => vec![paths(u)?],
        "unlock" => vec![worker(u)?, paths(u)?],
        "delete_namespace" => vec![name(u, &["a", "", "ns"])?],
        _ => vec![],
    })
}

fn params(u: &mut Unstructured, method: &str) -> Result<Vec<Value>> {
    // CamelCase variants share the snake template, read as the server reads them.
    let mut ps = template(u, &jobserver::wire::snake(method))?;
    // Mostly as the template made them (also when the data runs out).
    match u.int_in_range(0..=15)? {
        12 if !ps.is_empty() => {
            let i = u.choose_index(ps.len())?;
            ps[i] = value(u, 3)?;
        }
        13 => {
            ps.pop();
        }
        14 => ps.push(value(u, 1)?),
        15 => ps = some(u, 5, |u| value(u, 3))?,
        _ => {}
    }
    Ok(ps)
}

/// Two specs (`s1` chained to `s2`) and a few units, so that most scripts
/// start with something to work on.
fn prelude() -> Vec<Step> {
    let t = |s: &str| Value::Text(s.into());
    let spec = |name: &str, then: Option<&str>| {
        let mut m = vec![(t("name"), t(name)), (t("min_gb"), Value::Float(0.1))];
        m.extend(then.map(|n| (t("then"), t(n))));
        Step::Call { method: "set_work_spec".into(), params: vec![Value::Map(m)] }
    };
    let units = |name: &str, keys: &[&str]| Step::Call {
        method: "add_work_units".into(),
        params: vec![
            t(name),
            Value::Array(keys.iter().map(|k| Value::Array(vec![t(k), Value::Map(vec![])])).collect()),
        ],
    };
    vec![spec("s1", Some("s2")), spec("s2", None), units("s1", &["k1", "k2", "k3"]), units("s2", &["k1"])]
}

impl<'a> Arbitrary<'a> for Step {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        if u.ratio(1, 10)? {
            return Ok(Step::Advance(*u.choose(&[0.5, 1.0, 60.0, 301.0, 901.0, 86_401.0])?));
        }
        let method = method(u)?;
        let params = params(u, &method)?;
        Ok(Step::Call { method, params })
    }
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let config = if u.ratio(1, 4)? { Some(value(u, 2)?) } else { None };
        let mut steps = if u.ratio(3, 4)? { prelude() } else { Vec::new() };
        while steps.len() < 32 && !u.is_empty() {
            match Step::arbitrary(u) {
                Ok(step) => steps.push(step),
                Err(_) => break,
            }
        }
        Ok(Script { config, steps })
    }
}
