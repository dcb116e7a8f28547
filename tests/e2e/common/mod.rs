//! Shared pieces of the end-to-end tests: an in-process daemon on a free
//! loopback port, a daemon child process for what needs a separate process
//! (signals, kill -9, memory and CPU of the daemon alone, its log), and a
//! small CBOR-RPC client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backends::model::UnitStatus;
use cborrpc::value::{as_sequence, map_get};
use cborrpc::{encode_request, Connection, Value};
pub use coordinated::Options;
use jobserver::wire::count_code;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A daemon serving in the test's own runtime; stops when dropped.
pub struct Daemon {
    pub daemon: coordinated::Daemon,
    pub addr: SocketAddr,
    /// Where it serves HTTP, unless that is off.
    pub http_addr: Option<SocketAddr>,
}

impl Daemon {
    /// A memory-backend daemon with default settings.
    pub async fn memory() -> Daemon {
        Daemon::start(Options::loopback()).await
    }

    /// A daemon with the given options (listening on `127.0.0.1:0` unless
    /// they say otherwise).
    pub async fn start(options: Options) -> Daemon {
        let daemon = coordinated::Daemon::start(options).await.expect("start daemon");
        let (addr, http_addr) = (daemon.addr(), daemon.http_addr());
        Daemon { daemon, addr, http_addr }
    }

    /// A daemon over a backend the test built.
    pub async fn start_with<C: backends::Coordinate>(backend: C, options: Options) -> Daemon {
        let daemon = coordinated::Daemon::start_with(backend, options).await.expect("start daemon");
        let (addr, http_addr) = (daemon.addr(), daemon.http_addr());
        Daemon { daemon, addr, http_addr }
    }

    /// A new client connection.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// A `coordinated` child process listening on ports it picked itself
/// (read back from its log); killed by PID when dropped.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    /// Where it serves HTTP, unless that is off.
    pub http_addr: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

/// The `addr=` field of a log line.
fn logged_addr(line: &str) -> Option<SocketAddr> {
    line.split_whitespace().find_map(|w| w.strip_prefix("addr="))?.parse().ok()
}

/// The binary with extra arguments, on loopback ports it picks itself
/// (CBOR-RPC, and HTTP unless the arguments say `--http`), logging at info
/// level to a pipe. Without `--backend` or `--data-dir` among the
/// arguments it runs the memory backend, so tests never share the default
/// data directory.
fn daemon_command(extra: &[&str]) -> Command {
    let volatile = !extra.iter().any(|a| *a == "--backend" || *a == "--data-dir");
    let own_http = extra.contains(&"--http");
    let mut command = Command::new(env!("CARGO_BIN_EXE_coordinated"));
    command
        .args(["--cborrpc", "127.0.0.1:0"])
        .args(if own_http { &[][..] } else { &["--http", "127.0.0.1:0"] })
        .args(if volatile { &["--backend", "memory"][..] } else { &[] })
        .args(extra)
        .env("COORDINATED_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs the binary expecting it to exit by itself (a refused start): its
/// exit status and everything it wrote to stderr. Fails if it is still
/// running after 20 s.
pub fn run_to_exit(extra: &[&str]) -> (ExitStatus, String) {
    let child = daemon_command(extra).spawn().expect("spawn coordinated");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().expect("wait for coordinated")));
    let out = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
        // Not reaped yet (the waiting thread is blocked), so the pid is still the daemon's.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let out = rx.recv().unwrap();
        panic!("the daemon kept running; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

impl Process {
    /// Starts the binary with extra arguments (see [`daemon_command`]) and
    /// waits until it listens.
    pub fn start(extra: &[&str]) -> Process {
        let mut child = daemon_command(extra).spawn().expect("spawn coordinated");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        // Keeps reading so the daemon never blocks on a full pipe. The
        // HTTP line comes before the CBOR-RPC one.
        std::thread::spawn(move || {
            let mut http = None;
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("listening for HTTP") {
                    http = logged_addr(&line);
                }
                if line.contains("listening for CBOR-RPC") {
                    let _ = tx.send(logged_addr(&line).map(|a| (a, http)));
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addrs = rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        let Some((addr, http_addr)) = addrs else {
            let _ = child.kill();
            panic!("daemon did not start listening; log:\n{}", log.lock().unwrap());
        };
        Process { child, addr, http_addr, log }
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to 10 s for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "no log line with {needle:?} in:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// CPU time the daemon has used (user + system).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<u64> = rest.split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
        let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis((fields[0] + fields[1]) * 1000 / ticks_per_sec)
    }

    /// A new client connection.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// A fresh data directory path under `CARGO_TARGET_TMPDIR`, named after
/// `name` (not created: the daemon creates it).
pub fn data_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("durable-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal CBOR-RPC client, one request at a time.
pub struct Client {
    pub conn: Connection<TcpStream>,
    next_id: u64,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client { conn: Connection::new(stream, 1 << 30), next_id: 1 }
    }

    /// Calls a method and returns `result` or the error message.
    pub async fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, String> {
        let reply = self.try_call(method, params).await;
        reply.unwrap_or_else(|| panic!("{method}: no reply (the connection closed, or the reply was not CBOR-RPC)"))
    }

    /// [`call`](Self::call) for a connection the daemon may drop (a
    /// `kill -9`, a shutdown): `None` when no whole reply came back.
    pub async fn try_call(&mut self, method: &str, params: Vec<Value>) -> Option<Result<Value, String>> {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = Vec::new();
        encode_request(id, method, &params, &mut frame);
        self.conn.queue_bytes(&frame);
        self.conn.flush().await.ok()?;
        let resp = self.conn.read_response().await.ok()??.ok()?;
        assert_eq!(resp.id, Value::Integer(id.into()), "response id");
        Some(resp.outcome)
    }

    /// Calls a method that must succeed.
    pub async fn ok(&mut self, method: &str, params: Vec<Value>) -> Value {
        self.call(method, params).await.unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.conn.get_mut().write_all(bytes).await.unwrap();
    }
}

/// A text string.
pub fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// A byte string.
pub fn b(s: &[u8]) -> Value {
    Value::Bytes(s.to_vec())
}

/// An integer.
pub fn i(n: i64) -> Value {
    Value::Integer(n.into())
}

/// A map with text keys.
pub fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (t(k), v.clone())).collect())
}

/// `[value, null]`.
pub fn ok_pair(v: Value) -> Value {
    Value::Array(vec![v, Value::Null])
}

/// Parses spaced hex.
pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|x| u8::from_str_radix(x, 16).unwrap()).collect()
}

/// `count_work_units` over RPC: every status by name, 0 where the answer
/// has none. The answer's keys are the job server's count codes (delayed
/// is 0, not a status code).
pub async fn rpc_counts(c: &mut Client, spec: &str) -> BTreeMap<&'static str, u64> {
    let answer = c.ok("count_work_units", vec![t(spec)]).await;
    let Value::Map(m) = &as_sequence(&answer).expect("a reply pair")[0] else { panic!("{answer:?}") };
    let mut out: BTreeMap<&'static str, u64> = UnitStatus::ALL.iter().map(|s| (s.name(), 0)).collect();
    for (k, n) in m {
        let code = i64::try_from(k.as_integer().expect("an integer code")).unwrap();
        let status = UnitStatus::ALL.into_iter().find(|&s| count_code(s) == code);
        let status = status.unwrap_or_else(|| panic!("count_work_units reported an unknown code {code}: {answer:?}"));
        out.insert(status.name(), u64::try_from(n.as_integer().expect("a count")).unwrap());
    }
    out
}

/// The status code `get_work_unit_status` reports for one unit
/// (`jobserver::wire::status`; delayed reads as available).
pub async fn rpc_unit_status(c: &mut Client, spec: &str, key: Value) -> i64 {
    let answer = c.ok("get_work_unit_status", vec![t(spec), Value::Array(vec![key])]).await;
    let list = as_sequence(&as_sequence(&answer).expect("a reply pair")[0]).expect("a status list").to_vec();
    let Value::Map(m) = &list[0] else { panic!("no status for the unit: {list:?}") };
    i64::try_from(map_get(m, "status").expect("a status").as_integer().unwrap()).unwrap()
}

/// The spec status code `get_work_spec_meta` reports
/// (`jobserver::wire::spec_status`: 1 runnable, 2 paused).
pub async fn rpc_spec_status(c: &mut Client, spec: &str) -> i64 {
    let meta = c.ok("get_work_spec_meta", vec![t(spec)]).await;
    let Value::Map(m) = &as_sequence(&meta).expect("a reply pair")[0] else { panic!("{meta:?}") };
    i64::try_from(map_get(m, "status").expect("a status").as_integer().unwrap()).unwrap()
}

/// The grants of one `get_work` answer: a list of grants, one grant, or a
/// grant of nulls when there is no work.
pub fn grant_list(answer: &Value) -> Vec<Value> {
    match &cborrpc::value::as_sequence(answer).expect("a reply pair")[0] {
        Value::Array(list) => list.clone(),
        single if cborrpc::value::as_sequence(single).expect("a grant")[0].is_null() => Vec::new(),
        single => vec![single.clone()],
    }
}

/// `n` workers (`w0`, `w1`, …) that finish whatever `get_work` hands them
/// from `spec` until there is no work left or the daemon closes their
/// connection. Returns their tasks and the key of every finish that got a
/// reply: what shutdown and crash tests must find finished afterwards.
pub fn spawn_finishers(
    addr: SocketAddr,
    n: usize,
    spec: &str,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<Mutex<Vec<Value>>>) {
    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let tasks = (0..n)
        .map(|w| {
            let (acked, spec) = (acked.clone(), spec.to_owned());
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                loop {
                    let Some(r) = c.try_call("get_work", vec![t(&format!("w{w}")), map(&[])]).await else { return };
                    let Some(grant) = grant_list(&r.expect("get_work")).into_iter().next() else { return };
                    let key = cborrpc::value::as_sequence(&grant).expect("a grant")[1].clone();
                    let done = vec![t(&spec), key.clone(), map(&[("status", i(4))])];
                    let Some(r) = c.try_call("update_work_unit", done).await else { return };
                    assert_eq!(r, Ok(ok_pair(Value::Bool(true))));
                    acked.lock().unwrap().push(key);
                }
            })
        })
        .collect();
    (tasks, acked)
}

/// Waits (polling) until `cond` holds; fails after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGTERM during a 16-worker drain of `units` units: `start` starts a
/// daemon on durable storage (the same storage each time). Once `after`
/// finishes got a reply (a count, not a time: a fast machine must not
/// finish the drain first), the daemon is sent SIGTERM
/// and must exit 0; after a restart every finish that got a reply is
/// there, no unit is lost, and at most the 16 updates in flight were
/// added. Returns the log of the daemon that was stopped.
pub async fn sigterm_under_load(start: impl Fn() -> Process, units: usize, after: usize) -> String {
    const WORKERS: usize = 16;
    let d = start();
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await;
    let keys: Vec<Value> = (0..units).map(|n| t(&format!("k{n:05}"))).collect();
    for chunk in keys.chunks(2000) {
        c.ok("add_work_units", vec![t("s"), Value::Array(chunk.to_vec())]).await;
    }
    let (workers, acked) = spawn_finishers(d.addr, WORKERS, "s");
    assert!(after < units / 2, "SIGTERM must land mid-drain");
    wait_until("acknowledged finishes", Duration::from_secs(60), || acked.lock().unwrap().len() >= after).await;
    let mut d = d;
    d.signal(libc::SIGTERM);
    let d = tokio::task::spawn_blocking(move || {
        let status = d.child.wait().unwrap();
        assert!(status.success(), "exit status {status} after SIGTERM; log:\n{}", d.log());
        d
    })
    .await
    .unwrap();
    for w in workers {
        w.await.expect("worker task");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() < units, "the drain ended before the shutdown: nothing was under way");

    let restarted = start();
    let mut c = restarted.client().await;
    let statuses = c.ok("get_work_unit_status", vec![t("s"), Value::Array(acked.clone())]).await;
    let statuses = cborrpc::value::as_sequence(&statuses).expect("a reply pair")[0].clone();
    for (key, s) in acked.iter().zip(cborrpc::value::as_sequence(&statuses).expect("a status list")) {
        let Value::Map(m) = s else { panic!("{key:?}: no status") };
        assert_eq!(cborrpc::value::map_get(m, "status"), Some(&i(4)), "{key:?} was acknowledged as finished");
    }
    let counts = c.ok("count_work_units", vec![t("s")]).await;
    let Value::Map(counts) = &cborrpc::value::as_sequence(&counts).expect("a reply pair")[0] else {
        panic!("{counts:?}")
    };
    let int = |v: &Value| i64::try_from(v.as_integer().expect("an integer")).unwrap();
    let counts: std::collections::BTreeMap<i64, usize> =
        counts.iter().map(|(k, n)| (int(k), int(n) as usize)).collect();
    let total: usize = counts.values().sum();
    let finished = counts.get(&4).copied().unwrap_or(0);
    assert_eq!(total, units, "every unit is still there: {counts:?}");
    assert!(
        finished >= acked.len() && finished <= acked.len() + WORKERS,
        "{finished} finished, {} acknowledged, {WORKERS} workers",
        acked.len()
    );
    eprintln!("  {} finishes acknowledged before SIGTERM; after restart {counts:?}", acked.len());
    d.log()
}

/// The URL of the test PostgreSQL cluster (`COORDINATE_TEST_PG`, which
/// ./run-tests sets); without it a PostgreSQL test fails, never skips.
pub fn cluster_url() -> String {
    std::env::var("COORDINATE_TEST_PG")
        .expect("COORDINATE_TEST_PG is not set: run ./run-tests, or start a cluster with scripts/pg-cluster")
}

/// Creates a fresh database on the test cluster, named after `prefix`,
/// this process and a counter, and returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let url = cluster_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    drop(client);
    let _ = task.await;
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}
