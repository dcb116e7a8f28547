//! The daemon's Prometheus metrics: [`render`] builds the whole text
//! exposition at scrape time; the HTTP server's `/metrics` serves it with
//! [`CONTENT_TYPE`]. docs/metrics.md lists every metric.
//!
//! Nothing here runs on a request's path but [`RequestStats::record`]
//! (a fixed array of atomics per method) and the connection count. Unit
//! counts and per-spec counters live in the backend, where each event
//! already takes its lock, and are read once per scrape
//! ([`backends::Coordinate::spec_stats`]); live workers by mode come from
//! `mode_counts`. So a scrape costs one pass over the specs, never over
//! the units, and is as current as a `count_work_units` call.
//!
//! Encoding is prometheus-client's (the Prometheus project's own Rust
//! client): a [`Collector`] hands it the values read at scrape time.

mod requests;

use std::collections::BTreeMap;

use backends::stats::{SpecCounters, SpecStats, QUEUE_WAIT_BOUNDS_MICROS};
use backends::{Coordinate, UnitStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use requests::{slot_name, SlotSnapshot, LATENCY_BOUNDS_NANOS, OUTCOMES};
pub use requests::{OpenConnection, RequestStats};

use crate::error::RpcResult;
use crate::JobServer;

/// The `Content-Type` of [`render`]'s text (OpenMetrics, which Prometheus
/// asks for and parses).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The whole exposition, ending in `# EOF`.
pub async fn render<C: Coordinate>(server: &JobServer<C>) -> RpcResult<String> {
    let specs = server.backend().spec_stats().await?;
    let modes = server.backend().mode_counts().await?;
    let requests = server.metrics();
    let scrape = Scrape { specs, modes, requests: requests.snapshot(), connections: requests.connections() };
    Ok(scrape.encode())
}

/// Everything one scrape shows, read before encoding starts.
#[derive(Debug)]
struct Scrape {
    specs: Vec<SpecStats>,
    modes: BTreeMap<String, u64>,
    requests: Vec<SlotSnapshot>,
    connections: i64,
}

impl Scrape {
    fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing to a String cannot fail, and every value encodes.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

type Fmt = Result<(), std::fmt::Error>;

/// Reads one counter of a spec.
type Field = fn(&SpecCounters) -> u64;

/// Per-spec counter families: name, help, and the counter's field.
const SPEC_COUNTERS: [(&str, &str, Field); 7] = [
    (
        "coordinate_work_units_added",
        "Work units added or replaced (add_work_units, chained output, continuous units).",
        |c| c.added,
    ),
    ("coordinate_work_units_handed_out", "Work units handed out by get_work.", |c| c.handed_out),
    ("coordinate_work_units_finished", "Work units finished.", |c| c.finished),
    ("coordinate_work_units_failed", "Work units failed, by a worker or for running out of retries.", |c| c.failed),
    ("coordinate_work_units_retried", "Finished or failed work units made available again.", |c| c.retried),
    ("coordinate_work_units_released", "Pending work units given back by their worker before finishing.", |c| {
        c.released
    }),
    ("coordinate_work_units_expired", "Leases of pending work units that ran out.", |c| c.expired),
];

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let mut m = enc.encode_descriptor(
            "coordinate_work_units",
            "Work units per work spec and status, at scrape time.",
            None,
            MetricType::Gauge,
        )?;
        for spec in &self.specs {
            for status in UnitStatus::ALL {
                let labels = [("work_spec", spec.name.as_str()), ("status", status.name())];
                m.encode_family(&labels)?.encode_gauge(&spec.count(status))?;
            }
        }
        for (name, help, field) in SPEC_COUNTERS {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for spec in &self.specs {
                if let Some(c) = &spec.counters {
                    counter(&mut m.encode_family(&[("work_spec", spec.name.as_str())])?, field(c))?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "coordinate_queue_wait_seconds",
            "Time from a work unit becoming available to get_work handing it out.",
            None,
            MetricType::Histogram,
        )?;
        for spec in &self.specs {
            if let Some(c) = &spec.counters {
                let h = &c.queue_wait;
                let labels = [("work_spec", spec.name.as_str())];
                histogram(&mut m.encode_family(&labels)?, &QUEUE_WAIT_BOUNDS_MICROS, 1e6, &h.buckets, h.sum_micros)?;
            }
        }
        self.encode_requests(&mut enc)?;
        let mut m = enc.encode_descriptor(
            "coordinate_workers",
            "Live workers (active, not expired) per mode.",
            None,
            MetricType::Gauge,
        )?;
        for (mode, n) in &self.modes {
            m.encode_family(&[("mode", mode.as_str())])?.encode_gauge(n)?;
        }
        enc.encode_descriptor("coordinate_connections", "CBOR-RPC connections open now.", None, MetricType::Gauge)?
            .encode_gauge(&self.connections)
    }
}

impl Scrape {
    /// Request counts and latencies, for the methods called at least once.
    fn encode_requests(&self, enc: &mut DescriptorEncoder) -> Fmt {
        let called = || self.requests.iter().enumerate().filter(|(_, s)| s.requests() > 0);
        let mut m = enc.encode_descriptor(
            "coordinate_requests",
            "CBOR-RPC requests per method and outcome (ok or the error's kind).",
            None,
            MetricType::Counter,
        )?;
        for (i, s) in called() {
            for (outcome, n) in OUTCOMES.iter().zip(s.outcomes) {
                counter(&mut m.encode_family(&[("method", slot_name(i)), ("outcome", outcome)])?, n)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "coordinate_request_duration_seconds",
            "Time to execute a CBOR-RPC request, from decoded request to answer.",
            None,
            MetricType::Histogram,
        )?;
        for (i, s) in called() {
            let labels = [("method", slot_name(i))];
            histogram(&mut m.encode_family(&labels)?, &LATENCY_BOUNDS_NANOS, 1e9, &s.buckets, s.sum_nanos)?;
        }
        Ok(())
    }
}

fn counter(m: &mut MetricEncoder, n: u64) -> Fmt {
    m.encode_counter::<NoLabelSet, u64, u64>(&n, None)
}

/// A histogram in seconds from bucket bounds and a sum kept in units of
/// 1/`per_second` s, and the non-cumulative counts of the buckets, the
/// last one over the largest bound.
fn histogram(m: &mut MetricEncoder, bounds: &[u64], per_second: f64, counts: &[u64], sum: u64) -> Fmt {
    let upper = bounds.iter().map(|&b| b as f64 / per_second).chain([f64::INFINITY]);
    let buckets: Vec<(f64, u64)> = upper.zip(counts.iter().copied()).collect();
    m.encode_histogram::<NoLabelSet>(sum as f64 / per_second, counts.iter().sum(), &buckets, None)
}
