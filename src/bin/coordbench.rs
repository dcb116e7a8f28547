//! `coordbench`: a load generator for any Coordinate daemon.
//!
//! It speaks CBOR-RPC exactly as the Python client does (tag-24 wrapped
//! request maps with `id`, `method` and `params`, text keys and method
//! names, one request in flight per connection) and runs one scenario per
//! subcommand:
//!
//! * `add`    — N units added in batches of 1,000 → units/s;
//! * `drain`  — N units added, then W workers `get_work` J at a time and
//!   finish each unit until the spec is empty → completed units/s,
//!   `get_work` latency; verifies every unit finished exactly once. With
//!   `--peer redis ADDR` or `--peer beanstalkd ADDR` the same drain runs
//!   against that server instead (see `coordbench/peers.rs`);
//! * `status` — latency of `count_work_units`, `get_work_spec`,
//!   `list_work_specs`, `get_work_units(limit=100)` with N units present;
//! * `mixed`  — W/4 adders and the rest workers at once, for a duration;
//! * `idle`   — C idle connections held, then one call on each;
//! * `soak`   — 800 workers drain 1,000,000 units while an adder and a
//!   status poller run for a duration; samples the daemon's RSS over time;
//! * `all`    — add, drain (W=8, J=1), drain (W=64, J=10), status.
//!
//! Each scenario works in its own work spec and deletes it at the end.
//! Output is a table, or with `--json` one JSON object per scenario.
//! With `--daemon-pid` (alias `--server-pid`) the daemon's VmRSS / VmHWM
//! are read from /proc after each scenario (before its spec is deleted),
//! and a drain reports the server's CPU time per completed unit.
//!
//! Example: `coordbench --address 127.0.0.1:5932 drain --workers 64 --max-jobs 10 --units 100000`

#[path = "coordbench/client.rs"]
mod client;
#[path = "coordbench/peer_beanstalkd.rs"]
mod peer_beanstalkd;
#[path = "coordbench/peer_redis.rs"]
mod peer_redis;
#[path = "coordbench/peers.rs"]
mod peers;
#[path = "coordbench/scenarios.rs"]
mod scenarios;
#[path = "coordbench/soak.rs"]
mod soak;
#[path = "coordbench/stats.rs"]
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use scenarios::Cfg;
use stats::Report;

#[derive(Debug, Parser)]
#[command(
    name = "coordbench",
    version,
    about = "Load generator for Coordinate daemons (CBOR-RPC, Python-client compatible)"
)]
struct Cli {
    /// Daemon address (HOST:PORT).
    #[arg(long, global = true, default_value = "127.0.0.1:5932")]
    address: String,
    /// Another daemon on the same database (repeatable): workers are
    /// spread round-robin over --address and these; adding, checking and
    /// cleaning up go through --address.
    #[arg(long, global = true, value_name = "ADDR")]
    also: Vec<String>,
    /// Print one JSON object per scenario instead of the table.
    #[arg(long, global = true)]
    json: bool,
    /// PID of the daemon (or of the --peer server): report its VmRSS and
    /// VmHWM after each scenario, and its CPU time per unit in a drain.
    #[arg(long, global = true, visible_alias = "server-pid")]
    daemon_pid: Option<u32>,
    /// Client runtime threads (default: the number of CPUs).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Args, Clone)]
struct Common {
    /// Concurrent connections (workers / adders).
    #[arg(long)]
    workers: Option<usize>,
    /// Work units to add (or preload).
    #[arg(long)]
    units: Option<u64>,
    /// `max_jobs` of each `get_work`.
    #[arg(long)]
    max_jobs: Option<usize>,
    /// Approximate encoded size of each unit's data map, in bytes.
    #[arg(long, default_value_t = 100)]
    data_bytes: usize,
    /// Units per `add_work_units` call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// How long time-bound scenarios run, in seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Work spec name (default: a unique bench-SCENARIO-PID); it must not
    /// exist, and is deleted at the end.
    #[arg(long)]
    spec: Option<String>,
    /// Before the scenario, add N units to another spec that its workers
    /// never ask for (deleted at the end): a store that holds other work,
    /// as a deployment's does, not an empty one.
    #[arg(long, default_value_t = 0)]
    backdrop: u64,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Add N units to one spec in batches (default W=1, N=100,000).
    Add(Common),
    /// Add N units, then drain them with W workers (default W=8, J=1, N=100,000).
    Drain {
        #[command(flatten)]
        common: Common,
        /// Drain another queue server instead, with its own two round
        /// trips per job: `redis` (LMOVE pending processing, then LREM) or
        /// `beanstalkd` (reserve-with-timeout 0, then delete). ADDR
        /// defaults to the server's usual port on 127.0.0.1.
        #[arg(long, num_args = 1..=2, value_names = ["KIND", "ADDR"])]
        peer: Option<Vec<String>>,
    },
    /// Latency of status calls with N units present (default N=100,000).
    Status {
        #[command(flatten)]
        common: Common,
        /// Calls of each method.
        #[arg(long, default_value_t = 2000)]
        calls: u64,
    },
    /// Adders and workers at once for --duration (default W=8, J=1, 10 s, N=10,000 preloaded).
    Mixed(Common),
    /// Hold C idle connections for --duration, then call on each (default 800, 10 s).
    Idle {
        #[command(flatten)]
        common: Common,
        /// Idle connections to open.
        #[arg(long, default_value_t = 800)]
        connections: usize,
    },
    /// W workers drain N units while an adder and a status poller run for
    /// --duration; the daemon's RSS sampled (default W=800, J=1, N=1,000,000, 60 s).
    Soak {
        #[command(flatten)]
        common: Common,
        /// Units per second added during --duration, in --batch batches (0: none).
        #[arg(long, default_value_t = 10_000.0)]
        add_rate: f64,
        /// Seconds to keep sampling the daemon's RSS after the drain.
        #[arg(long, default_value_t = 5.0)]
        settle: f64,
        /// Seconds between RSS samples.
        #[arg(long, default_value_t = 1.0)]
        sample_every: f64,
    },
    /// add, drain (W=8, J=1), drain (W=64, J=10) and status, in one table.
    All {
        #[command(flatten)]
        common: Common,
        /// Calls of each method in the status scenario.
        #[arg(long, default_value_t = 2000)]
        calls: u64,
    },
}

/// The address the run talks to (the peer's with `drain --peer`).
fn target(cli: &Cli) -> String {
    match &cli.cmd {
        Cmd::Drain { peer: Some(p), .. } => peers::target(p).map(|(_, a)| a).unwrap_or_default(),
        _ => cli.address.clone(),
    }
}

fn cfg(cli: &Cli, c: &Common, workers: usize, units: u64, max_jobs: usize, duration: f64) -> Cfg {
    Cfg {
        addr: cli.address.clone(),
        also: cli.also.clone(),
        spec: c.spec.clone(),
        workers: c.workers.unwrap_or(workers).max(1),
        units: c.units.unwrap_or(units),
        max_jobs: c.max_jobs.unwrap_or(max_jobs).max(1),
        data_bytes: c.data_bytes,
        batch: c.batch.max(1),
        duration: Duration::from_secs_f64(c.duration.unwrap_or(duration).max(0.0)),
        calls: 2000,
        connections: 800,
        daemon_pid: cli.daemon_pid,
        backdrop: c.backdrop,
    }
}

async fn run(cli: &Cli) -> (Vec<Report>, Vec<String>) {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut push = |name: &str, r: Result<Report, String>, json: bool| match r {
        Ok(r) => {
            if json {
                println!("{}", r.to_json());
            }
            reports.push(r);
        }
        Err(e) => {
            eprintln!("coordbench: {name} failed: {e}");
            if json {
                println!("{}", serde_json::json!({"scenario": name, "ok": false, "error": e}));
            }
            errors.push(format!("{name}: {e}"));
        }
    };
    match &cli.cmd {
        Cmd::Add(c) => push("add", scenarios::add(&cfg(cli, c, 1, 100_000, 1, 0.0)).await, cli.json),
        Cmd::Drain { common, peer: None } => {
            push("drain", scenarios::drain(&cfg(cli, common, 8, 100_000, 1, 0.0)).await, cli.json)
        }
        Cmd::Drain { common, peer: Some(_) } if common.backdrop > 0 => {
            push("drain", Err("--backdrop needs our daemon; a --peer server has no specs".into()), cli.json)
        }
        Cmd::Drain { common, peer: Some(p) } => {
            push("drain", peers::drain(&cfg(cli, common, 8, 100_000, 1, 0.0), p).await, cli.json)
        }
        Cmd::Status { common, calls } => {
            let cfg = Cfg { calls: *calls, ..cfg(cli, common, 1, 100_000, 1, 0.0) };
            push("status", scenarios::status(&cfg).await, cli.json)
        }
        Cmd::Mixed(c) => push("mixed", scenarios::mixed(&cfg(cli, c, 8, 10_000, 1, 10.0)).await, cli.json),
        Cmd::Idle { common, .. } if common.backdrop > 0 => {
            push("idle", Err("--backdrop is for scenarios that work in a spec, not idle".into()), cli.json)
        }
        Cmd::Idle { common, connections } => {
            let cfg = Cfg { connections: *connections, ..cfg(cli, common, 1, 0, 1, 10.0) };
            push("idle", scenarios::idle(&cfg).await, cli.json)
        }
        Cmd::Soak { common, add_rate, settle, sample_every } => {
            let o = soak::SoakOpts {
                add_rate: *add_rate,
                settle: Duration::from_secs_f64(settle.max(0.0)),
                sample_every: Duration::from_secs_f64(sample_every.max(0.01)),
            };
            push("soak", soak::soak(&cfg(cli, common, 800, 1_000_000, 1, 60.0), &o).await, cli.json)
        }
        Cmd::All { common, calls } => {
            let base = Cfg { calls: *calls, ..cfg(cli, common, 1, 100_000, 1, 0.0) };
            // --spec names one spec; `all` needs four, so it is ignored.
            let base = Cfg { spec: None, ..base };
            eprintln!("coordbench: all: add");
            push("add", scenarios::add(&Cfg { workers: common.workers.unwrap_or(1), ..base.clone() }).await, cli.json);
            eprintln!("coordbench: all: drain W=8 J=1");
            push("drain", scenarios::drain(&Cfg { workers: 8, max_jobs: 1, ..base.clone() }).await, cli.json);
            eprintln!("coordbench: all: drain W=64 J=10");
            push("drain", scenarios::drain(&Cfg { workers: 64, max_jobs: 10, ..base.clone() }).await, cli.json);
            eprintln!("coordbench: all: status");
            push("status", scenarios::status(&Cfg { workers: 1, ..base.clone() }).await, cli.json);
        }
    }
    (reports, errors)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coordbench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (reports, errors) = rt.block_on(run(&cli));
    if !cli.json {
        if !reports.is_empty() {
            println!("coordbench against {}", target(&cli));
            print!("{}", stats::table(&reports));
        }
        for e in &errors {
            println!("ERROR {e}");
        }
    }
    if errors.is_empty() && reports.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
