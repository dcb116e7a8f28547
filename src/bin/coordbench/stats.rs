//! Latency histograms, server memory and CPU readings, and the report of
//! one scenario (as a table row set and as JSON).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value as Json};

/// A latency histogram in nanoseconds (1 ns .. 60 s, 3 significant
/// digits). One per task; merged when the tasks are done.
#[derive(Clone)]
pub struct Lat(Histogram<u64>);

impl Default for Lat {
    fn default() -> Self {
        Lat(Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds"))
    }
}

impl Lat {
    pub fn record(&mut self, d: Duration) {
        self.0.saturating_record(d.as_nanos().clamp(1, u64::MAX as u128) as u64);
    }

    pub fn merge(&mut self, other: &Lat) {
        self.0.add(&other.0).expect("histograms with the same bounds");
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> Option<LatSummary> {
        if self.0.is_empty() {
            return None;
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(LatSummary {
            count: self.0.len(),
            mean: self.0.mean() / 1e6,
            p50: ms(self.0.value_at_quantile(0.50)),
            p90: ms(self.0.value_at_quantile(0.90)),
            p99: ms(self.0.value_at_quantile(0.99)),
            p999: ms(self.0.value_at_quantile(0.999)),
            max: ms(self.0.max()),
        })
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct LatSummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// The daemon's memory as `/proc/PID/status` tells it, in kB.
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

/// Reads VmRSS and VmHWM of a process; `None` if it cannot be read.
pub fn daemon_mem(pid: Option<u32>) -> Option<Mem> {
    let pid = pid?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Mem { rss_kb: field("VmRSS:")?, hwm_kb: field("VmHWM:")? })
}

/// CPU time a process (all its threads) has used so far, from
/// `/proc/PID/stat`: (user, system); `None` if it cannot be read. The
/// kernel counts in clock ticks (10 ms at the usual 100 Hz), so phases
/// shorter than a second or so are measured coarsely.
pub fn cpu_times(pid: u32) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may hold spaces:
    // split after its closing one. What follows starts at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let secs = |ticks: u64| Duration::from_secs_f64(ticks as f64 / hz as f64);
    Some((secs(utime), secs(stime)))
}

/// The server's CPU time over one phase of a scenario (the drain itself,
/// not the preload), shared out over the jobs done in it.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    /// User and system time.
    pub secs: f64,
    /// System time alone: the kernel's share (sockets, wake-ups).
    pub system_secs: f64,
    pub ops: u64,
}

impl Cpu {
    pub fn us_per_op(&self) -> f64 {
        self.secs * 1e6 / self.ops.max(1) as f64
    }

    /// The system time's share of the whole, in percent.
    pub fn system_pct(&self) -> f64 {
        if self.secs > 0.0 {
            100.0 * self.system_secs / self.secs
        } else {
            0.0
        }
    }
}

/// Reads the server's CPU time at the start of a phase; [`CpuMeter::finish`]
/// at its end gives the difference.
pub struct CpuMeter {
    pid: Option<u32>,
    start: Option<(Duration, Duration)>,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter { pid, start: pid.and_then(cpu_times) }
    }

    pub fn finish(&self, ops: u64) -> Option<Cpu> {
        let (user, system) = cpu_times(self.pid?)?;
        let (user0, system0) = self.start?;
        let (user, system) = (user.saturating_sub(user0), system.saturating_sub(system0));
        Some(Cpu { secs: (user + system).as_secs_f64(), system_secs: system.as_secs_f64(), ops })
    }
}

/// One line of a scenario's results: an operation, how many were done in
/// how long, and (for RPCs timed one by one) their latency.
#[derive(Debug, Clone)]
pub struct Row {
    pub op: String,
    pub count: u64,
    pub secs: f64,
    pub lat: Option<LatSummary>,
}

impl Row {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.count as f64 / self.secs
        } else {
            0.0
        }
    }

    pub fn throughput(op: &str, count: u64, secs: f64) -> Row {
        Row { op: op.into(), count, secs, lat: None }
    }

    pub fn latency(op: &str, lat: &Lat, secs: f64) -> Row {
        Row { op: op.into(), count: lat.len(), secs, lat: lat.summary() }
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: String,
    /// What served it: `coordinated` (any CBOR-RPC daemon), `redis` or
    /// `beanstalkd`.
    pub server: String,
    pub spec: String,
    pub workers: usize,
    pub max_jobs: usize,
    pub units: u64,
    pub data_bytes: usize,
    pub rows: Vec<Row>,
    pub ok: bool,
    pub notes: Vec<String>,
    pub mem: Option<Mem>,
    /// The server's CPU time over the timed phase (with `--daemon-pid`).
    pub cpu: Option<Cpu>,
    /// The daemon's VmRSS sampled during the run: (seconds, kB).
    pub rss_series: Vec<(f64, u64)>,
}

impl Report {
    pub fn new(scenario: &str, spec: &str, workers: usize, max_jobs: usize, units: u64, data_bytes: usize) -> Report {
        Report {
            scenario: scenario.into(),
            server: "coordinated".into(),
            spec: spec.into(),
            workers,
            max_jobs,
            units,
            data_bytes,
            rows: Vec::new(),
            ok: true,
            notes: Vec::new(),
            mem: None,
            cpu: None,
            rss_series: Vec::new(),
        }
    }

    pub fn to_json(&self) -> Json {
        let rows: Vec<Json> = self
            .rows
            .iter()
            .map(|r| {
                let mut o = json!({
                    "op": r.op,
                    "count": r.count,
                    "seconds": r.secs,
                    "rate_per_sec": r.rate(),
                });
                if let Some(l) = r.lat {
                    o["latency_ms"] = json!({
                        "count": l.count, "mean": l.mean, "p50": l.p50, "p90": l.p90,
                        "p99": l.p99, "p999": l.p999, "max": l.max,
                    });
                }
                o
            })
            .collect();
        let mut o = json!({
            "scenario": self.scenario,
            "server": self.server,
            "spec": self.spec,
            "workers": self.workers,
            "max_jobs": self.max_jobs,
            "units": self.units,
            "data_bytes": self.data_bytes,
            "ok": self.ok,
            "rows": rows,
            "notes": self.notes,
        });
        if let Some(m) = self.mem {
            o["daemon"] = json!({"vm_rss_kb": m.rss_kb, "vm_hwm_kb": m.hwm_kb});
        }
        if let Some(c) = self.cpu {
            o["server_cpu"] = json!({
                "seconds": c.secs, "system_seconds": c.system_secs, "system_pct": c.system_pct(),
                "ops": c.ops, "us_per_op": c.us_per_op(),
            });
        }
        if !self.rss_series.is_empty() {
            o["daemon_rss_series"] = self.rss_series.iter().map(|&(t, kb)| json!({"t": t, "vm_rss_kb": kb})).collect();
        }
        o
    }
}

fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The table rows of one report: its first row names the scenario and its
/// parameters, the others only their operation.
fn report_lines(r: &Report) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    for (i, row) in r.rows.iter().enumerate() {
        let first = i == 0;
        let (p50, p99, max) = match row.lat {
            Some(l) => (fmt_ms(l.p50), fmt_ms(l.p99), fmt_ms(l.max)),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (rss, hwm) = match (first, r.mem) {
            (true, Some(m)) => (format!("{:.1}", m.rss_kb as f64 / 1024.0), format!("{:.1}", m.hwm_kb as f64 / 1024.0)),
            _ => (String::new(), String::new()),
        };
        let cpu = match (first, r.cpu) {
            (true, Some(c)) => format!("{:.1} ({:.0}% sys)", c.us_per_op(), c.system_pct()),
            _ => String::new(),
        };
        let name =
            if r.server == "coordinated" { r.scenario.clone() } else { format!("{} ({})", r.scenario, r.server) };
        let name = if r.ok { name } else { format!("{name} FAILED") };
        lines.push(vec![
            if first { name } else { String::new() },
            if first { r.workers.to_string() } else { String::new() },
            if !first {
                String::new()
            } else if r.max_jobs == 0 {
                "-".into()
            } else {
                r.max_jobs.to_string()
            },
            if !first {
                String::new()
            } else if r.units == 0 {
                "-".into()
            } else {
                fmt_count(r.units)
            },
            row.op.clone(),
            fmt_count(row.count),
            format!("{:.3}", row.secs),
            fmt_count(row.rate().round() as u64),
            p50,
            p99,
            max,
            cpu,
            rss,
            hwm,
        ]);
    }
    lines
}

/// Renders reports as one aligned table, notes below it. CPU µs/op is the
/// server's CPU time over the timed phase per unit (or job) completed,
/// with the system time's share of it in parentheses.
pub fn table(reports: &[Report]) -> String {
    let header = [
        "scenario",
        "W",
        "J",
        "units",
        "operation",
        "count",
        "secs",
        "rate/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU µs/op",
        "RSS MB",
        "HWM MB",
    ];
    let lines: Vec<Vec<String>> = reports.iter().flat_map(report_lines).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Text columns left-aligned, numbers right-aligned.
    let left = [true, false, false, false, true, false, false, false, false, false, false, false, false, false];
    let render = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = widths[i] - c.chars().count();
            if left[i] {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    out.push_str(&render(&head));
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    out.push('\n');
    for l in &lines {
        out.push_str(&render(l));
        out.push('\n');
    }
    let notes: Vec<String> = reports
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("  {} ({}): {n}", r.scenario, r.spec)))
        .collect();
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}
