//! The route's fallback chain, walked when the upstream cannot answer for one of the reasons
//! the route lists: first the fallback cluster (for requests without a body, which can be
//! sent again, and only when they are idempotent or never reached the upstream: a write is
//! never applied twice), then the fixed response. A fallback answer carries
//! `x-watertight-degraded: <reason>` so clients and apps can tell.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body as _;
use tokio::time::Instant;
use watertight_config as config;
use watertight_telemetry::metrics::Counter;
use watertight_telemetry::trace::{RequestTrace, Value};

use crate::body::{ProxyBody, empty, full};
use crate::edge::Arrival;
use crate::error::{ErrorKind, ProxyError};
use crate::stack::{self, Layer, RouteFuture, RouteService};

/// The response header that marks a fallback answer.
pub const DEGRADED_HEADER: &str = "x-watertight-degraded";

/// Put on a fallback answer's extensions: the failure it stands in for.
#[derive(Clone, Copy, Debug)]
pub struct Degraded(pub &'static str);

/// A fixed answer, ready to clone.
#[derive(Clone, Debug)]
pub struct StaticAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl StaticAnswer {
    /// From the config (reading `body_file`).
    pub fn load(config: &config::StaticResponse) -> Result<Self, String> {
        let status = StatusCode::from_u16(config.status).map_err(|e| e.to_string())?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            headers.append(name, value);
        }
        let body = match (&config.body, &config.body_file) {
            (_, Some(file)) => Bytes::from(
                std::fs::read(file).map_err(|e| format!("fallback body_file {file:?}: {e}"))?,
            ),
            (Some(text), None) => Bytes::from(text.clone()),
            (None, None) => Bytes::new(),
        };
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    fn response(&self) -> Response<ProxyBody> {
        let mut response = Response::new(full(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// Counters of fallback answers, by where they came from.
#[derive(Clone, Debug)]
pub struct FallbackCounters {
    /// Answered by the fallback cluster.
    pub cluster: Counter,
    /// Answered by the fixed response.
    pub response: Counter,
}

/// A route's chain.
pub struct Chain {
    /// Reason words that walk it.
    pub on: Vec<String>,
    /// The fallback cluster's forwarder.
    pub cluster: Option<RouteService>,
    /// The fixed answer.
    pub response: Option<StaticAnswer>,
    /// Counters, when metrics are on.
    pub counters: Option<FallbackCounters>,
}

impl Chain {
    /// The reason to walk the chain for `outcome`, if it is one the route lists.
    fn reason(&self, outcome: &Result<Response<ProxyBody>, ProxyError>) -> Option<&'static str> {
        let reason = match outcome {
            Err(error) => error.kind().reason(),
            Ok(response) if response.status().is_server_error() => "5xx",
            Ok(_) => return None,
        };
        self.on.iter().any(|r| r == reason).then_some(reason)
    }
}

/// `inner` with a fallback chain.
#[derive(Clone)]
pub struct WithFallback {
    inner: RouteService,
    chain: Arc<Chain>,
}

impl WithFallback {
    /// `inner`, falling back per `chain`.
    pub fn new(inner: RouteService, chain: Arc<Chain>) -> Self {
        Self { inner, chain }
    }
}

impl Layer for WithFallback {
    fn handle(&self, request: Request<ProxyBody>, arrival: Arrival) -> RouteFuture {
        let inner = self.inner.clone();
        let chain = self.chain.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // Without a body, and either safe to repeat or certain not to have been applied.
            let idempotent = crate::retry::is_idempotent(&parts.method);
            let bodiless = body.is_end_stream().then(|| parts.clone());
            let trace = parts.extensions.get::<Arc<RequestTrace>>().cloned();
            let outcome = stack::call(inner, Request::from_parts(parts, body), arrival).await;
            let Some(reason) = chain.reason(&outcome) else {
                return outcome;
            };
            let never_applied = outcome.as_ref().err().is_some_and(|e| {
                e.kind().never_reached_upstream()
                    || matches!(
                        e.kind(),
                        ErrorKind::BreakerOpen
                            | ErrorKind::Shed
                            | ErrorKind::BulkheadFull
                            | ErrorKind::QueueTimeout
                            | ErrorKind::DeadlineExceeded
                    )
            });
            let resendable = bodiless.filter(|_| idempotent || never_applied);
            let note = |via: &'static str| {
                if let Some(trace) = &trace {
                    trace.event(
                        "fallback",
                        vec![
                            ("watertight.fallback", Value::Str(via.to_owned())),
                            ("watertight.reason", Value::Str(reason.to_owned())),
                        ],
                    );
                }
            };
            if let (Some(cluster), Some(parts)) = (&chain.cluster, resendable) {
                // The fallback cluster's own timeout runs from now, not from the arrival.
                let now = Arrival {
                    at: Instant::now(),
                    ..arrival
                };
                let answer =
                    stack::call(cluster.clone(), Request::from_parts(parts, empty()), now).await;
                if let Ok(response) = answer
                    && !response.status().is_server_error()
                {
                    note("cluster");
                    if let Some(c) = &chain.counters {
                        c.cluster.inc();
                    }
                    return Ok(degraded(response, reason));
                }
            }
            if let Some(answer) = &chain.response {
                note("response");
                if let Some(c) = &chain.counters {
                    c.response.inc();
                }
                return Ok(degraded(answer.response(), reason));
            }
            outcome
        })
    }
}

fn degraded(mut response: Response<ProxyBody>, reason: &'static str) -> Response<ProxyBody> {
    response
        .headers_mut()
        .insert(DEGRADED_HEADER, HeaderValue::from_static(reason));
    response.extensions_mut().insert(Degraded(reason));
    response
}
