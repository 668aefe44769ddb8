//! The config schema's telemetry sections: `metrics` and `tracing`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Duration;

/// Prometheus metrics, served on the admin API at `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Record metrics on the request path. Off, `/metrics` still answers with process and
    /// config metrics only.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Distributed tracing: trace context propagation, sampling, and OTLP export. Absent, the
/// proxy passes trace headers through untouched and records nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    /// `service.name` of the spans this proxy reports.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Trace context formats emitted upstream: `w3c` (`traceparent`/`tracestate`), `b3` (the
    /// single `b3` header), `b3multi` (`X-B3-*`). All three are always accepted.
    #[serde(default = "default_propagation")]
    pub propagation: Vec<Propagation>,
    /// Share of new traces (requests without a sampled parent) to sample, 0 to 1.
    #[serde(default = "default_head_ratio")]
    pub head_ratio: f64,
    /// Follow the caller's sampling decision when the request carries one.
    #[serde(default = "yes")]
    pub parent_based: bool,
    /// Tail sampling: record every request and decide at its end. Absent, only head-sampled
    /// requests are recorded.
    #[serde(default)]
    pub tail: Option<TailSampling>,
    /// Where spans go.
    pub otlp: Otlp,
}

/// A trace context format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    /// W3C Trace Context: `traceparent` and `tracestate`.
    W3c,
    /// Zipkin B3, single header: `b3: {trace}-{span}-{sampled}`.
    B3,
    /// Zipkin B3, multiple headers: `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    B3multi,
}

impl Propagation {
    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            Propagation::W3c => "w3c",
            Propagation::B3 => "b3",
            Propagation::B3multi => "b3multi",
        }
    }
}

/// Keep-or-drop decided when a request ends, from how it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailSampling {
    /// Keep every request slower than this (errors, retried, shed and degraded requests are
    /// always kept; of the rest, the head-sampled share).
    #[serde(default = "default_latency_threshold")]
    pub latency_threshold: Duration,
    /// Most spans held across all requests in flight; beyond it new spans are dropped and
    /// counted, so a flood of slow requests cannot grow memory without bound.
    #[serde(default = "default_max_held_spans")]
    pub max_held_spans: usize,
}

/// OTLP export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Otlp {
    /// The collector: `http://host:port` (gRPC, usually port 4317) or the base URL of an
    /// OTLP/HTTP receiver (usually port 4318; spans are posted to `/v1/traces` below it).
    pub endpoint: String,
    /// `grpc` or `http` (HTTP/protobuf).
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// How long one export may take.
    #[serde(default = "default_export_timeout")]
    pub timeout: Duration,
    /// Spans waiting for export; beyond it new ones are dropped and counted.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Most spans in one export.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest a span waits for its batch to fill.
    #[serde(default = "default_batch_interval")]
    pub batch_interval: Duration,
}

/// An OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

fn yes() -> bool {
    true
}
fn default_service_name() -> String {
    "watertight".to_owned()
}
fn default_propagation() -> Vec<Propagation> {
    vec![Propagation::W3c]
}
fn default_head_ratio() -> f64 {
    0.01
}
fn default_latency_threshold() -> Duration {
    Duration::from_secs(1)
}
fn default_max_held_spans() -> usize {
    100_000
}
fn default_export_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_queue_size() -> usize {
    8192
}
fn default_batch_size() -> usize {
    512
}
fn default_batch_interval() -> Duration {
    Duration::from_secs(1)
}
