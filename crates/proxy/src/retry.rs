//! The route's retry layer: send the request again when an attempt fails in a way the route
//! says to retry, on another endpoint when there is one, within the retry budget and the
//! route's deadline, after an exponential backoff with jitter (or the upstream's
//! `Retry-After`, when it says more).
//!
//! Requests that can be replayed are those without a body or with a body of known length up
//! to the replay buffer, which is read whole before the first try. A non-idempotent request
//! (POST, PATCH…) is only sent again when the first connection was never made, unless the
//! route opts in: a write the upstream may have applied is never duplicated by default.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, RETRY_AFTER};
use http::{Method, Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::time::Instant;

use watertight_config::{self as config, RetryCondition};
use watertight_resilience::{Backoff, RetryBudget};
use watertight_telemetry::metrics::RetryMetrics;
use watertight_telemetry::trace::{RequestTrace, Value};

use crate::body::{ProxyBody, full};
use crate::edge::Arrival;
use crate::error::{BoxError, ErrorKind, ProxyError};
use crate::forward::ServedBy;
use crate::stack::{self, Layer, RouteFuture, RouteService};

/// The longest wait before a retry on a route without a deadline.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What the forwarder needs to know about the attempt it is making.
#[derive(Clone, Debug, Default)]
pub struct AttemptPlan {
    /// Endpoints earlier attempts went to; avoided while others remain.
    pub tried: Vec<Arc<str>>,
    /// When the wait for this attempt's response head ends (per-try timeout).
    pub head_deadline: Option<Instant>,
    /// When the whole exchange must be over (the route's timeout, from the first try).
    pub deadline: Option<Instant>,
}

/// A route's retry rules, compiled.
pub struct RetryPolicy {
    attempts: u32,
    conditions: Vec<RetryCondition>,
    per_try_timeout: Option<Duration>,
    timeout: Option<Duration>,
    backoff: Backoff,
    budget: RetryBudget,
    replay_buffer: usize,
    non_idempotent: bool,
    metrics: Option<RetryMetrics>,
}

impl RetryPolicy {
    /// From a route's `retry` section; `timeout` is the route's whole-exchange timeout.
    pub fn new(
        config: &config::Retry,
        timeout: Option<Duration>,
        metrics: Option<RetryMetrics>,
    ) -> Self {
        Self {
            attempts: config.attempts.max(1),
            conditions: config
                .retry_on
                .iter()
                .filter_map(|c| RetryCondition::parse(c))
                .collect(),
            per_try_timeout: config.per_try_timeout.and_then(|t| t.non_zero()),
            timeout,
            backoff: Backoff {
                base: config.backoff.base.get(),
                max: config.backoff.max.get(),
            },
            budget: RetryBudget::new(
                config.budget.ratio,
                config.budget.min_per_second,
                Duration::from_secs(10),
            ),
            replay_buffer: config.replay_buffer,
            non_idempotent: config.non_idempotent,
            metrics,
        }
    }

    /// Whether it counts its decisions in metrics.
    pub fn metered(&self) -> bool {
        self.metrics.is_some()
    }

    /// Retries the budget would allow now.
    pub fn budget_available(&self) -> f64 {
        self.budget.available(Instant::now().into_std())
    }

    fn has(&self, condition: RetryCondition) -> bool {
        self.conditions.contains(&condition)
    }

    /// Whether this outcome is one the route retries, and why (for the trace).
    fn wants_retry(&self, outcome: &Result<Response<ProxyBody>, ProxyError>) -> Option<String> {
        match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                self.conditions
                    .iter()
                    .any(|c| c.matches_status(status))
                    .then(|| format!("status {status}"))
            }
            Err(error) => {
                let kind = error.kind();
                let wanted = match kind {
                    ErrorKind::ConnectRefused
                    | ErrorKind::ConnectTimeout
                    | ErrorKind::ConnectFailed => self.has(RetryCondition::ConnectFailure),
                    ErrorKind::UpstreamReset | ErrorKind::UpstreamProtocol => {
                        self.has(RetryCondition::Reset)
                    }
                    ErrorKind::UpstreamTimeout => self.has(RetryCondition::Timeout),
                    _ => false,
                };
                wanted.then(|| kind.reason().to_owned())
            }
        }
    }
}

/// Retries `inner` per a route's [`RetryPolicy`].
#[derive(Clone)]
pub struct Retrying {
    inner: RouteService,
    policy: Arc<RetryPolicy>,
}

impl Retrying {
    /// `inner` with `policy`.
    pub fn new(inner: RouteService, policy: Arc<RetryPolicy>) -> Self {
        Self { inner, policy }
    }
}

impl Layer for Retrying {
    fn handle(&self, request: Request<ProxyBody>, arrival: Arrival) -> RouteFuture {
        Box::pin(run(
            self.inner.clone(),
            self.policy.clone(),
            request,
            arrival,
        ))
    }
}

async fn run(
    inner: RouteService,
    policy: Arc<RetryPolicy>,
    request: Request<ProxyBody>,
    arrival: Arrival,
) -> Result<Response<ProxyBody>, ProxyError> {
    policy.budget.deposit(Instant::now().into_std());
    let deadline = policy.timeout.and_then(|t| arrival.at.checked_add(t));
    let (parts, body) = request.into_parts();
    let replay = match replayable(&parts, body, policy.replay_buffer, deadline).await? {
        Kept::Whole(bytes) => bytes,
        // Too big (or of unknown length) to keep: one try, streamed.
        Kept::Streaming(body) => {
            return stack::call(inner, Request::from_parts(parts, body), arrival).await;
        }
    };
    let idempotent = is_idempotent(&parts.method);
    let trace = parts.extensions.get::<Arc<RequestTrace>>().cloned();
    let mut plan = AttemptPlan {
        deadline,
        ..AttemptPlan::default()
    };
    for attempt in 1..=policy.attempts {
        plan.head_deadline = policy
            .per_try_timeout
            .and_then(|t| Instant::now().checked_add(t));
        let mut request = Request::from_parts(parts.clone(), full(replay.clone()));
        request.extensions_mut().insert(plan.clone());
        // A retry avoids the endpoints already tried: each answer must say which it was.
        let noted = Arrival {
            note_endpoint: true,
            ..arrival
        };
        let outcome = stack::call(inner.clone(), request, noted).await;

        if attempt == policy.attempts {
            return outcome;
        }
        let Some(why) = policy.wants_retry(&outcome) else {
            return outcome;
        };
        let never_sent = outcome
            .as_ref()
            .err()
            .is_some_and(|e| e.kind().never_reached_upstream());
        if !(idempotent || policy.non_idempotent || never_sent) {
            return outcome;
        }
        let wait = policy
            .backoff
            .delay(attempt, rand::random::<f64>())
            .max(retry_after(&outcome).unwrap_or_default());
        // No time left for the wait and another try (an upstream asking for more than
        // MAX_RETRY_AFTER is not waited for at all: the client gets its answer).
        let too_late = match deadline {
            Some(deadline) => Instant::now()
                .checked_add(wait)
                .is_none_or(|resume| resume >= deadline),
            None => wait > MAX_RETRY_AFTER,
        };
        if too_late {
            if let Some(m) = &policy.metrics {
                m.deadline.inc();
            }
            return outcome;
        }
        if !policy.budget.withdraw(Instant::now().into_std()) {
            if let Some(m) = &policy.metrics {
                m.budget_exhausted.inc();
            }
            return outcome;
        }
        if let Some(m) = &policy.metrics {
            m.sent.inc();
        }
        let endpoint = match &outcome {
            Ok(response) => response.extensions().get::<ServedBy>().map(|s| s.0.clone()),
            Err(error) => error.endpoint().cloned(),
        };
        plan.tried.extend(endpoint);
        if let Some(trace) = &trace {
            trace.event(
                "retry",
                vec![
                    ("watertight.attempt", Value::Int((attempt + 1).into())),
                    ("watertight.retry_reason", Value::Str(why)),
                ],
            );
        }
        // Let go of the failed answer (and its connection) before waiting.
        drop(outcome);
        tokio::time::sleep(wait).await;
    }
    unreachable!("the last attempt returns")
}

/// A request body, kept whole for replay or left to stream once.
enum Kept {
    Whole(Bytes),
    Streaming(ProxyBody),
}

/// Keeps the body for replay when it is empty or its declared length fits the buffer.
async fn replayable(
    parts: &http::request::Parts,
    body: ProxyBody,
    limit: usize,
    deadline: Option<Instant>,
) -> Result<Kept, ProxyError> {
    if body.is_end_stream() {
        return Ok(Kept::Whole(Bytes::new()));
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_none_or(|length| length > limit) {
        return Ok(Kept::Streaming(body));
    }
    // A client trickling its body is bounded by the route's deadline like everything else.
    let read = read_whole(body, limit);
    let read = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
            Ok(read) => read,
            Err(_) => return Err(ProxyError::new(ErrorKind::ClientTimeout)),
        },
        None => read.await,
    };
    match read {
        Ok(bytes) => Ok(Kept::Whole(bytes)),
        Err(error) => Err(ProxyError::with_source(ErrorKind::ClientAborted, error)),
    }
}

/// Reads `body` whole, up to `limit` bytes. Boxed in a plain function, where every type is
/// concrete, so that the retry future stays provably `Send`.
fn read_whole(
    body: ProxyBody,
    limit: usize,
) -> Pin<Box<dyn Future<Output = Result<Bytes, BoxError>> + Send>> {
    Box::pin(async move {
        let mut body = body;
        let mut whole = BytesMut::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if whole.len() + data.len() > limit {
                    return Err("request body longer than its content-length".into());
                }
                whole.extend_from_slice(&data);
            }
        }
        Ok(whole.freeze())
    })
}

/// RFC 9110 §9.2.2: a request the server may apply twice with the effect of once.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The wait an answer's `Retry-After` asks for, in seconds (the HTTP-date form is ignored).
fn retry_after(outcome: &Result<Response<ProxyBody>, ProxyError>) -> Option<Duration> {
    let response = outcome.as_ref().ok()?;
    let seconds: u64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}
