//! Metrics read from the running snapshot when Prometheus scrapes: how full each endpoint's
//! pool is, what is in flight per cluster and endpoint, and which config is running. These
//! values already live in the clusters' counters, so they are read, never counted twice.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use watertight_config::UpstreamProtocol;
use watertight_resilience::Bulkhead;
use watertight_resilience::breaker::State;
use watertight_telemetry::metrics::scrape;

use crate::drain::Drain;
use crate::health;
use crate::runtime::Runtime;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    cluster: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointStateLabels {
    cluster: String,
    endpoint: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    listener: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// Reads the proxy's live state at scrape time.
pub(crate) struct Saturation {
    /// Set once the first snapshot is compiled.
    pub(crate) runtime: Arc<OnceLock<Arc<ArcSwap<Runtime>>>>,
    pub(crate) drain: Drain,
}

impl fmt::Debug for Saturation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Saturation")
    }
}

impl Collector for Saturation {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(runtime) = self.runtime.get() else {
            return Ok(());
        };
        let runtime = runtime.load();
        let e = &mut encoder;
        let endpoints = || {
            runtime.clusters.iter().flat_map(|cluster| {
                cluster.endpoints().iter().map(move |endpoint| {
                    let labels = EndpointLabels {
                        cluster: cluster.name().to_owned(),
                        endpoint: endpoint.address.to_string(),
                    };
                    (cluster, endpoint, labels)
                })
            })
        };
        scrape::gauges(
            e,
            "upstream_requests_in_flight",
            "Attempts in flight now, by endpoint",
            None,
            endpoints().map(|(_, ep, labels)| (labels, f64::from(ep.in_flight()))),
        )?;
        scrape::gauges(
            e,
            "cluster_requests_in_flight",
            "Attempts in flight now, by cluster",
            None,
            runtime.clusters.iter().map(|c| {
                let in_flight: u32 = c.endpoints().iter().map(|ep| ep.in_flight()).sum();
                let labels = ClusterLabels {
                    cluster: c.name().to_owned(),
                };
                (labels, f64::from(in_flight))
            }),
        )?;
        scrape::gauges(
            e,
            "upstream_connections_open",
            "Connections open to the endpoint (idle in the pool or carrying requests)",
            None,
            endpoints().map(|(_, ep, labels)| (labels, ep.open_connections() as f64)),
        )?;
        scrape::gauges(
            e,
            "upstream_connections_idle",
            "HTTP/1.1 connections idle in the endpoint's pool (open minus in flight)",
            None,
            endpoints()
                .filter(|(c, _, _)| c.protocol() == UpstreamProtocol::Http1)
                .map(|(_, ep, labels)| {
                    let idle = ep
                        .open_connections()
                        .saturating_sub(ep.in_flight() as usize);
                    (labels, idle as f64)
                }),
        )?;
        scrape::gauges(
            e,
            "breaker_open",
            "1 while the endpoint's circuit breaker refuses calls (open), 0.5 half-open, 0 closed",
            None,
            endpoints().filter_map(|(_, ep, labels)| {
                let state = ep.breaker_state()?;
                let value = match state {
                    State::Closed => 0.0,
                    State::HalfOpen => 0.5,
                    State::Open => 1.0,
                };
                Some((labels, value))
            }),
        )?;
        let now = std::time::Instant::now();
        scrape::gauges(
            e,
            "endpoint_health",
            "1 for the endpoint's state now (healthy, unhealthy, unknown, draining, disabled), 0 for the others",
            None,
            endpoints().flat_map(|(_, ep, labels)| {
                let current = ep.state(now);
                health::State::ALL.into_iter().map(move |state| {
                    let labels = EndpointStateLabels {
                        cluster: labels.cluster.clone(),
                        endpoint: labels.endpoint.clone(),
                        state: state.name(),
                    };
                    (labels, if state == current { 1.0 } else { 0.0 })
                })
            }),
        )?;
        scrape::gauges(
            e,
            "cluster_active_priority",
            "The priority group the cluster's traffic goes to now (0 = primary); -1 when no endpoint is available",
            None,
            runtime.clusters.iter().map(|c| {
                let labels = ClusterLabels {
                    cluster: c.name().to_owned(),
                };
                (labels, c.active_priority().map_or(-1.0, f64::from))
            }),
        )?;
        let cluster_bulkheads = || {
            runtime.clusters.iter().filter_map(|c| {
                let labels = ClusterLabels {
                    cluster: c.name().to_owned(),
                };
                c.bulkhead().map(|(b, _)| (labels, b.as_ref()))
            })
        };
        bulkhead_gauges(e, "cluster_bulkhead", "the cluster's", cluster_bulkheads)?;
        let adaptive = || {
            runtime.clusters.iter().filter_map(|c| {
                let labels = ClusterLabels {
                    cluster: c.name().to_owned(),
                };
                c.adaptive_limit().map(|limit| (labels, limit))
            })
        };
        scrape::gauges(
            e,
            "adaptive_concurrency_limit",
            "The cluster's concurrency limit as adaptive concurrency has learned it",
            None,
            adaptive().map(|(labels, (limit, _))| (labels, limit as f64)),
        )?;
        scrape::gauges(
            e,
            "adaptive_concurrency_in_flight",
            "Requests under the cluster's adaptive limit now",
            None,
            adaptive().map(|(labels, (_, in_flight))| (labels, in_flight as f64)),
        )?;
        scrape::gauges(
            e,
            "upstream_pool_max_idle",
            "Most idle connections the pool keeps per endpoint, by cluster",
            None,
            runtime.clusters.iter().map(|c| {
                let labels = ClusterLabels {
                    cluster: c.name().to_owned(),
                };
                (labels, c.config().pool.max_idle_per_endpoint as f64)
            }),
        )?;
        let bulkheads = || {
            runtime.listeners.values().flat_map(|listener| {
                listener.router.routes().filter_map(move |route| {
                    let bulkhead = route.bulkhead.as_ref()?;
                    let labels = RouteLabels {
                        listener: listener.name().to_string(),
                        route: route.name().to_string(),
                    };
                    Some((labels, bulkhead.as_ref()))
                })
            })
        };
        bulkhead_gauges(e, "bulkhead", "the route's", bulkheads)?;
        if let Some(cache) = &runtime.cache {
            let counts = &cache.counts;
            let read = |c: &std::sync::atomic::AtomicU64| {
                c.load(std::sync::atomic::Ordering::Relaxed) as f64
            };
            scrape::counters(
                e,
                "cache_requests",
                "Lookups on caching routes by result: hit (fresh from the store), stale (answered stale), miss (went to the origin itself), coalesced (answered by another request's fetch); revalidations are counted apart",
                [
                    ("hit", read(&counts.hits)),
                    ("stale", read(&counts.stale)),
                    ("miss", read(&counts.misses)),
                    ("coalesced", read(&counts.coalesced)),
                ]
                .map(|(result, value)| (ResultLabels { result }, value)),
            )?;
            scrape::counter(
                e,
                "cache_revalidations",
                "Conditional requests sent to revalidate stored responses",
                None,
                read(&counts.revalidations),
            )?;
            scrape::counter(
                e,
                "cache_stores",
                "Responses stored",
                None,
                read(&counts.stored),
            )?;
            scrape::counter(
                e,
                "cache_evictions",
                "Stored responses evicted for room",
                None,
                cache.store.evictions() as f64,
            )?;
            let (bytes, objects) = cache.store.usage();
            scrape::gauge(
                e,
                "cache_stored_bytes",
                "Bytes held by the memory tier",
                None,
                bytes as f64,
            )?;
            scrape::counter(
                e,
                "cache_purges",
                "Purges asked for on the admin API (hard or soft)",
                None,
                read(&counts.purges),
            )?;
            if let Some(bytes) = cache.disk_bytes() {
                scrape::gauge(
                    e,
                    "cache_disk_bytes",
                    "Bytes held by the disk tier",
                    None,
                    bytes as f64,
                )?;
            }
            scrape::gauge(
                e,
                "cache_stored_objects",
                "URLs held by the memory tier",
                None,
                objects as f64,
            )?;
        }
        scrape::gauge(
            e,
            "connections_open",
            "Client connections and tunnels open now, all listeners",
            None,
            self.drain.open() as f64,
        )?;
        scrape::gauges(
            e,
            "config_info",
            "The running config's version (always 1)",
            None,
            [(
                VersionLabels {
                    version: runtime.version.clone(),
                },
                1.0,
            )],
        )?;
        Ok(())
    }
}

/// Reads one figure off a bulkhead.
type Reading = fn(&Bulkhead) -> usize;

/// Writes the in-flight, limit and queued gauges of `prefix` for the bulkheads `each` yields
/// (`whose`: "the route's", "the cluster's", for the help texts).
fn bulkhead_gauges<'a, S, I>(
    e: &mut DescriptorEncoder<'_>,
    prefix: &str,
    whose: &str,
    each: impl Fn() -> I,
) -> fmt::Result
where
    S: EncodeLabelSet,
    I: Iterator<Item = (S, &'a Bulkhead)>,
{
    let gauges: [(&str, &str, Reading); 3] = [
        (
            "in_flight",
            "Requests admitted by {whose} bulkhead now",
            Bulkhead::in_flight,
        ),
        (
            "limit",
            "Most requests {whose} bulkhead admits at once",
            Bulkhead::limit,
        ),
        (
            "queued",
            "Requests waiting in {whose} bulkhead queue now",
            Bulkhead::queued,
        ),
    ];
    for (suffix, help, read) in gauges {
        scrape::gauges(
            e,
            &format!("{prefix}_{suffix}"),
            &help.replace("{whose}", whose),
            None,
            each().map(|(labels, b)| (labels, read(b) as f64)),
        )?;
    }
    Ok(())
}
