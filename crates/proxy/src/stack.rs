//! Assembly of a route's service stack from its config.
//!
//! From the outside in: the route's fallback chain (if any), its cache (if any), its
//! bulkhead (if any), its retries (if any), then [`Forward`] to its cluster (whose endpoints
//! carry the circuit breakers).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};

use watertight_config as config;
use watertight_resilience::Bulkhead;
use watertight_telemetry::Metrics;
use watertight_telemetry::metrics::RouteMetrics;

use crate::body::ProxyBody;
use crate::bulkhead::Bulkheaded;
use crate::cache::{Caching, SharedCache};
use crate::cluster::Cluster;
use crate::drain::Drain;
use crate::edge::Arrival;
use crate::error::ProxyError;
use crate::fallback::{Chain, FallbackCounters, StaticAnswer, WithFallback};
use crate::forward::Forward;
use crate::retry::{RetryPolicy, Retrying};

/// A route's request handling (a layer and, through it, the layers inside), shared by every
/// request: calling it costs one allocation, the future's. A route with no layer but the
/// forward to its cluster is kept as that, so that the edge can run it in place, with none.
#[derive(Clone)]
pub struct RouteService(Service);

#[derive(Clone)]
enum Service {
    Forward(Arc<Forward>),
    Layered(Arc<dyn Handles>),
}

/// [`Layer`] without `Clone`, so that it can sit behind a pointer.
trait Handles: Send + Sync + 'static {
    fn handle(&self, request: Request<ProxyBody>, arrival: Arrival) -> RouteFuture;
}

impl<L: Layer> Handles for L {
    fn handle(&self, request: Request<ProxyBody>, arrival: Arrival) -> RouteFuture {
        Layer::handle(self, request, arrival)
    }
}

/// The future of a route's answer.
pub type RouteFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send + 'static>>;

/// A route's names: its listener's, its own and its cluster's (the last two empty for what a
/// listener answers unrouted). Made once per route (and once per listener), so an exchange
/// that needs them for its error count (`watertight_proxy_errors_total`) holds them with one
/// reference.
#[derive(Debug, Default)]
pub struct Labels {
    pub listener: Arc<str>,
    pub route: Arc<str>,
    pub cluster: Arc<str>,
}

/// What an exchange is counted under when metrics are on: the proxy's metrics, the names,
/// and the route's golden signals (none for what a listener answers unrouted). Made once per
/// route (and once per listener), so an exchange holds all of it with one reference.
pub struct Metered {
    pub metrics: Arc<Metrics>,
    pub labels: Arc<Labels>,
    pub route: Option<Arc<RouteMetrics>>,
}

impl Metered {
    /// What an exchange no route took is counted under: its errors, under `labels`.
    pub fn unrouted(metrics: &Arc<Metrics>, labels: Arc<Labels>) -> Arc<Self> {
        Arc::new(Self {
            metrics: metrics.clone(),
            labels,
            route: None,
        })
    }
}

/// A route as the router hands it to the edge.
#[derive(Clone)]
pub struct RouteEntry {
    /// Its listener's, its own and its cluster's names.
    pub labels: Arc<Labels>,
    /// The service stack that answers it.
    pub service: RouteService,
    /// What its exchanges are counted under (its golden signals among it), when metrics are
    /// on.
    pub metered: Option<Arc<Metered>>,
    /// Its bulkhead, if it has one (read by the admin API and metrics).
    pub bulkhead: Option<Arc<Bulkhead>>,
    /// Its retry policy, if it retries (read by the admin API).
    pub retry: Option<Arc<RetryPolicy>>,
    /// The config it was built from (a reload keeps its bulkhead and retry budget while
    /// their sections are unchanged).
    pub config: config::Route,
    /// Its whole-exchange timeout.
    pub timeout: Option<std::time::Duration>,
}

/// What `GET /clusters` shows for one route's resilience state.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RouteStatus {
    /// Listener name.
    pub listener: String,
    /// Route name.
    pub route: String,
    /// Its cluster.
    pub cluster: String,
    /// Bulkhead occupancy, if it has one.
    pub bulkhead: Option<BulkheadStatus>,
    /// Retries the budget allows now, if it retries.
    pub retry_budget_available: Option<f64>,
}

/// A bulkhead's occupancy.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct BulkheadStatus {
    /// Admitted now.
    pub in_flight: usize,
    /// Most admitted at once.
    pub limit: usize,
    /// Waiting now.
    pub queued: usize,
    /// Most that may wait.
    pub max_queue: usize,
}

impl RouteEntry {
    /// Route name.
    pub fn name(&self) -> &Arc<str> {
        &self.labels.route
    }

    /// Its cluster's name.
    pub fn cluster(&self) -> &Arc<str> {
        &self.labels.cluster
    }

    /// Its resilience state now, for the admin API.
    pub fn status(&self) -> RouteStatus {
        RouteStatus {
            listener: self.labels.listener.to_string(),
            route: self.labels.route.to_string(),
            cluster: self.labels.cluster.to_string(),
            bulkhead: self.bulkhead.as_ref().map(|b| BulkheadStatus {
                in_flight: b.in_flight(),
                limit: b.limit(),
                queued: b.queued(),
                max_queue: b.max_queue(),
            }),
            retry_budget_available: self.retry.as_ref().map(|r| r.budget_available()),
        }
    }
}

impl RouteEntry {
    /// Starts `request`, which arrived as `arrival` says, on the route's stack.
    pub fn start(&self, request: Request<ProxyBody>, arrival: Arrival) -> Started {
        match &self.service.0 {
            Service::Forward(forward) => Started::InPlace(forward.clone(), request, arrival),
            Service::Layered(layers) => Started::Boxed(layers.handle(request, arrival)),
        }
    }
}

/// A request started on its route: a layered stack's boxed future, or a lone forward whose
/// future is made where this is awaited (inside the caller's, not allocated on its own).
// The request makes one variant large; boxing it would cost the allocation this saves.
#[allow(clippy::large_enum_variant)]
pub enum Started {
    InPlace(Arc<Forward>, Request<ProxyBody>, Arrival),
    Boxed(RouteFuture),
}

impl Started {
    /// The route's answer.
    pub async fn answer(self) -> Result<Response<ProxyBody>, ProxyError> {
        match self {
            Started::InPlace(forward, request, arrival) => forward.forward(request, arrival).await,
            Started::Boxed(future) => future.await,
        }
    }
}

/// A layer of a route's stack: how it handles one request (calling the layer inside it, if
/// any, through [`call`]).
pub trait Layer: Clone + Send + Sync + 'static {
    /// Handles `request`, which arrived as `arrival` says.
    fn handle(&self, request: Request<ProxyBody>, arrival: Arrival) -> RouteFuture;
}

/// `layer` as a route service.
pub fn layered(layer: impl Layer) -> RouteService {
    RouteService(Service::Layered(Arc::new(layer)))
}

/// A forward to a cluster, with no layer around it, as a route service.
pub fn forwarding(forward: Forward) -> RouteService {
    RouteService(Service::Forward(Arc::new(forward)))
}

/// Runs `request` through `service`. Layers call their inner service through this.
pub fn call(service: RouteService, request: Request<ProxyBody>, arrival: Arrival) -> RouteFuture {
    match service.0 {
        Service::Forward(forward) => {
            Box::pin(async move { forward.forward(request, arrival).await })
        }
        Service::Layered(layers) => layers.handle(request, arrival),
    }
}

/// Builds the stack for `route` on `listener`, which sends to its cluster (and may fall back
/// to another), both from `clusters`; metric handles come from `metrics` when metrics are on.
/// `previous` is the same route in the snapshot being replaced: its bulkhead (with the
/// requests it holds) and retry budget carry over while their config is unchanged, so a
/// reload neither doubles a route's concurrency nor refills its budget.
pub fn build(
    listener: &Arc<str>,
    route: &config::Route,
    clusters: &HashMap<&str, &Arc<Cluster>>,
    tunnels: Drain,
    metrics: Option<&Arc<Metrics>>,
    previous: Option<&RouteEntry>,
    cache: Option<&Arc<SharedCache>>,
) -> Result<RouteEntry, String> {
    let cluster = clusters.get(route.cluster.as_str()).ok_or_else(|| {
        format!(
            "route {:?} points to undefined cluster {:?}",
            route.name, route.cluster
        )
    })?;
    let cluster = Arc::clone(cluster);
    let timeout = match route.timeout {
        Some(timeout) => timeout.non_zero(),
        None => cluster.request_timeout(),
    };
    let cluster_name: Arc<str> = cluster.name().into();
    let mut service = forwarding(Forward::new(cluster, timeout, tunnels.clone()));
    let kept_retry = previous
        .filter(|p| {
            p.config.retry == route.retry
                && p.timeout == timeout
                && p.config.cluster == route.cluster
                && p.retry
                    .as_ref()
                    .is_some_and(|r| r.metered() == metrics.is_some())
        })
        .and_then(|p| p.retry.clone());
    let retry = route
        .retry
        .as_ref()
        .filter(|retry| retry.attempts > 1)
        .map(|retry| {
            kept_retry.unwrap_or_else(|| {
                let retry_metrics = metrics.map(|m| m.retries(&route.name, &cluster_name));
                Arc::new(RetryPolicy::new(retry, timeout, retry_metrics))
            })
        });
    if let Some(policy) = &retry {
        service = layered(Retrying::new(service, policy.clone()));
    }
    let kept_bulkhead = previous
        .filter(|p| p.config.bulkhead == route.bulkhead)
        .and_then(|p| p.bulkhead.clone());
    let bulkhead = route.bulkhead.as_ref().map(|b| {
        kept_bulkhead.unwrap_or_else(|| {
            Arc::new(Bulkhead::new(
                b.max_concurrent,
                b.max_queue,
                b.queue_timeout.get(),
            ))
        })
    });
    if let (Some(bulkhead), Some(config)) = (&bulkhead, &route.bulkhead) {
        let priority_header = config
            .priority_header
            .as_deref()
            .map(|name| http::header::HeaderName::from_bytes(name.as_bytes()))
            .transpose()
            .map_err(|e| format!("route {:?}: priority_header: {e}", route.name))?;
        service = layered(Bulkheaded::new(service, bulkhead.clone(), priority_header));
    }
    // The cache sits outside the bulkhead (a hit takes no slot) and inside the fallback
    // chain (a stale answer for a failed origin comes before any fallback).
    if let (Some(config), Some(cache)) = (&route.cache, cache) {
        service = layered(Caching::new(service, cache.clone(), config.clone()));
    }
    if let Some(fallback) = &route.fallback {
        let other = match &fallback.cluster {
            Some(name) => {
                let other = clusters
                    .get(name.as_str())
                    .ok_or_else(|| format!("fallback cluster {name:?} is not defined"))?;
                let timeout = other.request_timeout();
                Some(forwarding(Forward::new(
                    Arc::clone(other),
                    timeout,
                    tunnels.clone(),
                )))
            }
            None => None,
        };
        let chain = Chain {
            on: fallback.on.clone(),
            cluster: other,
            response: fallback
                .response
                .as_ref()
                .map(StaticAnswer::load)
                .transpose()
                .map_err(|e| format!("route {:?}: {e}", route.name))?,
            counters: metrics.map(|m| FallbackCounters {
                cluster: m.fallbacks(&route.name, &cluster_name, "cluster"),
                response: m.fallbacks(&route.name, &cluster_name, "response"),
            }),
        };
        service = layered(WithFallback::new(service, Arc::new(chain)));
    }
    let labels = Arc::new(Labels {
        listener: listener.clone(),
        route: route.name.as_str().into(),
        cluster: cluster_name.clone(),
    });
    Ok(RouteEntry {
        metered: metrics.map(|m| {
            Arc::new(Metered {
                metrics: m.clone(),
                labels: labels.clone(),
                route: Some(Arc::new(m.route(&route.name, &cluster_name))),
            })
        }),
        labels,
        service,
        bulkhead,
        retry,
        config: route.clone(),
        timeout,
    })
}
