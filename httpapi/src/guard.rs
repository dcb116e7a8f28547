//! The rules every request passes before it reaches a route, in order:
//!
//! 0. **Host** (without a token, on every route, the dashboard's files
//!    included): the `Host` header must be `localhost` or an IP address,
//!    any port; else 403. A web page whose name an attacker re-points at
//!    127.0.0.1 (DNS rebinding) is same-origin with this server, so the
//!    JSON-only rule below does not stop it; its requests still carry the
//!    attacker's name as `Host`. With a token such a page lacks the token.
//!
//! The rest apply to all but the dashboard's static files
//! ([`crate::dashboard`]):
//!
//! 1. **Token** (with `--http-token-file`): the request carries
//!    `Authorization: Bearer TOKEN` or the cookie `coordinate_token=TOKEN`
//!    (which the dashboard sets), compared in constant time; else 401.
//! 2. **Read-only** (`--http-read-only`): anything but GET and HEAD is
//!    refused with 405.
//! 3. **JSON only**: a POST, PUT or DELETE must say
//!    `Content-Type: application/json`, else 415. An HTML form cannot send
//!    that type, and a script on another site cannot send it without a
//!    CORS preflight, which this server never grants, so no other site can
//!    make an operator's browser change the queue.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The name of the cookie that may carry the token.
pub const TOKEN_COOKIE: &str = "coordinate_token";

/// What the guard enforces.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// The token every request must carry, if any.
    pub token: Option<Arc<[u8]>>,
    /// Refuse every request that could change something.
    pub read_only: bool,
}

/// The Host rule, for every route.
pub async fn check_host(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if guard.token.is_none() && !host_allowed(req.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "without --http-token-file this server answers only requests addressed to localhost or an IP \
             address (the Host header), so no other site's page can reach it through its own name",
        )
        .into_response();
    }
    next.run(req).await
}

/// The other rules, for all but the dashboard's files.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if let Some(token) = &guard.token {
        if !carries(req.headers(), token) {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("this server needs its access token: send `Authorization: Bearer TOKEN` or the cookie {TOKEN_COOKIE}"),
            )
            .into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        if guard.read_only {
            let mut r = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this server is read-only (--http-read-only): only GET and HEAD are served",
            )
            .into_response();
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if !is_json(req.headers()) {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{} needs `Content-Type: application/json`", req.method()),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Whether the `Host` header is `localhost` or an IP address (v4, or v6
/// in brackets), with any port or none.
fn host_allowed(headers: &HeaderMap) -> bool {
    let Some(authority) = headers.get(header::HOST).and_then(|v| v.to_str().ok()?.parse::<Authority>().ok()) else {
        return false;
    };
    let host = authority.host();
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok()
        || host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).is_some_and(|h| h.parse::<Ipv6Addr>().is_ok())
}

/// Whether the request's content type is `application/json` (parameters
/// such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a bearer token or the token cookie equals `token`.
fn carries(headers: &HeaderMap, token: &[u8]) -> bool {
    let same = |given: &[u8]| bool::from(given.ct_eq(token));
    let bearer = headers.get_all(header::AUTHORIZATION).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v, ""));
        scheme.eq_ignore_ascii_case("bearer") && same(rest.trim().as_bytes())
    });
    bearer
        || headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).any(|v| {
            // The dashboard writes the value with `encodeURIComponent` (a
            // cookie cannot hold every byte a token may).
            v.split(';').filter_map(|c| c.trim().split_once('=')).any(|(name, value)| {
                name == TOKEN_COOKIE && same(&percent_decode_str(value.trim_matches('"')).collect::<Vec<u8>>())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn token_by_bearer_or_cookie() {
        let t = b"s3cr/t+=";
        assert!(carries(&headers(&[(header::AUTHORIZATION, "Bearer s3cr/t+=")]), t));
        assert!(carries(&headers(&[(header::AUTHORIZATION, "bearer  s3cr/t+= ")]), t));
        assert!(!carries(&headers(&[(header::AUTHORIZATION, "Basic s3cr/t+=")]), t));
        assert!(!carries(&headers(&[(header::AUTHORIZATION, "Bearer s3cr/t")]), t));
        assert!(carries(&headers(&[(header::COOKIE, "a=b; coordinate_token=s3cr%2Ft%2B%3D")]), t));
        assert!(carries(&headers(&[(header::COOKIE, "coordinate_token=s3cr/t+=")]), t));
        assert!(!carries(&headers(&[(header::COOKIE, "other_token=s3cr/t+=")]), t));
        assert!(!carries(&HeaderMap::new(), t));
    }

    #[test]
    fn host_is_localhost_or_an_address() {
        for ok in ["localhost", "LocalHost:5980", "127.0.0.1:5980", "10.1.2.3", "[::1]:5980", "[fe80::1]"] {
            assert!(host_allowed(&headers(&[(header::HOST, ok)])), "{ok}");
        }
        for bad in ["evil.example:5980", "evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "::1", "[::1"] {
            assert!(!host_allowed(&headers(&[(header::HOST, bad)])), "{bad}");
        }
        assert!(!host_allowed(&HeaderMap::new()), "no Host");
    }

    #[test]
    fn json_content_type() {
        assert!(is_json(&headers(&[(header::CONTENT_TYPE, "application/json")])));
        assert!(is_json(&headers(&[(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")])));
        assert!(!is_json(&headers(&[(header::CONTENT_TYPE, "application/x-www-form-urlencoded")])));
        assert!(!is_json(&headers(&[(header::CONTENT_TYPE, "text/plain")])));
        assert!(!is_json(&HeaderMap::new()));
    }
}
