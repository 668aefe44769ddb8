//! A cluster at run time: its endpoints with their live counters and health, its priority
//! groups with the picker that spreads requests over each, and the keep-alive connection pool
//! to them.
//!
//! Traffic goes to the best priority group with an endpoint that is available (healthy, not
//! drained or disabled, and not ejected while another is not). Moving to a worse group is a
//! failover, back to a better one a failback; with `failback: manual` traffic stays on the
//! group it failed over to until an operator asks.
//!
//! Clusters outlive config reloads: the [`ClusterRegistry`](crate::registry::ClusterRegistry)
//! hands an unchanged cluster's `Arc<Cluster>` to the new snapshot, so its pool and counters
//! carry on.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use http::HeaderValue;
use http::uri::Authority;
use serde::Serialize;

use watertight_balance::{LeastRequest, PeakEwma, WeightedRoundRobin};
use watertight_config as config;
use watertight_config::RetryCondition;
use watertight_resilience::adaptive::Admitted;
use watertight_resilience::breaker::{Outcome, Refused, Ticket};
use watertight_resilience::{
    AdaptiveConfig, AdaptiveLimit, BreakerConfig, Bulkhead, BulkheadPermit, CircuitBreaker,
    OutlierConfig, OutlierDetector, breaker,
};
use watertight_telemetry::Metrics;
use watertight_telemetry::metrics::{
    AttemptEnded, EndpointMetrics, FailoverMetrics, HealthCheckMetrics,
};
use watertight_telemetry::trace::{Attempt, RequestTrace};

use crate::clock;
use crate::error::ErrorKind;
use crate::hash_balancer::{Caps, HashBalancer};
use crate::health::{EndpointHealth, Operator, State};
use crate::upstream::Upstream;

/// One upstream endpoint and what is known about it right now.
#[derive(Debug)]
pub struct Endpoint {
    /// `host:port` as configured.
    pub address: Arc<str>,
    /// The authority requests to this endpoint are sent to.
    pub authority: Authority,
    /// Configured weight.
    pub weight: u32,
    /// Its priority group (0 = primary).
    pub priority: u32,
    /// Active check verdict, operator state, and the signal that closes its TCP sessions.
    pub health: EndpointHealth,
    /// Port its active checks use instead of the traffic port, if configured.
    health_check_port: Option<u16>,
    /// Active check metrics, when metrics are on and the cluster has checks.
    check_metrics: Option<HealthCheckMetrics>,
    in_flight: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Connections open to it (idle in the pool or carrying a request).
    open_connections: Arc<AtomicUsize>,
    /// Keep-alive pool to this endpoint alone.
    upstream: Upstream,
    /// Attempt metrics, when metrics are on.
    metrics: Option<EndpointMetrics>,
    /// Its circuit breaker, when the cluster has one.
    breaker: Option<EndpointBreaker>,
    /// The cluster's latency estimator and this endpoint's place in it (peak EWMA only).
    latency: Option<(Arc<PeakEwma>, usize)>,
    /// The cluster's outlier detection, this endpoint's place in it, and what fails.
    outlier: Option<(Arc<OutlierDetector>, usize, Arc<[RetryCondition]>)>,
    /// Most requests in flight to it (its bulkhead), if limited.
    max_concurrent: Option<u32>,
    /// Told when it frees a place, if requests may queue for one (shared by the cluster).
    freed: Option<Arc<tokio::sync::Notify>>,
}

/// An endpoint's circuit breaker and what counts as a failure for it.
#[derive(Debug)]
struct EndpointBreaker {
    breaker: Arc<CircuitBreaker>,
    failure_on: Vec<RetryCondition>,
}

/// Why no endpoint could take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The cluster has no endpoints.
    NoEndpoint,
    /// No endpoint is available (unhealthy, unknown, drained or disabled) in any group.
    NoHealthy,
    /// The cluster's adaptive concurrency limit is reached.
    Shed,
    /// Every endpoint's bulkhead is full (and the queue for them, if any, too).
    EndpointsFull,
    /// The request waited its whole queue timeout for a place on an endpoint.
    EndpointQueueTimeout,
    /// Every endpoint's breaker is open; the soonest reopens for trials after this.
    BreakerOpen {
        /// The wait until the first breaker lets a trial through.
        retry_after: Duration,
    },
}

impl Endpoint {
    fn new(
        config: &config::Endpoint,
        cluster: &config::Cluster,
        metrics: Option<&Metrics>,
    ) -> Result<Self, String> {
        let authority = config
            .address
            .parse::<Authority>()
            .map_err(|e| format!("endpoint {:?}: {e}", config.address))?;
        let open_connections = Arc::new(AtomicUsize::new(0));
        Ok(Self {
            upstream: Upstream::new(cluster, &authority, open_connections.clone())?,
            address: config.address.as_str().into(),
            authority,
            weight: config.weight,
            priority: config.priority,
            health: EndpointHealth::new(cluster.health_check.is_some()),
            health_check_port: config.health_check_port,
            check_metrics: metrics
                .filter(|_| cluster.health_check.is_some())
                .map(|m| m.health_check(&cluster.name, &config.address)),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            open_connections,
            metrics: metrics.map(|m| m.endpoint(&cluster.name, &config.address)),
            latency: None,
            outlier: None,
            max_concurrent: cluster.endpoint_bulkhead.as_ref().map(|b| b.max_concurrent),
            freed: None,
            breaker: cluster.circuit_breaker.as_ref().map(|c| EndpointBreaker {
                breaker: CircuitBreaker::new(breaker_config(c)),
                failure_on: c
                    .failure_on
                    .iter()
                    .filter_map(|f| RetryCondition::parse(f))
                    .collect(),
            }),
        })
    }

    /// Lets a call through its breaker (always, without one).
    fn admit(&self, now: std::time::Instant) -> Result<Option<Ticket>, Refused> {
        let Some(b) = &self.breaker else {
            return Ok(None);
        };
        let ticket = b.breaker.try_acquire(now)?;
        if let Some(transition) = ticket.entered() {
            self.note_transition(transition);
        }
        Ok(Some(ticket))
    }

    /// Logs and counts a change of its breaker's state.
    fn note_transition(&self, transition: breaker::Transition) {
        tracing::info!(endpoint = %self.address, from = transition.from.name(), to = transition.to.name(), "circuit breaker");
        if let Some(metrics) = &self.metrics {
            metrics.breaker_entered(transition.to.name());
        }
    }

    /// Takes an in-flight place on it if its bulkhead has room (always, without one).
    fn reserve(&self) -> bool {
        match self.max_concurrent {
            None => {
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(limit) => self
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < limit).then_some(n + 1)
                })
                .is_ok(),
        }
    }

    /// Whether outlier detection has it ejected now.
    pub fn is_ejected(&self, now: std::time::Instant) -> bool {
        self.outlier
            .as_ref()
            .is_some_and(|(detector, index, _)| detector.is_ejected(*index, now))
    }

    /// Its breaker's state now, if it has one.
    pub fn breaker_state(&self) -> Option<breaker::State> {
        self.breaker
            .as_ref()
            .map(|b| b.breaker.state(std::time::Instant::now()))
    }

    /// Its state now: its health, with an ejected endpoint counted as unhealthy.
    pub fn state(&self, now: std::time::Instant) -> State {
        match self.health.state() {
            State::Healthy if self.is_ejected(now) => State::Unhealthy,
            state => state,
        }
    }

    /// Host and port its active checks connect to: the endpoint's host, and its
    /// `health_check_port`, else the check's `port`, else the traffic port.
    pub fn check_target(&self, check: &config::HealthCheck) -> (String, u16) {
        let port = self
            .health_check_port
            .or(check.port())
            .or(self.authority.port_u16())
            .unwrap_or(80);
        (self.authority.host().to_owned(), port)
    }

    /// Records one active check that ended with `outcome` after `elapsed`.
    pub fn checked(&self, outcome: &str, elapsed: Duration) {
        if let Some(metrics) = &self.check_metrics {
            metrics.checked(outcome, elapsed);
        }
    }

    /// Upstream connections open now.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Requests currently in flight to this endpoint.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The pooled connections that carry requests to this endpoint.
    pub(crate) fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Records a failed exchange (connect error, reset, timeout) with this endpoint.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// One attempt on an endpoint: holds its in-flight slot until dropped (when the response
/// body ends, or the attempt fails), then records the attempt's metrics.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<Endpoint>,
    /// When the attempt started, if metrics are on.
    started: Option<Instant>,
    /// What the endpoint answered, once it has.
    status: Option<u16>,
    /// Request body bytes sent so far, when the request has a body.
    sent: Option<Arc<AtomicU64>>,
    /// Response body bytes received.
    received: u64,
    /// The breaker's admission, reported when the attempt ends.
    ticket: Option<Ticket>,
    /// How long the response head took.
    head_elapsed: Option<Duration>,
    /// Why the attempt failed, if it did.
    failure: Option<ErrorKind>,
    /// Whether breaker and outlier detection have been told.
    health_reported: bool,
    /// A TCP session whose connection was made: a success, and not an HTTP attempt.
    session: bool,
    /// Its place under the cluster's adaptive limit, given back with its latency.
    admitted: Option<Admitted>,
    /// Its slot in the cluster's bulkhead, held until the response body ends.
    cluster_slot: Option<BulkheadPermit>,
    /// The attempt's client span, when the request is traced.
    span: Option<(Arc<RequestTrace>, Attempt, http::Method)>,
}

impl InFlight {
    /// An attempt on `endpoint`, whose in-flight place is already reserved, starting `now`
    /// (if the caller has just read the clock).
    fn start(endpoint: Arc<Endpoint>, ticket: Option<Ticket>, now: Option<Instant>) -> Self {
        endpoint.requests.fetch_add(1, Ordering::Relaxed);
        let timed = endpoint.metrics.is_some()
            || ticket.is_some()
            || endpoint.latency.is_some()
            || endpoint.outlier.is_some();
        Self {
            endpoint,
            started: timed.then(|| now.unwrap_or_else(Instant::now)),
            status: None,
            sent: None,
            received: 0,
            ticket,
            head_elapsed: None,
            failure: None,
            health_reported: false,
            session: false,
            admitted: None,
            cluster_slot: None,
            span: None,
        }
    }

    /// Holds `permit` (a slot in the cluster's bulkhead) for as long as the attempt.
    pub fn hold(&mut self, permit: Option<BulkheadPermit>) {
        self.cluster_slot = permit;
    }

    /// Notes why the attempt failed.
    pub fn failed(&mut self, kind: ErrorKind) {
        self.failure = Some(kind);
    }

    /// How the attempt went, as the endpoint's breaker judges it.
    fn outcome(&self, failure_on: &[RetryCondition]) -> Outcome {
        let elapsed = self
            .head_elapsed
            .or_else(|| self.started.map(|s| s.elapsed()))
            .unwrap_or_default();
        if self.session {
            return Outcome::Success(elapsed);
        }
        if let Some(status) = self.status {
            return if failure_on.iter().any(|c| c.matches_status(status)) {
                Outcome::Failure(elapsed)
            } else {
                Outcome::Success(elapsed)
            };
        }
        let condition = match self.failure {
            Some(
                ErrorKind::ConnectRefused | ErrorKind::ConnectTimeout | ErrorKind::ConnectFailed,
            ) => RetryCondition::ConnectFailure,
            Some(ErrorKind::UpstreamReset | ErrorKind::UpstreamProtocol) => RetryCondition::Reset,
            Some(ErrorKind::UpstreamTimeout) => RetryCondition::Timeout,
            // The client left or was slow, or nothing came of it: says nothing of the endpoint.
            _ => return Outcome::Ignored,
        };
        if failure_on.contains(&condition) {
            Outcome::Failure(elapsed)
        } else {
            Outcome::Ignored
        }
    }

    /// Counts the request body's bytes in this attempt from `sent`.
    pub fn uploading(&mut self, sent: Arc<AtomicU64>) {
        self.sent = Some(sent);
    }

    /// Notes `len` more response body bytes.
    pub fn received(&mut self, len: usize) {
        self.received += len as u64;
    }

    /// Makes this attempt a client span of `trace` (ended with the attempt).
    pub fn traced(&mut self, trace: Arc<RequestTrace>, attempt: Attempt, method: http::Method) {
        self.span = Some((trace, attempt, method));
    }

    /// The endpoint this slot is on.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Notes the status the endpoint answered with.
    pub fn answered(&mut self, status: u16) {
        self.status = Some(status);
        // Breaker and outlier detection judge the head: report now, so a long body (a
        // download, a stream) does not hold a half-open trial slot.
        self.head_done();
    }

    /// Notes that a TCP session's connection was made: a success for breaker and outlier
    /// detection, and no HTTP attempt for the metrics.
    pub fn connected(&mut self) {
        self.session = true;
        self.head_done();
    }

    /// Times the head (an answer, or a TCP connect) and reports the attempt's health.
    fn head_done(&mut self) {
        let now = self.started.map(|_| clock::now());
        self.head_elapsed = self.started.zip(now).map(|(s, now)| now - s);
        self.report_health(now);
    }

    /// Tells the endpoint's breaker and outlier detection how the attempt went, once. `at`:
    /// the time now, if the caller has just read the clock.
    fn report_health(&mut self, at: Option<Instant>) {
        if self.health_reported {
            return;
        }
        self.health_reported = true;
        if self.admitted.is_none() && self.ticket.is_none() && self.endpoint.outlier.is_none() {
            return;
        }
        let now = at.map_or_else(std::time::Instant::now, Instant::into_std);
        if let (Some(admitted), Some(rtt)) = (self.admitted.take(), self.head_elapsed) {
            admitted.done(rtt, now);
        }
        if let (Some(ticket), Some(b)) = (self.ticket.take(), &self.endpoint.breaker) {
            let outcome = self.outcome(&b.failure_on);
            if let Some(transition) = ticket.record(outcome, now, rand::random::<f64>()) {
                self.endpoint.note_transition(transition);
            }
        }
        if let Some((detector, index, failure_on)) = &self.endpoint.outlier {
            let failed = match self.outcome(failure_on) {
                Outcome::Failure(_) => true,
                Outcome::Success(_) => false,
                Outcome::Ignored => return,
            };
            if let Some(until) = detector.record(*index, failed, now) {
                tracing::info!(endpoint = %self.endpoint.address, ejected_for = ?until - now, "outlier ejected");
                if let Some(metrics) = &self.endpoint.metrics {
                    metrics.ejected();
                }
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(freed) = &self.endpoint.freed {
            freed.notify_one();
        }
        // One look at the clock serves everything below; an untimed attempt needs none.
        let now = self.started.map(|_| clock::now());
        if let (Some((ewma, index)), Some(started), Some(now)) =
            (&self.endpoint.latency, self.started, now)
        {
            let latency = self.head_elapsed.unwrap_or(now - started);
            let now = now.into_std();
            let failed = match self.status {
                Some(status) => status >= 500 || status == 429,
                None => self.failure.is_some_and(|kind| {
                    !matches!(kind, ErrorKind::ClientAborted | ErrorKind::ClientTimeout)
                }),
            };
            match (self.status, failed) {
                (_, true) => ewma.observe_failure(*index, latency, now),
                (Some(_), false) => ewma.observe(*index, latency, now),
                // Abandoned before an answer: no news about the endpoint.
                (None, false) => {}
            }
        }
        self.report_health(now);
        if let (Some(metrics), Some(started), Some(now), false) =
            (&self.endpoint.metrics, self.started, now, self.session)
        {
            metrics.attempt(AttemptEnded {
                status: self.status,
                elapsed: now - started,
                bytes_sent: self.sent.as_ref().map_or(0, |s| s.load(Ordering::Relaxed)),
                bytes_received: self.received,
            });
        }
        if let Some((trace, attempt, method)) = self.span.take() {
            trace.end_attempt(
                attempt,
                method.as_str(),
                &self.endpoint.address,
                self.status,
                None,
            );
        }
    }
}

enum Picker {
    RoundRobin(WeightedRoundRobin),
    LeastRequest(LeastRequest),
    PeakEwma(Arc<PeakEwma>),
    /// Consistent hashing for requests with a key; the other picker for those without.
    Hash(Box<HashBalancer>, Box<Picker>),
}

/// The order in which a pick tries a group's endpoints (indices into the cluster's).
enum Order<'a> {
    /// From the picker's choice on, around the group.
    Rotation { members: &'a [usize], first: usize },
    /// A key's order of preference, walked lazily; with a load bound, the endpoints at or over
    /// their cap after the others.
    Hashed {
        cluster: &'a Cluster,
        group: &'a Group,
        balancer: &'a HashBalancer,
        key: u64,
        caps: Option<Caps<'a>>,
    },
}

impl Order<'_> {
    /// A fresh walk of the order.
    fn iter(&self) -> OrderIter<'_> {
        match self {
            Order::Rotation { members, first } => OrderIter::Rotation {
                members,
                first: *first,
                k: 0,
            },
            Order::Hashed {
                cluster,
                group,
                balancer,
                key,
                caps,
            } => {
                let members = &group.members;
                let Some(caps) = caps else {
                    return OrderIter::Hashed(Box::new(
                        balancer.walk(*key).map(move |i| members[i]),
                    ));
                };
                let over = move |local: usize| {
                    caps.over(local, cluster.endpoints[members[local]].in_flight())
                };
                let under = balancer.walk(*key).filter(move |&i| !over(i));
                let at_cap = balancer.walk(*key).filter(move |&i| over(i));
                OrderIter::Hashed(Box::new(under.chain(at_cap).map(move |i| members[i])))
            }
        }
    }
}

/// A walk of an [`Order`]: a rotation needs no allocation; a hash walk is boxed (only
/// `balancer: hash` clusters pay for it).
enum OrderIter<'a> {
    Rotation {
        members: &'a [usize],
        first: usize,
        k: usize,
    },
    Hashed(Box<dyn Iterator<Item = usize> + 'a>),
}

impl Iterator for OrderIter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            OrderIter::Rotation { members, first, k } => {
                let item = (*k < members.len()).then(|| members[(*first + *k) % members.len()]);
                *k += 1;
                item
            }
            OrderIter::Hashed(walk) => walk.next(),
        }
    }
}

/// How fast a peak-EWMA estimate forgets (Finagle's default).
const EWMA_DECAY: Duration = Duration::from_secs(10);
/// What a failure counts as, at least, in a peak-EWMA estimate.
const EWMA_FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// Endpoints of one priority, and the picker that spreads requests over them.
struct Group {
    priority: u32,
    /// Indices into the cluster's endpoints.
    members: Vec<usize>,
    /// The members' weights.
    weights: Vec<u32>,
    picker: Picker,
    turn: AtomicUsize,
}

/// Requests waiting for a place on any endpoint of a cluster.
struct EndpointQueue {
    freed: Arc<tokio::sync::Notify>,
    waiting: AtomicUsize,
    max_queue: usize,
    timeout: Duration,
}

/// Leaves the endpoint queue when dropped.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `active` before any group was chosen.
const UNCHOSEN: usize = usize::MAX;

/// A cluster at run time.
pub struct Cluster {
    config: config::Cluster,
    endpoints: Vec<Arc<Endpoint>>,
    /// Priority groups, best first.
    groups: Vec<Group>,
    /// The group traffic goes to (an index into `groups`), once chosen.
    active: AtomicUsize,
    /// When traffic last moved between groups, in milliseconds since the Unix epoch (0:
    /// never).
    moved_at_ms: AtomicU64,
    failover_metrics: Option<FailoverMetrics>,
    host_rewrite: Option<HeaderValue>,
    metered: bool,
    adaptive: Option<Arc<AdaptiveLimit>>,
    bulkhead: Option<(Arc<Bulkhead>, Option<http::HeaderName>)>,
    /// Requests waiting for a place on a full endpoint, if its endpoint bulkhead has a queue.
    endpoint_queue: Option<EndpointQueue>,
    /// When it was built: a stand-in for "now" where no clock is needed.
    built: std::time::Instant,
}

impl Cluster {
    /// Builds a cluster from its (validated) config, with an empty connection pool, recording
    /// attempt metrics into `metrics` if given.
    pub fn new(config: &config::Cluster, metrics: Option<&Metrics>) -> Result<Self, String> {
        let mut endpoints = config
            .endpoints
            .iter()
            .map(|e| Endpoint::new(e, config, metrics))
            .collect::<Result<Vec<_>, _>>()?;
        let mut priorities: Vec<u32> = endpoints.iter().map(|e| e.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        let groups = priorities
            .into_iter()
            .map(|priority| {
                let members: Vec<usize> = (0..endpoints.len())
                    .filter(|&i| endpoints[i].priority == priority)
                    .collect();
                let weights: Vec<u32> = members.iter().map(|&i| endpoints[i].weight).collect();
                let picker = match config.balancer {
                    config::Balancer::RoundRobin => {
                        Picker::RoundRobin(WeightedRoundRobin::new(&weights))
                    }
                    config::Balancer::LeastRequest => {
                        Picker::LeastRequest(LeastRequest::new(&weights))
                    }
                    config::Balancer::Hash => {
                        let policy = config.hash.as_ref().ok_or_else(|| {
                            format!(
                                "cluster {:?}: balancer hash without a hash section",
                                config.name
                            )
                        })?;
                        let named: Vec<(&str, u32)> = members
                            .iter()
                            .map(|&i| (&*endpoints[i].address, endpoints[i].weight))
                            .collect();
                        let no_key = match policy.no_key {
                            config::NoKey::LeastRequest => {
                                Picker::LeastRequest(LeastRequest::new(&weights))
                            }
                            config::NoKey::RoundRobin => {
                                Picker::RoundRobin(WeightedRoundRobin::new(&weights))
                            }
                        };
                        Picker::Hash(
                            Box::new(HashBalancer::new(policy, &named)),
                            Box::new(no_key),
                        )
                    }
                    config::Balancer::PeakEwma => {
                        let ewma = Arc::new(PeakEwma::new(
                            &weights,
                            EWMA_DECAY,
                            EWMA_FAILURE_PENALTY,
                            std::time::Instant::now(),
                        ));
                        for (local, &index) in members.iter().enumerate() {
                            endpoints[index].latency = Some((ewma.clone(), local));
                        }
                        Picker::PeakEwma(ewma)
                    }
                };
                Ok(Group {
                    priority,
                    weights,
                    members,
                    picker,
                    turn: AtomicUsize::new(0),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if let Some(outlier) = &config.outlier_detection {
            let detector = Arc::new(OutlierDetector::new(
                OutlierConfig {
                    consecutive_failures: outlier.consecutive_failures,
                    base_ejection_time: outlier.base_ejection_time.get(),
                    max_ejection_time: outlier.max_ejection_time.get(),
                    max_ejection_percent: outlier.max_ejection_percent,
                },
                endpoints.len(),
            ));
            let failure_on: Arc<[RetryCondition]> = outlier
                .failure_on
                .iter()
                .filter_map(|f| RetryCondition::parse(f))
                .collect();
            for (index, endpoint) in endpoints.iter_mut().enumerate() {
                endpoint.outlier = Some((detector.clone(), index, failure_on.clone()));
            }
        }
        let endpoint_queue = config
            .endpoint_bulkhead
            .as_ref()
            .filter(|b| b.max_queue > 0)
            .map(|b| EndpointQueue {
                freed: Arc::new(tokio::sync::Notify::new()),
                waiting: AtomicUsize::new(0),
                max_queue: b.max_queue,
                timeout: b.queue_timeout.get(),
            });
        if let Some(queue) = &endpoint_queue {
            for endpoint in &mut endpoints {
                endpoint.freed = Some(queue.freed.clone());
            }
        }
        let endpoints: Vec<Arc<Endpoint>> = endpoints.into_iter().map(Arc::new).collect();
        let host_rewrite = config
            .host_rewrite
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|e| format!("cluster {:?}: host_rewrite: {e}", config.name))?;
        Ok(Self {
            config: config.clone(),
            endpoints,
            groups,
            active: AtomicUsize::new(UNCHOSEN),
            moved_at_ms: AtomicU64::new(0),
            endpoint_queue,
            failover_metrics: metrics.map(|m| m.failover(&config.name)),
            host_rewrite,
            metered: metrics.is_some(),
            built: std::time::Instant::now(),
            bulkhead: config
                .bulkhead
                .as_ref()
                .map(|b| {
                    let header = b
                        .priority_header
                        .as_deref()
                        .map(|h| http::HeaderName::from_bytes(h.as_bytes()))
                        .transpose()
                        .map_err(|e| format!("cluster {:?}: priority_header: {e}", config.name))?;
                    let bulkhead =
                        Bulkhead::new(b.max_concurrent, b.max_queue, b.queue_timeout.get());
                    Ok::<_, String>((Arc::new(bulkhead), header))
                })
                .transpose()?,
            adaptive: config.adaptive_concurrency.as_ref().map(|a| {
                AdaptiveLimit::new(AdaptiveConfig {
                    initial_limit: a.initial_limit,
                    min_limit: a.min_limit,
                    max_limit: a.max_limit,
                    tolerance: a.tolerance,
                    interval: a.interval.get(),
                    min_rtt_window: a.min_rtt_window.get(),
                })
            }),
        })
    }

    /// Whether it records attempt metrics (a reload that turns metrics on or off rebuilds it).
    pub fn metered(&self) -> bool {
        self.metered
    }

    fn has_outlier_detection(&self) -> bool {
        self.endpoints.first().is_some_and(|e| e.outlier.is_some())
    }

    fn has_breakers(&self) -> bool {
        self.endpoints.first().is_some_and(|e| e.breaker.is_some())
    }

    /// Its bulkhead and the header naming a request's priority, if it has one.
    pub fn bulkhead(&self) -> Option<&(Arc<Bulkhead>, Option<http::HeaderName>)> {
        self.bulkhead.as_ref()
    }

    /// Its adaptive concurrency limit and the requests under it now, if it has one.
    pub fn adaptive_limit(&self) -> Option<(usize, usize)> {
        self.adaptive.as_ref().map(|a| (a.limit(), a.in_flight()))
    }

    /// Its endpoints.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The config this cluster was built from (compared on reload).
    pub fn config(&self) -> &config::Cluster {
        &self.config
    }

    /// The HTTP version spoken upstream.
    pub fn protocol(&self) -> config::UpstreamProtocol {
        self.config.protocol
    }

    /// The `Host` to send upstream instead of the client's, if configured.
    pub fn host_rewrite(&self) -> Option<&HeaderValue> {
        self.host_rewrite.as_ref()
    }

    /// The cluster's default whole-exchange timeout (`None`: no limit).
    pub fn request_timeout(&self) -> Option<Duration> {
        self.config.request_timeout.non_zero()
    }

    /// Picks an endpoint for the next request and takes an in-flight slot on it.
    pub fn pick(&self) -> Result<InFlight, Unavailable> {
        self.pick_avoiding(&[])
    }

    /// Like [`pick`](Self::pick), but passes over the endpoints in `tried` (earlier attempts
    /// of the same request) while any other remains. Endpoints whose breaker is open are
    /// passed over too; if every one is, the request is refused.
    pub fn pick_avoiding(&self, tried: &[Arc<str>]) -> Result<InFlight, Unavailable> {
        self.pick_keyed(tried, None)
    }

    /// Like [`pick_avoiding`](Self::pick_avoiding), with the request's hash key for a
    /// `balancer: hash` cluster: the endpoints are tried in the key's order of preference.
    pub fn pick_keyed(
        &self,
        tried: &[Arc<str>],
        key: Option<u64>,
    ) -> Result<InFlight, Unavailable> {
        self.pick_keyed_at(tried, key, None)
    }

    /// [`pick_keyed`](Self::pick_keyed) with the time now, if the caller has just read it.
    fn pick_keyed_at(
        &self,
        tried: &[Arc<str>],
        key: Option<u64>,
        at: Option<Instant>,
    ) -> Result<InFlight, Unavailable> {
        if self.endpoints.is_empty() {
            return Err(Unavailable::NoEndpoint);
        }
        // Breakers and outlier detection need the time; without them, skip the clock read.
        let now = if self.has_breakers() || self.has_outlier_detection() {
            at.map_or_else(std::time::Instant::now, Instant::into_std)
        } else {
            self.built
        };
        let group = match self.groups.len() {
            // One group: availability is judged endpoint by endpoint below.
            1 => &self.groups[0],
            _ => {
                let chosen = &self.groups[self.select_group(now).ok_or(Unavailable::NoHealthy)?];
                self.spill(chosen, tried)
            }
        };
        let admitted = match &self.adaptive {
            Some(limit) => Some(limit.try_acquire().ok_or(Unavailable::Shed)?),
            None => None,
        };
        let order = self.order(group, key);
        // Available endpoints in that order: untried first, then those this request tried.
        let candidates = || {
            let available = |&i: &usize| self.endpoints[i].health.available();
            let untried = order
                .iter()
                .filter(available)
                .filter(|&i| !tried.contains(&self.endpoints[i].address));
            let retried = order
                .iter()
                .filter(available)
                .filter(|&i| tried.contains(&self.endpoints[i].address));
            untried.chain(retried)
        };
        let mut soonest: Option<Duration> = None;
        let mut full = false;
        let mut any = false;
        // Ejected endpoints are passed over, unless every one is (then outlier detection
        // would only turn a degraded cluster into a dead one).
        let all_ejected =
            self.has_outlier_detection() && candidates().all(|i| self.endpoints[i].is_ejected(now));
        for i in candidates() {
            any = true;
            let endpoint = &self.endpoints[i];
            if !all_ejected && endpoint.is_ejected(now) {
                continue;
            }
            if !endpoint.reserve() {
                full = true;
                continue;
            }
            match endpoint.admit(now) {
                Ok(ticket) => {
                    let mut slot = InFlight::start(endpoint.clone(), ticket, at);
                    if admitted.is_some() && slot.started.is_none() {
                        slot.started = Some(Instant::now());
                    }
                    slot.admitted = admitted;
                    return Ok(slot);
                }
                Err(refused) => {
                    endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
                    soonest =
                        Some(soonest.map_or(refused.retry_after, |s| s.min(refused.retry_after)));
                }
            }
        }
        match soonest {
            Some(retry_after) => Err(Unavailable::BreakerOpen { retry_after }),
            None if full => Err(Unavailable::EndpointsFull),
            None if !any => Err(Unavailable::NoHealthy),
            None => Err(Unavailable::BreakerOpen {
                retry_after: Duration::ZERO,
            }),
        }
    }

    /// Like [`pick_avoiding`](Self::pick_avoiding), but when every endpoint is full and the
    /// endpoint bulkhead has a queue, waits (until the queue timeout or `deadline`) for one to
    /// free a place.
    /// `now`: the time now, if the caller has just read it.
    pub async fn pick_queued(
        &self,
        tried: &[Arc<str>],
        key: Option<u64>,
        deadline: Option<Instant>,
        now: Option<Instant>,
    ) -> Result<InFlight, Unavailable> {
        let first = self.pick_keyed_at(tried, key, now);
        let Some(queue) = &self.endpoint_queue else {
            return first;
        };
        if !matches!(first, Err(Unavailable::EndpointsFull)) {
            return first;
        }
        if queue.waiting.fetch_add(1, Ordering::AcqRel) >= queue.max_queue {
            queue.waiting.fetch_sub(1, Ordering::AcqRel);
            return first;
        }
        let _left = Leave(&queue.waiting);
        let mut until = Instant::now() + queue.timeout;
        if let Some(deadline) = deadline {
            until = until.min(deadline);
        }
        loop {
            let freed = queue.freed.notified();
            tokio::pin!(freed);
            // Registered before the pick, so a place freed in between is not missed.
            freed.as_mut().enable();
            match self.pick_keyed(tried, key) {
                Err(Unavailable::EndpointsFull) => {}
                other => return other,
            }
            if tokio::time::timeout_at(until, freed).await.is_err() {
                return Err(Unavailable::EndpointQueueTimeout);
            }
        }
    }

    /// For a retry (or a TCP connect) that has tried every available endpoint of `chosen`,
    /// the first other group with an available endpoint it has not tried; else `chosen`. So
    /// a primary that refuses before its checks mark it down costs one attempt, not the
    /// request (as Envoy's `previous_priorities` retry plugin does).
    fn spill<'a>(&'a self, chosen: &'a Group, tried: &[Arc<str>]) -> &'a Group {
        if tried.is_empty() {
            return chosen;
        }
        let exhausted = |group: &Group| {
            group.members.iter().all(|&i| {
                let endpoint = &self.endpoints[i];
                !endpoint.health.available() || tried.contains(&endpoint.address)
            })
        };
        if !exhausted(chosen) {
            return chosen;
        }
        self.groups
            .iter()
            .find(|g| !std::ptr::eq(*g, chosen) && !exhausted(g))
            .unwrap_or(chosen)
    }

    /// The hash key of `request` from `client` for a `balancer: hash` cluster (`None` for
    /// other balancers, or a request without the key).
    pub fn hash_key<B>(&self, request: &http::Request<B>, client: IpAddr) -> Option<u64> {
        let policy = self.config.hash.as_ref()?;
        crate::hash_balancer::request_key(&policy.key, request, Some(client))
    }

    /// The hash key of a TCP session from `client`, for a cluster that hashes on the client
    /// address (TCP sessions have no other key).
    pub fn session_key(&self, client: std::net::IpAddr) -> Option<u64> {
        match &self.config.hash.as_ref()?.key {
            config::HashKey::ClientAddress => Some(crate::hash_balancer::client_key(client)),
            _ => None,
        }
    }

    /// The order in which a pick tries `group`'s endpoints: the key's order of preference
    /// for a hash balancer given a key, else around the group from the picker's choice.
    fn order<'a>(&'a self, group: &'a Group, key: Option<u64>) -> Order<'a> {
        if let (Picker::Hash(balancer, _), Some(key)) = (&group.picker, key) {
            let members = &group.members;
            let caps = balancer.caps(
                |i| self.endpoints[members[i]].in_flight(),
                |i| self.endpoints[members[i]].health.available(),
                &group.weights,
            );
            return Order::Hashed {
                cluster: self,
                group,
                balancer,
                key,
                caps,
            };
        }
        Order::Rotation {
            members: &group.members,
            first: self.pick_member(group, &group.picker),
        }
    }

    /// The index, in `group.members`, `picker` chooses next.
    fn pick_member(&self, group: &Group, picker: &Picker) -> usize {
        let members = &group.members;
        match picker {
            _ if members.len() <= 1 => 0,
            Picker::Hash(_, no_key) => self.pick_member(group, no_key),
            Picker::RoundRobin(rr) => rr.pick(group.turn.fetch_add(1, Ordering::Relaxed)),
            Picker::LeastRequest(lr) => lr.pick(
                |i| self.endpoints[members[i]].in_flight(),
                rand::random::<u64>(),
                rand::random::<u64>(),
            ),
            Picker::PeakEwma(ewma) => ewma.pick(
                |i| self.endpoints[members[i]].in_flight(),
                rand::random::<u64>(),
                rand::random::<u64>(),
                std::time::Instant::now(),
            ),
        }
    }

    /// The group traffic goes to now (an index into `groups`), or `None` when no group has an
    /// available endpoint. A change of group is noted (logged, counted, and on failback the
    /// worse groups' sessions closed if the cluster closes sessions).
    fn select_group(&self, now: std::time::Instant) -> Option<usize> {
        let (chosen, settled) = self.choose_group(now)?;
        if settled {
            self.note_active(chosen);
        }
        Some(chosen)
    }

    /// The group traffic should go to now, and whether that is settled (every better group's
    /// endpoints have been checked, so a worse choice is a real failover). Notes nothing.
    fn choose_group(&self, now: std::time::Instant) -> Option<(usize, bool)> {
        let up = |group: &Group, strict: bool| {
            group.members.iter().any(|&i| {
                let endpoint = &self.endpoints[i];
                endpoint.health.available() && !(strict && endpoint.is_ejected(now))
            })
        };
        let floor = match self.config.failback {
            config::Failback::Manual => self.active.load(Ordering::Acquire).min(self.groups.len()),
            config::Failback::Auto => 0,
        };
        let best = |strict: bool| {
            (floor..self.groups.len())
                .find(|&g| up(&self.groups[g], strict))
                .or_else(|| (0..floor).find(|&g| up(&self.groups[g], strict)))
        };
        // Ejections count against a group only while some group has endpoints not ejected.
        let chosen = if self.has_outlier_detection() {
            best(true).or_else(|| best(false))
        } else {
            best(false)
        }?;
        // A better group whose endpoints are not all checked yet (just started) is not down:
        // serve from the chosen group, but do not call it a failover.
        let settled = self.groups[..chosen].iter().all(|g| {
            g.members
                .iter()
                .all(|&i| self.endpoints[i].health.checked().is_some())
        });
        Some((chosen, settled))
    }

    /// Records that traffic goes to group `chosen`.
    fn note_active(&self, chosen: usize) {
        let previous = self.active.swap(chosen, Ordering::AcqRel);
        if previous == chosen || previous == UNCHOSEN {
            return;
        }
        let failback = chosen < previous;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.moved_at_ms.store(now_ms, Ordering::Release);
        let (from, to) = (self.groups[previous].priority, self.groups[chosen].priority);
        if failback {
            tracing::warn!(cluster = %self.config.name, from, to, "failback to a better priority group");
        } else {
            tracing::warn!(cluster = %self.config.name, from, to, "failover to priority group");
        }
        if let Some(metrics) = &self.failover_metrics {
            metrics.changed(failback);
        }
        if failback && self.config.on_endpoint_down == config::OnEndpointDown::CloseSessions {
            for group in &self.groups[chosen + 1..] {
                for &i in &group.members {
                    self.endpoints[i].health.sever_sessions();
                }
            }
        }
    }

    /// Re-evaluates the active group after an endpoint's health or operator state changed,
    /// so a failover is noted (and sessions closed) even with no traffic to notice it.
    pub fn health_changed(&self) {
        if self.groups.len() > 1 {
            self.select_group(std::time::Instant::now());
        }
    }

    /// The priority of the group traffic goes to now; `None` when nothing is available.
    /// A read: changes of group are noted where they happen (picks, check results, operator
    /// actions), not by whoever looks.
    pub fn active_priority(&self) -> Option<u32> {
        self.choose_group(std::time::Instant::now())
            .map(|(g, _)| self.groups[g].priority)
    }

    /// Drains, disables or enables the endpoint at `address`; its new status, or `None` if
    /// the cluster has no such endpoint.
    pub fn set_operator(&self, address: &str, operator: Operator) -> Option<EndpointStatus> {
        let endpoint = self.endpoints.iter().find(|e| &*e.address == address)?;
        let reason = match operator {
            Operator::Active => "enabled by operator",
            Operator::Draining => "drained by operator",
            Operator::Disabled => "disabled by operator",
        };
        if endpoint.health.set_operator(operator, reason) {
            tracing::warn!(cluster = %self.config.name, endpoint = %address, reason, "endpoint state set");
            self.health_changed();
        }
        Some(self.endpoint_status(endpoint))
    }

    /// Sends traffic back to the best group with an available endpoint (what `failback:
    /// auto` does by itself); the priority traffic goes to afterwards.
    pub fn fail_back(&self) -> Option<u32> {
        let now = std::time::Instant::now();
        let best = (0..self.groups.len()).find(|&g| {
            self.groups[g].members.iter().any(|&i| {
                let endpoint = &self.endpoints[i];
                endpoint.health.available() && !endpoint.is_ejected(now)
            })
        })?;
        self.note_active(best);
        Some(self.groups[best].priority)
    }

    /// Carries endpoint health (operator decisions, and check verdicts while the check is
    /// unchanged) over from `previous`, the cluster of the same name this one replaces.
    pub fn inherit_health(&self, previous: &Cluster) {
        let checks_unchanged = self.config.health_check == previous.config.health_check;
        for endpoint in &self.endpoints {
            if let Some(old) = previous
                .endpoints
                .iter()
                .find(|e| e.address == endpoint.address)
            {
                let same_target =
                    checks_unchanged && old.health_check_port == endpoint.health_check_port;
                endpoint.health.inherit(&old.health, same_target);
            }
        }
        if previous
            .groups
            .iter()
            .map(|g| g.priority)
            .eq(self.groups.iter().map(|g| g.priority))
        {
            self.active
                .store(previous.active.load(Ordering::Acquire), Ordering::Release);
        }
    }

    fn endpoint_status(&self, e: &Endpoint) -> EndpointStatus {
        let now = std::time::Instant::now();
        let health = e.health.view();
        let ejected = e.is_ejected(now);
        let state = e.state(now);
        let reason = match state {
            State::Unhealthy if e.health.state() == State::Healthy => {
                "ejected by outlier detection".to_owned()
            }
            _ => health.reason,
        };
        EndpointStatus {
            address: e.address.to_string(),
            weight: e.weight,
            priority: e.priority,
            state,
            reason,
            since: health.since,
            ejected,
            breaker: e.breaker_state().map(|s| s.name()),
            in_flight: e.in_flight(),
            requests: e.requests.load(Ordering::Relaxed),
            failures: e.failures.load(Ordering::Relaxed),
            checks: health.checks,
        }
    }

    /// A point-in-time view for the admin API.
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            name: self.config.name.clone(),
            balancer: self.config.balancer,
            protocol: self.config.protocol,
            active_priority: self.active_priority(),
            moved_at: match self.moved_at_ms.load(Ordering::Acquire) {
                0 => None,
                ms => Some(
                    humantime::format_rfc3339_millis(
                        std::time::UNIX_EPOCH + Duration::from_millis(ms),
                    )
                    .to_string(),
                ),
            },
            failback: self.config.failback,
            endpoints: self
                .endpoints
                .iter()
                .map(|e| self.endpoint_status(e))
                .collect(),
        }
    }
}

fn breaker_config(config: &config::CircuitBreaker) -> BreakerConfig {
    let window = match (config.window_calls, config.window_seconds) {
        (_, Some(seconds)) => breaker::Window::Time(seconds),
        (calls, None) => breaker::Window::Count(calls.unwrap_or(20)),
    };
    // As Resilience4j does: a count window can never hold more than its size.
    let minimum_calls = match window {
        breaker::Window::Count(size) => config.minimum_calls.min(size),
        breaker::Window::Time(_) => config.minimum_calls,
    };
    BreakerConfig {
        window,
        minimum_calls,
        failure_rate: config.failure_rate,
        slow_call_rate: config.slow_call_rate,
        slow_call_duration: config.slow_call_duration.get(),
        open_duration: config.open_duration.get(),
        backoff_multiplier: config.backoff_multiplier,
        max_open_duration: config.max_open_duration.get(),
        jitter: config.jitter,
        half_open_calls: config.half_open_calls,
    }
}

/// What `GET /clusters` shows for one cluster.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// Cluster name.
    pub name: String,
    /// Load-balancing policy.
    pub balancer: config::Balancer,
    /// Upstream HTTP version.
    pub protocol: config::UpstreamProtocol,
    /// The priority group traffic goes to now; `null` when no endpoint is available.
    pub active_priority: Option<u32>,
    /// When traffic last moved between groups (a failover or failback, RFC 3339); `null`
    /// if it never has.
    pub moved_at: Option<String>,
    /// How traffic returns to a better group.
    pub failback: config::Failback,
    /// Endpoints with their live counters.
    pub endpoints: Vec<EndpointStatus>,
}

/// What `GET /clusters` shows for one endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointStatus {
    /// `host:port`.
    pub address: String,
    /// Configured weight.
    pub weight: u32,
    /// Its priority group.
    pub priority: u32,
    /// `healthy`, `unhealthy` (checks fail, or ejected), `unknown` (not checked yet),
    /// `draining` or `disabled`.
    pub state: State,
    /// Why it is in that state.
    pub reason: String,
    /// When its state last changed (RFC 3339).
    pub since: String,
    /// Whether outlier detection has it ejected now.
    pub ejected: bool,
    /// Its circuit breaker's state (`closed`, `open`, `half_open`), if it has one.
    pub breaker: Option<&'static str>,
    /// Requests in flight now.
    pub in_flight: u32,
    /// Requests sent since the cluster was built.
    pub requests: u64,
    /// Failed exchanges since the cluster was built.
    pub failures: u64,
    /// Its latest active check results, newest last.
    pub checks: Vec<crate::health::CheckRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(balancer: config::Balancer, weights: &[u32]) -> Cluster {
        let mut c = config::Cluster::with_endpoints(
            "c",
            weights
                .iter()
                .enumerate()
                .map(|(i, &w)| config::Endpoint {
                    weight: w,
                    ..config::Endpoint::new(format!("127.0.0.1:{}", 9000 + i))
                })
                .collect(),
        );
        c.balancer = balancer;
        Cluster::new(&c, None).unwrap()
    }

    #[tokio::test]
    async fn round_robin_follows_weights() {
        let c = cluster(config::Balancer::RoundRobin, &[2, 1]);
        let picks: Vec<Arc<str>> = (0..6)
            .map(|_| c.pick().unwrap().endpoint().address.clone())
            .collect();
        let first = picks.iter().filter(|a| a.ends_with(":9000")).count();
        assert_eq!(first, 4);
    }

    #[tokio::test]
    async fn in_flight_slot_is_released_on_drop() {
        let c = cluster(config::Balancer::LeastRequest, &[1, 1]);
        let held: Vec<InFlight> = (0..4).map(|_| c.pick().unwrap()).collect();
        let total: u32 = c.endpoints.iter().map(|e| e.in_flight()).sum();
        assert_eq!(total, 4);
        drop(held);
        assert!(c.endpoints.iter().all(|e| e.in_flight() == 0));
    }

    #[tokio::test]
    async fn least_request_avoids_the_busy_endpoint() {
        let c = cluster(config::Balancer::LeastRequest, &[1, 1]);
        // Pin ten requests on whichever endpoint comes first.
        let busy = c.pick().unwrap();
        let busy_addr = busy.endpoint().address.clone();
        let _pinned: Vec<InFlight> = (0..10)
            .map(|_| {
                assert!(busy.endpoint().reserve());
                InFlight::start(busy.endpoint().clone(), None, None)
            })
            .collect();
        for _ in 0..50 {
            let pick = c.pick().unwrap();
            assert_ne!(pick.endpoint().address, busy_addr);
        }
    }
}
