//! `soak`: the daemon under a long mixed load, the way a busy deployment
//! looks: W workers (800 by default, one connection each) drain N units
//! while an adder keeps adding batches at a fixed rate and a status poller
//! loops over `count_work_units`, `get_work_spec_meta` and
//! `list_work_specs`. The adder stops after `--duration`; the workers stop
//! once it has and the spec is empty, and the drain's exactly-once check
//! covers the added units too. The daemon's VmRSS is sampled throughout and
//! for `--settle` seconds after the drain, to show whether memory grows
//! with time under load and stays flat once the work is done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cborrpc::value::text;
use cborrpc::Value;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::Barrier;
use tokio::time::MissedTickBehavior;

use crate::client::{unpair, Client, Error};
use crate::scenarios::{join_all, map, preload, spawn_workers, spec_name, unit_item, with_spec, Cfg, Merged, Stop};
use crate::stats::{daemon_mem, Lat, Report, Row};

/// Options of the soak scenario beyond [`Cfg`].
#[derive(Debug, Clone)]
pub struct SoakOpts {
    /// Units per second the adder adds during `--duration` (0: no adder).
    pub add_rate: f64,
    /// How long RSS is still sampled after the drain.
    pub settle: Duration,
    /// Interval between RSS samples.
    pub sample_every: Duration,
}

/// What the adder did: units added (numbered from the preload's end up),
/// the latency of its calls, and for how long it ran.
struct Added {
    units: u64,
    lat: Lat,
    secs: f64,
}

/// Adds batches of `cfg.batch` units at `rate` units/s for `cfg.duration`,
/// numbering them from `first`; sets `done` however it ends.
async fn adder(
    cfg: Cfg,
    spec: String,
    first: u64,
    rate: f64,
    barrier: Arc<Barrier>,
    done: Arc<AtomicBool>,
) -> Result<Added, Error> {
    let r = async {
        let mut c = Client::connect(&cfg.addr).await?;
        let mut rng = SmallRng::seed_from_u64(7);
        let mut out = Added { units: 0, lat: Lat::default(), secs: 0.0 };
        barrier.wait().await;
        if rate <= 0.0 {
            return Ok(out);
        }
        let batch = cfg.batch as u64;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(batch as f64 / rate));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let start = Instant::now();
        while start.elapsed() < cfg.duration {
            tick.tick().await;
            let from = first + out.units;
            let items = (from..from + batch).map(|i| unit_item(i, cfg.data_bytes, &mut rng)).collect();
            let t0 = Instant::now();
            unpair("add_work_units", c.call("add_work_units", &[text(&spec), Value::Array(items)]).await?)?;
            out.lat.record(t0.elapsed());
            out.units += batch;
        }
        out.secs = start.elapsed().as_secs_f64();
        Ok(out)
    }
    .await;
    done.store(true, Ordering::Release);
    r
}

/// Loops over the status calls until `stop`; one latency histogram each.
async fn poller(
    addr: String,
    spec: String,
    barrier: Arc<Barrier>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<(&'static str, Lat)>, Error> {
    let mut c = Client::connect(&addr).await?;
    let calls: [(&'static str, Vec<Value>); 3] = [
        ("count_work_units", vec![text(&spec)]),
        ("get_work_spec_meta", vec![text(&spec)]),
        ("list_work_specs", vec![map(vec![])]),
    ];
    let mut lats: Vec<(&'static str, Lat)> = calls.iter().map(|(m, _)| (*m, Lat::default())).collect();
    barrier.wait().await;
    while !stop.load(Ordering::Acquire) {
        for ((method, params), (_, lat)) in calls.iter().zip(lats.iter_mut()) {
            let t0 = Instant::now();
            c.call(method, params).await?;
            lat.record(t0.elapsed());
        }
    }
    Ok(lats)
}

/// Samples the daemon's VmRSS every `every` until `settle` after `drained`
/// is set; returns the samples (seconds since start, kB) and when the drain
/// ended. Without a PID there is nothing to sample, and nothing to wait for.
async fn sample_rss(
    pid: Option<u32>,
    every: Duration,
    settle: Duration,
    drained: Arc<AtomicBool>,
) -> (Vec<(f64, u64)>, f64) {
    if pid.is_none() {
        return (Vec::new(), 0.0);
    }
    let start = Instant::now();
    let mut series = Vec::new();
    let mut drained_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Some(m) = daemon_mem(pid) {
            series.push((start.elapsed().as_secs_f64(), m.rss_kb));
        }
        if drained_at.is_none() && drained.load(Ordering::Acquire) {
            drained_at = Some(Instant::now());
        }
        if drained_at.is_some_and(|d| d.elapsed() >= settle) {
            break;
        }
    }
    (series, drained_at.map_or(0.0, |d| d.duration_since(start).as_secs_f64()))
}

/// The RSS series as notes: at most ~30 samples during the run, every one
/// after the drain, and the maxima.
fn rss_notes(series: &[(f64, u64)], drained_at: f64, every: Duration) -> Vec<String> {
    if series.is_empty() {
        return vec!["daemon RSS not sampled (no --daemon-pid)".into()];
    }
    let mb = |kb: u64| format!("{:.0}", kb as f64 / 1024.0);
    let (during, after): (Vec<_>, Vec<_>) = series.iter().partition(|(t, _)| *t <= drained_at);
    let step = during.len().div_ceil(30).max(1);
    let shown: Vec<String> = during.iter().step_by(step).map(|(t, kb)| format!("{t:.0}s:{}", mb(*kb))).collect();
    let max = series.iter().map(|s| s.1).max().unwrap_or(0);
    let mut notes = vec![format!(
        "daemon VmRSS MB every {:.1} s{}: {}; max {} MB",
        every.as_secs_f64() * step as f64,
        if step > 1 { " (thinned)" } else { "" },
        shown.join(" "),
        mb(max)
    )];
    if let (Some(first), Some(lo), Some(hi)) =
        (after.first(), after.iter().map(|s| s.1).min(), after.iter().map(|s| s.1).max())
    {
        let all: Vec<String> = after.iter().map(|(_, kb)| mb(*kb)).collect();
        notes.push(format!(
            "after the drain (from {:.0} s): {} MB; spread {:.1} MB",
            first.0,
            all.join(" "),
            (hi - lo) as f64 / 1024.0
        ));
    }
    notes
}

/// `soak`: see the module comment.
pub async fn soak(cfg: &Cfg, o: &SoakOpts) -> Result<Report, Error> {
    let spec = spec_name(cfg, "soak");
    with_spec(cfg, &spec, async {
        let n = cfg.units;
        let load = preload(cfg, &spec, n, 2).await?;
        let w = cfg.workers.max(1);
        eprintln!(
            "coordbench: soak: {n} units added in {:.2} s; W={w} J={}, adding {} units/s for {:.0} s",
            load.as_secs_f64(),
            cfg.max_jobs,
            o.add_rate,
            cfg.duration.as_secs_f64()
        );
        let barrier = Arc::new(Barrier::new(w + 2));
        let (adding_done, drained) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let sampler = tokio::spawn(sample_rss(cfg.daemon_pid, o.sample_every, o.settle, drained.clone()));
        let adder = tokio::spawn(adder(cfg.clone(), spec.clone(), n, o.add_rate, barrier.clone(), adding_done.clone()));
        let poller = tokio::spawn(poller(cfg.addr.clone(), spec.clone(), barrier.clone(), drained.clone()));
        let workers = spawn_workers(cfg, &spec, w, &barrier, Stop::EmptyOnce(adding_done), true, "s");
        let outs = join_all(workers).await;
        drained.store(true, Ordering::Release);
        let added = adder.await.map_err(|e| e.to_string())?;
        let polls = poller.await.map_err(|e| e.to_string())?;
        let (series, drained_at) = sampler.await.map_err(|e| e.to_string())?;
        let (outs, added, polls) = (outs?, added?, polls?);
        let m = Merged::of(&outs, n + added.units);
        let mut r = Report::new("soak", &spec, w, cfg.max_jobs, n, cfg.data_bytes);
        r.rows.push(Row::throughput("units completed", m.completed, m.secs));
        r.rows.push(Row::throughput("units added during the run", added.units, added.secs));
        r.rows.push(Row::latency(&format!("get_work (max_jobs {})", cfg.max_jobs), &m.get_work, m.secs));
        r.rows.push(Row::latency("update_work_unit", &m.update, m.secs));
        r.rows.push(Row::latency(&format!("add_work_units ({})", cfg.batch), &added.lat, added.secs));
        for (method, lat) in &polls {
            r.rows.push(Row::latency(method, lat, m.secs));
        }
        m.verify(&mut Client::connect(&cfg.addr).await?, &spec, &mut r).await?;
        r.notes.push(format!(
            "{n} units preloaded, {} added by the adder; {} of the get_work calls found nothing (waiting for the adder)",
            added.units, m.empty
        ));
        r.notes.extend(rss_notes(&series, drained_at, o.sample_every));
        r.rss_series = series;
        Ok(r)
    })
    .await
}
