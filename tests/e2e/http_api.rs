//! End-to-end tests of the HTTP API (docs/http-api.md) over real HTTP
//! against an in-process daemon on free ports, checked against what the
//! CBOR-RPC side sees: every route with good and bad input, on the memory
//! backend and on PostgreSQL (a fresh database on the cluster named by
//! `COORDINATE_TEST_PG`, as tests/postgres.rs does: without it those tests
//! fail), then the safety rules (Host names, token, read-only mode,
//! non-loopback addresses, JSON-only changes) and the binary's flags.

use std::collections::BTreeMap;

use crate::common::*;
use backends::model::UnitStatus;
use cborrpc::value::as_sequence;
use cborrpc::Value;
use jobserver::wire::{spec_status, status};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value as Json};

/// An HTTP client of one daemon.
struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn of(addr: std::net::SocketAddr) -> Http {
        Http { base: format!("http://{addr}"), client: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and reads a JSON answer (every answer is JSON).
    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Json) {
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status();
        let ct = resp.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        assert_eq!(ct.as_deref(), Some("application/json"), "{status}: {text}");
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
    }

    async fn get(&self, path: &str) -> (StatusCode, Json) {
        self.send(self.client.get(self.url(path))).await
    }

    /// A JSON request (`Content-Type: application/json`).
    async fn call(&self, method: Method, path: &str, body: Json) -> (StatusCode, Json) {
        let req = self.client.request(method, self.url(path)).header(CONTENT_TYPE, "application/json");
        self.send(req.body(body.to_string())).await
    }

    async fn post(&self, path: &str, body: Json) -> (StatusCode, Json) {
        self.call(Method::POST, path, body).await
    }

    /// A GET that must answer 200.
    async fn ok(&self, path: &str) -> Json {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A JSON request that must answer `want`.
    async fn expect(&self, method: Method, path: &str, body: Json, want: StatusCode) -> Json {
        let (status, answer) = self.call(method.clone(), path, body).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
        answer
    }
}

/// Percent-encodes a path segment.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The error message of an error answer.
fn error_of(body: &Json) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
}

/// The refs of a unit listing.
fn refs(page: &Json) -> Vec<String> {
    page["work_units"].as_array().unwrap().iter().map(|u| u["ref"].as_str().unwrap().to_owned()).collect()
}

async fn postgres() -> Options {
    Options { backend: fresh_database("http").await, ..Options::loopback() }
}

/// Specs: create, replace, read, list, pause, resume, delete, and their
/// errors.
async fn spec_routes(options: Options) {
    let d = Daemon::start(options).await;
    let h = Http::of(d.http_addr.unwrap());
    let mut c = d.client().await;
    assert_eq!(h.ok("/healthz").await, json!({"status": "ok"}));
    assert_eq!(h.ok("/readyz").await, json!({"status": "ready"}));
    assert_eq!(h.ok("/api/v1/work_specs").await, json!({"work_specs": [], "next": null}));

    let created =
        h.expect(Method::PUT, "/api/v1/work_specs/one", json!({"weight": 5, "x": [1]}), StatusCode::CREATED).await;
    assert_eq!((created["name"].clone(), created["weight"].clone()), (json!("one"), json!(5)));
    assert_eq!(created["data"], json!({"name": "one", "weight": 5, "x": [1]}));
    let doc = json!({"name": "one", "priority": 3, "t": {"$tuple": [1, {"$bytes": "AP8="}]}});
    let replaced = h.expect(Method::PUT, "/api/v1/work_specs/one", doc.clone(), StatusCode::OK).await;
    assert_eq!(replaced["data"], doc, "spec data keeps tuples and bytes");
    assert_eq!((replaced["priority"].clone(), replaced["meta"]["priority"].clone()), (json!(3), json!(3)));
    let got = c.ok("get_work_spec", vec![t("one")]).await;
    let Value::Map(m) = &got else { panic!("{got:?}") };
    assert!(matches!(cborrpc::value::map_get(m, "t"), Some(Value::Tag(128, _))), "RPC sees a tuple: {got:?}");
    h.expect(Method::PUT, "/api/v1/work_specs/two%2Fb", json!({}), StatusCode::CREATED).await;
    c.ok("add_work_units", vec![t("one"), Value::Array(vec![t("a"), t("b")])]).await;

    let list = h.ok("/api/v1/work_specs").await;
    assert_eq!(
        list["work_specs"][0]["counts"],
        json!({"available": 2, "pending": 0, "finished": 0, "failed": 0, "delayed": 0})
    );
    assert_eq!(list["work_specs"][1]["name"], json!("two/b"));
    let page = h.ok("/api/v1/work_specs?limit=1").await;
    assert_eq!((page["work_specs"].as_array().unwrap().len(), page["next"].clone()), (1, json!("two/b")));
    let page = h.ok("/api/v1/work_specs?start=two%2Fb").await;
    assert_eq!((page["work_specs"][0]["name"].clone(), page["next"].clone()), (json!("two/b"), json!(null)));
    assert_eq!(h.ok("/api/v1/work_specs/two%2Fb").await["name"], json!("two/b"));

    let paused = h.expect(Method::POST, "/api/v1/work_specs/one/pause", json!({}), StatusCode::OK).await;
    assert_eq!(paused["paused"], json!(true));
    assert_eq!(rpc_spec_status(&mut c, "one").await, spec_status::PAUSED, "the RPC sees it paused");
    assert_eq!(grant_list(&c.ok("get_work", vec![t("w"), map(&[])]).await).len(), 0, "a paused spec hands out nothing");
    assert_eq!(h.ok("/api/v1/work_specs/one").await["meta"]["paused"], json!(true));
    let resumed = h.expect(Method::POST, "/api/v1/work_specs/one/resume", json!({}), StatusCode::OK).await;
    assert_eq!(resumed["paused"], json!(false));
    assert_eq!(rpc_spec_status(&mut c, "one").await, spec_status::RUNNABLE);

    // Errors.
    for path in
        ["/api/v1/work_specs/nope", "/api/v1/work_specs/nope/work_units", "/api/v1/work_specs/nope/work_units/a"]
    {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(error_of(&body).contains("nope"), "{body}");
    }
    for (method, path) in [
        (Method::DELETE, "/api/v1/work_specs/nope"),
        (Method::POST, "/api/v1/work_specs/nope/pause"),
        (Method::POST, "/api/v1/work_specs/nope/resume"),
    ] {
        h.expect(method, path, json!({}), StatusCode::NOT_FOUND).await;
    }
    let e = h.expect(Method::PUT, "/api/v1/work_specs/one", json!({"name": "other"}), StatusCode::BAD_REQUEST).await;
    assert!(error_of(&e).contains("name"), "{e}");
    h.expect(Method::PUT, "/api/v1/work_specs/one", json!([1]), StatusCode::BAD_REQUEST).await;
    let e = h.expect(Method::PUT, "/api/v1/work_specs/one", json!({"weight": "heavy"}), StatusCode::BAD_REQUEST).await;
    assert!(error_of(&e).contains("weight"), "{e}");
    let e =
        h.expect(Method::PUT, "/api/v1/work_specs/one", json!({"x": {"$tag": [99, 1]}}), StatusCode::BAD_REQUEST).await;
    assert!(error_of(&e).contains("tag 99"), "data the Python client cannot read is refused: {e}");
    let bad_json = h.client.put(h.url("/api/v1/work_specs/one")).header(CONTENT_TYPE, "application/json").body("{");
    let (status, body) = h.send(bad_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("invalid JSON"), "{body}");
    let (status, _) = h.get("/api/v1/work_specs?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h.get("/api/v1/work_specs?bogus=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    h.expect(Method::POST, "/api/v1/work_specs/one/pause", json!({"really": true}), StatusCode::BAD_REQUEST).await;

    let deleted = h.expect(Method::DELETE, "/api/v1/work_specs/one", json!({}), StatusCode::OK).await;
    assert_eq!(deleted, json!({"deleted": "one"}));
    assert_eq!(h.get("/api/v1/work_specs/one").await.0, StatusCode::NOT_FOUND);
    assert_eq!(c.ok("get_work_spec", vec![t("one")]).await, Value::Null);
    d.daemon.shutdown().await;
}

/// Units: add with faithful data and any key, list, read, paging, prefix
/// and status filters, retry, prioritize, delete, and workers.
async fn unit_routes(options: Options) {
    let d = Daemon::start(options).await;
    let h = Http::of(d.http_addr.unwrap());
    let mut c = d.client().await;
    h.expect(Method::PUT, "/api/v1/work_specs/s", json!({}), StatusCode::CREATED).await;
    let units = "/api/v1/work_specs/s/work_units";

    // Add: text keys (one with a slash and a space), a key that is not
    // UTF-8, a key that looks like a ref; data with every escape.
    let data = json!({
        "tuple": {"$tuple": [1, "a"]},
        "uuid": {"$uuid": "5f0c1c5e-7a44-4f4b-9c1a-2b8f6f7e0d11"},
        "bytes": {"$bytes": "AAEC"},
        "int_keys": {"$map": [[1, "one"], [{"$bytes": "/w=="}, 2]]},
        "big": {"$int": "-18446744073709551616"},
        "nan": {"$float": "NaN"},
        "nested": [{"deep": null}],
        "order": {"z": 1, "a": 2}
    });
    let added = h
        .post(
            units,
            json!({"units": [
                {"key": "k/1 x", "data": data},
                {"key": {"$bytes": "//4="}, "data": {"n": 1}, "priority": 5},
                {"key": "b64:not-a-ref"},
                {"key": "later", "delay": 3600}
            ]}),
        )
        .await;
    assert_eq!(added, (StatusCode::OK, json!({"added": 4})));
    let one = h.ok(&format!("{units}/{}", seg("k/1 x"))).await;
    assert_eq!(one["data"], data, "data reads back as written, map order kept");
    assert_eq!(
        (one["key"].clone(), one["ref"].clone(), one["status"].clone()),
        (json!("k/1 x"), json!("k/1 x"), json!("available"))
    );
    let got = c.ok("get_work_units", vec![t("s"), map(&[("work_unit_keys", Value::Array(vec![t("k/1 x")]))])]).await;
    let unit_data = &as_sequence(&as_sequence(&as_sequence(&got).unwrap()[0]).unwrap()[0]).unwrap()[1];
    let Value::Map(m) = unit_data else { panic!("{got:?}") };
    let get = |k: &str| cborrpc::value::map_get(m, k).unwrap().clone();
    assert!(matches!(get("tuple"), Value::Tag(128, _)));
    assert!(matches!(get("uuid"), Value::Tag(37, b) if matches!(&*b, Value::Bytes(b) if b.len() == 16)));
    assert_eq!(get("bytes"), b(&[0, 1, 2]));
    let Value::Map(ik) = get("int_keys") else { panic!() };
    assert_eq!((ik[0].0.clone(), ik[1].0.clone()), (i(1), b(&[0xff])));
    let bin = h.ok(&format!("{units}/b64:__4")).await;
    assert_eq!(
        (bin["key"].clone(), bin["ref"].clone(), bin["priority"].clone()),
        (json!({"$bytes": "//4="}), json!("b64:__4"), json!(5.0))
    );
    let looks = h.ok(&format!("{units}/b64:YjY0Om5vdC1hLXJlZg")).await;
    assert_eq!((looks["key"].clone(), looks["data"].clone()), (json!("b64:not-a-ref"), json!({})));
    assert_eq!(h.ok(&format!("{units}/later")).await["status"], json!("delayed"));
    let page = h.ok(&format!("{units}?data=true")).await;
    assert_eq!(refs(&page), ["b64:YjY0Om5vdC1hLXJlZg", "k/1 x", "later", "b64:__4"], "listed by key bytes");
    assert_eq!(page["work_units"][3]["data"], json!({"n": 1}));
    assert!(h.ok(units).await["work_units"][0].get("data").is_none(), "data only when asked");

    // Bad input.
    for (body, why) in [
        (json!({"units": [{"key": 7}]}), "key"),
        (json!({"units": [{"key": "k", "data": [1]}]}), "data"),
        (json!({"units": [{"key": "k", "data": {"$nope": 1}}]}), "escape"),
        (json!({"units": [{"key": "k"}, {"key": "t", "data": {"x": {"$tag": [99, 1]}}}]}), "units[1].data"),
        (json!({"units": [{"key": "k", "date": {}}]}), "unknown field"),
        (json!({"unit": []}), "unknown field"),
    ] {
        let e = h.expect(Method::POST, units, body.clone(), StatusCode::BAD_REQUEST).await;
        assert!(error_of(&e).contains(why), "{body}: {e}");
    }
    for path in [
        format!("{units}?limit=1001"),
        format!("{units}?status=sleeping"),
        format!("{units}?start=b64:***"),
        format!("{units}/b64:***"),
    ] {
        let (status, body) = h.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    assert_eq!(h.get(&format!("{units}/missing")).await.0, StatusCode::NOT_FOUND);
    h.expect(Method::POST, "/api/v1/work_specs/nope/work_units", json!({"units": []}), StatusCode::NOT_FOUND).await;

    // A worker takes one unit: the unit shows its worker, lease and attempt;
    // the worker shows what it holds.
    let hb = vec![t("w1"), t("RUN"), i(600), map(&[("host", t("h1"))]), Value::Null];
    c.ok("worker_heartbeat", hb).await;
    let grants = grant_list(&c.ok("get_work", vec![t("w1"), map(&[("max_jobs", i(1))])]).await);
    assert_eq!(as_sequence(&grants[0]).unwrap()[1], b(&[0xff, 0xfe]), "the priority-5 unit first");
    let held = h.ok(&format!("{units}/b64:__4")).await;
    assert_eq!(
        (held["status"].clone(), held["worker"].clone(), held["attempts"].clone()),
        (json!("pending"), json!("w1"), json!(1))
    );
    assert!(held["lease_expires"].as_f64().unwrap() > 1e9);
    let workers = h.ok("/api/v1/workers").await;
    let w = &workers["workers"][0];
    assert_eq!(
        (w["id"].clone(), w["mode"].clone(), w["data"].clone()),
        (json!("w1"), json!("RUN"), json!({"host": "h1"}))
    );
    assert_eq!(
        (w["held_count"].clone(), w["held"][0]["ref"].clone(), w["held"][0]["work_spec"].clone()),
        (json!(1), json!("b64:__4"), json!("s"))
    );
    assert!(w["expires"].as_f64().unwrap() > w["last_heartbeat"].as_f64().unwrap());
    assert_eq!(workers["next"], json!(null));
    assert_eq!(h.get("/api/v1/workers?limit=5000").await.0, StatusCode::BAD_REQUEST);

    // Failed units: traceback shown; retry by key and all.
    let tb = map(&[("traceback", t("Traceback: boom"))]);
    c.ok("update_work_unit", vec![t("s"), b(&[0xff, 0xfe]), map(&[("status", i(5)), ("data", tb)])]).await;
    let failed = h.ok(&format!("{units}/b64:__4")).await;
    assert_eq!((failed["status"].clone(), failed["traceback"].clone()), (json!("failed"), json!("Traceback: boom")));
    assert_eq!(h.ok(&format!("{units}?status=failed")).await["work_units"][0]["ref"], json!("b64:__4"));
    let r = h
        .expect(Method::POST, "/api/v1/work_specs/s/retry", json!({"keys": ["b64:__4", "k/1 x"]}), StatusCode::OK)
        .await;
    assert_eq!(r, json!({"retried": 1}), "only the failed one");
    assert_eq!(rpc_unit_status(&mut c, "s", b(&[0xff, 0xfe])).await, status::AVAILABLE, "the RPC sees it available");
    assert_eq!(h.ok(&format!("{units}/b64:__4")).await["data"], json!({"n": 1}), "its own data again");
    for key in ["k/1 x", "b64:not-a-ref"] {
        c.ok("update_work_unit", vec![t("s"), t(key), map(&[("status", i(5))])]).await;
    }
    let r = h.expect(Method::POST, "/api/v1/work_specs/s/retry", json!({"all": true}), StatusCode::OK).await;
    assert_eq!(r, json!({"retried": 2}));
    assert_eq!(h.ok("/api/v1/work_specs/s").await["counts"]["failed"], json!(0));
    for body in [json!({}), json!({"all": true, "keys": []}), json!({"status": "failed"})] {
        h.expect(Method::POST, "/api/v1/work_specs/s/retry", body, StatusCode::BAD_REQUEST).await;
    }
    h.expect(Method::POST, "/api/v1/work_specs/nope/retry", json!({"all": true}), StatusCode::NOT_FOUND).await;

    // Prioritize.
    let p = h
        .expect(
            Method::POST,
            "/api/v1/work_specs/s/prioritize",
            json!({"keys": ["k/1 x"], "priority": 10}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(p, json!({"keys": 1}));
    h.expect(
        Method::POST,
        "/api/v1/work_specs/s/prioritize",
        json!({"keys": ["k/1 x"], "adjustment": -2.5}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(h.ok(&format!("{units}/{}", seg("k/1 x"))).await["priority"], json!(7.5));
    let grants = grant_list(&c.ok("get_work", vec![t("w2"), map(&[])]).await);
    assert_eq!(as_sequence(&grants[0]).unwrap()[1], t("k/1 x"), "the RPC hands out by the new priority");
    for body in [json!({"keys": ["a"]}), json!({"keys": ["a"], "priority": 1, "adjustment": 1}), json!({"priority": 1})]
    {
        h.expect(Method::POST, "/api/v1/work_specs/s/prioritize", body, StatusCode::BAD_REQUEST).await;
    }
    h.expect(
        Method::POST,
        "/api/v1/work_specs/nope/prioritize",
        json!({"keys": [], "priority": 1}),
        StatusCode::NOT_FOUND,
    )
    .await;

    // Delete by keys (with and without a status), by status, all.
    let del = |body: Json| h.expect(Method::DELETE, units, body, StatusCode::OK);
    assert_eq!(del(json!({"keys": ["later", "k/1 x"], "status": "finished"})).await, json!({"deleted": 0}));
    assert_eq!(del(json!({"keys": ["later", "nope"]})).await, json!({"deleted": 1}));
    assert_eq!(del(json!({"status": "pending"})).await, json!({"deleted": 1}));
    assert_eq!(refs(&h.ok(units).await), ["b64:YjY0Om5vdC1hLXJlZg", "b64:__4"]);
    assert_eq!(del(json!({"all": true})).await, json!({"deleted": 2}));
    assert_eq!(c.ok("count_work_units", vec![t("s")]).await, ok_pair(Value::Map(vec![])));
    for body in
        [json!({}), json!({"all": true, "status": "failed"}), json!({"status": "blocked"}), json!({"keys": "a"})]
    {
        h.expect(Method::DELETE, units, body, StatusCode::BAD_REQUEST).await;
    }
    h.expect(Method::DELETE, "/api/v1/work_specs/nope/work_units", json!({"all": true}), StatusCode::NOT_FOUND).await;

    // Paging by key, with prefix and status filters.
    let items: Vec<Json> = (0..25).map(|n| json!({"key": format!("p{n:02}"), "data": {"n": n}})).collect();
    h.post(units, json!({"units": items})).await;
    h.post(units, json!({"units": [{"key": "q1"}, {"key": "q2"}]})).await;
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            None => format!("{units}?limit=10&prefix=p"),
            Some(n) => format!("{units}?limit=10&prefix=p&start={}", seg(n)),
        };
        let page = h.ok(&path).await;
        seen.extend(refs(&page));
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|n| format!("p{n:02}")).collect();
    assert_eq!(seen, want, "three pages of the prefix, nothing else");
    let page = h.ok(&format!("{units}?limit=2&start=p23")).await;
    assert_eq!((refs(&page), page["next"].clone()), (vec!["p24".to_string(), "q1".to_string()], json!("q1")));
    let page = h.ok(&format!("{units}?limit=25&prefix=p")).await;
    assert_eq!((refs(&page).len(), page["next"].clone()), (25, json!(null)), "an exact last page has no next");
    for key in ["p03", "p17"] {
        c.ok("update_work_unit", vec![t("s"), t(key), map(&[("status", i(4))])]).await;
    }
    assert_eq!(refs(&h.ok(&format!("{units}?status=finished")).await), ["p03", "p17"]);
    assert_eq!(refs(&h.ok(&format!("{units}?status=finished,pending&start=p03")).await), ["p17"]);
    assert_eq!(refs(&h.ok(&format!("{units}?status=available&prefix=q")).await), ["q1", "q2"]);
    assert_eq!(refs(&h.ok(&format!("{units}?status=any&prefix=zz")).await), Vec::<String>::new());
    d.daemon.shutdown().await;
}

#[tokio::test]
async fn spec_routes_on_memory() {
    spec_routes(Options::loopback()).await;
}

#[tokio::test]
async fn spec_routes_on_postgres() {
    spec_routes(postgres().await).await;
}

#[tokio::test]
async fn unit_routes_on_memory() {
    unit_routes(Options::loopback()).await;
}

#[tokio::test]
async fn unit_routes_on_postgres() {
    unit_routes(postgres().await).await;
}

/// A status-filtered listing finds units far apart in a large spec, and
/// pages on from where it stopped: 60,000 units span several of the
/// chunks the memory backend scans at a time, so a page resumes its scan
/// past a chunk's end. (That the lock is released between chunks is not
/// checked here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_status_listing_pages_through_a_large_spec() {
    let d = Daemon::memory().await;
    let h = Http::of(d.http_addr.unwrap());
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("big"))])]).await;
    for chunk in (0..60_000).collect::<Vec<u32>>().chunks(5000) {
        let items = chunk.iter().map(|n| t(&format!("u{n:06}"))).collect();
        c.ok("add_work_units", vec![t("big"), Value::Array(items)]).await;
    }
    let failed = ["u000007", "u020000", "u041234", "u059999"];
    for k in failed {
        c.ok("update_work_unit", vec![t("big"), t(k), map(&[("status", i(5))])]).await;
    }
    let page = h.ok("/api/v1/work_specs/big/work_units?status=failed&limit=3").await;
    assert_eq!(
        (refs(&page), page["next"].clone()),
        (failed[..3].iter().map(|s| s.to_string()).collect(), json!("u041234"))
    );
    let page = h.ok("/api/v1/work_specs/big/work_units?status=failed&limit=3&start=u041234").await;
    assert_eq!((refs(&page), page["next"].clone()), (vec!["u059999".to_string()], json!(null)));
    let page = h.ok("/api/v1/work_specs/big/work_units?prefix=u04123&limit=5").await;
    assert_eq!(refs(&page), ["u041230", "u041231", "u041232", "u041233", "u041234"]);
    assert_eq!(h.ok("/api/v1/work_specs").await["work_specs"][0]["counts"]["available"], json!(59_996));
}

/// Every POST, PUT and DELETE needs `Content-Type: application/json`;
/// unknown routes and methods answer JSON errors too.
#[tokio::test]
async fn changes_need_a_json_content_type() {
    let d = Daemon::memory().await;
    let h = Http::of(d.http_addr.unwrap());
    h.expect(Method::PUT, "/api/v1/work_specs/s", json!({}), StatusCode::CREATED).await;
    let form = "keys=a&all=true";
    for (method, path) in [
        (Method::POST, "/api/v1/work_specs/s/pause"),
        (Method::POST, "/api/v1/work_specs/s/retry"),
        (Method::PUT, "/api/v1/work_specs/s"),
        (Method::DELETE, "/api/v1/work_specs/s"),
        (Method::DELETE, "/api/v1/work_specs/s/work_units"),
    ] {
        for ct in [None, Some("application/x-www-form-urlencoded"), Some("text/plain")] {
            let mut req = h.client.request(method.clone(), h.url(path)).body(form);
            if let Some(ct) = ct {
                req = req.header(CONTENT_TYPE, ct);
            }
            let (status, body) = h.send(req).await;
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{method} {path} {ct:?}: {body}");
        }
    }
    assert_eq!(h.ok("/api/v1/work_specs/s").await["paused"], json!(false), "nothing changed");
    let (status, body) = h.get("/api/v2/anything").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&body).contains("/api/v1"), "{body}");
    h.expect(Method::PATCH, "/api/v1/work_specs/s", json!({}), StatusCode::METHOD_NOT_ALLOWED).await;
    h.expect(Method::POST, "/api/v1/workers", json!({}), StatusCode::METHOD_NOT_ALLOWED).await;
    for path in ["/", "/dashboard.js"] {
        let e = h.expect(Method::POST, path, json!({}), StatusCode::METHOD_NOT_ALLOWED).await;
        assert!(error_of(&e).contains("method"), "the dashboard's files answer JSON too: {e}");
    }
}

/// A body over `--max-frame-bytes` is refused with a JSON 413, and adds
/// nothing; one under it is read.
#[tokio::test]
async fn a_body_over_max_frame_bytes_is_413() {
    let d = Daemon::start(Options { max_frame_bytes: 2048, ..Options::loopback() }).await;
    let h = Http::of(d.http_addr.unwrap());
    h.expect(Method::PUT, "/api/v1/work_specs/s", json!({}), StatusCode::CREATED).await;
    let units = "/api/v1/work_specs/s/work_units";
    let big = json!({"units": [{"key": "a", "data": {"pad": "x".repeat(2048)}}]});
    let e = h.expect(Method::POST, units, big, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(error_of(&e).contains("limit"), "{e}");
    let small = json!({"units": [{"key": "b", "data": {"pad": "x".repeat(1500)}}]});
    assert_eq!(h.expect(Method::POST, units, small, StatusCode::OK).await, json!({"added": 1}));
    assert_eq!(refs(&h.ok(units).await), ["b"]);
    d.daemon.shutdown().await;
}

/// `--http-read-only`: reads work, every change is 405 and changes nothing.
#[tokio::test]
async fn read_only_mode_refuses_changes() {
    let d = Daemon::start(Options { http_read_only: true, ..Options::loopback() }).await;
    let h = Http::of(d.http_addr.unwrap());
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("s"))])]).await;
    c.ok("add_work_units", vec![t("s"), Value::Array(vec![t("a")])]).await;
    assert_eq!(h.ok("/api/v1/work_specs").await["work_specs"][0]["counts"]["available"], json!(1));
    assert_eq!(h.ok("/api/v1/work_specs/s/work_units/a").await["status"], json!("available"));
    for (method, path, body) in [
        (Method::PUT, "/api/v1/work_specs/s", json!({})),
        (Method::DELETE, "/api/v1/work_specs/s", json!({})),
        (Method::POST, "/api/v1/work_specs/s/pause", json!({})),
        (Method::POST, "/api/v1/work_specs/s/work_units", json!({"units": [{"key": "b"}]})),
        (Method::DELETE, "/api/v1/work_specs/s/work_units", json!({"all": true})),
        (Method::POST, "/api/v1/work_specs/s/retry", json!({"all": true})),
        (Method::POST, "/api/v1/work_specs/s/prioritize", json!({"keys": ["a"], "priority": 1})),
    ] {
        let e = h.expect(method, path, body, StatusCode::METHOD_NOT_ALLOWED).await;
        assert!(error_of(&e).contains("read-only"), "{e}");
    }
    assert_eq!(c.ok("count_work_units", vec![t("s")]).await, ok_pair(Value::Map(vec![(i(1), i(1))])));
    assert_eq!(rpc_spec_status(&mut c, "s").await, spec_status::RUNNABLE);
}

/// With a token, every request carries it, as a bearer token or the
/// dashboard's cookie; the health checks too.
#[tokio::test]
async fn the_token_guards_every_route() {
    let d = Daemon::start(Options { http_token: Some("s3cr/t+=".into()), ..Options::loopback() }).await;
    let h = Http::of(d.http_addr.unwrap());
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/work_specs", "/api/v1/workers", "/nowhere"] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(error_of(&body).contains("Bearer"), "{body}");
        let resp = h.client.get(h.url(path)).send().await.unwrap();
        assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Bearer");
        let (status, _) = h.send(h.client.get(h.url(path)).header(AUTHORIZATION, "Bearer wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = h.send(h.client.get(h.url("/readyz")).header(AUTHORIZATION, "Bearer s3cr/t+=")).await;
    assert_eq!(status, StatusCode::OK);
    let scrape = h.client.get(h.url("/metrics")).header(AUTHORIZATION, "Bearer s3cr/t+=").send().await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK, "a scraper with the token");
    let (status, _) =
        h.send(h.client.get(h.url("/readyz")).header(COOKIE, "theme=dark; coordinate_token=s3cr%2Ft%2B%3D")).await;
    assert_eq!(status, StatusCode::OK);
    let put = h.client.put(h.url("/api/v1/work_specs/s")).header(CONTENT_TYPE, "application/json").body("{}");
    assert_eq!(h.send(put).await.0, StatusCode::UNAUTHORIZED, "checked before anything else");
    h.expect(Method::PATCH, "/api/v1/work_specs/s", json!({}), StatusCode::UNAUTHORIZED).await;
    let put = h.client.put(h.url("/api/v1/work_specs/s")).header(CONTENT_TYPE, "application/json").body("{}");
    let (status, body) = h.send(put.header(AUTHORIZATION, "Bearer s3cr/t+=")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Without a token only requests addressed to `localhost` or an IP
/// address are served, on every route, the dashboard's files included: a
/// page on a name re-pointed at 127.0.0.1 (DNS rebinding) gets 403 and
/// changes nothing. With a token the token is the guard.
#[tokio::test]
async fn without_a_token_the_host_must_be_localhost_or_an_address() {
    let d = Daemon::memory().await;
    let h = Http::of(d.http_addr.unwrap());
    let port = d.http_addr.unwrap().port();
    let evil = format!("evil.example:{port}");
    for path in ["/api/v1/work_specs", "/healthz", "/metrics", "/", "/dashboard.js", "/nowhere"] {
        let (status, body) = h.send(h.client.get(h.url(path)).header(HOST, &evil)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(error_of(&body).contains("Host"), "{body}");
    }
    let put = |host: &str| {
        h.client
            .put(h.url("/api/v1/work_specs/s"))
            .header(CONTENT_TYPE, "application/json")
            .header(HOST, host)
            .body("{}")
    };
    assert_eq!(h.send(put(&evil)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(h.get("/api/v1/work_specs/s").await.0, StatusCode::NOT_FOUND, "the refused PUT changed nothing");
    for (host, want) in
        [(format!("127.0.0.1:{port}"), StatusCode::CREATED), (format!("localhost:{port}"), StatusCode::OK)]
    {
        let (status, body) = h.send(h.client.get(h.url("/api/v1/work_specs")).header(HOST, &host)).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
        assert_eq!(h.send(put(&host)).await.0, want, "{host}");
    }
    let page = h.client.get(h.url("/")).header(HOST, format!("localhost:{port}")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    d.daemon.shutdown().await;

    let d = Daemon::start(Options { http_token: Some("t".into()), ..Options::loopback() }).await;
    let h = Http::of(d.http_addr.unwrap());
    let with_token = h.client.get(h.url("/api/v1/work_specs")).header(HOST, "queue.example").bearer_auth("t");
    assert_eq!(h.send(with_token).await.0, StatusCode::OK);
    d.daemon.shutdown().await;
}

/// An address other hosts can reach needs a token or read-only mode.
#[tokio::test]
async fn a_non_loopback_address_needs_a_token_or_read_only() {
    let open = Options { http: Some("0.0.0.0:0".into()), ..Options::loopback() };
    let e = coordinated::Daemon::start(open.clone()).await.err().expect("refused");
    assert!(e.contains("--http-token-file") && e.contains("--http-read-only"), "{e}");
    let d = coordinated::Daemon::start(Options { http_read_only: true, ..open.clone() }).await.unwrap();
    assert!(d.http_addr().unwrap().ip().is_unspecified());
    d.shutdown().await;
    let d = coordinated::Daemon::start(Options { http_token: Some("t".into()), ..open }).await.unwrap();
    d.shutdown().await;
    let d = coordinated::Daemon::start(Options { http: None, ..Options::loopback() }).await.unwrap();
    assert_eq!(d.http_addr(), None);
}

/// The binary: `--help` documents the flags; it logs the HTTP address it
/// bound; a token file works; a non-loopback address without one is
/// refused at start; `--http off` serves no HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_http_as_its_flags_say() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_coordinated")).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in ["--http <HTTP>", "--http-token-file", "--http-read-only", "127.0.0.1:5980"] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }

    let p = Process::start(&[]);
    let h = Http::of(p.http_addr.expect("the HTTP address is logged"));
    assert_eq!(h.ok("/healthz").await, json!({"status": "ok"}));
    drop(p);

    let dir = data_dir("http-token");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "  tok-123\n").unwrap();
    let p = Process::start(&["--http-token-file", file.to_str().unwrap()]);
    let h = Http::of(p.http_addr.unwrap());
    assert_eq!(h.get("/healthz").await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = h.send(h.client.get(h.url("/healthz")).header(AUTHORIZATION, "Bearer tok-123")).await;
    assert_eq!(status, StatusCode::OK, "whitespace around the token is ignored");
    drop(p);

    let (status, log) = run_to_exit(&["--http", "0.0.0.0:0"]);
    assert!(!status.success());
    assert!(log.contains("refusing to serve HTTP on 0.0.0.0:0"), "{log}");
    std::fs::write(&file, "\n").unwrap();
    let (status, log) = run_to_exit(&["--http-token-file", file.to_str().unwrap()]);
    assert!(!status.success() && log.contains("token file is empty"), "{log}");
    let p = Process::start(&["--http", "0.0.0.0:0", "--http-read-only"]);
    let h = Http::of(std::net::SocketAddr::from(([127, 0, 0, 1], p.http_addr.unwrap().port())));
    assert_eq!(h.ok("/readyz").await, json!({"status": "ready"}));
    h.expect(Method::PUT, "/api/v1/work_specs/s", json!({}), StatusCode::METHOD_NOT_ALLOWED).await;
    drop(p);

    let p = Process::start(&["--http", "off"]);
    assert_eq!(p.http_addr, None);
    assert!(!p.log().contains("listening for HTTP"));
}

/// The `coordinate_work_units` gauges of one spec in a scrape, by status
/// name, checking the exposition's content type and its `# EOF` end.
async fn scrape_counts(h: &Http, spec: &str) -> BTreeMap<&'static str, u64> {
    let resp = h.client.get(h.url("/metrics")).send().await.expect("scrape");
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers().get(CONTENT_TYPE).unwrap().to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "the exposition ends in # EOF:\n{text}");
    let prefix = format!("coordinate_work_units{{work_spec=\"{spec}\",status=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (status, value) = rest.split_once("\"} ").unwrap_or_else(|| panic!("sample line {rest}"));
            let status = UnitStatus::ALL.iter().map(|s| s.name()).find(|n| *n == status);
            (status.unwrap_or_else(|| panic!("unknown status in {rest}")), value.parse::<f64>().unwrap() as u64)
        })
        .collect()
}

/// `GET /metrics` over HTTP: the gauge a dashboard reads equals what
/// `count_work_units` says after adds (one delayed), grants, finishes,
/// failures and a lease given back, on each backend.
async fn metrics_route(options: Options) {
    let d = Daemon::start(options).await;
    let h = Http::of(d.http_addr.unwrap());
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("m"))])]).await;
    let keys: Vec<Value> = (0..20).map(|n| t(&format!("k{n:02}"))).collect();
    c.ok("add_work_units", vec![t("m"), Value::Array(keys)]).await;
    let later = Value::Array(vec![t("later"), map(&[]), map(&[("delay", i(3600))])]);
    c.ok("add_work_units", vec![t("m"), Value::Array(vec![later])]).await;
    let want = rpc_counts(&mut c, "m").await;
    assert_eq!((want["available"], want["delayed"]), (20, 1), "{want:?}");
    assert_eq!(scrape_counts(&h, "m").await, want, "after adds");
    let granted = c.ok("get_work", vec![t("w"), map(&[("max_jobs", i(6))])]).await;
    let granted: Vec<Value> = grant_list(&granted).iter().map(|g| as_sequence(g).unwrap()[1].clone()).collect();
    assert_eq!(granted.len(), 6);
    assert_eq!(scrape_counts(&h, "m").await, rpc_counts(&mut c, "m").await, "after get_work");
    for (n, key) in granted.iter().enumerate() {
        // finished, failed, and one lease given back (lease_time <= 0).
        let change = match n % 3 {
            0 => map(&[("status", i(4))]),
            1 => map(&[("status", i(5))]),
            _ => map(&[("lease_time", i(-1))]),
        };
        c.ok("update_work_unit", vec![t("m"), key.clone(), change]).await;
    }
    let want = rpc_counts(&mut c, "m").await;
    assert_eq!((want["finished"], want["failed"], want["delayed"]), (2, 2, 1), "{want:?}");
    assert_eq!(scrape_counts(&h, "m").await, want, "after finishes, failures and a release");
}

#[tokio::test]
async fn metrics_match_count_work_units_on_memory() {
    metrics_route(Options::loopback()).await;
}

#[tokio::test]
async fn metrics_match_count_work_units_on_postgres() {
    metrics_route(postgres().await).await;
}
