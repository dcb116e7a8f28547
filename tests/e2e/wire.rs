//! End-to-end tests of the wire protocol over real TCP: exact bytes as
//! Python 2 and Python 3 clients send them, pipelining, value round trips,
//! every kind of bad input, and the binary's command line and signals.

use std::time::Duration;

use crate::common::*;
use cborrpc::encode::{head, to_vec};
use cborrpc::value::tuple;
use cborrpc::{encode_request, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until `n` bytes or EOF, with a timeout.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf[got..])).await.expect("reply in time");
        match r.unwrap() {
            0 => break,
            k => got += k,
        }
    }
    buf.truncate(got);
    buf
}

/// True if the server closed the connection (EOF within the timeout).
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

fn wrap(inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0xd8, 0x18];
    head(2, inner.len() as u64, &mut out);
    out.extend_from_slice(inner);
    out
}

#[tokio::test]
async fn python2_byte_string_requests_get_exact_replies() {
    let d = Daemon::memory().await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    // docs/protocol.md §1.9: list_work_specs({}) with id 1, byte-string keys.
    let inner = to_vec(&Value::Map(vec![
        (b(b"id"), i(1)),
        (b(b"method"), b(b"list_work_specs")),
        (b(b"params"), Value::Array(vec![Value::Map(vec![])])),
    ]));
    s.write_all(&wrap(&inner)).await.unwrap();
    // {"id": 1, "result": [[], null]} with text keys.
    let expected = hex("D8 18 4F A2 62 69 64 01 66 72 65 73 75 6C 74 82 80 F6");
    assert_eq!(read_n(&mut s, expected.len()).await, expected);

    // get_work("worker-1", {max_jobs: 1, lease_time: 900}) with id 7, byte for byte.
    let req = hex("D8 18 58 3F A3 42 69 64 07 46 6D 65 74 68 6F 64 48 67 65 74 5F 77 6F 72 6B \
         46 70 61 72 61 6D 73 82 48 77 6F 72 6B 65 72 2D 31 A2 48 6D 61 78 5F 6A 6F 62 73 01 \
         4A 6C 65 61 73 65 5F 74 69 6D 65 19 03 84");
    s.write_all(&req).await.unwrap();
    // {"id": 7, "result": [128([null, null, null]), null]}
    let expected = hex("D8 18 54 A2 62 69 64 07 66 72 65 73 75 6C 74 82 D8 80 83 F6 F6 F6 F6");
    assert_eq!(read_n(&mut s, expected.len()).await, expected);
}

#[tokio::test]
async fn python2_unit_comes_back_as_the_go_daemon_shapes_it() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    // Python 2 sends every str as bytes: spec map, names, keys, data.
    c.ok("set_work_spec", vec![Value::Map(vec![(b(b"name"), b(b"spec")), (b(b"min_gb"), i(1))])]).await;
    let item = tuple(vec![b(b"unit1"), Value::Map(vec![(b(b"k"), b(b"v"))])]);
    c.ok("add_work_units", vec![b(b"spec"), Value::Array(vec![item])]).await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    let req = hex("D8 18 58 3F A3 42 69 64 07 46 6D 65 74 68 6F 64 48 67 65 74 5F 77 6F 72 6B \
         46 70 61 72 61 6D 73 82 48 77 6F 72 6B 65 72 2D 31 A2 48 6D 61 78 5F 6A 6F 62 73 01 \
         4A 6C 65 61 73 65 5F 74 69 6D 65 19 03 84");
    s.write_all(&req).await.unwrap();
    // [128(["spec", b"unit1", {"k": b"v"}]), null]: name text, key bytes, data key text.
    let expected = hex("D8 18 58 21 A2 62 69 64 07 66 72 65 73 75 6C 74 82 D8 80 83 64 73 70 65 63 \
         45 75 6E 69 74 31 A1 61 6B 41 76 F6");
    assert_eq!(read_n(&mut s, expected.len()).await, expected);
}

#[tokio::test]
async fn python3_text_requests_work() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    assert_eq!(c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await, ok_pair(Value::Bool(true)));
    let listed = c.ok("list_work_specs", vec![map(&[])]).await;
    assert_eq!(listed, Value::Array(vec![Value::Array(vec![map(&[("name", t("s"))])]), Value::Null]));
    // CamelCase method names are accepted too.
    assert_eq!(c.ok("CountWorkUnits", vec![t("s")]).await, ok_pair(Value::Map(vec![])));
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("p"))])]).await;
    let mut frames = Vec::new();
    for n in 0..200u64 {
        let unit = Value::Array(vec![t(&format!("u{n:03}")), map(&[])]);
        encode_request(1000 + n, "add_work_units", &[t("p"), Value::Array(vec![unit])], &mut frames);
        encode_request(5000 + n, "count_work_units", &[t("p")], &mut frames);
    }
    c.send_raw(&frames).await;
    for n in 0..200i64 {
        let r = c.conn.read_response().await.unwrap().unwrap().unwrap();
        assert_eq!(r.id, i(1000 + n));
        assert_eq!(r.outcome, Ok(ok_pair(Value::Bool(true))));
        let r = c.conn.read_response().await.unwrap().unwrap().unwrap();
        assert_eq!(r.id, i(5000 + n));
        assert_eq!(r.outcome, Ok(ok_pair(Value::Map(vec![(i(1), i(n + 1))]))));
    }
}

#[tokio::test]
async fn tuples_uuids_bytes_ints_and_floats_round_trip() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("rt"))])]).await;
    let uuid = Value::Tag(37, Box::new(b(&[0x5a; 16])));
    let data = map(&[
        ("tuple", tuple(vec![i(1), t("two"), b(b"three")])),
        ("list", Value::Array(vec![i(1), Value::Float(1.0)])),
        ("uuid", uuid.clone()),
        ("bytes", b(b"\xff\x00raw")),
        ("text", t("caf\u{e9}")),
        ("int", i(-42)),
        ("float", Value::Float(2.5)),
        ("nested", map(&[("t", tuple(vec![uuid.clone()]))])),
    ]);
    let key = b(b"\xff\x80binary");
    c.ok("add_work_units", vec![t("rt"), Value::Array(vec![tuple(vec![key.clone(), data.clone()])])]).await;
    let got = c.ok("get_work", vec![t("w"), map(&[("max_jobs", i(1))])]).await;
    assert_eq!(got, ok_pair(tuple(vec![t("rt"), key.clone(), data.clone()])));
    let units = c.ok("get_work_units", vec![t("rt"), map(&[])]).await;
    assert_eq!(units, ok_pair(Value::Array(vec![tuple(vec![key, data])])));
}

/// After bad input, the daemon still serves a new connection and still
/// holds the work stored before.
async fn still_serving(d: &Daemon) {
    let mut c = d.client().await;
    let counts = c.ok("count_work_units", vec![t("keep")]).await;
    assert_eq!(counts, ok_pair(Value::Map(vec![(i(1), i(3))])));
}

async fn with_stored_work() -> Daemon {
    let d = Daemon::start(Options { max_frame_bytes: 100_000, ..Options::loopback() }).await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("keep"))])]).await;
    c.ok("add_work_units", vec![t("keep"), Value::Array(vec![t("a"), t("b"), t("c")])]).await;
    d
}

#[tokio::test]
async fn malformed_cbor_closes_only_that_connection() {
    let d = with_stored_work().await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(&[0xff, 0xff, 0xff]).await.unwrap();
    assert!(closed(&mut s).await);
    still_serving(&d).await;
}

#[tokio::test]
async fn untagged_request_gets_an_error_reply() {
    let d = with_stored_work().await;
    let mut c = d.client().await;
    let bare = to_vec(&map(&[("id", i(9)), ("method", t("now")), ("params", Value::Array(vec![]))]));
    c.send_raw(&bare).await;
    let r = c.conn.read_response().await.unwrap().unwrap().unwrap();
    assert_eq!(r.id, i(9));
    assert!(r.outcome.unwrap_err().contains("tag 24"));
    // The same connection goes on working.
    assert!(c.call("now", vec![]).await.is_ok());
    still_serving(&d).await;
}

#[tokio::test]
async fn truncated_frame_then_close_loses_nothing() {
    let d = with_stored_work().await;
    let mut full = Vec::new();
    encode_request(1, "add_work_units", &[t("keep"), Value::Array(vec![t("zzz")])], &mut full);
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(&full[..full.len() - 3]).await.unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(100)).await;
    still_serving(&d).await;
}

#[tokio::test]
async fn huge_length_claim_is_refused() {
    let d = with_stored_work().await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    // Tag 24 around a byte string claiming 2^40 bytes.
    s.write_all(&[0xd8, 0x18, 0x5b, 0, 0, 1, 0, 0, 0, 0, 0]).await.unwrap();
    assert!(closed(&mut s).await);
    // Over the configured cap of 100,000 bytes, even when really sent.
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    let mut big = vec![0xd8, 0x18];
    head(2, 200_000, &mut big);
    big.extend(std::iter::repeat_n(0u8, 200_000));
    let _ = s.write_all(&big).await;
    assert!(closed(&mut s).await);
    still_serving(&d).await;
}

#[tokio::test]
async fn unknown_method_and_bad_parameters_get_errors() {
    let d = with_stored_work().await;
    let mut c = d.client().await;
    assert_eq!(c.call("foo_bar", vec![]).await, Err("no such method foo_bar".into()));
    let e = c.call("count_work_units", vec![]).await.unwrap_err();
    assert!(e.contains("wrong number of parameters"), "{e}");
    let e = c.call("count_work_units", vec![i(5)]).await.unwrap_err();
    assert!(e.contains("expected a string"), "{e}");
    let e = c.call("get_work", vec![t("w"), map(&[("max_jobs", t("ten"))])]).await.unwrap_err();
    assert!(e.contains("max_jobs"), "{e}");
    let e = c.call("add_work_units", vec![t("keep"), Value::Array(vec![i(3)])]).await.unwrap_err();
    assert_eq!(e, "work unit not a list");
    let e = c.call("set_work_spec", vec![map(&[("name", t("x")), ("weight", t("heavy"))])]).await.unwrap_err();
    assert!(e.contains("weight"), "{e}");
    // A spec name that is not UTF-8.
    let e = c.call("set_work_spec", vec![Value::Map(vec![(t("name"), b(b"\xff\xfe"))])]).await.unwrap_err();
    assert!(e.contains("UTF-8"), "{e}");
    let e = c.call("count_work_units", vec![b(b"\xff")]).await.unwrap_err();
    assert!(e.contains("UTF-8"), "{e}");
    // Invalid UTF-8 inside a text string: the frame is intact, the id is
    // recovered, and the connection carries on.
    let mut inner = vec![0xa3];
    inner.extend(to_vec(&t("id")));
    inner.extend(to_vec(&i(77)));
    inner.extend(to_vec(&t("method")));
    inner.extend(to_vec(&t("count_work_units")));
    inner.extend(to_vec(&t("params")));
    inner.extend([0x81, 0x62, 0xff, 0xfe]);
    c.send_raw(&wrap(&inner)).await;
    let r = c.conn.read_response().await.unwrap().unwrap().unwrap();
    assert_eq!(r.id, i(77));
    assert!(r.outcome.is_err());
    assert!(c.call("now", vec![]).await.is_ok());
    still_serving(&d).await;
}

#[tokio::test]
async fn request_without_id_closes_the_connection() {
    let d = with_stored_work().await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(&wrap(&to_vec(&map(&[("method", t("now"))])))).await.unwrap();
    assert!(closed(&mut s).await);
    still_serving(&d).await;
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let mut d = Process::start(&[]);
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await;
    d.signal(libc::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "daemon did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn get_config_returns_the_yaml_file() {
    let dir = std::env::temp_dir().join(format!("coordinated-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, "coordinate:\n  addresses: ['127.0.0.1:1']\nlimit: 3\n").unwrap();
    let d = Process::start(&["--config", path.to_str().unwrap()]);
    let mut c = d.client().await;
    let cfg = c.ok("get_config", vec![]).await;
    let expected = map(&[("coordinate", map(&[("addresses", Value::Array(vec![t("127.0.0.1:1")]))])), ("limit", i(3))]);
    assert_eq!(cfg, ok_pair(expected));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_run_while_small_ones_keep_flowing() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("big"))])]).await;
    // About 200 KB: served off the async workers (HEAVY_REQUEST).
    let items: Vec<Value> = (0..3000)
        .map(|n| Value::Array(vec![t(&format!("unit-{n:05}")), map(&[("payload", t(&"x".repeat(50)))])]))
        .collect();
    let mut other = d.client().await;
    let (added, now) =
        tokio::join!(c.ok("add_work_units", vec![t("big"), Value::Array(items)]), other.ok("now", vec![]));
    assert_eq!(added, ok_pair(Value::Bool(true)));
    assert!(now.is_integer());
    assert_eq!(c.ok("count_work_units", vec![t("big")]).await, ok_pair(Value::Map(vec![(i(1), i(3000))])));
}

#[test]
fn help_documents_every_limit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coordinated")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--max-frame-bytes",
        "--max-pending-reply-bytes",
        "--max-connections",
        "--max-reply-bytes",
        "--max-lock-paths",
        "--max-lock-depth",
        "--log-requests",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

/// Unit data with a bignum beyond 64 bits (−2^128) is accepted over the
/// wire and read back unchanged. (Tags no client reads back are refused:
/// tests/hostile.rs, case 7.)
#[tokio::test]
async fn bignums_round_trip() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await;
    let big = Value::Tag(3, Box::new(b(&[0xff; 16])));
    let unit = Value::Array(vec![t("u"), map(&[("big", big.clone())])]);
    c.ok("add_work_units", vec![t("s"), Value::Array(vec![unit])]).await;
    let units = c.ok("get_work_units", vec![t("s"), map(&[])]).await;
    assert_eq!(units, ok_pair(Value::Array(vec![tuple(vec![t("u"), map(&[("big", big)])])])));
}
