//! A compiled config snapshot: per-listener routers with their route stacks, the clusters, and
//! the access log. Requests load the current snapshot once at their start and keep it to the
//! end, so a reload never changes the rules under a request in flight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use watertight_config::{self as config, Loaded};
use watertight_telemetry::Metrics;
use watertight_telemetry::metrics::ListenerMetrics;
use watertight_telemetry::trace::Tracer;

use crate::access_log::AccessLog;
use crate::cache::SharedCache;
use crate::cluster::{Cluster, ClusterStatus};
use crate::drain::Drain;
use crate::health;
use crate::router::{RouteMatcher, Router};
use crate::stack::{self, Labels, Metered, RouteEntry, RouteStatus};
use crate::tcp::TcpForward;

/// One listener's compiled rules.
pub struct ListenerRuntime {
    /// Its name (route and cluster empty).
    pub labels: Arc<Labels>,
    /// What an exchange no route took is counted under, when metrics are on.
    pub metered: Option<Arc<Metered>>,
    /// The listener's config (timeouts are read per connection).
    pub config: config::Listener,
    /// Its routes.
    pub router: Router<RouteEntry>,
    /// Its connection metrics, when metrics are on.
    pub metrics: Option<ListenerMetrics>,
    /// What a `tcp` listener forwards its connections to.
    pub tcp: Option<Arc<TcpForward>>,
}

impl ListenerRuntime {
    /// Listener name.
    pub fn name(&self) -> &Arc<str> {
        &self.labels.listener
    }
}

/// Everything a request needs from the config, compiled.
pub struct Runtime {
    /// The config this was compiled from.
    pub config: config::Config,
    /// Its version hash.
    pub version: String,
    /// Listeners by bound address. Looked up for every request, by keys the config sets
    /// (not the client): hashed with Fx, not SipHash (a tenth of the cost).
    pub listeners: FxHashMap<SocketAddr, ListenerRuntime>,
    /// Clusters by name, in config order.
    pub clusters: Vec<Arc<Cluster>>,
    /// The access log.
    pub access_log: Arc<AccessLog>,
    /// The proxy's metrics, when the config turns them on.
    pub metrics: Option<Arc<Metrics>>,
    /// What an exchange on a listener gone from the config is counted under (no names),
    /// when metrics are on.
    pub unlisted: Option<Arc<Metered>>,
    /// The tracer, when the config has a `tracing` section.
    pub tracer: Option<Arc<Tracer>>,
    /// The HTTP cache, when a route caches.
    pub cache: Option<Arc<SharedCache>>,
}

impl Runtime {
    /// Compiles `loaded`, reusing clusters and the access log from `previous` where their
    /// config is unchanged (so pools and counters survive the reload). Metric handles come
    /// from `metrics`, which outlives every snapshot.
    pub async fn compile(
        loaded: Loaded,
        previous: Option<&Runtime>,
        tunnels: &Drain,
        metrics: &Arc<Metrics>,
    ) -> Result<Runtime, String> {
        let Loaded { config, version } = loaded;
        let metered = config.metrics.enabled.then_some(metrics);
        let mut clusters = Vec::with_capacity(config.clusters.len());
        for cluster_config in &config.clusters {
            let kept = previous
                .and_then(|p| p.cluster(&cluster_config.name))
                .filter(|c| c.config() == cluster_config && c.metered() == metered.is_some())
                .cloned();
            let cluster = match kept {
                Some(cluster) => cluster,
                None => {
                    let cluster =
                        Arc::new(Cluster::new(cluster_config, metered.map(|m| m.as_ref()))?);
                    if let Some(replaced) = previous.and_then(|p| p.cluster(&cluster_config.name)) {
                        cluster.inherit_health(replaced);
                    }
                    health::checker::spawn(&cluster);
                    cluster
                }
            };
            clusters.push(cluster);
        }
        let by_name: HashMap<&str, &Arc<Cluster>> =
            clusters.iter().map(|c| (c.name(), c)).collect();
        // One cache for every caching route; an unchanged store config keeps its contents.
        let caching = config
            .listeners
            .iter()
            .flat_map(|l| &l.routes)
            .any(|r| r.cache.is_some());
        let cache = match caching {
            false => None,
            true => {
                let store = config.cache.clone().unwrap_or_default();
                let kept = previous
                    .and_then(|p| p.cache.as_ref())
                    .filter(|c| *c.config() == store)
                    .cloned();
                Some(match kept {
                    Some(cache) => cache,
                    None => Arc::new(SharedCache::new(&store)?),
                })
            }
        };

        let mut listeners = FxHashMap::default();
        for listener in &config.listeners {
            let address = config::parse_listen_address(&listener.address)?;
            let name: Arc<str> = listener.name.as_str().into();
            let mut routes = Vec::with_capacity(listener.routes.len());
            let previous_routes = previous.and_then(|p| p.listeners.get(&address));
            for route in &listener.routes {
                let previous_route = previous_routes
                    .and_then(|l| l.router.routes().find(|r| **r.name() == *route.name));
                routes.push((
                    RouteMatcher::compile(&route.matches),
                    stack::build(
                        &name,
                        route,
                        &by_name,
                        tunnels.clone(),
                        metered,
                        previous_route,
                        cache.as_ref(),
                    )?,
                ));
            }
            let tcp = match (&listener.protocol, &listener.cluster) {
                (config::ListenerProtocol::Tcp, Some(name)) => {
                    let cluster = by_name.get(name.as_str()).ok_or_else(|| {
                        format!(
                            "listener {:?} forwards to undefined cluster {name:?}",
                            listener.name
                        )
                    })?;
                    let previous = previous_routes
                        .and_then(|l| l.tcp.as_deref().map(|forward| (&l.config, forward)));
                    Some(Arc::new(TcpForward::new(
                        listener,
                        Arc::clone(cluster),
                        previous,
                        metered.map(|m| m.tcp(&listener.name, name)),
                    )))
                }
                _ => None,
            };
            let labels = Arc::new(Labels {
                listener: name,
                route: "".into(),
                cluster: "".into(),
            });
            listeners.insert(
                address,
                ListenerRuntime {
                    metered: metered.map(|m| Metered::unrouted(m, labels.clone())),
                    labels,
                    config: listener.clone(),
                    router: Router::new(routes),
                    metrics: metered.map(|m| m.listener(&listener.name)),
                    tcp,
                },
            );
        }

        let access_log = match previous {
            Some(p) if p.access_log.target() == config.access_log => p.access_log.clone(),
            _ => AccessLog::open(&config.access_log, metrics.access_log_dropped())
                .await
                .map_err(|e| e.to_string())?,
        };
        // An unchanged tracing section keeps its tracer (and its export queue).
        let tracer = config.tracing.as_ref().map(|tracing| {
            previous
                .and_then(|p| p.tracer.as_ref())
                .filter(|t| t.config() == tracing)
                .cloned()
                .unwrap_or_else(|| Tracer::start(tracing, metrics.clone()))
        });
        Ok(Runtime {
            tracer,
            config,
            version,
            listeners,
            clusters,
            access_log,
            metrics: metered.cloned(),
            unlisted: metered.map(|m| Metered::unrouted(m, Arc::default())),
            cache,
        })
    }

    /// The cluster called `name`.
    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| c.name() == name)
    }

    /// A point-in-time view of every cluster, for the admin API.
    pub fn cluster_status(&self) -> Vec<ClusterStatus> {
        self.clusters.iter().map(|c| c.status()).collect()
    }

    /// A point-in-time view of every route's bulkhead and retry budget, for the admin API.
    pub fn route_status(&self) -> Vec<RouteStatus> {
        let mut routes: Vec<RouteStatus> = self
            .listeners
            .values()
            .flat_map(|l| l.router.routes().map(RouteEntry::status))
            .collect();
        routes.sort_by(|a, b| (&a.listener, &a.route).cmp(&(&b.listener, &b.route)));
        routes
    }
}
