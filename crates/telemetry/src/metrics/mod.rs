//! The proxy's Prometheus metric families: the four golden signals per route, cluster and
//! endpoint, plus saturation and config health.
//!
//! The request path never looks a series up: the proxy resolves handles ([`RouteMetrics`],
//! [`EndpointMetrics`], [`ListenerMetrics`]) when it compiles a config snapshot, and a request
//! only touches atomics through them. Handles for the same labels share their series, so
//! counters carry on across reloads.
//!
//! Adding a family: add a field of the metric type, register it in [`Metrics::new`], and give
//! the code that records it a handle or a method. Values that already live elsewhere (pool
//! sizes, in-flight counts) are read at scrape time by a [`Collector`] instead, so they are
//! never counted twice; [`scrape`] has the helpers for writing one.

mod exposition;
mod failover;
mod histogram;
mod per_thread;
mod process;
pub mod scrape;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

pub use exposition::Format;
pub use failover::{
    ActiveSession, CHECK_OUTCOMES, FailoverMetrics, HealthCheckMetrics, SESSION_END_REASONS,
    TcpMetrics,
};
pub use histogram::{Exemplar, LATENCY_BUCKETS, LatencyHistogram};
pub use prometheus_client::metrics::counter::Counter;

/// Status classes, as the `status_class` label spells them.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatusLabels {
    route: String,
    cluster: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOutcomeLabels {
    route: String,
    cluster: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    cluster: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    cluster: String,
    endpoint: String,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointStatusLabels {
    cluster: String,
    endpoint: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    listener: String,
    route: String,
    cluster: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Every metric family of one proxy, and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    route_requests: Family<RouteStatusLabels, per_thread::Counter>,
    route_duration: Family<RouteLabels, LatencyHistogram>,
    route_in_flight: Family<RouteLabels, per_thread::Gauge>,
    route_request_bytes: Family<RouteLabels, per_thread::Counter>,
    route_response_bytes: Family<RouteLabels, per_thread::Counter>,
    route_retries: Family<RouteOutcomeLabels, Counter>,
    route_fallbacks: Family<RouteOutcomeLabels, Counter>,
    upstream_requests: Family<EndpointStatusLabels, per_thread::Counter>,
    upstream_duration: Family<EndpointLabels, LatencyHistogram>,
    upstream_request_bytes: Family<EndpointLabels, per_thread::Counter>,
    upstream_response_bytes: Family<EndpointLabels, per_thread::Counter>,
    breaker_transitions: Family<BreakerLabels, Counter>,
    outlier_ejections: Family<EndpointLabels, Counter>,
    proxy_errors: Family<ErrorLabels, Counter>,
    listener_open: Family<ListenerLabels, per_thread::Gauge>,
    listener_accepted: Family<ListenerLabels, per_thread::Counter>,
    config_reloads: Family<OutcomeLabels, Counter>,
    access_log_dropped: Counter,
    spans_exported: Counter,
    spans_dropped: Family<ReasonLabels, Counter>,
    traces: Family<OutcomeLabels, Counter>,
    failover: failover::Families,
    /// Route histograms by the text their bucket lines start with, to attach exemplars.
    exemplar_series: Mutex<HashMap<String, LatencyHistogram>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All families registered, every series empty, process metrics included.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("watertight");
        let failover = failover::Families::new(&mut registry);
        let metrics = Metrics {
            route_requests: Family::default(),
            route_duration: Family::default(),
            route_in_flight: Family::default(),
            route_request_bytes: Family::default(),
            route_response_bytes: Family::default(),
            route_retries: Family::default(),
            route_fallbacks: Family::default(),
            upstream_requests: Family::default(),
            upstream_duration: Family::default(),
            upstream_request_bytes: Family::default(),
            upstream_response_bytes: Family::default(),
            breaker_transitions: Family::default(),
            outlier_ejections: Family::default(),
            proxy_errors: Family::default(),
            listener_open: Family::default(),
            listener_accepted: Family::default(),
            config_reloads: Family::default(),
            access_log_dropped: Counter::default(),
            spans_exported: Counter::default(),
            spans_dropped: Family::default(),
            traces: Family::default(),
            failover,
            exemplar_series: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "route_requests",
            "Responses sent to clients, by route and status class (proxy-made answers included)",
            metrics.route_requests.clone(),
        );
        r.register_with_unit(
            "route_request_duration",
            "From request arrival to the last response byte, by route",
            Unit::Seconds,
            metrics.route_duration.clone(),
        );
        r.register(
            "route_requests_in_flight",
            "Requests being handled now, by route",
            metrics.route_in_flight.clone(),
        );
        r.register_with_unit(
            "route_request",
            "Request body bytes received from clients, by route",
            Unit::Bytes,
            metrics.route_request_bytes.clone(),
        );
        r.register_with_unit(
            "route_response",
            "Response body bytes sent to clients, by route",
            Unit::Bytes,
            metrics.route_response_bytes.clone(),
        );
        r.register(
            "route_retries",
            "Retries by outcome: sent, or not sent because the budget was spent or the deadline too near",
            metrics.route_retries.clone(),
        );
        r.register(
            "route_fallbacks",
            "Answers from a route's fallback chain, by where they came from (outcome: cluster or response)",
            metrics.route_fallbacks.clone(),
        );
        r.register(
            "upstream_requests",
            "Attempts sent to upstream endpoints, by the status they answered (`failed`: no answer)",
            metrics.upstream_requests.clone(),
        );
        r.register_with_unit(
            "upstream_request_duration",
            "From sending an attempt to its last response byte, by endpoint",
            Unit::Seconds,
            metrics.upstream_duration.clone(),
        );
        r.register_with_unit(
            "upstream_request",
            "Request body bytes sent to upstream endpoints, by endpoint",
            Unit::Bytes,
            metrics.upstream_request_bytes.clone(),
        );
        r.register_with_unit(
            "upstream_response",
            "Response body bytes received from upstream endpoints, by endpoint",
            Unit::Bytes,
            metrics.upstream_response_bytes.clone(),
        );
        r.register(
            "breaker_transitions",
            "Circuit breaker state changes per endpoint, by the state entered",
            metrics.breaker_transitions.clone(),
        );
        r.register(
            "outlier_ejections",
            "Times outlier detection ejected the endpoint",
            metrics.outlier_ejections.clone(),
        );
        r.register(
            "proxy_errors",
            "Answers the proxy made itself or exchanges it broke off, by reason (the x-watertight-reason word)",
            metrics.proxy_errors.clone(),
        );
        r.register(
            "listener_connections_open",
            "Client connections open now, by listener",
            metrics.listener_open.clone(),
        );
        r.register(
            "listener_connections",
            "Client connections accepted, by listener",
            metrics.listener_accepted.clone(),
        );
        r.register(
            "config_reloads",
            "Config reloads by outcome (applied or rejected)",
            metrics.config_reloads.clone(),
        );
        r.register(
            "access_log_dropped_lines",
            "Access log lines dropped because the writer fell behind",
            metrics.access_log_dropped.clone(),
        );
        r.register(
            "trace_spans_exported",
            "Spans handed to the OTLP exporter and accepted by the collector",
            metrics.spans_exported.clone(),
        );
        r.register(
            "trace_spans_dropped",
            "Spans dropped, by reason (queue full, hold budget spent, export failed)",
            metrics.spans_dropped.clone(),
        );
        r.register(
            "traces",
            "Requests whose spans were recorded, by sampling outcome (kept or discarded)",
            metrics.traces.clone(),
        );
        r.register_collector(Box::new(process::ProcessCollector));
        // Series alerts and rates look for exist from the start at 0: `increase()` cannot see
        // the first event of a series that appears with it.
        for outcome in ["applied", "rejected"] {
            drop(
                metrics
                    .config_reloads
                    .get_or_create(&OutcomeLabels { outcome }),
            );
        }
        for outcome in ["kept", "discarded"] {
            drop(metrics.traces.get_or_create(&OutcomeLabels { outcome }));
        }
        for reason in [
            "queue_full",
            "hold_budget",
            "request_limit",
            "late",
            "export_failed",
        ] {
            drop(
                metrics
                    .spans_dropped
                    .get_or_create(&ReasonLabels { reason }),
            );
        }
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Adds a collector that reads values at scrape time (call before sharing the metrics).
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// The handles for one route.
    pub fn route(&self, route: &str, cluster: &str) -> RouteMetrics {
        let labels = RouteLabels {
            route: route.to_owned(),
            cluster: cluster.to_owned(),
        };
        let duration = self.route_duration.get_or_create(&labels).clone();
        self.exemplar_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(
                exposition::bucket_series_key(
                    "watertight_route_request_duration_seconds",
                    &[("route", route), ("cluster", cluster)],
                ),
                duration.clone(),
            );
        RouteMetrics {
            responses: STATUS_CLASSES.map(|status_class| {
                self.route_requests
                    .get_or_create(&RouteStatusLabels {
                        route: route.to_owned(),
                        cluster: cluster.to_owned(),
                        status_class,
                    })
                    .clone()
            }),
            duration,
            in_flight: self.route_in_flight.get_or_create(&labels).clone(),
            request_bytes: self.route_request_bytes.get_or_create(&labels).clone(),
            response_bytes: self.route_response_bytes.get_or_create(&labels).clone(),
        }
    }

    /// The retry counters of one route.
    pub fn retries(&self, route: &str, cluster: &str) -> RetryMetrics {
        let counter = |outcome| {
            self.route_retries
                .get_or_create(&RouteOutcomeLabels {
                    route: route.to_owned(),
                    cluster: cluster.to_owned(),
                    outcome,
                })
                .clone()
        };
        RetryMetrics {
            sent: counter("sent"),
            budget_exhausted: counter("budget_exhausted"),
            deadline: counter("deadline"),
        }
    }

    /// The fallback counter of one route for answers from `via` (`cluster` or `response`).
    pub fn fallbacks(&self, route: &str, cluster: &str, via: &'static str) -> Counter {
        self.route_fallbacks
            .get_or_create(&RouteOutcomeLabels {
                route: route.to_owned(),
                cluster: cluster.to_owned(),
                outcome: via,
            })
            .clone()
    }

    /// The handles for one upstream endpoint.
    pub fn endpoint(&self, cluster: &str, endpoint: &str) -> EndpointMetrics {
        let attempts = |status_class| {
            self.upstream_requests
                .get_or_create(&EndpointStatusLabels {
                    cluster: cluster.to_owned(),
                    endpoint: endpoint.to_owned(),
                    status_class,
                })
                .clone()
        };
        let labels = EndpointLabels {
            cluster: cluster.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        EndpointMetrics {
            answered: STATUS_CLASSES.map(attempts),
            failed: attempts("failed"),
            duration: self.upstream_duration.get_or_create(&labels).clone(),
            ejections: self.outlier_ejections.get_or_create(&labels).clone(),
            request_bytes: self.upstream_request_bytes.get_or_create(&labels).clone(),
            response_bytes: self.upstream_response_bytes.get_or_create(&labels).clone(),
            breaker_entered: BREAKER_STATES.map(|to| {
                self.breaker_transitions
                    .get_or_create(&BreakerLabels {
                        cluster: cluster.to_owned(),
                        endpoint: endpoint.to_owned(),
                        to,
                    })
                    .clone()
            }),
        }
    }

    /// The handles for one endpoint's active health checks.
    pub fn health_check(&self, cluster: &str, endpoint: &str) -> HealthCheckMetrics {
        self.failover.health_check(cluster, endpoint)
    }

    /// The handles for one cluster's priority group changes.
    pub fn failover(&self, cluster: &str) -> FailoverMetrics {
        self.failover.failover(cluster)
    }

    /// The handles for the TCP sessions a listener forwards to a cluster.
    pub fn tcp(&self, listener: &str, cluster: &str) -> TcpMetrics {
        self.failover.tcp(listener, cluster)
    }

    /// The handles for one listener.
    pub fn listener(&self, listener: &str) -> ListenerMetrics {
        let labels = ListenerLabels {
            listener: listener.to_owned(),
        };
        ListenerMetrics {
            open: self.listener_open.get_or_create(&labels).clone(),
            accepted: self.listener_accepted.get_or_create(&labels).clone(),
        }
    }

    /// Counts an answer the proxy made itself (or an exchange it broke off) for `reason`.
    /// `route` and `cluster` are empty when no route matched.
    pub fn proxy_error(&self, listener: &str, route: &str, cluster: &str, reason: &'static str) {
        self.proxy_errors
            .get_or_create(&ErrorLabels {
                listener: listener.to_owned(),
                route: route.to_owned(),
                cluster: cluster.to_owned(),
                reason,
            })
            .inc();
    }

    /// Counts a config reload: `applied` or `rejected`.
    pub fn config_reload(&self, outcome: &'static str) {
        self.config_reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The counter of dropped access log lines.
    pub fn access_log_dropped(&self) -> Counter {
        self.access_log_dropped.clone()
    }

    /// Counts spans the collector accepted.
    pub fn spans_exported(&self, spans: u64) {
        self.spans_exported.inc_by(spans);
    }

    /// Counts spans dropped for `reason` (`queue_full`, `hold_budget`, `request_limit`,
    /// `late`, `export_failed`).
    pub fn spans_dropped(&self, reason: &'static str, spans: u64) {
        self.spans_dropped
            .get_or_create(&ReasonLabels { reason })
            .inc_by(spans);
    }

    /// Counts a recorded request's sampling outcome: `kept` or `discarded`.
    pub fn trace_outcome(&self, outcome: &'static str) {
        self.traces.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The exposition in `format`.
    pub fn encode(&self, format: Format) -> String {
        let series = self
            .exemplar_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        exposition::encode(&self.registry, format, &series)
    }
}

/// What a request records against its route.
#[derive(Clone, Debug)]
pub struct RouteMetrics {
    responses: [per_thread::Counter; 5],
    duration: LatencyHistogram,
    in_flight: per_thread::Gauge,
    request_bytes: per_thread::Counter,
    response_bytes: per_thread::Counter,
}

/// One finished exchange, as the route's metrics see it.
#[derive(Clone, Debug)]
pub struct Finished<'a> {
    /// Status sent to the client.
    pub status: u16,
    /// From arrival to the last byte.
    pub elapsed: Duration,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// The trace id, when the request's trace was kept (becomes an exemplar).
    pub trace_id: Option<&'a str>,
}

impl RouteMetrics {
    /// A request entered the route.
    pub fn started(&self) {
        self.in_flight.inc();
    }

    /// A request that [`started`](Self::started) finished.
    pub fn finished(&self, exchange: Finished<'_>) {
        self.in_flight.dec();
        self.responses[status_class(exchange.status)].inc();
        match exchange.trace_id {
            Some(trace_id) => self
                .duration
                .observe_traced(exchange.elapsed, trace_id.to_owned()),
            None => self.duration.observe(exchange.elapsed),
        }
        if exchange.bytes_in > 0 {
            self.request_bytes.inc_by(exchange.bytes_in);
        }
        if exchange.bytes_out > 0 {
            self.response_bytes.inc_by(exchange.bytes_out);
        }
    }
}

/// A route's retry decisions.
#[derive(Clone, Debug)]
pub struct RetryMetrics {
    /// Retries sent.
    pub sent: Counter,
    /// Retries the budget refused.
    pub budget_exhausted: Counter,
    /// Retries not sent because the deadline left no time for them.
    pub deadline: Counter,
}

/// What an upstream attempt records against its endpoint.
#[derive(Clone, Debug)]
pub struct EndpointMetrics {
    answered: [per_thread::Counter; 5],
    failed: per_thread::Counter,
    duration: LatencyHistogram,
    request_bytes: per_thread::Counter,
    response_bytes: per_thread::Counter,
    breaker_entered: [Counter; 3],
    ejections: Counter,
}

/// Circuit breaker states, as the `to` label spells them.
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// One ended upstream attempt, as its endpoint's metrics see it.
#[derive(Clone, Copy, Debug)]
pub struct AttemptEnded {
    /// What the endpoint answered, `None` if it never did.
    pub status: Option<u16>,
    /// From sending to the last response byte (or the failure).
    pub elapsed: Duration,
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
}

impl EndpointMetrics {
    /// Counts an outlier ejection of the endpoint.
    pub fn ejected(&self) {
        self.ejections.inc();
    }

    /// Counts the endpoint's breaker entering `state` (`closed`, `open` or `half_open`).
    pub fn breaker_entered(&self, state: &str) {
        if let Some(i) = BREAKER_STATES.iter().position(|s| *s == state) {
            self.breaker_entered[i].inc();
        }
    }

    /// Records an ended attempt.
    pub fn attempt(&self, attempt: AttemptEnded) {
        match attempt.status {
            Some(status) => self.answered[status_class(status)].inc(),
            None => self.failed.inc(),
        };
        self.duration.observe(attempt.elapsed);
        if attempt.bytes_sent > 0 {
            self.request_bytes.inc_by(attempt.bytes_sent);
        }
        if attempt.bytes_received > 0 {
            self.response_bytes.inc_by(attempt.bytes_received);
        }
    }
}

/// What a listener records about its connections.
#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    open: per_thread::Gauge,
    accepted: per_thread::Counter,
}

impl ListenerMetrics {
    /// A connection was accepted; it counts as open until the returned guard drops.
    pub fn accepted(&self) -> OpenConnection {
        self.accepted.inc();
        self.open.inc();
        OpenConnection(self.open.clone())
    }
}

/// Counts one client connection as open while it lives.
#[derive(Debug)]
pub struct OpenConnection(per_thread::Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(metrics: &Metrics, format: Format) -> String {
        metrics.encode(format)
    }

    #[test]
    fn route_handles_record_into_labelled_series() {
        let metrics = Metrics::new();
        let route = metrics.route("api", "backend");
        route.started();
        route.started();
        route.finished(Finished {
            status: 503,
            elapsed: Duration::from_millis(3),
            bytes_in: 10,
            bytes_out: 20,
            trace_id: None,
        });
        let text = scrape(&metrics, Format::Prometheus);
        for expected in [
            "watertight_route_requests_total{route=\"api\",cluster=\"backend\",status_class=\"5xx\"} 1\n",
            "watertight_route_requests_total{route=\"api\",cluster=\"backend\",status_class=\"2xx\"} 0\n",
            "watertight_route_requests_in_flight{route=\"api\",cluster=\"backend\"} 1\n",
            "watertight_route_request_bytes_total{route=\"api\",cluster=\"backend\"} 10\n",
            "watertight_route_response_bytes_total{route=\"api\",cluster=\"backend\"} 20\n",
            "watertight_route_request_duration_seconds_bucket{route=\"api\",cluster=\"backend\",le=\"0.005\"} 1\n",
            "watertight_route_request_duration_seconds_count{route=\"api\",cluster=\"backend\"} 1\n",
            "# TYPE watertight_route_requests_total counter\n",
            "# TYPE watertight_process_resident_memory_bytes gauge\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn handles_for_the_same_labels_share_series() {
        let metrics = Metrics::new();
        let finished = |m: &RouteMetrics| {
            m.started();
            m.finished(Finished {
                status: 200,
                elapsed: Duration::from_millis(1),
                bytes_in: 0,
                bytes_out: 0,
                trace_id: None,
            })
        };
        // As after a reload: the new snapshot resolves the route again.
        finished(&metrics.route("r", "c"));
        finished(&metrics.route("r", "c"));
        let text = scrape(&metrics, Format::Prometheus);
        assert!(text.contains(
            "watertight_route_requests_total{route=\"r\",cluster=\"c\",status_class=\"2xx\"} 2\n"
        ));
    }

    #[test]
    fn openmetrics_carries_exemplars_of_traced_requests() {
        let metrics = Metrics::new();
        let route = metrics.route("r", "c");
        route.started();
        route.finished(Finished {
            status: 200,
            elapsed: Duration::from_micros(700),
            bytes_in: 0,
            bytes_out: 0,
            trace_id: Some("0af7651916cd43dd8448eb211c80319c"),
        });
        let text = scrape(&metrics, Format::OpenMetrics);
        let line = text
            .lines()
            .find(|l| l.contains("_bucket{") && l.contains("le=\"0.001\""))
            .unwrap();
        assert!(
            line.contains("} 1 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.0007 "),
            "{line}"
        );
        assert!(text.ends_with("# EOF\n"));
        // The classic format has no exemplars.
        assert!(!scrape(&metrics, Format::Prometheus).contains("trace_id"));
    }

    #[test]
    fn upstream_attempts_count_failures_apart() {
        let metrics = Metrics::new();
        let endpoint = metrics.endpoint("c", "127.0.0.1:1");
        let ended = |status, bytes_received| AttemptEnded {
            status,
            elapsed: Duration::from_millis(1),
            bytes_sent: 3,
            bytes_received,
        };
        endpoint.attempt(ended(Some(200), 10));
        endpoint.attempt(ended(None, 0));
        metrics.proxy_error("l", "r", "c", "connect-refused");
        let text = scrape(&metrics, Format::Prometheus);
        for expected in [
            "watertight_upstream_requests_total{cluster=\"c\",endpoint=\"127.0.0.1:1\",status_class=\"failed\"} 1\n",
            "watertight_upstream_requests_total{cluster=\"c\",endpoint=\"127.0.0.1:1\",status_class=\"2xx\"} 1\n",
            "watertight_upstream_request_duration_seconds_count{cluster=\"c\",endpoint=\"127.0.0.1:1\"} 2\n",
            "watertight_proxy_errors_total{listener=\"l\",route=\"r\",cluster=\"c\",reason=\"connect-refused\"} 1\n",
            "watertight_upstream_request_bytes_total{cluster=\"c\",endpoint=\"127.0.0.1:1\"} 6\n",
            "watertight_upstream_response_bytes_total{cluster=\"c\",endpoint=\"127.0.0.1:1\"} 10\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn outcome_series_exist_at_zero_before_the_first_event() {
        let text = Metrics::new().encode(Format::Prometheus);
        for expected in [
            "watertight_config_reloads_total{outcome=\"rejected\"} 0\n",
            "watertight_config_reloads_total{outcome=\"applied\"} 0\n",
            "watertight_traces_total{outcome=\"kept\"} 0\n",
            "watertight_trace_spans_dropped_total{reason=\"queue_full\"} 0\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn an_open_connection_counts_until_dropped() {
        let metrics = Metrics::new();
        let listener = metrics.listener("edge");
        let first = listener.accepted();
        let _second = listener.accepted();
        drop(first);
        let text = scrape(&metrics, Format::Prometheus);
        assert!(text.contains("watertight_listener_connections_open{listener=\"edge\"} 1\n"));
        assert!(text.contains("watertight_listener_connections_total{listener=\"edge\"} 2\n"));
    }
}
