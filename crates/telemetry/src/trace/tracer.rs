//! Per-request tracing: the head sampling decision when a request arrives, the spans it
//! records while it runs, and the tail decision when it ends.
//!
//! Head sampling follows the caller's decision when there is one (`parent_based`), else keeps
//! `head_ratio` of traces, judged on the trace id so every hop of a trace agrees. Without tail
//! sampling only head-sampled requests are recorded. With it, every request is recorded and
//! held until it ends; it is then kept if it failed, was slower than the threshold, was
//! retried, shed or degraded, or was head-sampled (the baseline share of the rest). Held spans
//! count against a proxy-wide budget, so a flood of slow requests cannot grow memory without
//! bound: past it, spans are dropped and counted.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use watertight_config::Tracing;

use super::context::{self, Outgoing, Parent, SpanId, TraceId};
use super::export::Exporter;
use super::span::{Event, SpanKind, SpanRecord, Value};
use crate::Metrics;

/// Most spans one request holds (its server span, one per attempt, room for retries).
const MAX_SPANS_PER_REQUEST: usize = 32;

/// The proxy's tracer: config, the export queue, the hold budget.
#[derive(Debug)]
pub struct Tracer {
    config: Tracing,
    exporter: Exporter,
    held: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl Tracer {
    /// A tracer exporting per `config`; starts the export task (call inside a runtime).
    pub fn start(config: &Tracing, metrics: Arc<Metrics>) -> Arc<Tracer> {
        Arc::new(Tracer {
            exporter: Exporter::start(config, metrics.clone()),
            config: config.clone(),
            held: AtomicUsize::new(0),
            metrics,
        })
    }

    /// The config it runs with (compared on reload).
    pub fn config(&self) -> &Tracing {
        &self.config
    }

    /// Starts tracing a request that arrived with `headers`.
    pub fn begin(self: &Arc<Self>, headers: &HeaderMap) -> RequestTrace {
        let parent = context::extract(headers);
        let trace_id = parent.as_ref().map_or_else(TraceId::random, |p| p.trace_id);
        let sampled = match parent.as_ref().and_then(|p| p.sampled) {
            Some(decision) if self.config.parent_based => decision,
            _ => ratio_sampled(trace_id, self.config.head_ratio),
        };
        RequestTrace {
            tracer: self.clone(),
            trace_id,
            span_id: SpanId::random(),
            parent,
            sampled,
            recording: sampled || self.config.tail.is_some(),
            started: SystemTime::now(),
            spans: Mutex::new(Some(Vec::new())),
            events: Mutex::new(Vec::new()),
            attempts: AtomicU32::new(0),
        }
    }

    /// Waits until every span queued so far has been offered to the collector, or `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        self.exporter.flush(timeout).await;
    }

    fn hold(&self) -> bool {
        let limit = self
            .config
            .tail
            .as_ref()
            .map_or(usize::MAX, |t| t.max_held_spans);
        let reserved = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < limit).then_some(held + 1)
            })
            .is_ok();
        if !reserved {
            self.metrics.spans_dropped("hold_budget", 1);
        }
        reserved
    }

    fn release(&self, spans: usize) {
        self.held.fetch_sub(spans, Ordering::Relaxed);
    }
}

/// Whether `trace_id` falls in the sampled `ratio` (the same answer on every hop).
pub fn ratio_sampled(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bound = (ratio * u64::MAX as f64) as u64;
    trace_id.low_u64() < bound
}

/// How a request went, for its server span and the tail decision.
#[derive(Clone, Debug, Default)]
pub struct Summary<'a> {
    /// Request method.
    pub method: &'a str,
    /// Request path.
    pub path: &'a str,
    /// Host the request was for.
    pub authority: &'a str,
    /// Listener name.
    pub listener: &'a str,
    /// Route taken, if any.
    pub route: Option<&'a str>,
    /// Its cluster.
    pub cluster: Option<&'a str>,
    /// Status sent.
    pub status: u16,
    /// Why the proxy answered itself or broke off, if it did.
    pub reason: Option<&'a str>,
    /// From arrival to the last byte.
    pub elapsed: Duration,
    /// Attempts sent upstream.
    pub attempts: u32,
    /// Shed by load shedding or a full bulkhead.
    pub shed: bool,
    /// Answered by a fallback (stale cache, fallback cluster, static answer).
    pub degraded: bool,
}

/// One request's trace while it runs.
#[derive(Debug)]
pub struct RequestTrace {
    tracer: Arc<Tracer>,
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<Parent>,
    sampled: bool,
    recording: bool,
    started: SystemTime,
    /// Spans held until the request ends; `None` once it has (late spans are dropped).
    spans: Mutex<Option<Vec<SpanRecord>>>,
    events: Mutex<Vec<Event>>,
    attempts: AtomicU32,
}

/// A client span in progress: what [`RequestTrace::end_attempt`] needs.
#[derive(Debug)]
pub struct Attempt {
    span_id: SpanId,
    started: SystemTime,
}

impl RequestTrace {
    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.trace_id.to_hex()
    }

    /// The server span's id, 16 hex digits.
    pub fn span_id(&self) -> String {
        self.span_id.to_hex()
    }

    /// Whether the head decision sampled it.
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// Whether spans are being recorded.
    pub fn recording(&self) -> bool {
        self.recording
    }

    /// Starts an attempt upstream: writes the context for a new client span into `headers`
    /// (replacing the caller's) and, when spans are recorded, returns the span to end with
    /// [`end_attempt`].
    ///
    /// [`end_attempt`]: Self::end_attempt
    pub fn begin_attempt(&self, headers: &mut HeaderMap) -> Option<Attempt> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let span_id = SpanId::random();
        let outgoing = Outgoing {
            trace_id: self.trace_id,
            span_id,
            parent_span_id: self.span_id,
            sampled: self.sampled,
            tracestate: self.parent.as_ref().and_then(|p| p.tracestate.clone()),
        };
        context::inject(headers, &outgoing, &self.tracer.config.propagation);
        self.recording.then(|| Attempt {
            span_id,
            started: SystemTime::now(),
        })
    }

    /// Ends an attempt to `endpoint` that got `status` (`None`: no answer, for `error`).
    pub fn end_attempt(
        &self,
        attempt: Attempt,
        method: &str,
        endpoint: &str,
        status: Option<u16>,
        error: Option<&str>,
    ) {
        if !self.recording {
            return;
        }
        let mut attributes = vec![
            ("http.request.method", Value::Str(method.to_owned())),
            ("server.address", Value::Str(endpoint.to_owned())),
        ];
        if let Some(status) = status {
            attributes.push(("http.response.status_code", Value::Int(status.into())));
        }
        let error = match (status, error) {
            (_, Some(error)) => Some(error.to_owned()),
            (None, None) => Some("no response".to_owned()),
            (Some(status), None) if status >= 500 => Some(format!("status {status}")),
            _ => None,
        };
        self.push(SpanRecord {
            trace_id: self.trace_id,
            span_id: attempt.span_id,
            parent: Some(self.span_id),
            name: method.to_owned(),
            kind: SpanKind::Client,
            start: attempt.started,
            end: SystemTime::now(),
            attributes,
            events: Vec::new(),
            error,
        });
    }

    /// Adds an event to the server span (bulkhead queueing, breaker rejection, cache hit…).
    pub fn event(&self, name: &'static str, attributes: Vec<(&'static str, Value)>) {
        if !self.recording {
            return;
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() < MAX_SPANS_PER_REQUEST {
            events.push(Event {
                name,
                at: SystemTime::now(),
                attributes,
            });
        }
    }

    fn push(&self, span: SpanRecord) {
        let mut held = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        let Some(spans) = held.as_mut() else {
            self.tracer.metrics.spans_dropped("late", 1);
            return;
        };
        if spans.len() >= MAX_SPANS_PER_REQUEST {
            self.tracer.metrics.spans_dropped("request_limit", 1);
            return;
        }
        if self.tracer.hold() {
            spans.push(span);
        }
    }

    /// Attempts sent upstream so far.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Ends the request: records its server span, decides whether to keep the trace, and
    /// queues its spans for export if so. Returns whether it was kept.
    pub fn finish(&self, summary: &Summary<'_>) -> bool {
        if !self.recording {
            return false;
        }
        let mut spans = self
            .spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        self.tracer.release(spans.len());
        let failed = summary.status >= 500 || summary.reason.is_some();
        let keep = self.sampled
            || self.tracer.config.tail.as_ref().is_some_and(|tail| {
                failed
                    || summary.elapsed > tail.latency_threshold.get()
                    || summary.attempts > 1
                    || summary.shed
                    || summary.degraded
            });
        self.tracer
            .metrics
            .trace_outcome(if keep { "kept" } else { "discarded" });
        if !keep {
            return false;
        }
        spans.push(self.server_span(summary, failed));
        self.tracer.exporter.queue(spans);
        true
    }

    fn server_span(&self, summary: &Summary<'_>, failed: bool) -> SpanRecord {
        let mut attributes = vec![
            ("http.request.method", Value::Str(summary.method.to_owned())),
            ("url.path", Value::Str(summary.path.to_owned())),
            ("server.address", Value::Str(summary.authority.to_owned())),
            (
                "http.response.status_code",
                Value::Int(summary.status.into()),
            ),
            (
                "watertight.listener",
                Value::Str(summary.listener.to_owned()),
            ),
        ];
        if let Some(route) = summary.route {
            attributes.push(("http.route", Value::Str(route.to_owned())));
        }
        if let Some(cluster) = summary.cluster {
            attributes.push(("watertight.cluster", Value::Str(cluster.to_owned())));
        }
        if let Some(reason) = summary.reason {
            attributes.push(("watertight.reason", Value::Str(reason.to_owned())));
        }
        let name = match summary.route {
            Some(route) => format!("{} {route}", summary.method),
            None => summary.method.to_owned(),
        };
        SpanRecord {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.parent.as_ref().map(|p| p.span_id),
            name,
            kind: SpanKind::Server,
            start: self.started,
            end: self.started + summary.elapsed,
            attributes,
            events: std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner())),
            error: failed.then(|| {
                summary
                    .reason
                    .map_or_else(|| format!("status {}", summary.status), str::to_owned)
            }),
        }
    }
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        // A request dropped without finishing still gives back what it held.
        let held = self
            .spans
            .get_mut()
            .map_or(0, |spans| spans.as_ref().map_or(0, Vec::len));
        self.tracer.release(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use watertight_config::{
        Duration as ConfigDuration, Otlp, OtlpProtocol, Propagation, TailSampling,
    };

    fn config(head_ratio: f64, tail: Option<TailSampling>) -> Tracing {
        Tracing {
            service_name: "test".into(),
            propagation: vec![Propagation::W3c],
            head_ratio,
            parent_based: true,
            tail,
            otlp: Otlp {
                // Nothing listens there; these tests only look at decisions.
                endpoint: "http://127.0.0.1:9".into(),
                protocol: OtlpProtocol::Http,
                timeout: ConfigDuration::from_secs(1),
                queue_size: 1000,
                batch_size: 100,
                batch_interval: ConfigDuration::from_secs(60),
            },
        }
    }

    fn tail(max_held_spans: usize) -> Option<TailSampling> {
        Some(TailSampling {
            latency_threshold: ConfigDuration::from_secs(1),
            max_held_spans,
        })
    }

    fn summary(status: u16, elapsed_ms: u64) -> Summary<'static> {
        Summary {
            method: "GET",
            status,
            elapsed: Duration::from_millis(elapsed_ms),
            attempts: 1,
            ..Summary::default()
        }
    }

    fn with_parent(sampled: bool) -> HeaderMap {
        let flags = if sampled { "01" } else { "00" };
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_str(&format!(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}"
            ))
            .unwrap(),
        );
        headers
    }

    #[test]
    fn ratio_sampling_keeps_about_the_ratio_and_agrees_with_itself() {
        let ids: Vec<TraceId> = (0..20_000).map(|_| TraceId::random()).collect();
        let kept = ids.iter().filter(|id| ratio_sampled(**id, 0.25)).count();
        assert!((4_500..5_500).contains(&kept), "{kept}");
        assert!(
            ids.iter()
                .all(|id| ratio_sampled(*id, 0.25) == ratio_sampled(*id, 0.25))
        );
        assert!(ids.iter().all(|id| ratio_sampled(*id, 1.0)));
        assert!(!ids.iter().any(|id| ratio_sampled(*id, 0.0)));
    }

    #[tokio::test]
    async fn parent_based_sampling_follows_the_caller() {
        let metrics = Arc::new(Metrics::new());
        let none = Tracer::start(&config(0.0, None), metrics.clone());
        assert!(none.begin(&with_parent(true)).sampled());
        assert!(!none.begin(&HeaderMap::new()).sampled());
        let all = Tracer::start(&config(1.0, None), metrics);
        assert!(!all.begin(&with_parent(false)).sampled());
        assert!(all.begin(&HeaderMap::new()).sampled());
    }

    #[tokio::test]
    async fn without_tail_sampling_only_sampled_requests_record() {
        let tracer = Tracer::start(&config(0.0, None), Arc::new(Metrics::new()));
        let trace = tracer.begin(&HeaderMap::new());
        assert!(!trace.recording());
        assert!(!trace.finish(&summary(503, 5)));
    }

    #[tokio::test]
    async fn tail_sampling_keeps_failed_slow_and_retried_requests() {
        let tracer = Tracer::start(&config(0.0, tail(100)), Arc::new(Metrics::new()));
        let decide = |summary: Summary<'static>| tracer.begin(&HeaderMap::new()).finish(&summary);
        assert!(!decide(summary(200, 5)), "fast and fine: not kept");
        assert!(decide(summary(503, 5)), "5xx");
        assert!(decide(summary(200, 1500)), "slower than the threshold");
        assert!(
            decide(Summary {
                attempts: 2,
                ..summary(200, 5)
            }),
            "retried"
        );
        assert!(decide(Summary {
            reason: Some("client-aborted"),
            ..summary(499, 5)
        }));
        assert!(decide(Summary {
            degraded: true,
            ..summary(200, 5)
        }));
        assert!(decide(Summary {
            shed: true,
            ..summary(503, 5)
        }));
        assert!(
            !decide(summary(404, 5)),
            "a client error is not the proxy's failure"
        );
    }

    #[tokio::test]
    async fn attempts_propagate_a_child_context_and_held_spans_are_bounded() {
        let metrics = Arc::new(Metrics::new());
        let tracer = Tracer::start(&config(1.0, tail(1)), metrics.clone());
        let trace = tracer.begin(&with_parent(true));
        let mut headers = with_parent(true);
        let first = trace.begin_attempt(&mut headers).unwrap();
        let sent = context::extract(&headers).unwrap();
        assert_eq!(sent.trace_id.to_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(sent.span_id, first.span_id);
        assert_ne!(
            sent.span_id, trace.span_id,
            "the upstream's parent is the client span"
        );
        trace.end_attempt(first, "GET", "127.0.0.1:1", Some(200), None);
        let second = trace.begin_attempt(&mut headers).unwrap();
        trace.end_attempt(second, "GET", "127.0.0.1:1", None, Some("connect-refused"));
        // The budget of one held span took the first attempt; the second was dropped.
        let text = metrics.encode(crate::Format::Prometheus);
        assert!(
            text.contains("watertight_trace_spans_dropped_total{reason=\"hold_budget\"} 1\n"),
            "{text}"
        );
        assert!(trace.finish(&summary(200, 5)));
        assert_eq!(
            tracer.held.load(Ordering::Relaxed),
            0,
            "finishing gives the budget back"
        );
    }
}
