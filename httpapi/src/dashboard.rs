//! The web dashboard at `/`: one HTML page, one script and one style sheet,
//! compiled into the binary so the daemon stays a single file and needs no
//! front-end build.
//!
//! The page holds no queue data: the script reads and changes the queue
//! through the JSON API (docs/http-api.md), whose guard checks the token
//! on every call. So these three files are served *outside* the guard's
//! token check (its Host rule applies to them too): a browser without the
//! token must be able to load the form that asks for it. Only the read-only flag is written into the page, to hide the
//! actions the server would refuse.
//!
//! Queue data is user-controlled (keys, data, worker ids), so the script
//! builds the page with the DOM API and never parses it as HTML, and the
//! Content-Security-Policy allows only these files' own script and style:
//! a key that smuggles markup stays text, and injected script would not run.

use axum::body::Bytes;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::HttpConfig;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

/// Where the page says whether the server is read-only.
const READ_ONLY_MARK: &str = "data-read-only=\"false\"";

/// What every dashboard file is served with: no framing (so no page can
/// trick an operator into clicking an action), no script or style but our
/// own, no sniffing, no caching of a stale script after an upgrade.
const HEADERS: [(HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-cache"),
];

fn file(content_type: &'static str, body: Bytes) -> impl IntoResponse + Clone {
    let mut headers: Vec<(HeaderName, HeaderValue)> =
        HEADERS.iter().map(|(k, v)| (k.clone(), HeaderValue::from_static(v))).collect();
    headers.push((header::CONTENT_TYPE, HeaderValue::from_static(content_type)));
    (axum::http::HeaderMap::from_iter(headers), body)
}

/// The dashboard's three routes (any state: they serve constants).
pub fn routes<S: Clone + Send + Sync + 'static>(cfg: &HttpConfig) -> Router<S> {
    debug_assert!(INDEX.contains(READ_ONLY_MARK));
    let index = match cfg.read_only {
        true => Bytes::from(INDEX.replace(READ_ONLY_MARK, "data-read-only=\"true\"")),
        false => Bytes::from_static(INDEX.as_bytes()),
    };
    let index = file("text/html; charset=utf-8", index);
    let script = file("text/javascript; charset=utf-8", Bytes::from_static(SCRIPT.as_bytes()));
    let style = file("text/css; charset=utf-8", Bytes::from_static(STYLE.as_bytes()));
    Router::new()
        .route("/", get(move || std::future::ready(index.clone())))
        .route("/dashboard.js", get(move || std::future::ready(script.clone())))
        .route("/dashboard.css", get(move || std::future::ready(style.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_files_and_carries_the_mark() {
        assert!(INDEX.contains(READ_ONLY_MARK));
        assert!(INDEX.contains("src=\"/dashboard.js\""));
        assert!(INDEX.contains("href=\"/dashboard.css\""));
    }

    #[test]
    fn the_script_never_parses_html() {
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!SCRIPT.contains(sink), "dashboard.js uses {sink}");
        }
    }
}
