//! Failover families: active health checks, priority group changes, and TCP sessions.
//!
//! Endpoint health states and the active priority group live in the proxy's runtime and are
//! read at scrape time by its collector; what is counted as it happens is here.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::{EndpointLabels, LatencyHistogram};

/// Health check outcomes, as the `outcome` label spells them.
pub const CHECK_OUTCOMES: [&str; 3] = ["success", "failure", "timeout"];

/// Why a TCP session ended, as the `reason` label spells them.
pub const SESSION_END_REASONS: [&str; 8] = [
    "client-closed",
    "upstream-closed",
    "idle-timeout",
    "endpoint-down",
    "drain",
    "connect-failed",
    "refused",
    "no-healthy-endpoint",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    cluster: String,
    endpoint: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    cluster: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    listener: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionReasonLabels {
    listener: String,
    cluster: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionDirectionLabels {
    listener: String,
    cluster: String,
    direction: &'static str,
}

/// The failover families of one proxy.
#[derive(Debug, Default)]
pub(super) struct Families {
    checks: Family<CheckLabels, Counter>,
    check_duration: Family<EndpointLabels, LatencyHistogram>,
    failovers: Family<DirectionLabels, Counter>,
    sessions: Family<SessionLabels, Counter>,
    sessions_active: Family<SessionLabels, Gauge>,
    sessions_closed: Family<SessionReasonLabels, Counter>,
    session_bytes: Family<SessionDirectionLabels, Counter>,
}

impl Families {
    /// Every family, registered in `r`.
    pub(super) fn new(r: &mut Registry) -> Self {
        let f = Self::default();
        r.register(
            "health_checks",
            "Active health checks by endpoint and outcome (success, failure, timeout)",
            f.checks.clone(),
        );
        r.register_with_unit(
            "health_check_duration",
            "How long active health checks took, by endpoint",
            Unit::Seconds,
            f.check_duration.clone(),
        );
        r.register(
            "cluster_failovers",
            "Changes of a cluster's active priority group, by direction (failover to a worse group, failback to a better one)",
            f.failovers.clone(),
        );
        r.register(
            "tcp_sessions",
            "TCP sessions accepted, by listener and cluster",
            f.sessions.clone(),
        );
        r.register(
            "tcp_sessions_active",
            "TCP sessions open now, by listener and cluster",
            f.sessions_active.clone(),
        );
        r.register(
            "tcp_sessions_closed",
            "TCP sessions ended, by reason",
            f.sessions_closed.clone(),
        );
        r.register_with_unit(
            "tcp",
            "TCP session bytes, by direction (upstream: client to endpoint; downstream: endpoint to client)",
            Unit::Bytes,
            f.session_bytes.clone(),
        );
        f
    }

    pub(super) fn health_check(&self, cluster: &str, endpoint: &str) -> HealthCheckMetrics {
        HealthCheckMetrics {
            outcomes: CHECK_OUTCOMES.map(|outcome| {
                self.checks
                    .get_or_create(&CheckLabels {
                        cluster: cluster.to_owned(),
                        endpoint: endpoint.to_owned(),
                        outcome,
                    })
                    .clone()
            }),
            duration: self
                .check_duration
                .get_or_create(&EndpointLabels {
                    cluster: cluster.to_owned(),
                    endpoint: endpoint.to_owned(),
                })
                .clone(),
        }
    }

    pub(super) fn failover(&self, cluster: &str) -> FailoverMetrics {
        let direction = |direction| {
            self.failovers
                .get_or_create(&DirectionLabels {
                    cluster: cluster.to_owned(),
                    direction,
                })
                .clone()
        };
        FailoverMetrics {
            failover: direction("failover"),
            failback: direction("failback"),
        }
    }

    pub(super) fn tcp(&self, listener: &str, cluster: &str) -> TcpMetrics {
        let labels = SessionLabels {
            listener: listener.to_owned(),
            cluster: cluster.to_owned(),
        };
        let bytes = |direction| {
            self.session_bytes
                .get_or_create(&SessionDirectionLabels {
                    listener: listener.to_owned(),
                    cluster: cluster.to_owned(),
                    direction,
                })
                .clone()
        };
        TcpMetrics {
            sessions: self.sessions.get_or_create(&labels).clone(),
            active: self.sessions_active.get_or_create(&labels).clone(),
            closed: SESSION_END_REASONS.map(|reason| {
                self.sessions_closed
                    .get_or_create(&SessionReasonLabels {
                        listener: listener.to_owned(),
                        cluster: cluster.to_owned(),
                        reason,
                    })
                    .clone()
            }),
            upstream_bytes: bytes("upstream"),
            downstream_bytes: bytes("downstream"),
        }
    }
}

/// What an endpoint's active checks record.
#[derive(Clone, Debug)]
pub struct HealthCheckMetrics {
    outcomes: [Counter; 3],
    duration: LatencyHistogram,
}

impl HealthCheckMetrics {
    /// Counts a check with `outcome` (`success`, `failure` or `timeout`) that took `elapsed`.
    pub fn checked(&self, outcome: &str, elapsed: Duration) {
        if let Some(i) = CHECK_OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].inc();
        }
        self.duration.observe(elapsed);
    }
}

/// What a cluster records when its active priority group changes.
#[derive(Clone, Debug)]
pub struct FailoverMetrics {
    failover: Counter,
    failback: Counter,
}

impl FailoverMetrics {
    /// Counts a move to a worse group (`failover`) or a better one (`failback`).
    pub fn changed(&self, failback: bool) {
        if failback {
            self.failback.inc();
        } else {
            self.failover.inc();
        }
    }
}

/// What a TCP listener records about the sessions it forwards to one cluster.
#[derive(Clone, Debug)]
pub struct TcpMetrics {
    sessions: Counter,
    active: Gauge,
    closed: [Counter; 8],
    upstream_bytes: Counter,
    downstream_bytes: Counter,
}

impl TcpMetrics {
    /// A session was accepted; it counts as active until the guard drops.
    pub fn opened(&self) -> ActiveSession {
        self.sessions.inc();
        self.active.inc();
        ActiveSession(self.active.clone())
    }

    /// Counts a session ended for `reason` (one of [`SESSION_END_REASONS`]).
    pub fn closed(&self, reason: &str) {
        if let Some(i) = SESSION_END_REASONS.iter().position(|r| *r == reason) {
            self.closed[i].inc();
        }
    }

    /// Counts bytes moved: `upstream` from client to endpoint, `downstream` back.
    pub fn bytes(&self, upstream: u64, downstream: u64) {
        if upstream > 0 {
            self.upstream_bytes.inc_by(upstream);
        }
        if downstream > 0 {
            self.downstream_bytes.inc_by(downstream);
        }
    }
}

/// Counts one TCP session as active while it lives.
#[derive(Debug)]
pub struct ActiveSession(Gauge);

impl Drop for ActiveSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}
