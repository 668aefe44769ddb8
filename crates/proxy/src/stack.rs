//! Assembly of a route's service stack from its config.
//!
//! Today a route is just [`Forward`] to its cluster. Bulkheads, breakers, retries, caching and
//! the fallback chain slot in here as tower layers around it, in the order the architecture
//! chart gives, without the edge or the forwarder changing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use watertight_config as config;
use watertight_telemetry::metrics::RouteMetrics;

use crate::body::ProxyBody;
use crate::cluster::Cluster;
use crate::drain::Drain;
use crate::error::ProxyError;
use crate::forward::Forward;

/// A route's request handling, cloned cheaply per request.
pub type RouteService = BoxCloneSyncService<Request<ProxyBody>, Response<ProxyBody>, ProxyError>;

/// The future of a route's answer.
pub type RouteFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send + 'static>>;

/// A route as the router hands it to the edge.
#[derive(Clone)]
pub struct RouteEntry {
    /// Route name, for logs.
    pub name: Arc<str>,
    /// Its cluster's name, for logs.
    pub cluster: Arc<str>,
    /// The service stack that answers it.
    pub service: RouteService,
    /// Its golden-signal metrics, when metrics are on.
    pub metrics: Option<Arc<RouteMetrics>>,
}

impl RouteEntry {
    /// Runs `request` through the route's stack.
    pub fn call(&self, request: Request<ProxyBody>) -> RouteFuture {
        // Boxing here, where every type is concrete, keeps the caller's async block `Send`
        // (the compiler cannot prove it through the service's associated future type).
        Box::pin(self.service.clone().oneshot(request))
    }
}

/// Builds the stack for `route`, which sends to `cluster`.
pub fn build(
    route: &config::Route,
    cluster: Arc<Cluster>,
    tunnels: Drain,
    metrics: Option<RouteMetrics>,
) -> RouteEntry {
    let timeout = match route.timeout {
        Some(timeout) => timeout.non_zero(),
        None => cluster.request_timeout(),
    };
    RouteEntry {
        name: route.name.as_str().into(),
        cluster: cluster.name().into(),
        service: BoxCloneSyncService::new(Forward::new(cluster, timeout, tunnels)),
        metrics: metrics.map(Arc::new),
    }
}
