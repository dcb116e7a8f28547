//! End-to-end crash tests of the durable default backend, on the real
//! binary: `kill -9` during a 64-worker drain and during bulk adds,
//! SIGTERM under load, torn journal tails at random cut points, a damaged
//! record in the middle of a journal, and a second daemon on a directory
//! in use. Every data directory lives under `CARGO_TARGET_TMPDIR`.
//!
//! The random moments and cut points come from one seed per test, printed
//! at its start; `DURABLE_TEST_SEED=N` runs a test again with the same
//! choices (the daemon's timing still varies).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use cborrpc::value::{as_sequence, map_get, string_bytes};
use cborrpc::Value;
use jobserver::wire::status::{AVAILABLE, FAILED, FINISHED, PENDING};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rng_for(test: &str) -> StdRng {
    let seed = std::env::var("DURABLE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (DURABLE_TEST_SEED={seed} repeats its choices)");
    StdRng::seed_from_u64(seed)
}

fn start(dir: &Path, extra: &[&str]) -> Process {
    let mut args = vec!["--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    Process::start(&args)
}

/// `kill -9` and reap.
fn kill9(mut d: Process) {
    d.signal(libc::SIGKILL);
    let _ = d.child.wait();
}

/// SIGTERM, and the daemon must exit 0.
fn terminate(mut d: Process) -> String {
    d.signal(libc::SIGTERM);
    let status = d.child.wait().unwrap();
    assert!(status.success(), "exit status {status} after SIGTERM; log:\n{}", d.log());
    d.log()
}

/// The first element of a `[result, error]` reply.
fn first(v: &Value) -> &Value {
    &as_sequence(v).expect("a reply pair")[0]
}

fn key_text(v: &Value) -> String {
    String::from_utf8(string_bytes(v).expect("key is a string").to_vec()).unwrap()
}

/// The keys of the units handed out by one `get_work` answer.
fn grants(answer: &Value) -> Vec<String> {
    grant_list(answer).iter().map(|g| key_text(&as_sequence(g).unwrap()[1])).collect()
}

async fn counts(c: &mut Client, spec: &str) -> BTreeMap<i64, i64> {
    let v = c.ok("count_work_units", vec![t(spec)]).await;
    let Value::Map(m) = first(&v) else { panic!("count_work_units: {v:?}") };
    m.iter().map(|(k, n)| (as_int(k), as_int(n))).collect()
}

fn as_int(v: &Value) -> i64 {
    i64::try_from(v.as_integer().expect("an integer")).unwrap()
}

#[derive(Debug, Clone, PartialEq)]
struct Status {
    status: i64,
    worker: Option<String>,
    expiration: Option<i64>,
}

/// `get_work_unit_status` of many keys (`None`: no such unit).
async fn statuses(c: &mut Client, spec: &str, keys: &[String]) -> Vec<Option<Status>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(2000) {
        let v = c.ok("get_work_unit_status", vec![t(spec), Value::Array(chunk.iter().map(|k| t(k)).collect())]).await;
        for s in as_sequence(first(&v)).unwrap() {
            out.push(match s {
                Value::Null => None,
                Value::Map(m) => Some(Status {
                    status: as_int(map_get(m, "status").unwrap()),
                    worker: map_get(m, "worker_id").map(key_text),
                    expiration: map_get(m, "expiration").map(as_int),
                }),
                other => panic!("status {other:?}"),
            });
        }
    }
    assert_eq!(out.len(), keys.len());
    out
}

/// Every unit key of a spec, in key order.
async fn all_keys(c: &mut Client, spec: &str) -> Vec<String> {
    let v = c.ok("get_work_units", vec![t(spec), map(&[("limit", i(1_000_000))])]).await;
    as_sequence(first(&v)).unwrap().iter().map(|u| key_text(&as_sequence(u).unwrap()[0])).collect()
}

/// Keys of the units of a spec in one status.
async fn keys_in(c: &mut Client, spec: &str, status: i64) -> Vec<String> {
    let v = c.ok("get_work_units", vec![t(spec), map(&[("state", i(status)), ("limit", i(1_000_000))])]).await;
    as_sequence(first(&v)).unwrap().iter().map(|u| key_text(&as_sequence(u).unwrap()[0])).collect()
}

async fn add_units(c: &mut Client, spec: &str, keys: &[String]) {
    for chunk in keys.chunks(2000) {
        let items = chunk.iter().map(|k| Value::Array(vec![t(k), map(&[("k", t(k))])])).collect();
        let r = c.ok("add_work_units", vec![t(spec), Value::Array(items)]).await;
        assert_eq!(r, ok_pair(Value::Bool(true)));
    }
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn has_snapshot(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("snapshot."))
}

// ---------------------------------------------------------------------
// kill -9 during a 64-worker drain

/// What the workers of a drain were told, and what they had asked when
/// the daemon died; kept across crashes.
#[derive(Default)]
struct Ledger {
    /// Acknowledged grants: key -> worker.
    granted: HashMap<String, String>,
    /// Keys acknowledged as granted a second time.
    granted_twice: Vec<String>,
    /// Acknowledged finishes and fails: key -> status.
    done: HashMap<String, i64>,
    /// Updates sent without a reply: key -> status asked.
    in_flight: HashMap<String, i64>,
    /// Updates whose reply a crash swallowed but which were found done
    /// after it: key -> status.
    landed: HashMap<String, i64>,
    /// Acknowledged grants still pending after a crash (the update was
    /// never sent, or was lost with the daemon).
    open: HashSet<String>,
    /// Crashes so far.
    crashes: i64,
}

/// The status a drain gives a unit: about one in four fails.
fn outcome(key: &str) -> i64 {
    if key.bytes().map(u64::from).sum::<u64>() % 4 == 0 {
        FAILED
    } else {
        FINISHED
    }
}

/// One worker: get_work, then finish or fail each unit, until no work is
/// left (`Ok(true)`) or the connection dies (`Ok(false)`).
async fn drain_worker(
    addr: std::net::SocketAddr,
    name: String,
    max_jobs: i64,
    ledger: Arc<Mutex<Ledger>>,
) -> Result<bool, String> {
    let mut c = Client::connect(addr).await;
    loop {
        let Some(r) = c.try_call("get_work", vec![t(&name), map(&[("max_jobs", i(max_jobs))])]).await else {
            return Ok(false);
        };
        let got = grants(&r.map_err(|e| format!("{name}: get_work failed: {e}"))?);
        if got.is_empty() {
            return Ok(true);
        }
        {
            let mut l = ledger.lock().unwrap();
            for k in &got {
                if l.granted.insert(k.clone(), name.clone()).is_some() {
                    l.granted_twice.push(k.clone());
                }
            }
        }
        for k in got {
            let status = outcome(&k);
            ledger.lock().unwrap().in_flight.insert(k.clone(), status);
            let Some(r) = c.try_call("update_work_unit", vec![t("s"), t(&k), map(&[("status", i(status))])]).await
            else {
                return Ok(false);
            };
            let r = r.map_err(|e| format!("{name}: update_work_unit {k} failed: {e}"))?;
            if r != ok_pair(Value::Bool(true)) {
                return Err(format!("{name}: update_work_unit {k} answered {r:?}"));
            }
            let mut l = ledger.lock().unwrap();
            l.in_flight.remove(&k);
            l.done.insert(k, status);
        }
    }
}

fn run_drain(
    addr: std::net::SocketAddr,
    prefix: &str,
    workers: usize,
    ledger: &Arc<Mutex<Ledger>>,
) -> Vec<tokio::task::JoinHandle<Result<bool, String>>> {
    (0..workers)
        .map(|w| {
            let max_jobs = 1 + (w % 3) as i64;
            tokio::spawn(drain_worker(addr, format!("{prefix}{w}"), max_jobs, ledger.clone()))
        })
        .collect()
}

/// `kill -9` at random moments of a 64-worker drain (some units finish,
/// some fail), each time restarting on the same directory and checking
/// what survived: every unit, every acknowledged finish and fail, every
/// acknowledged lease (still pending for its worker, expiring when it
/// said), and nothing acknowledged handed out again by the next crash's
/// drain. Then the rest is drained and every unit must end exactly once;
/// a last `kill -9` and restart must read back the final state. Runs
/// vary the fsync mode and force frequent snapshots, so recovery from
/// snapshot plus journal is crashed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_64_worker_drain_loses_nothing_acknowledged() {
    // Each crash lands after a random number of acknowledged updates,
    // not after a random time: a faster machine must not drain it all
    // before the kill (CI once did, in interval mode).
    const UNITS: usize = 60_000;
    const CRASHES: usize = 2;
    let mut rng = rng_for("kill_9_during_a_64_worker_drain");
    let runs: [&[&str]; 3] = [
        &["--fsync", "always"],
        &["--fsync", "always", "--snapshot-after-bytes", "65536"],
        &["--fsync", "interval", "--snapshot-after-bytes", "32768"],
    ];
    for flags in runs {
        // Updates acknowledged by each drain before its kill: at most a
        // third of the units each, so the drain is always mid-way.
        let kill_after: Vec<usize> = (0..CRASHES).map(|_| rng.random_range(200..UNITS / 3)).collect();
        let started = Instant::now();
        crash_a_drain(flags, &kill_after, UNITS).await;
        eprintln!("  run {flags:?}: {:.1} s", started.elapsed().as_secs_f64());
    }
}

async fn crash_a_drain(flags: &[&str], kill_after: &[usize], units: usize) {
    let dir = data_dir("kill9-drain");
    let keys: Vec<String> = (0..units).map(|n| format!("k{n:06}")).collect();
    let d = start(&dir, flags);
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await;
    add_units(&mut c, "s", &keys).await;
    drop(c);

    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let mut d = d;
    for (crash, &after) in kill_after.iter().enumerate() {
        let workers = run_drain(d.addr, &format!("c{crash}w"), 64, &ledger);
        let target = ledger.lock().unwrap().done.len() + after;
        let t0 = Instant::now();
        wait_until("the drain's acknowledged updates", Duration::from_secs(120), || {
            ledger.lock().unwrap().done.len() >= target
        })
        .await;
        let after = t0.elapsed();
        let snapshotted = d.log().contains("snapshot written");
        kill9(d);
        for w in workers {
            let drained = w.await.expect("worker task").unwrap_or_else(|e| panic!("{e}"));
            assert!(!drained, "a worker found no work before the kill: raise UNITS so the crash lands mid-drain");
        }
        d = start(&dir, flags);
        let mut c = d.client().await;
        // The workers are gone: the ledger is ours until the next drain.
        let mut l = std::mem::take(&mut *ledger.lock().unwrap());
        let in_flight = l.in_flight.len();
        let pending = check_after_crash(&mut c, &mut l, units).await;
        eprintln!(
            "  {flags:?}: kill -9 after {after:?}: {} grants, {} updates acknowledged, {in_flight} in flight, \
             {} leases open, {pending} units pending; snapshot before the kill: {snapshotted}",
            l.granted.len(),
            l.done.len(),
            l.open.len(),
        );
        *ledger.lock().unwrap() = l;
    }
    let l1 = std::mem::take(&mut *ledger.lock().unwrap());

    // Drain the rest with new workers, without fsync to save time (a
    // daemon crash, the last check, loses nothing then either: every
    // reply still waits for the write). Nothing leased or done before a
    // crash may be handed out again.
    drop(d);
    let unsynced: Vec<&str> =
        flags.iter().map(|f| if f.starts_with("always") || f.starts_with("interval") { "never" } else { f }).collect();
    let d = start(&dir, &unsynced);
    let mut c = d.client().await;
    let ledger2: Arc<Mutex<Ledger>> = Arc::default();
    for w in run_drain(d.addr, "v", 32, &ledger2) {
        assert!(w.await.expect("worker task").unwrap_or_else(|e| panic!("{e}")), "the drain ends with no work left");
    }
    let l2 = std::mem::take(&mut *ledger2.lock().unwrap());
    assert!(l2.granted_twice.is_empty(), "units handed out twice after the crashes: {:?}", l2.granted_twice);
    let again: Vec<&String> = l2.granted.keys().filter(|k| l1.granted.contains_key(*k)).collect();
    assert!(again.is_empty(), "leased before a crash and handed out again after it: {again:?}");
    // What is still pending: the open leases from before the crashes and
    // the grants whose reply a crash swallowed. Their workers finish them.
    let pending = keys_in(&mut c, "s", PENDING).await;
    let unacked: Vec<&String> = pending.iter().filter(|k| !l1.open.contains(*k)).collect();
    assert!(unacked.iter().all(|k| !l1.granted.contains_key(*k)), "pending keys {unacked:?}");
    assert!(l1.open.iter().all(|k| pending.contains(k)), "an open lease ended by itself");
    let mut cleanup = HashMap::new();
    for k in &pending {
        let status = outcome(k);
        let r = c.ok("update_work_unit", vec![t("s"), t(k), map(&[("status", i(status))])]).await;
        assert_eq!(r, ok_pair(Value::Bool(true)), "{k}");
        cleanup.insert(k.clone(), status);
    }

    // Every unit ended exactly once, by one acknowledged update (or one
    // whose reply a crash swallowed but which landed).
    let mut ended: HashMap<&String, Vec<i64>> = HashMap::new();
    for (k, s) in l1.done.iter().chain(&l1.landed).chain(&l2.done).chain(&cleanup) {
        ended.entry(k).or_default().push(*s);
    }
    let twice: Vec<_> = ended.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(twice.is_empty(), "units ended twice: {twice:?}");
    assert_eq!(ended.len(), units, "every unit ended");
    let want_failed = ended.values().filter(|v| v[0] == FAILED).count() as i64;
    let want = BTreeMap::from([(FINISHED, units as i64 - want_failed), (FAILED, want_failed)]);
    assert_eq!(counts(&mut c, "s").await, want);

    // And the final state survives one more crash (snapshot plus journal
    // in the runs that snapshot often).
    if flags.contains(&"--snapshot-after-bytes") {
        assert!(has_snapshot(&dir), "a run with --snapshot-after-bytes wrote no snapshot:\n{}", d.log());
    }
    kill9(d);
    let d = start(&dir, flags);
    let mut c = d.client().await;
    assert_eq!(counts(&mut c, "s").await, want, "after the last kill -9");
    let st = statuses(&mut c, "s", &keys).await;
    for (k, s) in keys.iter().zip(st) {
        assert_eq!(s.map(|s| s.status), Some(ended[k][0]), "{k} after the last kill -9");
    }
    kill9(d);
    let _ = fs::remove_dir_all(&dir);
}

/// After a crash and restart: every unit exists, every acknowledged
/// update holds, every acknowledged grant not since ended is pending for
/// its worker with its lease intact, and the counts add up. Settles the
/// updates that were in flight (landed or not). Returns the units pending.
async fn check_after_crash(c: &mut Client, l: &mut Ledger, units: usize) -> i64 {
    assert!(l.granted_twice.is_empty(), "units handed out twice: {:?}", l.granted_twice);
    let counts = counts(c, "s").await;
    assert_eq!(counts.values().sum::<i64>(), units as i64, "every added unit exists: {counts:?}");
    let granted: Vec<String> = l.granted.keys().filter(|k| !l.done.contains_key(*k)).cloned().collect();
    let st = statuses(c, "s", &granted).await;
    let now = now_unix();
    for (k, s) in granted.iter().zip(st) {
        let s = s.unwrap_or_else(|| panic!("{k} was granted and is gone"));
        let worker = &l.granted[k];
        if let Some(&landed) = l.landed.get(k) {
            assert_eq!(s.status, landed, "{k} was found done after an earlier crash: {s:?}");
        } else if s.status == PENDING {
            assert_eq!(s.worker.as_ref(), Some(worker), "{k} was granted to {worker}: {s:?}");
            // Granted with the default 900 s lease: the lease survived.
            let exp = s.expiration.unwrap_or_else(|| panic!("{k}: pending without an expiration"));
            assert!(exp > now + 600 && exp <= now + 901, "{k}: lease expires at {exp}, now is {now}");
            l.open.insert(k.clone());
        } else {
            assert_eq!(
                Some(&s.status),
                l.in_flight.get(k),
                "{k} was granted to {worker} and not acknowledged as done; it must still be pending: {s:?}"
            );
            l.open.remove(k);
            l.landed.insert(k.clone(), s.status);
        }
    }
    let done: Vec<String> = l.done.keys().cloned().collect();
    for (k, s) in done.iter().zip(statuses(c, "s", &done).await) {
        let want = l.done[k];
        assert_eq!(s.as_ref().map(|s| s.status), Some(want), "{k} was acknowledged as {want}: {s:?}");
        l.open.remove(k);
    }
    l.in_flight.clear();
    let n = |status| counts.get(&status).copied().unwrap_or(0);
    let acked_fail = l.done.values().filter(|&&s| s == FAILED).count() as i64;
    let acked_finish = l.done.len() as i64 - acked_fail;
    assert!(n(FINISHED) >= acked_finish && n(FAILED) >= acked_fail, "{counts:?}");
    assert_eq!(n(FINISHED) + n(FAILED), (l.done.len() + l.landed.len()) as i64, "units ended: {counts:?}");
    // Pending: the open leases, plus at most what the get_work calls in
    // flight at each crash could have granted (64 calls of 3 at most).
    l.crashes += 1;
    let open = l.open.len() as i64;
    assert!(
        n(PENDING) >= open && n(PENDING) <= open + l.crashes * 64 * 3,
        "{counts:?}: {open} acknowledged leases open after {} crashes",
        l.crashes
    );
    n(PENDING)
}

// ---------------------------------------------------------------------
// kill -9 during bulk adds

/// Several connections add batches of units; `kill -9` at a random
/// moment. After the restart every batch that got a reply is wholly
/// there, a batch in flight is there up to some point in its order
/// (batches are added in chunks), and the counts are exactly the units
/// found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_bulk_adds_keeps_every_acknowledged_batch() {
    const CONNS: usize = 6;
    const BATCH: usize = 400;
    let mut rng = rng_for("kill_9_during_bulk_adds");
    let runs: [&[&str]; 3] = [
        &["--fsync", "always"],
        &["--fsync", "never", "--snapshot-after-bytes", "262144"],
        &["--fsync", "interval=20", "--snapshot-after-bytes", "65536"],
    ];
    for flags in runs {
        let dir = data_dir("kill9-adds");
        let d = start(&dir, flags);
        let mut c = d.client().await;
        for n in 0..CONNS {
            c.ok("set_work_spec", vec![map(&[("name", t(&format!("bulk{n}")))])]).await;
        }
        // (connection, batch) of every acknowledged add; the one in flight.
        let acked: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        let in_flight: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        let mut tasks = Vec::new();
        for conn in 0..CONNS {
            let (addr, acked, in_flight) = (d.addr, acked.clone(), in_flight.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                for b in 0.. {
                    let items = (0..BATCH)
                        .map(|u| Value::Array(vec![t(&batch_key(b, u)), map(&[("b", i(b as i64)), ("pad", t(PAD))])]))
                        .collect();
                    in_flight.lock().unwrap().push((conn, b));
                    let spec = format!("bulk{conn}");
                    match c.try_call("add_work_units", vec![t(&spec), Value::Array(items)]).await {
                        None => return,
                        Some(r) => assert_eq!(r, Ok(ok_pair(Value::Bool(true))), "{spec} batch {b}"),
                    }
                    in_flight.lock().unwrap().retain(|x| *x != (conn, b));
                    acked.lock().unwrap().push((conn, b));
                }
            }));
        }
        let kill_after = Duration::from_millis(rng.random_range(200..1000));
        tokio::time::sleep(kill_after).await;
        wait_until("3 acknowledged batches", Duration::from_secs(30), || acked.lock().unwrap().len() >= 3).await;
        kill9(d);
        for task in tasks {
            task.await.expect("adding task");
        }
        let acked = acked.lock().unwrap().clone();
        let in_flight = in_flight.lock().unwrap().clone();
        assert!(in_flight.len() <= CONNS);

        let d = start(&dir, flags);
        let mut c = d.client().await;
        let mut present_units = [0i64; CONNS];
        let mut partial = 0;
        for &(conn, b) in acked.iter().chain(&in_flight) {
            let keys: Vec<String> = (0..BATCH).map(|u| batch_key(b, u)).collect();
            let st = statuses(&mut c, &format!("bulk{conn}"), &keys).await;
            let present = st.iter().filter(|s| s.is_some()).count();
            if acked.contains(&(conn, b)) {
                assert_eq!(present, BATCH, "acknowledged batch {b} of connection {conn}: {present} of {BATCH} units");
            } else {
                // Large batches are added in chunks, in order (docs/protocol.md
                // §3.2.1), each chunk one record: a crash may leave the first
                // chunks of a batch it never acknowledged, never a gap.
                assert!(
                    st[..present].iter().all(Option::is_some),
                    "batch {b} of {conn}, in flight: {present} units present, not its first {present}"
                );
                partial += (present > 0 && present < BATCH) as usize;
            }
            assert!(st.iter().flatten().all(|s| s.status == AVAILABLE));
            present_units[conn] += present as i64;
        }
        for (conn, &n) in present_units.iter().enumerate() {
            let total: i64 = counts(&mut c, &format!("bulk{conn}")).await.values().sum();
            assert_eq!(total, n, "bulk{conn} holds exactly the units of its batches found");
        }
        eprintln!(
            "  {flags:?}: kill -9 after {kill_after:?}: {} batches of {BATCH} acknowledged, {} in flight \
             ({partial} of them partly there, {} units in all)",
            acked.len(),
            in_flight.len(),
            present_units.iter().sum::<i64>() - (acked.len() * BATCH) as i64
        );
        kill9(d);
        let _ = fs::remove_dir_all(&dir);
    }
}

const PAD: &str = "pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad";

fn batch_key(b: usize, u: usize) -> String {
    format!("b{b:05}-u{u:04}")
}

// ---------------------------------------------------------------------
// SIGTERM under load

/// SIGTERM during a 16-worker drain on the durable default (see
/// [`sigterm_under_load`]); the journal is closed on the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_nothing_acknowledged() {
    let mut rng = rng_for("graceful_shutdown_under_load");
    let dir = data_dir("sigterm");
    let after = rng.random_range(100..5_000);
    let log = sigterm_under_load(|| start(&dir, &[]), 10_000, after).await;
    assert!(log.contains("journal closed"), "{log}");
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------
// Journal files

/// The frames of a journal file: (start, end, holds records) of each whole
/// frame, up to the first bytes that are not one (a zeroed, preallocated
/// tail ends the data too). The format (backends/src/journal/frame.rs,
/// docs/storage.md): a 16-byte header, then frames of magic, payload
/// length, CRC-32, payload, little-endian; magic 0xC00DF4A3 for records,
/// 0xC00DF4A5 for the sync mark that starts each written batch.
fn frames(bytes: &[u8]) -> Vec<(usize, usize, bool)> {
    const RECORDS: u32 = 0xC00D_F4A3;
    const MARK: u32 = 0xC00D_F4A5;
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 16;
    while at + 12 <= bytes.len() && [RECORDS, MARK].contains(&word(at)) {
        let end = at + 12 + word(at + 4) as usize;
        if end > bytes.len() {
            break;
        }
        out.push((at, end, word(at) == RECORDS));
        at = end;
    }
    out
}

/// The record frames of a journal file: (start, end) each.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    frames(bytes).into_iter().filter(|f| f.2).map(|f| (f.0, f.1)).collect()
}

/// The newest journal segment of a directory.
fn newest_journal(dir: &Path) -> PathBuf {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal."))
        .collect();
    names.sort();
    dir.join(names.last().expect("a journal segment"))
}

/// A copy of a data directory (its files, not its lock).
fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Adds `n` units to spec "t", one per call, keys in increasing order,
/// and stops the daemon cleanly. With `snapshot`, a first daemon adds
/// half of them with frequent snapshots and stops after writing one; a
/// second one (snapshotting rarely) adds the rest, so the newest segment
/// starts after a snapshot and holds nothing but adds.
async fn one_add_per_call(dir: &Path, n: usize, snapshot: bool, fsync: &str) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|k| format!("t{k:04}")).collect();
    let halves = if snapshot { vec![(0, n / 2, true), (n / 2, n, false)] } else { vec![(0, n, false)] };
    for (from, to, snapshot_often) in halves {
        let mut flags = vec!["--fsync", fsync];
        if snapshot_often {
            flags.extend(["--snapshot-after-bytes", "2048"]);
        }
        let d = start(dir, &flags);
        let mut c = d.client().await;
        if from == 0 {
            c.ok("set_work_spec", vec![map(&[("name", t("t"))])]).await;
        }
        for key in &keys[from..to] {
            let item = Value::Array(vec![t(key), map(&[("pad", t(PAD))])]);
            let r = c.ok("add_work_units", vec![t("t"), Value::Array(vec![item])]).await;
            assert_eq!(r, ok_pair(Value::Bool(true)));
        }
        if snapshot_often {
            d.wait_for_log("snapshot written");
        }
        terminate(d);
    }
    keys
}

/// A journal cut at random points (as a crash mid-write leaves it), in
/// the plain case and after a snapshot: the daemon starts, logs the torn
/// tail, and holds exactly the units of the whole records before the cut;
/// the tail is really cut off, so what it writes next survives another
/// restart.
#[tokio::test]
async fn torn_tails_at_random_cut_points_recover_a_consistent_prefix() {
    const UNITS: usize = 120;
    let mut rng = rng_for("torn_tails");
    for snapshot in [false, true] {
        let dir = data_dir("tail");
        let keys = one_add_per_call(&dir, UNITS, snapshot, "never").await;
        assert_eq!(snapshot, has_snapshot(&dir));
        let journal = newest_journal(&dir);
        let bytes = fs::read(&journal).unwrap();
        let fr = frames(&bytes);
        let rec = records(&bytes);
        let data_end = fr.last().unwrap().1;
        assert!(bytes[data_end..].iter().all(|&b| b == 0), "{} has bytes after its frames", journal.display());
        // Cuts start past the spec's record, the first of the plain
        // journal; every record after a cut is then one add.
        let first_cut = if snapshot {
            assert!(rec.len() >= UNITS / 2, "the newest segment holds the second daemon's adds");
            fr[0].0 + 1
        } else {
            assert_eq!(rec.len(), UNITS + 1, "the journal holds the spec and one record per add");
            rec[0].1 + 1
        };
        for cut_no in 0..5 {
            let cut = loop {
                let c = rng.random_range(first_cut..data_end);
                if !fr.iter().any(|f| f.1 == c) {
                    break c;
                }
            };
            let lost = rec.iter().filter(|f| f.1 > cut).count();
            let survivors = &keys[..UNITS - lost];
            let copy = dir.with_extension(format!("cut{cut_no}"));
            copy_dir(&dir, &copy);
            let copied_journal = copy.join(journal.file_name().unwrap());
            fs::OpenOptions::new().write(true).open(&copied_journal).unwrap().set_len(cut as u64).unwrap();

            let d = start(&copy, &["--fsync", "never"]);
            let line = d.wait_for_log("torn record");
            assert!(line.contains(&format!("offset={}", fr.iter().find(|f| f.1 > cut).unwrap().0)), "{line}");
            let mut c = d.client().await;
            assert_eq!(all_keys(&mut c, "t").await, survivors, "cut at {cut} of {data_end}");
            c.ok("add_work_units", vec![t("t"), Value::Array(vec![t("z-after")])]).await;
            terminate(d);
            let d = start(&copy, &["--fsync", "never"]);
            let mut c = d.client().await;
            let mut want = survivors.to_vec();
            want.push("z-after".into());
            assert_eq!(all_keys(&mut c, "t").await, want, "after the cut at {cut} and one more add");
            assert!(!d.log().contains("torn record"), "the torn tail was not cut off:\n{}", d.log());
            kill9(d);
            let _ = fs::remove_dir_all(&copy);
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A damaged record with valid records after it: the daemon refuses to
/// start, exits non-zero and names the file and the offset; with
/// `--truncate-corrupt-journal` it starts with the records before the
/// damage, and the journal is cut there for good.
#[tokio::test]
async fn a_corrupted_middle_record_stops_the_start_with_file_and_offset() {
    const UNITS: usize = 60;
    let mut rng = rng_for("corrupted_middle_record");
    let dir = data_dir("corrupt");
    let keys = one_add_per_call(&dir, UNITS, false, "never").await;
    let journal = newest_journal(&dir);
    let mut bytes = fs::read(&journal).unwrap();
    let fr = records(&bytes);
    assert_eq!(fr.len(), UNITS + 1, "the journal holds the spec and one record per add");
    // Frame n >= 1 is the add of keys[n - 1]; damage one well before the end.
    let n = rng.random_range(1..UNITS / 2);
    let (start_at, end) = fr[n];
    let at = rng.random_range(start_at..end);
    bytes[at] ^= 1 << rng.random_range(0..8);
    fs::write(&journal, &bytes).unwrap();

    let (status, stderr) = run_to_exit(&["--data-dir", dir.to_str().unwrap()]);
    assert!(!status.success(), "started on a damaged journal:\n{stderr}");
    assert!(stderr.contains(&journal.display().to_string()), "the message names the file:\n{stderr}");
    assert!(stderr.contains(&format!("damaged at offset {start_at}")), "byte {at} of record {n}:\n{stderr}");
    assert!(stderr.contains("--truncate-corrupt-journal"), "the message names the way out:\n{stderr}");

    let d = start(&dir, &["--truncate-corrupt-journal"]);
    let mut c = d.client().await;
    assert_eq!(all_keys(&mut c, "t").await, &keys[..n - 1], "the records before the damage");
    terminate(d);
    // Cut for good: a plain start now works and keeps the same units.
    let d = start(&dir, &[]);
    let mut c = d.client().await;
    assert_eq!(all_keys(&mut c, "t").await, &keys[..n - 1]);
    kill9(d);
    let _ = fs::remove_dir_all(&dir);
}

/// A power loss can keep a later page of the unsynced tail and lose an
/// earlier one (the kernel writes pages back in any order). Each batch
/// starts with a sync mark saying how far the file was durable: damage no
/// later mark vouches for was never acknowledged and is cut off with a log
/// line; damage a later mark says was durable stops the start.
#[tokio::test]
async fn a_hole_after_the_last_sync_is_cut_and_one_before_it_refused() {
    const UNITS: usize = 20;
    let dir = data_dir("hole");
    let keys = one_add_per_call(&dir, UNITS, false, "always").await;
    let journal = newest_journal(&dir);
    let bytes = fs::read(&journal).unwrap();
    let marks: Vec<(usize, usize, bool)> = frames(&bytes).into_iter().filter(|f| !f.2).collect();
    assert!(marks.len() > UNITS, "a mark starts each batch, one batch per add: {} marks", marks.len());
    let with_zeros = |range: (usize, usize, bool)| {
        let mut b = bytes.clone();
        b[range.0..range.1].fill(0);
        b
    };

    // The last batch's mark lost, its record kept: nothing vouches for it.
    let last = *marks.last().unwrap();
    let copy = dir.with_extension("last");
    copy_dir(&dir, &copy);
    fs::write(copy.join(journal.file_name().unwrap()), with_zeros(last)).unwrap();
    let d = start(&copy, &[]);
    let line = d.wait_for_log("hole after its last sync");
    assert!(line.contains(&format!("offset={}", last.0)), "{line}");
    let mut c = d.client().await;
    assert_eq!(all_keys(&mut c, "t").await, &keys[..UNITS - 1], "the records before the hole");
    kill9(d);
    let _ = fs::remove_dir_all(&copy);

    // The batch before it: the last batch's mark says it was durable.
    let before = marks[marks.len() - 2];
    fs::write(&journal, with_zeros(before)).unwrap();
    let (status, stderr) = run_to_exit(&["--data-dir", dir.to_str().unwrap()]);
    assert!(!status.success(), "started with a synced batch lost:\n{stderr}");
    assert!(stderr.contains(&format!("damaged at offset {}", before.0)), "{stderr}");
    let _ = fs::remove_dir_all(&dir);
}

/// A second daemon on a directory in use is refused with a message saying
/// so; the first goes on serving, and once it is gone (even by kill -9)
/// the directory opens again.
#[tokio::test]
async fn a_second_daemon_on_the_same_directory_is_refused() {
    let dir = data_dir("second");
    let first = start(&dir, &[]);
    let mut c = first.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await;
    let (status, stderr) = run_to_exit(&["--data-dir", dir.to_str().unwrap()]);
    assert!(!status.success(), "a second daemon started on {}:\n{stderr}", dir.display());
    assert!(stderr.contains("in use"), "the message says the directory is in use:\n{stderr}");
    assert!(stderr.contains(&dir.display().to_string()), "the message names the directory:\n{stderr}");
    c.ok("add_work_units", vec![t("s"), Value::Array(vec![t("a")])]).await;
    kill9(first);
    let d = start(&dir, &[]);
    let mut c = d.client().await;
    assert_eq!(all_keys(&mut c, "s").await, ["a"]);
    kill9(d);
    let _ = fs::remove_dir_all(&dir);
}
