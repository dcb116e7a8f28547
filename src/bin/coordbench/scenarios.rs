//! The load scenarios. Each one creates its own work spec, drives the
//! daemon from one tokio task per connection, merges the per-task
//! counters and histograms at the end (nothing is shared on the hot
//! path), deletes its spec and returns a [`Report`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cborrpc::value::{bytes, int, text, tuple};
use cborrpc::{encode_request, Value};
use rand::distr::Alphanumeric;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

use crate::client::{grants, unpair, Client, Error, Grant};
use crate::stats::{daemon_mem, CpuMeter, Lat, Report, Row};

/// Everything a scenario needs to know.
#[derive(Debug, Clone)]
pub struct Cfg {
    pub addr: String,
    /// More daemons serving the same backend (PostgreSQL): workers are
    /// spread round-robin over `addr` and these.
    pub also: Vec<String>,
    pub spec: Option<String>,
    pub workers: usize,
    pub units: u64,
    pub max_jobs: usize,
    pub data_bytes: usize,
    pub batch: usize,
    pub duration: Duration,
    pub calls: u64,
    pub connections: usize,
    pub daemon_pid: Option<u32>,
    /// Units of another spec, present for the whole scenario.
    pub backdrop: u64,
}

/// Lease asked for by the workers: far longer than any run.
const LEASE: i64 = 900;

static SPEC_SEQ: AtomicU64 = AtomicU64::new(0);

/// The spec name to use: `--spec`, or a fresh `bench-KIND-PID[-N]`.
pub fn spec_name(cfg: &Cfg, kind: &str) -> String {
    match &cfg.spec {
        Some(s) => s.clone(),
        None => {
            let n = SPEC_SEQ.fetch_add(1, Ordering::Relaxed);
            let pid = std::process::id();
            if n == 0 {
                format!("bench-{kind}-{pid}")
            } else {
                format!("bench-{kind}-{pid}-{n}")
            }
        }
    }
}

/// The key of unit number `i`.
pub fn unit_key(i: u64) -> String {
    format!("k{i:010}")
}

/// The unit number of a key made by [`unit_key`].
fn key_index(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(b"k")?).ok()?.parse().ok()
}

fn cbor_int_len(n: u64) -> usize {
    match n {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// A unit's data map of about `size` encoded bytes:
/// `{"payload": "<random ascii>", "n": i}`.
pub fn unit_data(i: u64, size: usize, rng: &mut SmallRng) -> Value {
    // a2, "payload" (8), text head, payload, "n" (2), int.
    let fixed = 1 + 8 + 2 + cbor_int_len(i);
    let mut len = size.saturating_sub(fixed + 1);
    if len >= 24 {
        len = size.saturating_sub(fixed + 2);
    }
    if len >= 256 {
        len = size.saturating_sub(fixed + 3);
    }
    let payload: String = (0..len).map(|_| rng.sample(Alphanumeric) as char).collect();
    Value::Map(vec![(text("payload"), text(payload)), (text("n"), int(i as i64))])
}

/// The `add_work_units` item of unit `i`: a `(key, data)` tuple.
pub fn unit_item(i: u64, size: usize, rng: &mut SmallRng) -> Value {
    tuple(vec![text(unit_key(i)), unit_data(i, size, rng)])
}

pub fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

async fn create_spec(c: &mut Client, name: &str) -> Result<(), Error> {
    let existing = c.call("get_work_spec", &[text(name)]).await?;
    if !existing.is_null() {
        return Err(format!("work spec {name} already exists; choose another --spec"));
    }
    let data = map(vec![
        ("name", text(name)),
        ("min_gb", Value::Float(0.1)),
        ("module", text("coordbench")),
        ("run_function", text("noop")),
    ]);
    unpair("set_work_spec", c.call("set_work_spec", &[data]).await?)?;
    Ok(())
}

/// Deletes a spec; errors are reported, not fatal.
async fn delete_spec(addr: &str, name: &str) {
    let r = async {
        let mut c = Client::connect(addr).await?;
        unpair("del_work_spec", c.call("del_work_spec", &[text(name)]).await?)
    }
    .await;
    if let Err(e) = r {
        eprintln!("coordbench: cleaning up {name}: {e}");
    }
}

/// `count_work_units` as status code → count.
pub async fn counts(c: &mut Client, spec: &str) -> Result<BTreeMap<i64, u64>, Error> {
    let v = unpair("count_work_units", c.call("count_work_units", &[text(spec)]).await?)?;
    let Value::Map(entries) = v else { return Err(format!("count_work_units: unexpected {v:?}")) };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        match (k, v) {
            (Value::Integer(k), Value::Integer(v)) => {
                out.insert(i128::from(k) as i64, i128::from(v) as u64);
            }
            (k, v) => return Err(format!("count_work_units: unexpected entry {k:?}: {v:?}")),
        }
    }
    Ok(out)
}

pub fn fmt_counts(c: &BTreeMap<i64, u64>) -> String {
    let parts: Vec<String> = c.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Batches `[start, end)` of `n` units, `size` each.
pub fn batches(n: u64, size: usize) -> Vec<(u64, u64)> {
    let size = size.max(1) as u64;
    (0..n.div_ceil(size)).map(|b| (b * size, ((b + 1) * size).min(n))).collect()
}

/// Adds units `[0, n)` from `conns` connections (untimed set-up).
pub async fn preload(cfg: &Cfg, spec: &str, n: u64, conns: usize) -> Result<Duration, Error> {
    let t = Instant::now();
    let all = batches(n, cfg.batch);
    let conns = conns.clamp(1, all.len().max(1));
    let mut tasks = Vec::new();
    for w in 0..conns {
        let mine: Vec<(u64, u64)> = all.iter().copied().skip(w).step_by(conns).collect();
        let (addr, spec, size) = (cfg.addr.clone(), spec.to_owned(), cfg.data_bytes);
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&addr).await?;
            let mut rng = SmallRng::seed_from_u64(w as u64);
            for (a, b) in mine {
                let items = (a..b).map(|i| unit_item(i, size, &mut rng)).collect();
                unpair("add_work_units", c.call("add_work_units", &[text(&spec), Value::Array(items)]).await?)?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(t.elapsed())
}

pub async fn join_all<T>(tasks: Vec<JoinHandle<Result<T, Error>>>) -> Result<Vec<T>, Error> {
    let mut out = Vec::with_capacity(tasks.len());
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("task failed: {e}"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Span from the earliest start to the latest end.
pub fn span(times: impl Iterator<Item = (Instant, Instant)>) -> f64 {
    let (mut s, mut e): (Option<Instant>, Option<Instant>) = (None, None);
    for (a, b) in times {
        s = Some(s.map_or(a, |s| s.min(a)));
        e = Some(e.map_or(b, |e| e.max(b)));
    }
    match (s, e) {
        (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => 0.0,
    }
}

/// Runs `body`, then deletes the spec whatever happened, reading the
/// daemon's memory first (while the units are still loaded).
pub async fn with_spec<F>(cfg: &Cfg, spec: &str, body: F) -> Result<Report, Error>
where
    F: std::future::Future<Output = Result<Report, Error>>,
{
    let mut c = Client::connect(&cfg.addr).await?;
    create_spec(&mut c, spec).await?;
    let backdrop = format!("{spec}-backdrop");
    // Only a backdrop this run created is deleted.
    let mut made_backdrop = false;
    let r = async {
        if cfg.backdrop > 0 {
            create_spec(&mut c, &backdrop).await?;
            made_backdrop = true;
            preload(cfg, &backdrop, cfg.backdrop, 2).await?;
        }
        body.await
    }
    .await;
    drop(c);
    let mem = daemon_mem(cfg.daemon_pid);
    delete_spec(&cfg.addr, spec).await;
    if made_backdrop {
        delete_spec(&cfg.addr, &backdrop).await;
    }
    let mut r = r?;
    r.mem = mem;
    Ok(r)
}

// ---------------------------------------------------------------- add

/// `add`: N units in batches from W connections. Frames are encoded before
/// the clock starts, so the rate is the daemon's, not the encoder's.
pub async fn add(cfg: &Cfg) -> Result<Report, Error> {
    let spec = spec_name(cfg, "add");
    with_spec(cfg, &spec, async {
        let all = batches(cfg.units, cfg.batch);
        let w = cfg.workers.clamp(1, all.len().max(1));
        let barrier = Arc::new(Barrier::new(w));
        let mut tasks = Vec::new();
        for t in 0..w {
            let mine: Vec<(u64, u64)> = all.iter().copied().skip(t).step_by(w).collect();
            let (addr, spec, size, barrier) = (cfg.addr.clone(), spec.clone(), cfg.data_bytes, barrier.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(&addr).await?;
                let mut rng = SmallRng::seed_from_u64(t as u64);
                let frames: Vec<(u64, Vec<u8>)> = mine
                    .iter()
                    .map(|&(a, b)| {
                        let items = (a..b).map(|i| unit_item(i, size, &mut rng)).collect();
                        let id = c.take_id();
                        let mut f = Vec::new();
                        encode_request(id, "add_work_units", &[text(&spec), Value::Array(items)], &mut f);
                        (id, f)
                    })
                    .collect();
                barrier.wait().await;
                let mut lat = Lat::default();
                let start = Instant::now();
                for (id, f) in &frames {
                    let t0 = Instant::now();
                    unpair("add_work_units", c.call_encoded(*id, f, "add_work_units").await?)?;
                    lat.record(t0.elapsed());
                }
                Ok::<_, Error>((start, Instant::now(), lat))
            }));
        }
        let outs = join_all(tasks).await?;
        let secs = span(outs.iter().map(|o| (o.0, o.1)));
        let mut lat = Lat::default();
        outs.iter().for_each(|o| lat.merge(&o.2));
        let mut r = Report::new("add", &spec, w, 0, cfg.units, cfg.data_bytes);
        r.rows.push(Row::throughput("units added", cfg.units, secs));
        r.rows.push(Row::latency(&format!("add_work_units ({})", cfg.batch), &lat, secs));
        let mut c = Client::connect(&cfg.addr).await?;
        let got = counts(&mut c, &spec).await?;
        let avail = got.get(&1).copied().unwrap_or(0);
        let others: u64 = got.iter().filter(|(k, _)| **k != 1).map(|(_, v)| *v).sum();
        if avail != cfg.units || others != 0 {
            r.ok = false;
            r.notes.push(format!("expected {} available units, count_work_units says {}", cfg.units, fmt_counts(&got)));
        } else {
            r.notes.push(format!("count_work_units {}", fmt_counts(&got)));
        }
        Ok(r)
    })
    .await
}

// ---------------------------------------------------------------- workers

/// What one worker connection did (also a peer's worker: `get_work` is
/// then its take round trip, `update` its done round trip).
#[derive(Default)]
pub struct WorkerOut {
    pub start: Option<Instant>,
    pub end: Option<Instant>,
    pub get_work: Lat,
    pub update: Lat,
    pub completed: u64,
    pub empty: u64,
    /// Unit numbers of the keys this worker finished.
    pub seen: Vec<u64>,
    /// Keys that were not ours.
    pub strange: u64,
    /// Updates that answered false or a message.
    pub refused: u64,
}

/// When a worker stops.
#[derive(Clone)]
pub enum Stop {
    /// At the first empty `get_work` (drain).
    Empty,
    /// After this long, waiting out empty answers (mixed).
    After(Duration),
    /// At the first empty `get_work` once the flag is set; before that,
    /// empty answers are waited out (soak: units still being added).
    EmptyOnce(Arc<AtomicBool>),
}

impl Stop {
    fn on_empty(&self) -> bool {
        match self {
            Stop::Empty => true,
            Stop::After(_) => false,
            Stop::EmptyOnce(flag) => flag.load(Ordering::Acquire),
        }
    }
}

/// The `get_work` / `update_work_unit` loop of a Python worker, until `stop`.
async fn worker_loop(
    addr: String,
    spec: String,
    worker_id: String,
    max_jobs: usize,
    barrier: Arc<Barrier>,
    stop: Stop,
    keep_keys: bool,
) -> Result<WorkerOut, Error> {
    let mut c = Client::connect(&addr).await?;
    let params = [
        text(&worker_id),
        map(vec![
            ("max_jobs", int(max_jobs as i64)),
            ("lease_time", int(LEASE)),
            ("work_spec_names", Value::Array(vec![text(&spec)])),
        ]),
    ];
    let finished = map(vec![("status", int(4))]);
    let mut got: Vec<Grant> = Vec::with_capacity(max_jobs);
    let mut out = WorkerOut::default();
    barrier.wait().await;
    let start = Instant::now();
    out.start = Some(start);
    loop {
        if matches!(stop, Stop::After(d) if start.elapsed() >= d) {
            break;
        }
        let t0 = Instant::now();
        let res = unpair("get_work", c.call("get_work", &params).await?)?;
        out.get_work.record(t0.elapsed());
        grants(&res, &mut got)?;
        if got.is_empty() {
            out.empty += 1;
            if stop.on_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        for g in got.drain(..) {
            if g.spec != spec {
                out.strange += 1;
            } else if keep_keys {
                match key_index(&g.key) {
                    Some(i) => out.seen.push(i),
                    None => out.strange += 1,
                }
            }
            let t1 = Instant::now();
            let r = c.call("update_work_unit", &[text(g.spec), bytes(g.key), finished.clone()]).await?;
            out.update.record(t1.elapsed());
            match unpair("update_work_unit", r) {
                Ok(Value::Bool(true)) => {}
                _ => out.refused += 1,
            }
            out.completed += 1;
        }
    }
    out.end = Some(Instant::now());
    Ok(out)
}

/// Starts `n` workers on `spec`, named `coordbench-PID-TAGi`.
pub fn spawn_workers(
    cfg: &Cfg,
    spec: &str,
    n: usize,
    barrier: &Arc<Barrier>,
    stop: Stop,
    keep_keys: bool,
    tag: &str,
) -> Vec<JoinHandle<Result<WorkerOut, Error>>> {
    let pid = std::process::id();
    (0..n)
        .map(|i| {
            let k = i % (1 + cfg.also.len());
            let addr = if k == 0 { &cfg.addr } else { &cfg.also[k - 1] };
            tokio::spawn(worker_loop(
                addr.clone(),
                spec.to_owned(),
                format!("coordbench-{pid}-{tag}{i}"),
                cfg.max_jobs.max(1),
                barrier.clone(),
                stop.clone(),
                keep_keys,
            ))
        })
        .collect()
}

// ---------------------------------------------------------------- drain

/// The workers of a drain, merged: latencies, counts, and which of the
/// units `[0, n)` were finished how often.
pub struct Merged {
    pub secs: f64,
    pub get_work: Lat,
    pub update: Lat,
    pub completed: u64,
    /// `get_work` calls that found nothing.
    pub empty: u64,
    n: u64,
    strange: u64,
    refused: u64,
    missing: usize,
    dup: usize,
}

impl Merged {
    pub fn of(outs: &[WorkerOut], n: u64) -> Merged {
        let secs = span(outs.iter().filter_map(|o| Some((o.start?, o.end?))));
        let mut m = Merged {
            secs,
            get_work: Lat::default(),
            update: Lat::default(),
            completed: 0,
            empty: 0,
            n,
            strange: 0,
            refused: 0,
            missing: 0,
            dup: 0,
        };
        let mut seen = vec![0u8; n as usize];
        for o in outs {
            m.get_work.merge(&o.get_work);
            m.update.merge(&o.update);
            m.completed += o.completed;
            m.empty += o.empty;
            m.strange += o.strange;
            m.refused += o.refused;
            for &i in &o.seen {
                match seen.get_mut(i as usize) {
                    Some(s) => *s = s.saturating_add(1),
                    None => m.strange += 1,
                }
            }
        }
        m.missing = seen.iter().filter(|&&s| s == 0).count();
        m.dup = seen.iter().filter(|&&s| s > 1).count();
        m
    }

    /// A drain's rows, for the daemon and the peers alike: jobs completed,
    /// the take and the done round trips, and both together.
    pub fn drain_rows(&self, completed: &str, take: &str, done: &str) -> [Row; 4] {
        let mut either = self.get_work.clone();
        either.merge(&self.update);
        [
            Row::throughput(completed, self.completed, self.secs),
            Row::latency(take, &self.get_work, self.secs),
            Row::latency(done, &self.update, self.secs),
            Row::latency("either round trip", &either, self.secs),
        ]
    }

    /// Checks that every unit was finished exactly once by the workers'
    /// account, and takes the server's word (`server_ok`, described by
    /// `server_says`) that nothing is left; notes the outcome.
    pub fn check(&self, server_ok: bool, server_says: &str, r: &mut Report) {
        let Merged { n, completed, missing, dup, strange, refused, .. } = *self;
        if server_ok && missing == 0 && dup == 0 && strange == 0 && refused == 0 && completed == n {
            r.notes.push(format!("verified: all {n} keys finished exactly once; {server_says}"));
        } else {
            r.ok = false;
            r.notes.push(format!(
                "VERIFICATION FAILED: completed {completed} of {n}, missing {missing}, duplicated {dup}, foreign {strange}, \
                 refused updates {refused}; {server_says}"
            ));
        }
    }

    /// [`Merged::check`] with the daemon's `count_work_units` as its word.
    pub async fn verify(&self, c: &mut Client, spec: &str, r: &mut Report) -> Result<(), Error> {
        let got = counts(c, spec).await?;
        let finished = got.get(&4).copied().unwrap_or(0);
        let others: u64 = got.iter().filter(|(k, _)| **k != 4).map(|(_, v)| *v).sum();
        self.check(finished == self.n && others == 0, &format!("count_work_units {}", fmt_counts(&got)), r);
        Ok(())
    }
}

/// `drain`: N units added (untimed), then W workers take them J at a time
/// and finish each until the spec is empty; every unit must be finished
/// exactly once.
pub async fn drain(cfg: &Cfg) -> Result<Report, Error> {
    let spec = spec_name(cfg, "drain");
    with_spec(cfg, &spec, async {
        let n = cfg.units;
        let load = preload(cfg, &spec, n, 2).await?;
        eprintln!(
            "coordbench: drain: {n} units added in {:.2} s; draining with W={} J={}",
            load.as_secs_f64(),
            cfg.workers,
            cfg.max_jobs
        );
        let w = cfg.workers.max(1);
        let barrier = Arc::new(Barrier::new(w));
        let cpu = CpuMeter::start(cfg.daemon_pid);
        let outs = join_all(spawn_workers(cfg, &spec, w, &barrier, Stop::Empty, true, "")).await?;
        let m = Merged::of(&outs, n);
        let mut r = Report::new("drain", &spec, w, cfg.max_jobs, n, cfg.data_bytes);
        r.cpu = cpu.finish(m.completed);
        r.rows.extend(m.drain_rows(
            "units completed",
            &format!("get_work (max_jobs {})", cfg.max_jobs),
            "update_work_unit",
        ));
        m.verify(&mut Client::connect(&cfg.addr).await?, &spec, &mut r).await?;
        Ok(r)
    })
    .await
}

// ---------------------------------------------------------------- status

/// `status`: latency of the read-only status calls with N units present.
pub async fn status(cfg: &Cfg) -> Result<Report, Error> {
    let spec = spec_name(cfg, "status");
    with_spec(cfg, &spec, async {
        preload(cfg, &spec, cfg.units, 2).await?;
        let w = cfg.workers.max(1);
        let mut r = Report::new("status", &spec, w, 0, cfg.units, cfg.data_bytes);
        let methods: [(&str, Vec<Value>); 4] = [
            ("count_work_units", vec![text(&spec)]),
            ("get_work_spec", vec![text(&spec)]),
            ("list_work_specs", vec![map(vec![])]),
            ("get_work_units", vec![text(&spec), map(vec![("limit", int(100))])]),
        ];
        for (method, params) in methods {
            let barrier = Arc::new(Barrier::new(w));
            let tasks: Vec<_> = (0..w)
                .map(|t| {
                    let calls = cfg.calls / w as u64 + u64::from((t as u64) < cfg.calls % w as u64);
                    let (addr, params, barrier) = (cfg.addr.clone(), params.clone(), barrier.clone());
                    tokio::spawn(async move {
                        let mut c = Client::connect(&addr).await?;
                        for _ in 0..20 {
                            c.call(method, &params).await?;
                        }
                        barrier.wait().await;
                        let mut lat = Lat::default();
                        let start = Instant::now();
                        for _ in 0..calls {
                            let t0 = Instant::now();
                            let v = c.call(method, &params).await?;
                            lat.record(t0.elapsed());
                            if v.is_null() {
                                return Err(format!("{method}: answered null"));
                            }
                        }
                        Ok::<_, Error>((start, Instant::now(), lat))
                    })
                })
                .collect();
            let outs = join_all(tasks).await?;
            let secs = span(outs.iter().map(|o| (o.0, o.1)));
            let mut lat = Lat::default();
            outs.iter().for_each(|o| lat.merge(&o.2));
            let label = if method == "get_work_units" { "get_work_units (limit 100)" } else { method };
            r.rows.push(Row::latency(label, &lat, secs));
        }
        Ok(r)
    })
    .await
}

// ---------------------------------------------------------------- mixed

/// `mixed`: W/4 adders (at least one) and W - W/4 workers at once for the
/// duration, after preloading N units.
pub async fn mixed(cfg: &Cfg) -> Result<Report, Error> {
    let spec = spec_name(cfg, "mixed");
    with_spec(cfg, &spec, async {
        preload(cfg, &spec, cfg.units, 2).await?;
        let w = cfg.workers.max(2);
        let adders = (w / 4).max(1);
        let workers = w - adders;
        let barrier = Arc::new(Barrier::new(w));
        let until = cfg.duration;
        // Adders stop early past this many units each, to bound memory.
        let cap = 5_000_000 / adders as u64;
        let mut add_tasks = Vec::new();
        for a in 0..adders {
            let (addr, spec, size, batch, barrier) =
                (cfg.addr.clone(), spec.clone(), cfg.data_bytes, cfg.batch as u64, barrier.clone());
            let base = cfg.units + a as u64 * 1_000_000_000;
            add_tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(&addr).await?;
                let mut rng = SmallRng::seed_from_u64(1000 + a as u64);
                let mut lat = Lat::default();
                let mut added = 0;
                barrier.wait().await;
                let start = Instant::now();
                while start.elapsed() < until && added < cap {
                    let items = (base + added..base + added + batch).map(|i| unit_item(i, size, &mut rng)).collect();
                    let t0 = Instant::now();
                    unpair("add_work_units", c.call("add_work_units", &[text(&spec), Value::Array(items)]).await?)?;
                    lat.record(t0.elapsed());
                    added += batch;
                }
                Ok::<_, Error>((start, Instant::now(), lat, added))
            }));
        }
        let work_tasks = spawn_workers(cfg, &spec, workers, &barrier, Stop::After(until), false, "m");
        let adds = join_all(add_tasks).await?;
        let works = join_all(work_tasks).await?;
        let secs =
            span(adds.iter().map(|o| (o.0, o.1)).chain(works.iter().map(|o| (o.start.unwrap(), o.end.unwrap()))));
        let (mut al, mut gw, mut up) = (Lat::default(), Lat::default(), Lat::default());
        let added: u64 = adds.iter().map(|o| o.3).sum();
        adds.iter().for_each(|o| al.merge(&o.2));
        let mut completed = 0;
        let mut empty = 0;
        for o in &works {
            gw.merge(&o.get_work);
            up.merge(&o.update);
            completed += o.completed;
            empty += o.empty;
        }
        let mut r = Report::new("mixed", &spec, w, cfg.max_jobs, cfg.units, cfg.data_bytes);
        r.rows.push(Row::throughput("units added", added, secs));
        r.rows.push(Row::throughput("units completed", completed, secs));
        r.rows.push(Row::latency(&format!("add_work_units ({})", cfg.batch), &al, secs));
        r.rows.push(Row::latency(&format!("get_work (max_jobs {})", cfg.max_jobs), &gw, secs));
        r.rows.push(Row::latency("update_work_unit", &up, secs));
        let mut c = Client::connect(&cfg.addr).await?;
        let got = counts(&mut c, &spec).await?;
        let finished = got.get(&4).copied().unwrap_or(0);
        r.notes.push(format!(
            "{adders} adders, {workers} workers, {} s; {empty} empty get_work answers; count_work_units {}",
            until.as_secs_f64(),
            fmt_counts(&got)
        ));
        if finished != completed || got.get(&3).copied().unwrap_or(0) != 0 {
            r.ok = false;
            r.notes.push(format!("MISMATCH: workers finished {completed}, daemon counts {finished} finished"));
        }
        Ok(r)
    })
    .await
}

// ---------------------------------------------------------------- idle

/// `idle`: C idle connections, held for the duration, then one call on
/// each. Reports how long opening took and what the daemon's memory did.
pub async fn idle(cfg: &Cfg) -> Result<Report, Error> {
    let n = cfg.connections;
    let before = daemon_mem(cfg.daemon_pid);
    let t = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Client::connect(&cfg.addr).await?);
    }
    let open_secs = t.elapsed().as_secs_f64();
    // Give the daemon a moment to accept everything before reading memory.
    tokio::time::sleep(Duration::from_millis(200).min(cfg.duration)).await;
    let opened = daemon_mem(cfg.daemon_pid);
    eprintln!(
        "coordbench: idle: {n} connections open in {open_secs:.3} s; holding for {:.1} s",
        cfg.duration.as_secs_f64()
    );
    let hold = cfg.duration.saturating_sub(Duration::from_millis(200));
    let cpu = CpuMeter::start(cfg.daemon_pid);
    tokio::time::sleep(hold).await;
    let idle_cpu = cpu.finish(0);
    let mut lat = Lat::default();
    let t = Instant::now();
    let params = [map(vec![("limit", int(1))])];
    for c in conns.iter_mut() {
        let t0 = Instant::now();
        c.call("list_work_specs", &params).await?;
        lat.record(t0.elapsed());
    }
    let call_secs = t.elapsed().as_secs_f64();
    let mut r = Report::new("idle", "-", n, 0, 0, 0);
    r.rows.push(Row::throughput("connections opened", n as u64, open_secs));
    r.rows.push(Row::latency("list_work_specs, one per connection", &lat, call_secs));
    r.notes.push(format!("{n} connections held {:.1} s, then every one answered", cfg.duration.as_secs_f64()));
    if let (Some(b), Some(o)) = (before, opened) {
        let per = (o.rss_kb as f64 - b.rss_kb as f64) * 1024.0 / n.max(1) as f64;
        r.notes.push(format!(
            "daemon VmRSS {:.1} MB before, {:.1} MB with the connections open ({per:.0} bytes per connection)",
            b.rss_kb as f64 / 1024.0,
            o.rss_kb as f64 / 1024.0
        ));
    }
    if let Some(c) = idle_cpu {
        r.notes.push(format!(
            "daemon CPU time while the connections sat idle: {:.2} s over {:.1} s",
            c.secs,
            hold.as_secs_f64()
        ));
    }
    r.mem = daemon_mem(cfg.daemon_pid);
    drop(conns);
    Ok(r)
}
