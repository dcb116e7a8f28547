//! Where the database is: libpq's conventions, so an operator's usual
//! `PG*` environment and URLs work unchanged, plus go-coordinate's
//! `postgres:key=value` form.

use std::str::FromStr;
use std::time::Duration;

use crate::model::{Error, Result};

/// How to reach the database, from a `postgres://` or `postgresql://` URL
/// or a `key=value` string; parts it leaves out come from the usual `PG*`
/// environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
/// `PGDATABASE`), then from libpq's defaults.
pub fn parse_config(url: &str) -> Result<tokio_postgres::Config> {
    let url = url.trim();
    // `postgres://…` and `postgresql://…` are URLs; `postgres:k=v …` (as
    // go-coordinate accepted) is a libpq key=value string.
    let spec = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url
    } else {
        url.strip_prefix("postgresql:").or_else(|| url.strip_prefix("postgres:")).unwrap_or(url).trim()
    };
    let mut cfg = if spec.is_empty() {
        tokio_postgres::Config::new()
    } else {
        tokio_postgres::Config::from_str(spec).map_err(|e| Error::Invalid(format!("bad PostgreSQL address: {e}")))?
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if cfg.get_hosts().is_empty() {
        let host = env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into());
        for h in host.split(',') {
            cfg.host(h);
        }
    }
    if cfg.get_ports().is_empty() {
        if let Some(p) = env("PGPORT").and_then(|p| p.parse().ok()) {
            cfg.port(p);
        }
    }
    if cfg.get_user().is_none() {
        if let Some(u) = env("PGUSER").or_else(|| env("USER")) {
            cfg.user(u);
        }
    }
    if cfg.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            cfg.password(p);
        }
    }
    if cfg.get_dbname().is_none() {
        if let Some(d) = env("PGDATABASE") {
            cfg.dbname(d);
        }
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("coordinated");
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    Ok(cfg)
}
