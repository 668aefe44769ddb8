//! The response body as it leaves the proxy: it counts bytes out, notes a mid-stream failure,
//! and when it ends (or the client goes away) writes the access log line and releases the
//! request's hold on its connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use watertight_telemetry::metrics::Finished;
use watertight_telemetry::trace::{RequestTrace, Summary};

use crate::access_log::{AccessLog, Entry};
use crate::activity::RequestActivity;
use crate::body::{ProxyBody, empty};
use crate::clock;
use crate::error::{BoxError, classify_exchange_error};
use crate::stack::Metered;

/// What an exchange carries until its last byte is sent. Small when nothing is logged: the
/// log line is made only for the access log or a recorded trace, and the names an error count
/// needs come as one shared reference, only when metrics are on. (It holds handles, not the
/// config snapshot: a long response must not keep a replaced snapshot, with its clusters and
/// their health checkers, alive.)
pub struct Exchange {
    /// The log line, filled in as the exchange goes, when the access log is on or the
    /// request's trace is recorded.
    pub entry: Option<Box<Entry>>,
    /// Status sent to the client.
    pub status: u16,
    /// Why the proxy answered itself or the exchange broke, if it did.
    pub reason: Option<&'static str>,
    /// When the request arrived.
    pub started: Instant,
    /// Request body bytes, counted as the upstream reads them (when logging or metering).
    pub bytes_in: Option<Arc<AtomicU64>>,
    /// Where the line goes, when the access log is on.
    pub log: Option<Arc<AccessLog>>,
    /// What the exchange is counted under, when metrics are on: errors by reason, and once
    /// routed the route's golden signals (whose in-flight gauge already counts it).
    pub metered: Option<Arc<Metered>>,
    /// The request's trace, when tracing is on.
    pub trace: Option<Arc<RequestTrace>>,
    /// Answered by the route's fallback chain.
    pub degraded: bool,
    /// Keeps the client connection busy (not idle) until the exchange ends.
    pub activity: RequestActivity,
}

pin_project_lite::pin_project! {
    /// A response body that finishes its [`Exchange`] when it completes or is dropped.
    pub struct ExchangeBody {
        #[pin]
        inner: ProxyBody,
        exchange: Option<Exchange>,
        bytes_out: u64,
    }

    impl PinnedDrop for ExchangeBody {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Some(exchange) = this.exchange.take() {
                // The upstream attempt (riding on the inner body) ends before the exchange.
                this.inner.set(empty());
                finish(exchange, *this.bytes_out);
            }
        }
    }
}

impl ExchangeBody {
    /// Wraps a response body.
    pub fn new(inner: ProxyBody, exchange: Exchange) -> Self {
        Self {
            inner,
            exchange: Some(exchange),
            bytes_out: 0,
        }
    }
}

/// An exchange whose response has not started yet. If the request is abandoned before then
/// (the client went away and the server dropped the handler), dropping this logs it as
/// `client-aborted` with nginx's status 499, so no request goes unrecorded.
pub struct Pending(Option<Exchange>);

impl Pending {
    /// Starts tracking `exchange`.
    pub fn new(exchange: Exchange) -> Self {
        Self(Some(exchange))
    }

    /// The exchange, to fill in as the request goes.
    pub fn get(&mut self) -> &mut Exchange {
        self.0
            .as_mut()
            .expect("a pending exchange is only taken by `respond`, which consumes it")
    }

    /// Hands the exchange to the response body, which finishes it.
    pub fn respond(mut self, body: ProxyBody) -> ExchangeBody {
        let exchange = self
            .0
            .take()
            .expect("a pending exchange is only taken by `respond`, which consumes it");
        ExchangeBody::new(body, exchange)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut exchange) = self.0.take() {
            exchange.status = 499;
            exchange.reason = Some("client-aborted");
            finish(exchange, 0);
        }
    }
}

/// Records the ended exchange: its trace, metrics, then the access log line.
fn finish(mut exchange: Exchange, bytes_out: u64) {
    let now = clock::now();
    let elapsed = now.saturating_duration_since(exchange.started);
    exchange.activity.ended(now);
    let bytes_in = exchange
        .bytes_in
        .as_ref()
        .map_or(0, |counter| counter.load(Ordering::Relaxed));
    let (status, reason) = (exchange.status, exchange.reason);
    // A trace is recorded only with its log line (the edge makes one for it).
    let kept = match (&exchange.trace, &exchange.entry) {
        (Some(trace), Some(entry)) => trace.finish(&Summary {
            method: &entry.method,
            path: &entry.path,
            authority: &entry.authority,
            listener: &entry.listener,
            route: entry.route.as_deref(),
            cluster: entry.cluster.as_deref(),
            status,
            reason,
            elapsed,
            attempts: trace.attempts(),
            shed: matches!(reason, Some("shed" | "bulkhead-full" | "queue-timeout")),
            degraded: exchange.degraded,
        }),
        _ => false,
    };
    if let Some(metered) = &exchange.metered
        && let Some(reason) = reason
    {
        let names = &metered.labels;
        metered
            .metrics
            .proxy_error(&names.listener, &names.route, &names.cluster, reason);
    }
    // A kept trace's id goes next to its latency as an exemplar.
    let exemplar = exchange
        .trace
        .as_ref()
        .filter(|_| kept)
        .map(|trace| trace.trace_id());
    if let Some(route) = exchange.metered.as_ref().and_then(|m| m.route.as_ref()) {
        route.finished(Finished {
            status,
            elapsed,
            bytes_in,
            bytes_out,
            trace_id: exemplar.as_deref(),
        });
    }
    if let (Some(entry), Some(log)) = (exchange.entry.as_deref_mut(), &exchange.log) {
        entry.status = status;
        entry.reason = reason;
        entry.duration_ms = elapsed.as_micros() as f64 / 1000.0;
        entry.bytes_in = bytes_in;
        entry.bytes_out = bytes_out;
        log.record(entry);
    }
}

impl Body for ExchangeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes_out += data.len() as u64;
                }
            }
            Some(Err(error)) => {
                if let Some(exchange) = this.exchange.as_mut() {
                    exchange.reason = Some(classify_exchange_error(error.as_ref()).reason());
                }
            }
            None => {
                if let Some(exchange) = this.exchange.take() {
                    // Release the upstream attempt first, so its span and metrics are
                    // recorded before the exchange's.
                    this.inner.set(empty());
                    finish(exchange, *this.bytes_out);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
