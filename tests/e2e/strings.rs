//! Strings come back as they were sent, in raw frames as the two kinds of
//! Python client put them on the wire: Python 2 sends every `str` as a CBOR
//! byte string, Python 3 sends text. A Python 3 client tells `b"u"` from
//! `"u"`, so keys and spec values must come back in the type they came in;
//! a Python 2 client must keep getting the bytes it always got.

use crate::common::*;
use cborrpc::encode::{head, to_vec};
use cborrpc::value::tuple;
use cborrpc::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw connection that sends hand-built frames and returns raw replies.
struct Raw {
    s: TcpStream,
    id: i64,
}

impl Raw {
    async fn connect(d: &Daemon) -> Raw {
        Raw { s: TcpStream::connect(d.addr).await.unwrap(), id: 0 }
    }

    /// Sends `{id, method, params}` with every key and the method name in
    /// the given string type, and returns the raw reply frame.
    async fn call(&mut self, as_bytes: bool, method: &str, params: Vec<Value>) -> Vec<u8> {
        self.id += 1;
        let s = |x: &str| if as_bytes { b(x.as_bytes()) } else { t(x) };
        let req =
            Value::Map(vec![(s("id"), i(self.id)), (s("method"), s(method)), (s("params"), Value::Array(params))]);
        let inner = to_vec(&req);
        let mut frame = vec![0xd8, 0x18];
        head(2, inner.len() as u64, &mut frame);
        frame.extend_from_slice(&inner);
        self.s.write_all(&frame).await.unwrap();
        read_frame(&mut self.s).await
    }

    /// The exact frame of a successful reply with `result`.
    fn reply(&self, result: Value) -> Vec<u8> {
        let inner = to_vec(&Value::Map(vec![(t("id"), i(self.id)), (t("result"), result)]));
        let mut frame = vec![0xd8, 0x18];
        head(2, inner.len() as u64, &mut frame);
        frame.extend_from_slice(&inner);
        frame
    }
}

/// Reads one tag-24-wrapped frame (its head says how long it is).
async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 3];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf[..2], &[0xd8, 0x18], "reply is a tag-24 frame");
    let len = match buf[2] {
        n @ 0x40..=0x57 => (n - 0x40) as usize,
        0x58 => s.read_u8().await.unwrap() as usize,
        0x59 => s.read_u16().await.unwrap() as usize,
        0x5a => s.read_u32().await.unwrap() as usize,
        other => panic!("unexpected head {other:#x}"),
    };
    let mut out = vec![0xd8, 0x18];
    head(2, len as u64, &mut out);
    let start = out.len();
    out.resize(start + len, 0);
    s.read_exact(&mut out[start..]).await.unwrap();
    out
}

#[tokio::test]
async fn python2_shape_all_bytes_comes_back_as_bytes() {
    let d = Daemon::memory().await;
    let mut r = Raw::connect(&d).await;
    let spec = Value::Map(vec![
        (b(b"name"), b(b"spec")),
        (b(b"module"), b(b"mod")),
        (b(b"run_function"), b(b"run")),
        (b(b"then"), b(b"next")),
    ]);
    assert_eq!(r.call(true, "set_work_spec", vec![spec]).await, r.reply(ok_pair(Value::Bool(true))));
    let got = r.call(true, "set_work_spec", vec![Value::Map(vec![(b(b"name"), b(b"next"))])]).await;
    assert_eq!(got, r.reply(ok_pair(Value::Bool(true))));
    let item = tuple(vec![b(b"unit1"), Value::Map(vec![(b(b"k"), b(b"v"))])]);
    let added = r.call(true, "add_work_units", vec![b(b"spec"), Value::Array(vec![item])]).await;
    assert_eq!(added, r.reply(ok_pair(Value::Bool(true))));

    // The spec: values as sent (bytes); map keys read back as text.
    let got = r.call(true, "get_work_spec", vec![b(b"spec")]).await;
    let want = map(&[("name", b(b"spec")), ("module", b(b"mod")), ("run_function", b(b"run")), ("then", b(b"next"))]);
    assert_eq!(got, r.reply(want));

    // get_work: the key as bytes, byte for byte.
    let opts = Value::Map(vec![(b(b"max_jobs"), i(1)), (b(b"lease_time"), i(900))]);
    let got = r.call(true, "get_work", vec![b(b"worker-1"), opts]).await;
    let expected = hex("D8 18 58 21 A2 62 69 64 05 66 72 65 73 75 6C 74 82 D8 80 83 \
         64 73 70 65 63 45 75 6E 69 74 31 A1 61 6B 41 76 F6");
    assert_eq!(got, expected);

    // Finishing with an output of byte keys chains byte keys.
    let out = Value::Map(vec![(b(b"output"), Value::Array(vec![b(b"child")]))]);
    let opts = Value::Map(vec![(b(b"status"), i(4)), (b(b"data"), out)]);
    let got = r.call(true, "update_work_unit", vec![b(b"spec"), b(b"unit1"), opts]).await;
    assert_eq!(got, r.reply(ok_pair(Value::Bool(true))));
    let got = r.call(true, "get_work_units", vec![b(b"next"), Value::Map(vec![])]).await;
    assert_eq!(got, r.reply(ok_pair(Value::Array(vec![tuple(vec![b(b"child"), map(&[])])]))));
}

#[tokio::test]
async fn python3_shape_all_text_comes_back_as_text() {
    let d = Daemon::memory().await;
    let mut r = Raw::connect(&d).await;
    let spec = map(&[("name", t("spec")), ("module", t("mod")), ("run_function", t("run")), ("then", t("next"))]);
    assert_eq!(r.call(false, "set_work_spec", vec![spec.clone()]).await, r.reply(ok_pair(Value::Bool(true))));
    r.call(false, "set_work_spec", vec![map(&[("name", t("next"))])]).await;
    let item = tuple(vec![t("unit1"), map(&[("k", t("v"))])]);
    let added = r.call(false, "add_work_units", vec![t("spec"), Value::Array(vec![item])]).await;
    assert_eq!(added, r.reply(ok_pair(Value::Bool(true))));

    let got = r.call(false, "get_work_spec", vec![t("spec")]).await;
    assert_eq!(got, r.reply(spec.clone()));
    let got = r.call(false, "list_work_specs", vec![map(&[])]).await;
    let both = Value::Array(vec![map(&[("name", t("next"))]), spec]);
    assert_eq!(got, r.reply(Value::Array(vec![both, Value::Null])));

    // get_work: the key as text, byte for byte.
    let got = r.call(false, "get_work", vec![t("worker-1"), map(&[("max_jobs", i(1)), ("lease_time", i(900))])]).await;
    let expected = hex("D8 18 58 21 A2 62 69 64 06 66 72 65 73 75 6C 74 82 D8 80 83 \
         64 73 70 65 63 65 75 6E 69 74 31 A1 61 6B 61 76 F6");
    assert_eq!(got, expected);

    let got = r.call(false, "get_work_units", vec![t("spec"), map(&[])]).await;
    assert_eq!(got, r.reply(ok_pair(Value::Array(vec![tuple(vec![t("unit1"), map(&[("k", t("v"))])])]))));

    // A map output chains text keys.
    let opts = map(&[("status", i(4)), ("data", map(&[("output", map(&[("child", map(&[]))]))]))]);
    let got = r.call(false, "update_work_unit", vec![t("spec"), t("unit1"), opts]).await;
    assert_eq!(got, r.reply(ok_pair(Value::Bool(true))));
    let got = r.call(false, "get_work_units", vec![t("next"), map(&[])]).await;
    assert_eq!(got, r.reply(ok_pair(Value::Array(vec![tuple(vec![t("child"), map(&[])])]))));
}

#[tokio::test]
async fn a_key_answers_in_the_type_it_was_last_added_with() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await;
    c.ok("add_work_units", vec![t("s"), Value::Array(vec![t("u"), b(b"\xff\xfe")])]).await;
    let units = c.ok("get_work_units", vec![t("s"), map(&[])]).await;
    let want = vec![tuple(vec![t("u"), map(&[])]), tuple(vec![b(b"\xff\xfe"), map(&[])])];
    assert_eq!(units, ok_pair(Value::Array(want)));
    // The same unit re-added as bytes answers as bytes.
    c.ok("add_work_units", vec![t("s"), Value::Array(vec![b(b"u")])]).await;
    let units = c.ok("get_work_units", vec![t("s"), map(&[("work_unit_keys", Value::Array(vec![t("u")]))])]).await;
    assert_eq!(units, ok_pair(Value::Array(vec![tuple(vec![b(b"u"), map(&[])])])));
}

#[tokio::test]
async fn get_config_without_a_config_file_is_an_empty_map() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    assert_eq!(c.ok("get_config", vec![]).await, ok_pair(Value::Map(vec![])));
}
