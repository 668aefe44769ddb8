//! The config schema: what a watertight config file may say, with its defaults.
//!
//! These types are plain data. Loading (`load.rs`) fills them from YAML; validation
//! (`validate/`) checks what serde cannot (references, addresses, duplicates); the proxy
//! compiles a validated `Config` into its runtime.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Duration;
use crate::cache::{CacheStore, RouteCache};
use crate::failover::{Failback, HealthCheck, OnEndpointDown, ProxyProtocol};
use crate::hashing::HashPolicy;
use crate::resilience::{
    AdaptiveConcurrency, Bulkhead, CircuitBreaker, EndpointBulkhead, Fallback, OutlierDetection,
    Retry,
};
use crate::telemetry::{Metrics, Tracing};

/// A whole watertight config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The admin API (health, readiness, running config, clusters).
    #[serde(default)]
    pub admin: Admin,
    /// Where the JSON-lines access log goes: `stdout` (default), `stderr`, `off`, or a file path.
    #[serde(default = "default_access_log")]
    pub access_log: String,
    /// How long a graceful shutdown waits for in-flight requests before exiting.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Duration,
    /// Addresses the proxy accepts traffic on, each with its routes.
    pub listeners: Vec<Listener>,
    /// Named groups of upstream endpoints that routes send traffic to.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Prometheus metrics on the admin API.
    #[serde(default)]
    pub metrics: Metrics,
    /// Distributed tracing; off when absent.
    #[serde(default)]
    pub tracing: Option<Tracing>,
    /// The HTTP cache's store, shared by every route with `cache`; defaults apply when a
    /// route caches and this is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStore>,
}

/// The admin API listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `IP:port` the admin API listens on. Keep it on loopback or a private network.
    #[serde(default = "default_admin_address")]
    pub address: String,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            address: default_admin_address(),
        }
    }
}

/// One listening socket and the routes that decide where its requests go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// A unique name, used in logs and metrics.
    pub name: String,
    /// `IP:port` to listen on, e.g. `0.0.0.0:8080` or `[::1]:8080`.
    pub address: String,
    /// What the listener speaks. `http` serves HTTP/1.1 and cleartext HTTP/2 on the same
    /// port; `tcp` forwards each connection to `cluster`.
    #[serde(default)]
    pub protocol: ListenerProtocol,
    /// `tcp` listeners: the cluster every connection is forwarded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// `tcp` listeners: most sessions open at once, with a bounded queue of accepted
    /// connections waiting for a place (`max_concurrent`, `max_queue`, `queue_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<Bulkhead>,
    /// A client connection with no request in flight and no bytes moving for this long is
    /// closed (`tcp`: a session with no bytes moving either way).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Duration,
    /// How long a client may take to send a request's headers (HTTP/1.1).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Duration,
    /// Routes, tried in the order written; the first that matches wins.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// The protocol a listener serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 with prior knowledge (h2c), told apart by the connection preface.
    #[default]
    Http,
    /// Plain TCP: each connection is forwarded to an endpoint of the listener's `cluster`.
    Tcp,
}

/// A rule that sends matching requests to a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A unique name (within its listener), used in logs and metrics.
    pub name: String,
    /// What a request must look like to take this route. Empty matches everything.
    #[serde(default, rename = "match")]
    pub matches: RouteMatch,
    /// The cluster that serves this route.
    pub cluster: String,
    /// Whole-exchange timeout for this route; overrides the cluster's `request_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retries of failed attempts; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// A concurrency limit for this route; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<Bulkhead>,
    /// What to answer when the upstream cannot; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// HTTP caching of this route's answers; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<RouteCache>,
}

/// Conditions on a request; all that are given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Host names (`api.example.com`) or suffix wildcards (`*.example.com`); any if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The path must equal this exactly (query string excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Request methods (`GET`, `POST`, …); any if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Request headers that must be present, optionally with an exact value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

/// A condition on one request header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name, case-insensitive.
    pub name: String,
    /// The value must equal this exactly; without it, the header just has to be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
}

/// A named group of upstream endpoints and how to talk to them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// A unique name that routes refer to.
    pub name: String,
    /// The upstream endpoints.
    pub endpoints: Vec<Endpoint>,
    /// How a request picks an endpoint.
    #[serde(default)]
    pub balancer: Balancer,
    /// `balancer: hash`: the key and the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashPolicy>,
    /// The HTTP version spoken to the upstream.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Replace the `Host` header sent upstream with this; by default the client's is preserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite: Option<String>,
    /// How long to wait for a TCP connection to an endpoint.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Whole-exchange timeout (request sent, response received in full); `0s` disables it.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// Keep-alive connection pool to the endpoints.
    #[serde(default)]
    pub pool: Pool,
    /// A circuit breaker per endpoint; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Passive health: eject endpoints that keep failing; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// A cluster-wide concurrency limit learned from latency; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_concurrency: Option<AdaptiveConcurrency>,
    /// A concurrency limit on each endpoint; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_bulkhead: Option<EndpointBulkhead>,
    /// A concurrency limit with a queue for the whole cluster, whichever routes use it; none
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<Bulkhead>,
    /// Active health checks of every endpoint; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How traffic returns to a better priority group: `auto` or `manual`.
    #[serde(default)]
    pub failback: Failback,
    /// What happens to open TCP sessions when their endpoint goes down: `keep_sessions` or
    /// `close_sessions`.
    #[serde(default)]
    pub on_endpoint_down: OnEndpointDown,
    /// Send a PROXY protocol header (`v2`) at the start of each TCP session, so the upstream
    /// learns the client's address; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
}

/// One upstream endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `host:port`; a host name is resolved when connecting.
    pub address: String,
    /// Relative share of traffic (round robin) or of selection (least request).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Priority group: 0 is the primary group, 1 the first standby, and so on. Traffic goes to
    /// the best group that has a healthy endpoint.
    #[serde(default)]
    pub priority: u32,
    /// Port active health checks use for this endpoint (e.g. Patroni's REST port); wins over
    /// the check's own `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_port: Option<u16>,
}

/// Load-balancing policy of a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Weighted round robin (smooth: weights interleave rather than burst).
    #[default]
    RoundRobin,
    /// Power of two choices: pick two endpoints by weight, send to the one with fewer requests in flight.
    LeastRequest,
    /// Power of two choices over a peak-sensitive moving average of latency × requests in
    /// flight; failures and 429s count as slow, so a fast-failing endpoint is not favoured.
    PeakEwma,
    /// Consistent hashing on a key of the request (the cluster's `hash` section).
    Hash,
}

/// The HTTP version spoken to a cluster's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c); many requests share one connection.
    Http2,
}

/// Upstream connection pool settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Idle keep-alive connections kept per endpoint.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_endpoint: usize,
    /// An idle pooled connection is closed after this long.
    #[serde(default = "default_pool_idle_timeout")]
    pub idle_timeout: Duration,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            max_idle_per_endpoint: default_max_idle(),
            idle_timeout: default_pool_idle_timeout(),
        }
    }
}

fn default_access_log() -> String {
    "stdout".to_owned()
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_admin_address() -> String {
    "127.0.0.1:9901".to_owned()
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_weight() -> u32 {
    1
}
fn default_max_idle() -> usize {
    64
}
fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Cluster {
    /// A cluster of `endpoints` with every other setting at its default.
    pub fn with_endpoints(name: impl Into<String>, endpoints: Vec<Endpoint>) -> Self {
        Self {
            name: name.into(),
            endpoints,
            balancer: Balancer::default(),
            hash: None,
            protocol: UpstreamProtocol::default(),
            host_rewrite: None,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            pool: Pool::default(),
            circuit_breaker: None,
            outlier_detection: None,
            adaptive_concurrency: None,
            endpoint_bulkhead: None,
            bulkhead: None,
            health_check: None,
            failback: Failback::default(),
            on_endpoint_down: OnEndpointDown::default(),
            proxy_protocol: None,
        }
    }
}

impl Endpoint {
    /// An endpoint of weight 1.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            weight: default_weight(),
            priority: 0,
            health_check_port: None,
        }
    }
}

impl Listener {
    /// An HTTP listener with default timeouts.
    pub fn http(name: impl Into<String>, address: impl Into<String>, routes: Vec<Route>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            protocol: ListenerProtocol::Http,
            cluster: None,
            bulkhead: None,
            idle_timeout: default_idle_timeout(),
            header_read_timeout: default_header_read_timeout(),
            routes,
        }
    }

    /// A TCP listener forwarding every connection to `cluster`.
    pub fn tcp(
        name: impl Into<String>,
        address: impl Into<String>,
        cluster: impl Into<String>,
    ) -> Self {
        Self {
            protocol: ListenerProtocol::Tcp,
            cluster: Some(cluster.into()),
            ..Self::http(name, address, Vec::new())
        }
    }
}

impl Config {
    /// A config with these listeners and clusters and defaults elsewhere.
    pub fn new(listeners: Vec<Listener>, clusters: Vec<Cluster>) -> Self {
        Self {
            admin: Admin::default(),
            access_log: default_access_log(),
            drain_timeout: default_drain_timeout(),
            listeners,
            clusters,
            metrics: Metrics::default(),
            tracing: None,
            cache: None,
        }
    }
}
