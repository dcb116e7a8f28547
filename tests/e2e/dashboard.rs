//! The web dashboard in a real browser: Debian's headless Chromium driven
//! over WebDriver (Debian's chromedriver, started here on a free port and
//! killed by PID), against an in-process daemon on free ports, with the
//! queue set up and checked over CBOR-RPC as a Python worker would see it.
//! Without /usr/bin/chromium and /usr/bin/chromedriver these tests fail
//! (./run-tests installs both).
//!
//! Each page is saved as target/dashboard-screenshots/NAME.png to look at.
//! The last test needs no browser: how the three files are served.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use cborrpc::value::{as_sequence, tuple, TAG_UUID};
use cborrpc::Value;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use jobserver::wire::{spec_status, status};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long the page may take to show something (it polls every 3 s).
const PATIENCE: Duration = Duration::from_secs(15);

/// A chromedriver process on a free loopback port, killed when dropped,
/// with a fresh browser profile directory removed then too.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    fn start(name: &str) -> Driver {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the dashboard test drives Debian's headless Chromium. \
                 Install it with `apt-get install -y chromium chromium-driver` ({package}); ./run-tests does this"
            );
        }
        // chromedriver cannot report a port it picked, so take a free one.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url: format!("http://127.0.0.1:{port}"), profile }
    }

    /// A headless Chromium session.
    async fn browser(&self) -> Browser {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1360,1000",
            &format!("--user-data-dir={}", self.profile.display()),
        ];
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}});
        let serde_json::Value::Object(caps) = caps else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(caps).connect(&self.url).await.expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver ends the browsers it started when it ends.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Saves a screenshot of the page as target/dashboard-screenshots/NAME.png.
async fn screenshot(b: &Browser, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    b.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Fails the test with what the page shows (and a screenshot, failure.png).
async fn fail(b: &Browser, what: &str) -> ! {
    screenshot(b, "failure").await;
    let shown = b.execute("return location.hash + '\\n' + document.body.innerText", vec![]).await;
    panic!("{what}\n--- the page (screenshot in target/dashboard-screenshots/failure.png):\n{shown:?}")
}

/// Waits for an element matching `css`.
async fn find(b: &Browser, css: &str) -> fantoccini::elements::Element {
    match b.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
        Ok(e) => e,
        Err(e) => fail(b, &format!("no {css} on the page: {e}")).await,
    }
}

/// Waits until the text of `css` satisfies `ok`; returns it.
async fn text_until(b: &Browser, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = match b.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&text) {
            return text;
        }
        if Instant::now() > deadline {
            fail(b, &format!("{css} never showed what was expected; last: {text:?}")).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Goes to a dashboard route and waits for its first poll to be drawn.
async fn open(b: &Browser, base: &str, hash: &str) {
    b.goto(&format!("{base}/{hash}")).await.unwrap();
    // A hash change keeps the page: clear the marker, then wait for a fresh draw.
    b.execute("delete document.body.dataset.loaded; window.dispatchEvent(new HashChangeEvent('hashchange'));", vec![])
        .await
        .unwrap();
    find(b, "body[data-loaded]").await;
}

/// Clicks `css`, then the confirmation dialog's confirm button (after
/// typing `input` into its field, if given).
async fn click_and_confirm(b: &Browser, css: &str, input: Option<&str>) {
    find(b, css).await.click().await.unwrap();
    let ok = find(b, "dialog[open] #confirm-ok").await;
    if let Some(text) = input {
        find(b, "dialog[open] #confirm-input").await.send_keys(text).await.unwrap();
    }
    ok.click().await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    while b.find(Locator::Css("dialog[open]")).await.is_ok() {
        assert!(Instant::now() < deadline, "the dialog stayed open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the units table has `n` rows.
async fn wait_for_rows(b: &Browser, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = b.find_all(Locator::Css("#units tbody tr[data-ref]")).await.unwrap().len();
        if rows == n {
            return;
        }
        if Instant::now() > deadline {
            fail(b, &format!("{rows} rows of units, not {n}")).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ref of the first unit listed.
async fn first_ref(b: &Browser) -> String {
    find(b, "#units tbody tr[data-ref]").await.attr("data-ref").await.unwrap().unwrap()
}

/// Data with the values JSON cannot hold: a tuple, a UUID, bytes.
fn rich_data(n: i64) -> Value {
    let uuid = Value::Tag(TAG_UUID, Box::new(b(&hex("5f 0c 1c 5e 7a 44 4f 4b 9c 1a 2b 8f 6f 7e 0d 11"))));
    map(&[
        ("url", t(&format!("https://example.com/page/{n}"))),
        ("pair", tuple(vec![i(1), t("two")])),
        ("id", uuid),
        ("raw", b(&[0xff, 0x00, b'a'])),
        ("depth", Value::Float(1.0)),
    ])
}

/// A grant's key.
fn grant_key(g: &Value) -> Value {
    as_sequence(g).unwrap()[1].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium() {
    let driver = Driver::start("main");
    let d = Daemon::memory().await;
    let base = format!("http://{}", d.http_addr.unwrap());
    let mut c = d.client().await;

    // Two specs; "crawl" gets units with rich data, a key that is not
    // UTF-8 and a key that is markup; some are handed out, some fail.
    c.ok("set_work_spec", vec![map(&[("name", t("crawl"))])]).await;
    c.ok("set_work_spec", vec![map(&[("name", t("index")), ("priority", i(5))])]).await;
    let units: Vec<Value> = (0..40).map(|n| Value::Array(vec![t(&format!("page-{n:03}")), rich_data(n)])).collect();
    c.ok("add_work_units", vec![t("crawl"), Value::Array(units)]).await;
    let index: Vec<Value> = (0..250).map(|n| Value::Array(vec![t(&format!("doc-{n:03}")), map(&[])])).collect();
    c.ok("add_work_units", vec![t("index"), Value::Array(index)]).await;
    // A third, paused, with units that wait out a delay.
    c.ok("set_work_spec", vec![map(&[("name", t("thumbnails")), ("weight", i(5))])]).await;
    let thumbs: Vec<Value> = (0..18)
        .map(|n| {
            let delay = map(&[("delay", i(if n < 6 { 3600 } else { 0 }))]);
            Value::Array(vec![t(&format!("img-{n:02}")), map(&[]), delay])
        })
        .collect();
    c.ok("add_work_units", vec![t("thumbnails"), Value::Array(thumbs)]).await;
    c.ok("control_work_spec", vec![t("thumbnails"), map(&[("status", i(2))])]).await;
    let hb = vec![t("worker-1"), t("RUN"), i(600), map(&[("host", t("node-1")), ("pid", i(4242))]), Value::Null];
    c.ok("worker_heartbeat", hb).await;
    let only_crawl = map(&[("max_jobs", i(12)), ("work_spec_names", Value::Array(vec![t("crawl")]))]);
    let grants = grant_list(&c.ok("get_work", vec![t("worker-1"), only_crawl]).await);
    assert_eq!(grants.len(), 12);
    let odd = vec![
        Value::Array(vec![b(&[0xff, 0xfe]), map(&[("why", t("bytes key"))])]),
        Value::Array(vec![t("<img src=x onerror=alert(1)>"), map(&[("<b>", t("<script>alert(2)</script>"))])]),
    ];
    c.ok("add_work_units", vec![t("crawl"), Value::Array(odd)]).await;
    // Of the 12 handed out: 3 fail (with a traceback), 5 finish now and
    // 2 later, 2 stay pending.
    let failed: Vec<Value> = grants[..3].iter().map(grant_key).collect();
    for (n, key) in failed.iter().enumerate() {
        let mut data = rich_data(n as i64);
        if let Value::Map(m) = &mut data {
            m.push((
                t("traceback"),
                t("Traceback (most recent call last):\n  File \"crawl.py\", line 7\nValueError: boom"),
            ));
        }
        c.ok("update_work_unit", vec![t("crawl"), key.clone(), map(&[("status", i(5)), ("data", data)])]).await;
    }
    for g in &grants[3..8] {
        c.ok("update_work_unit", vec![t("crawl"), grant_key(g), map(&[("status", i(4))])]).await;
    }

    let b = driver.browser().await;

    // Overview: the counts shown are the RPC's, delayed units included.
    open(&b, &base, "#/").await;
    for spec in ["crawl", "index", "thumbnails"] {
        for (status, n) in rpc_counts(&mut c, spec).await {
            let cell = find(&b, &format!("tr[data-spec={spec}] td[data-status={status}]")).await;
            assert_eq!(cell.attr("data-count").await.unwrap(), Some(n.to_string()), "{status} of {spec}");
            assert_eq!(cell.text().await.unwrap(), n.to_string(), "{status} of {spec} shown");
        }
    }
    let crawl = [("available", 30), ("pending", 4), ("finished", 5), ("failed", 3), ("delayed", 0)];
    assert_eq!(rpc_counts(&mut c, "crawl").await, BTreeMap::from(crawl));
    let thumbnails = [("available", 12), ("pending", 0), ("finished", 0), ("failed", 0), ("delayed", 6)];
    assert_eq!(rpc_counts(&mut c, "thumbnails").await, BTreeMap::from(thumbnails));
    // Throughput: two finishes between polls show up as finished/min.
    for g in &grants[8..10] {
        c.ok("update_work_unit", vec![t("crawl"), grant_key(g), map(&[("status", i(4))])]).await;
    }
    text_until(&b, "#throughput", |s| s.parse::<f64>().is_ok_and(|r| r > 0.0)).await;
    text_until(&b, "tr[data-spec=crawl] td[data-status=finished]", |s| s == "7").await;
    screenshot(&b, "overview").await;

    // Pause through the page: the RPC sees it paused.
    click_and_confirm(&b, "tr[data-spec=crawl] button[data-action=pause]", None).await;
    let deadline = Instant::now() + PATIENCE;
    while rpc_spec_status(&mut c, "crawl").await != spec_status::PAUSED {
        assert!(Instant::now() < deadline, "crawl is not paused over RPC");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    text_until(&b, "tr[data-spec=crawl] .badge", |s| s == "paused").await;
    find(&b, "tr[data-spec=crawl] button[data-action=resume]").await;

    // The spec page: every unit, a page at a time, with tabs per status.
    open(&b, &base, "#/spec/crawl").await;
    text_until(&b, "#tabs .count[data-status=failed]", |s| s == "3").await;
    assert_eq!(b.find_all(Locator::Css("#units tbody tr[data-ref]")).await.unwrap().len(), 42);
    // The markup key is text, not markup; nothing ran.
    let markup = find(&b, "#units tr[data-ref='<img src=x onerror=alert(1)>'] td.key").await;
    assert_eq!(markup.text().await.unwrap(), "<img src=x onerror=alert(1)>");
    assert!(b.find_all(Locator::Css("main img")).await.unwrap().is_empty(), "a key became an element");
    // The key that is not UTF-8 is shown as bytes and linked by its ref.
    let bytes_key = find(&b, "#units tr[data-ref='b64:__4'] td.key a").await;
    assert_eq!(bytes_key.text().await.unwrap(), r"b'\xff\xfe'");
    // Select a unit to show the selection.
    find(&b, "#units tr[data-ref='page-001'] input.select").await.click().await.unwrap();
    screenshot(&b, "spec").await;

    // Key prefix search, typed into the page.
    find(&b, "#prefix").await.send_keys("page-03").await.unwrap();
    find(&b, "form.search button[type=submit]").await.click().await.unwrap();
    wait_for_rows(&b, 10).await;
    assert_eq!(first_ref(&b).await, "page-030");

    // Paging through 250 units, 100 at a time, and back.
    open(&b, &base, "#/spec/index").await;
    wait_for_rows(&b, 100).await;
    find(&b, "#next").await.click().await.unwrap();
    text_until(&b, "#units tbody tr:first-child td.key", |s| s == "doc-100").await;
    find(&b, "#next").await.click().await.unwrap();
    text_until(&b, "#units tbody tr:first-child td.key", |s| s == "doc-200").await;
    wait_for_rows(&b, 50).await;
    assert!(b.find(Locator::Css("#next")).await.is_err(), "no page after the last");
    find(&b, "#prev").await.click().await.unwrap();
    text_until(&b, "#units tbody tr:first-child td.key", |s| s == "doc-100").await;

    // Retry one failed unit through its tab: the RPC sees it available.
    let failed_ref = match &failed[0] {
        Value::Text(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    open(&b, &base, "#/spec/crawl?status=failed").await;
    assert_eq!(b.find_all(Locator::Css("#units tbody tr[data-ref]")).await.unwrap().len(), 3);
    find(&b, &format!("#units tr[data-ref='{failed_ref}'] input.select")).await.click().await.unwrap();
    screenshot(&b, "spec-failed").await;
    click_and_confirm(&b, "#retry-selected", None).await;
    let deadline = Instant::now() + PATIENCE;
    while rpc_unit_status(&mut c, "crawl", failed[0].clone()).await != status::AVAILABLE {
        assert!(Instant::now() < deadline, "the retried unit is not available over RPC");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    text_until(&b, "#tabs .count[data-status=failed]", |s| s == "2").await;

    // A unit page: key, data (tuple, UUID, bytes, float as written), traceback.
    let other_failed = match &failed[1] {
        Value::Text(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    find(&b, &format!("#units tr[data-ref='{other_failed}'] td.key a")).await.click().await.unwrap();
    let data = text_until(&b, "#unit-data", |s| !s.is_empty()).await;
    for shown in [r#""pair": (1, "two")"#, "UUID('5f0c1c5e-7a44-4f4b-9c1a-2b8f6f7e0d11')", r#""raw": b'\xff\x00a'"#] {
        assert!(data.contains(shown), "{shown} not in the data shown:\n{data}");
    }
    assert!(data.contains(r#""depth": 1.0"#), "the float stays a float:\n{data}");
    assert!(data.contains("https://example.com/page/"), "{data}");
    let key = find(&b, "table.fields tr:first-child td").await.text().await.unwrap();
    assert_eq!(key, format!("\"{other_failed}\""));
    assert!(find(&b, "#traceback").await.text().await.unwrap().contains("ValueError: boom"));
    assert_eq!(find(&b, "#unit-status").await.text().await.unwrap(), "failed");
    screenshot(&b, "unit").await;

    // Change its priority: the page shows it as the daemon now has it.
    click_and_confirm(&b, "#prioritize-unit", Some("7.5")).await;
    text_until(&b, "table.fields tr:nth-child(7) td", |s| s == "7.5").await;

    // The unit whose key and data are markup: shown as text.
    open(&b, &base, "#/unit/crawl/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E").await;
    let data = text_until(&b, "#unit-data", |s| !s.is_empty()).await;
    assert!(data.contains(r#""<b>": "<script>alert(2)</script>""#), "{data}");
    assert!(b.find_all(Locator::Css("main img, main script, main b")).await.unwrap().is_empty());
    assert!(b.get_alert_text().await.is_err(), "a script from the data ran");
    // Delete it: gone over RPC, and the page goes back to its spec.
    let markup_key = t("<img src=x onerror=alert(1)>");
    assert_eq!(rpc_unit_status(&mut c, "crawl", markup_key.clone()).await, status::AVAILABLE);
    click_and_confirm(&b, "#delete-unit", None).await;
    find(&b, "#units").await;
    let answer = c.ok("get_work_unit_status", vec![t("crawl"), Value::Array(vec![markup_key])]).await;
    assert_eq!(as_sequence(&answer).unwrap()[0], Value::Array(vec![Value::Null]), "the unit is deleted");

    // The workers page: the worker and the units it holds.
    open(&b, &base, "#/workers").await;
    let row = find(&b, "tr[data-worker=worker-1]").await;
    let text = row.text().await.unwrap();
    assert!(text.contains("RUN") && text.contains("2 units") && text.contains("node-1"), "{text}");
    screenshot(&b, "workers").await;

    b.close().await.unwrap();
    d.daemon.shutdown().await;
    drop(driver);
}

/// With `--http-token-file` the page asks for the token once, then works;
/// with `--http-read-only` it offers no actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_form_and_read_only() {
    let driver = Driver::start("token");
    let options = Options { http_token: Some("s3cret/+token".into()), ..Options::loopback() };
    let d = Daemon::start(options).await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("guarded"))])]).await;
    let b = driver.browser().await;
    b.goto(&format!("http://{}/", d.http_addr.unwrap())).await.unwrap();
    let input = find(&b, "#token-form #token").await;
    screenshot(&b, "token").await;
    input.send_keys("wrong").await.unwrap();
    find(&b, "#token-submit").await.click().await.unwrap();
    text_until(&b, "#token-form p", |s| s.contains("refused")).await;
    find(&b, "#token-form #token").await.send_keys("s3cret/+token").await.unwrap();
    find(&b, "#token-submit").await.click().await.unwrap();
    find(&b, "tr[data-spec=guarded]").await;
    // Kept for the session: a reload does not ask again.
    b.refresh().await.unwrap();
    find(&b, "tr[data-spec=guarded]").await;
    d.daemon.shutdown().await;

    let options = Options { http_read_only: true, ..Options::loopback() };
    let d = Daemon::start(options).await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("watched"))])]).await;
    c.ok("add_work_units", vec![t("watched"), Value::Array(vec![Value::Array(vec![t("u1"), map(&[])])])]).await;
    let base = format!("http://{}", d.http_addr.unwrap());
    open(&b, &base, "#/").await;
    find(&b, "tr[data-spec=watched]").await;
    assert_eq!(find(&b, "#mode").await.text().await.unwrap(), "read-only");
    open(&b, &base, "#/spec/watched").await;
    find(&b, "#units tr[data-ref=u1]").await;
    assert!(b.find_all(Locator::Css("button.action")).await.unwrap().is_empty(), "actions in read-only mode");
    open(&b, &base, "#/unit/watched/u1").await;
    assert!(b.find_all(Locator::Css("button.action")).await.unwrap().is_empty(), "actions in read-only mode");
    b.close().await.unwrap();
    d.daemon.shutdown().await;
    drop(driver);
}

/// The page's three files load without the token (the API does not), with
/// a policy that runs only their own script and forbids framing; the
/// read-only flag is written into the page.
#[tokio::test]
async fn the_files_load_without_the_token_under_a_strict_policy() {
    let options = Options { http_token: Some("t0ken".into()), ..Options::loopback() };
    let d = Daemon::start(options).await;
    let base = format!("http://{}", d.http_addr.unwrap());
    let http = reqwest::Client::new();
    for (path, kind) in [("/", "text/html"), ("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "{path}");
        let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(header("content-type").starts_with(kind), "{path}: {}", header("content-type"));
        let csp = header("content-security-policy");
        for rule in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(rule), "{path}: {csp}");
        }
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let page = http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-read-only=\"false\""));
    let api = http.get(format!("{base}/api/v1/work_specs")).send().await.unwrap();
    assert_eq!(api.status(), reqwest::StatusCode::UNAUTHORIZED, "the data needs the token");
    let post =
        http.post(format!("{base}/")).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(post.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["content-type"], "application/json", "an error in JSON, as every other");
    d.daemon.shutdown().await;

    let d = Daemon::start(Options { http_read_only: true, ..Options::loopback() }).await;
    let page = http.get(format!("http://{}/", d.http_addr.unwrap())).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-read-only=\"true\""));
    d.daemon.shutdown().await;
}
