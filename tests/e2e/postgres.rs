//! End-to-end tests of the PostgreSQL backend: several daemons on one
//! database, durability across `kill -9`, and a database that goes away
//! and comes back. Each test uses a fresh database on the cluster named by
//! `COORDINATE_TEST_PG` (started by `./run-tests`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use cborrpc::value::as_sequence;
use cborrpc::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_one_database_and_hand_out_each_unit_once() {
    const UNITS: usize = 20_000;
    const WORKERS: usize = 32;
    let db = fresh_database("e2e").await;
    let options = Options { backend: db.clone(), ..Options::loopback() };
    let daemons = [Daemon::start(options.clone()).await, Daemon::start(options).await];
    let mut c = daemons[0].client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("shared"))])]).await;
    for chunk in (0..UNITS).collect::<Vec<_>>().chunks(1000) {
        let items =
            chunk.iter().map(|n| Value::Array(vec![t(&format!("u{n:05}")), map(&[("n", i(*n as i64))])])).collect();
        c.ok("add_work_units", vec![t("shared"), Value::Array(items)]).await;
    }
    let seen: Arc<Mutex<HashMap<Vec<u8>, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let addr = daemons[w % 2].addr;
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let worker = format!("w{w}");
            let mut empty = 0;
            // SKIP LOCKED may answer "nothing" while others hold the last
            // units; stop after a few empty answers in a row.
            while empty < 3 {
                let got = grant_list(&c.ok("get_work", vec![t(&worker), map(&[("max_jobs", i(10))])]).await);
                if got.is_empty() {
                    empty += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                empty = 0;
                for g in got {
                    let parts = as_sequence(&g).unwrap();
                    let key = cborrpc::value::string_bytes(&parts[1]).expect("key is a string").to_vec();
                    *seen.lock().await.entry(key.clone()).or_default() += 1;
                    let r =
                        c.ok("update_work_unit", vec![t("shared"), parts[1].clone(), map(&[("status", i(4))])]).await;
                    assert_eq!(r, ok_pair(Value::Bool(true)));
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let seen = seen.lock().await;
    assert_eq!(seen.len(), UNITS);
    assert!(seen.values().all(|&n| n == 1), "some unit was handed out twice");
    let mut c2 = daemons[1].client().await;
    assert_eq!(c2.ok("count_work_units", vec![t("shared")]).await, ok_pair(Value::Map(vec![(i(4), i(UNITS as i64))])));
}

#[tokio::test]
async fn work_survives_kill_9_and_leases_expire_afterwards() {
    let db = fresh_database("e2e").await;
    let d = Process::start(&["--backend", &db]);
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("durable"))])]).await;
    let items: Vec<Value> = (0..100).map(|n| Value::Array(vec![t(&format!("k{n:03}")), map(&[("n", i(n))])])).collect();
    c.ok("add_work_units", vec![t("durable"), Value::Array(items)]).await;
    // Three units finished, two failed, five pending on a short lease.
    let got = grant_list(&c.ok("get_work", vec![t("w"), map(&[("max_jobs", i(10)), ("lease_time", i(2))])]).await);
    assert_eq!(got.len(), 10);
    for (n, g) in got.iter().enumerate().take(5) {
        let key = as_sequence(g).unwrap()[1].clone();
        let status = if n < 3 { 4 } else { 5 };
        c.ok("update_work_unit", vec![t("durable"), key, map(&[("status", i(status))])]).await;
    }
    let pending_keys: Vec<Value> = got[5..].iter().map(|g| as_sequence(g).unwrap()[1].clone()).collect();
    let mut d = d;
    d.signal(libc::SIGKILL);
    let _ = d.child.wait();
    drop(d);

    let d = Process::start(&["--backend", &db]);
    let mut c = d.client().await;
    let expected = Value::Map(vec![(i(1), i(90)), (i(3), i(5)), (i(4), i(3)), (i(5), i(2))]);
    assert_eq!(c.ok("count_work_units", vec![t("durable")]).await, ok_pair(expected));
    let status = c.ok("get_work_unit_status", vec![t("durable"), Value::Array(pending_keys.clone())]).await;
    for s in as_sequence(&as_sequence(&status).unwrap()[0]).unwrap() {
        let Value::Map(m) = s else { panic!("no status") };
        assert_eq!(cborrpc::value::map_get(m, "status"), Some(&i(3)));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expected = Value::Map(vec![(i(1), i(95)), (i(4), i(3)), (i(5), i(2))]);
    assert_eq!(c.ok("count_work_units", vec![t("durable")]).await, ok_pair(expected));
    let units =
        c.ok("get_work_units", vec![t("durable"), map(&[("work_unit_keys", Value::Array(pending_keys))])]).await;
    assert_eq!(as_sequence(&as_sequence(&units).unwrap()[0]).unwrap().len(), 5);
}

/// A TCP relay to the database that the test can cut and restore.
struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(addr: Option<SocketAddr>, target: SocketAddr) -> Relay {
        let listener = TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap())).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                pipes.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, task }
    }

    /// Closes every relayed connection and stops listening.
    fn cut(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_database_gives_errors_then_recovers() {
    let db = fresh_database("e2e").await;
    let cfg: tokio_postgres::Config = db.parse().unwrap();
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let relay = Relay::start(None, target).await;
    let via_relay = db.replacen(&format!(":{port}/"), &format!(":{}/", relay.addr.port()), 1);
    // The real binary at its default log level, to read what an operator sees.
    let d = Process::start(&["--backend", &via_relay]);
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await;
    c.ok("add_work_units", vec![t("s"), Value::Array(vec![t("a"), t("b")])]).await;

    let addr = relay.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = c.call("count_work_units", vec![t("s")]).await.expect_err("the database is gone");
    assert!(err.starts_with("backend error:"), "{err}");
    // The operator is told which call failed and why, at warn level.
    let line = d.wait_for_log("method=count_work_units");
    assert!(line.contains("WARN") && line.contains("backend error"), "{line}");
    // The connection to the client is still usable, and other calls fail cleanly too.
    assert!(c.call("add_work_units", vec![t("s"), Value::Array(vec![t("c")])]).await.is_err());

    let _relay = Relay::start(Some(addr), target).await;
    let mut recovered = None;
    for _ in 0..100 {
        if let Ok(v) = c.call("count_work_units", vec![t("s")]).await {
            recovered = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recovered, Some(ok_pair(Value::Map(vec![(i(1), i(2))]))), "daemon serves again, nothing lost");
}

/// SIGTERM during a 16-worker drain (see [`sigterm_under_load`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_nothing_acknowledged() {
    let db = fresh_database("e2e").await;
    sigterm_under_load(|| Process::start(&["--backend", &db]), 10_000, 3_000).await;
}

fn lock_path(labels: &[&str]) -> Value {
    Value::Array(vec![Value::Array(labels.iter().map(|l| t(l)).collect())])
}

/// The `lock` methods' locks live in the database: a lock taken through
/// one daemon excludes its path, prefixes and extensions through the other,
/// both see one owner, and an unlock or a namespace deletion through either
/// is seen by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_one_set_of_locks() {
    let db = fresh_database("e2e").await;
    let options = Options { backend: db.clone(), ..Options::loopback() };
    let (a, b) = (Daemon::start(options.clone()).await, Daemon::start(options).await);
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let taken = ok_pair(Value::Bool(true));
    assert_eq!(ca.ok("lock", vec![t("ownerA"), i(300), lock_path(&["jobs", "j1"])]).await, taken);
    for p in [&["jobs", "j1"][..], &["jobs"], &["jobs", "j1", "part"]] {
        let refused = cb.ok("lock", vec![t("ownerB"), i(300), lock_path(p)]).await;
        assert_ne!(refused, taken, "{p:?} was locked through the other daemon: {refused:?}");
    }
    assert_eq!(cb.ok("readlock", vec![lock_path(&["jobs", "j1"])]).await, Value::Array(vec![t("ownerA")]));
    assert_eq!(cb.ok("lock", vec![t("ownerB"), i(300), lock_path(&["jobs", "j2"])]).await, taken);
    let got = ca
        .ok(
            "locksome",
            vec![
                t("ownerA"),
                i(300),
                Value::Array(vec![Value::Array(vec![t("jobs"), t("j2")]), Value::Array(vec![t("jobs"), t("j3")])]),
            ],
        )
        .await;
    assert_eq!(
        got,
        Value::Array(vec![Value::Array(vec![Value::Null, Value::Array(vec![t("jobs"), t("j3")])]), Value::Null])
    );
    // Renewing and unlocking need the owner, whichever daemon is asked.
    assert_ne!(cb.ok("renew", vec![t("ownerB"), i(300), lock_path(&["jobs", "j1"])]).await, taken);
    assert_eq!(cb.ok("renew", vec![t("ownerA"), i(300), lock_path(&["jobs", "j1"])]).await, taken);
    assert_ne!(cb.ok("unlock", vec![t("ownerB"), lock_path(&["jobs", "j1"])]).await, taken);
    assert_eq!(cb.ok("unlock", vec![t("ownerA"), lock_path(&["jobs", "j1"])]).await, taken);
    assert_eq!(ca.ok("readlock", vec![lock_path(&["jobs", "j1"])]).await, Value::Array(vec![Value::Null]));
    assert_eq!(ca.ok("lock", vec![t("ownerA"), i(300), lock_path(&["jobs", "j1"])]).await, taken);
    cb.ok("delete_namespace", vec![t("jobs")]).await;
    let all = Value::Array(vec![
        Value::Array(vec![t("jobs"), t("j1")]),
        Value::Array(vec![t("jobs"), t("j2")]),
        Value::Array(vec![t("jobs"), t("j3")]),
    ]);
    assert_eq!(ca.ok("readlock", vec![all]).await, Value::Array(vec![Value::Null; 3]));
}

/// Many clients of two daemons race for the same few paths: at any moment
/// each path has at most one owner, so no two clients ever both hold it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_lockers_on_two_daemons_never_share_a_path() {
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 40;
    let db = fresh_database("e2e").await;
    let options = Options { backend: db.clone(), ..Options::loopback() };
    let daemons = [Daemon::start(options.clone()).await, Daemon::start(options).await];
    let holders: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let addr = daemons[n % 2].addr;
        let holders = holders.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let me = format!("client{n}");
            let mut took = 0;
            for r in 0..ROUNDS {
                let slot = (n + r) % 3;
                // A path, or its parent, so prefixes race with extensions.
                let path = if r % 2 == 0 { lock_path(&["race", &slot.to_string()]) } else { lock_path(&["race"]) };
                if c.ok("lock", vec![t(&me), i(300), path.clone()]).await != ok_pair(Value::Bool(true)) {
                    continue;
                }
                took += 1;
                {
                    let mut h = holders.lock().await;
                    // Whole-namespace locks take slot 99; any other holder
                    // of the namespace, or of the same slot, is a double grant.
                    let key = if r % 2 == 0 { slot } else { 99 };
                    let clash = h.iter().find(|(k, _)| **k == key || **k == 99 || key == 99);
                    assert!(clash.is_none(), "{me} got {key} while {clash:?} was held");
                    h.insert(key, n);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                {
                    let mut h = holders.lock().await;
                    h.retain(|_, who| *who != n);
                }
                assert_eq!(c.ok("unlock", vec![t(&me), path]).await, ok_pair(Value::Bool(true)));
            }
            took
        }));
    }
    let mut took = 0;
    for task in tasks {
        took += task.await.unwrap();
    }
    assert!(took >= CLIENTS, "only {took} locks were ever taken");
}

/// A lock survives `kill -9` of the daemon that took it, keeps its owner
/// and deadline, and an unlock answered before the kill stays done.
#[tokio::test]
async fn locks_survive_kill_9() {
    let db = fresh_database("e2e").await;
    let d = Process::start(&["--backend", &db]);
    let mut c = d.client().await;
    let taken = ok_pair(Value::Bool(true));
    assert_eq!(c.ok("lock", vec![t("alice"), i(600), lock_path(&["jobs", "a"])]).await, taken);
    assert_eq!(c.ok("lock", vec![t("bob"), i(600), lock_path(&["jobs", "b"])]).await, taken);
    assert_eq!(c.ok("unlock", vec![t("bob"), lock_path(&["jobs", "b"])]).await, taken);
    d.signal(libc::SIGKILL);
    drop(d);
    let d = Process::start(&["--backend", &db]);
    let mut c = d.client().await;
    assert_eq!(c.ok("readlock", vec![lock_path(&["jobs", "a"])]).await, Value::Array(vec![t("alice")]));
    assert_eq!(c.ok("readlock", vec![lock_path(&["jobs", "b"])]).await, Value::Array(vec![Value::Null]));
    assert_ne!(c.ok("lock", vec![t("bob"), i(600), lock_path(&["jobs"])]).await, taken);
    assert_eq!(c.ok("renew", vec![t("alice"), i(600), lock_path(&["jobs", "a"])]).await, taken);
}

/// A cluster of this test's own (scripts/pg-cluster), so it can be
/// restarted without disturbing tests that share the suite's cluster;
/// stopped and removed on drop.
struct OwnCluster {
    dir: std::path::PathBuf,
    url: String,
}

impl OwnCluster {
    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster")
    }

    fn start() -> OwnCluster {
        let dir = data_dir("own-cluster");
        let out = std::process::Command::new(Self::script())
            .args(["start", dir.to_str().unwrap(), "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .output()
            .expect("run scripts/pg-cluster");
        assert!(out.status.success(), "pg-cluster start: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let url = text.trim().strip_prefix("export COORDINATE_TEST_PG=").expect("the cluster's URL").to_string();
        OwnCluster { dir, url }
    }

    /// A fast restart: every client is disconnected, the server comes back
    /// on the same port with the same data.
    fn restart(&self) {
        let out = std::process::Command::new(Self::script())
            .args(["restart", self.dir.to_str().unwrap()])
            .output()
            .expect("run scripts/pg-cluster");
        assert!(out.status.success(), "pg-cluster restart: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script()).args(["stop", self.dir.to_str().unwrap()]).output();
    }
}

/// A relay that can stall: while stalled it accepts and reads but forwards
/// nothing, as an unreachable network does (no reset, no answer).
struct StallRelay {
    addr: SocketAddr,
    stalled: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StallRelay {
    async fn start(target: SocketAddr) -> StallRelay {
        use std::sync::atomic::Ordering::Relaxed;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let flag = stalled.clone();
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let flag = flag.clone();
                pipes.spawn(async move {
                    while flag.load(Relaxed) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    let pipe = |mut r: tokio::net::tcp::OwnedReadHalf, mut w: tokio::net::tcp::OwnedWriteHalf| {
                        let flag = flag.clone();
                        async move {
                            let mut buf = vec![0u8; 16 << 10];
                            while let Ok(n @ 1..) = r.read(&mut buf).await {
                                while flag.load(Relaxed) {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                                if w.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                            let _ = w.shutdown().await;
                        }
                    };
                    tokio::join!(pipe(ri, wo), pipe(ro, wi));
                });
            }
        });
        StallRelay { addr, stalled, task }
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for StallRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A 64-worker drain through a database that first becomes unreachable for
/// 30 s (packets go nowhere) and later restarts. Meanwhile every request
/// is answered, with an error at the latest at `--pg-timeout`; the daemon
/// reconnects by itself; afterwards every unit is finished, and no unit is
/// handed out after its finish was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_and_restart_under_a_64_worker_drain_lose_nothing() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
    const UNITS: usize = 3000;
    const WORKERS: usize = 64;
    const TIMEOUT_SECS: u64 = 2;
    let cluster = OwnCluster::start();
    let cfg: tokio_postgres::Config = cluster.url.parse().unwrap();
    let port = cfg.get_ports().first().copied().unwrap();
    let relay = StallRelay::start(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let via_relay = cluster.url.replacen(&format!(":{port}/"), &format!(":{}/", relay.addr.port()), 1);
    let d = Process::start(&["--backend", &via_relay, "--pg-timeout", &TIMEOUT_SECS.to_string()]);
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("outage"))])]).await;
    let items: Vec<Value> = (0..UNITS).map(|n| t(&format!("u{n:05}"))).collect();
    c.ok("add_work_units", vec![t("outage"), Value::Array(items)]).await;

    let acked: Arc<Mutex<HashSet<Vec<u8>>>> = Arc::default();
    let regranted = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let slowest_ms = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (acked, regranted, errors, slowest_ms) =
            (acked.clone(), regranted.clone(), errors.clone(), slowest_ms.clone());
        let addr = d.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let worker = format!("w{w}");
            let timed = async |c: &mut Client, method: &str, params: Vec<Value>| {
                let started = std::time::Instant::now();
                let r = c.call(method, params).await;
                slowest_ms.fetch_max(started.elapsed().as_millis() as u64, Relaxed);
                if r.is_err() {
                    errors.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r
            };
            let all_finished = ok_pair(Value::Map(vec![(i(4), i(UNITS as i64))]));
            loop {
                let opts = map(&[("max_jobs", i(1)), ("lease_time", i(3))]);
                let Ok(got) = timed(&mut c, "get_work", vec![t(&worker), opts]).await else { continue };
                let Some(grant) = grant_list(&got).into_iter().next() else {
                    // Nothing to hand out: done once every unit is finished
                    // (a finish whose reply was lost and whose repeat found
                    // it done is never acknowledged here, so only the daemon
                    // can say); else units wait for lost grants' leases.
                    if timed(&mut c, "count_work_units", vec![t("outage")]).await == Ok(all_finished.clone()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let key = as_sequence(&grant).unwrap()[1].clone();
                let name = cborrpc::value::string_bytes(&key).expect("key is a string").to_vec();
                if acked.lock().await.contains(&name) {
                    regranted.fetch_add(1, Relaxed);
                }
                loop {
                    let done = vec![t("outage"), key.clone(), map(&[("status", i(4))])];
                    match timed(&mut c, "update_work_unit", done).await {
                        Ok(r) => {
                            // `false`: it was already finished, by an
                            // earlier try of ours whose reply was lost.
                            if r == ok_pair(Value::Bool(true)) {
                                acked.lock().await.insert(name);
                            }
                            break;
                        }
                        Err(_) => continue,
                    }
                }
            }
        }));
    }
    let progress = |n: usize| {
        let acked = acked.clone();
        async move {
            let started = std::time::Instant::now();
            while acked.lock().await.len() < n {
                assert!(started.elapsed() < Duration::from_secs(120), "the drain stopped before {n} units");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    progress(UNITS / 5).await;
    relay.stall(true);
    // While unreachable, a request is answered with an error, no later than
    // the timeout (plus scheduling slack).
    let mut probe = d.client().await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let r = probe.call("count_work_units", vec![t("outage")]).await;
        let took = started.elapsed();
        let err = r.expect_err("the database is unreachable");
        assert!(err.contains("did not answer within"), "{err}");
        assert!(took < Duration::from_secs(TIMEOUT_SECS + 3), "an error took {took:?}");
    }
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(Duration::from_secs(3 * TIMEOUT_SECS))).await;
    let acked_during = acked.lock().await.len();
    relay.stall(false);

    progress((acked_during + UNITS) / 2 + 1).await;
    cluster.restart();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(180), t).await.expect("the drain finishes").unwrap();
    }
    let mut c = d.client().await;
    let counts = c.ok("count_work_units", vec![t("outage")]).await;
    assert_eq!(counts, ok_pair(Value::Map(vec![(i(4), i(UNITS as i64))])), "every unit finished");
    assert_eq!(regranted.load(Relaxed), 0, "a unit was handed out after its finish was acknowledged");
    assert!(errors.load(Relaxed) > 0, "the outage was never seen");
    let slowest = Duration::from_millis(slowest_ms.load(Relaxed));
    assert!(slowest < Duration::from_secs(TIMEOUT_SECS + 3), "a request took {slowest:?}");
    drop(d);
}
