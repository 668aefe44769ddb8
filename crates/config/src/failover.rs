//! The config schema's failover sections on a cluster: active `health_check`s (HTTP, TCP,
//! PostgreSQL-native), how traffic returns to a better priority group (`failback`), what
//! happens to open TCP sessions when their endpoint goes down (`on_endpoint_down`), and the
//! PROXY protocol towards upstreams.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Duration;

/// Active health checking of every endpoint of a cluster. Exactly one of `http`, `tcp` and
/// `postgres` says what a check does.
///
/// An endpoint starts `unknown` and takes no traffic until its first check passes; after that
/// it turns unhealthy after `fall` failed checks in a row and healthy again after `rise`
/// passed ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Time between checks of one endpoint.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Time between checks while an endpoint's state is changing (some checks in a row
    /// disagree with its state), so a change is confirmed sooner. Defaults to `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_interval: Option<Duration>,
    /// A check that has not passed after this long fails.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Up to this share (0–1) of the interval is added at random to each wait, so checks of
    /// many proxies do not arrive in step.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Passed checks in a row that make an unhealthy endpoint healthy.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Failed checks in a row that make a healthy endpoint unhealthy.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// An HTTP request; passes on an expected status (and body, if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// A TCP connection; passes when it is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// A PostgreSQL session that asks the server its role; passes when the role is the one
    /// the cluster wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresCheck>,
}

/// An HTTP health check (HTTP/1.1, a new connection per check).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// Request method (`GET`, `HEAD`, `OPTIONS`, …).
    #[serde(default = "default_method")]
    pub method: String,
    /// Request path with an optional query, e.g. `/healthz` or `/replica?lag=16MB`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Statuses that pass: codes (`200`), classes (`2xx`) or ranges (`200-299`).
    #[serde(default = "default_expect_status")]
    pub expect_status: Vec<String>,
    /// The response body must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// `Host` header to send; the endpoint's address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port to check instead of the traffic port (an endpoint's `health_check_port` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A TCP connect health check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// Port to check instead of the traffic port (an endpoint's `health_check_port` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A PostgreSQL-native health check: a session (kept open between checks) that runs
/// `SELECT pg_is_in_recovery()` and, for replicas, measures replay lag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresCheck {
    /// The role an endpoint must have to pass: `primary` (not in recovery), `replica` (in
    /// recovery), or `any` (it answers queries).
    pub role: PostgresRole,
    /// Database user for the check session.
    #[serde(default = "default_pg_user")]
    pub user: String,
    /// Database to connect to.
    #[serde(default = "default_pg_database")]
    pub database: String,
    /// Password, if the server asks for one (cleartext, MD5 and SCRAM are spoken). Prefer
    /// `password_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A file holding the password (its first line), read at each connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Replicas only: a replica whose replay is further behind than this fails. Measured as
    /// the age of the last replayed transaction while WAL received is not yet replayed (0
    /// when replay has caught up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<Duration>,
    /// Port to check instead of the traffic port (an endpoint's `health_check_port` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// The PostgreSQL role a cluster wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostgresRole {
    /// A server that is not in recovery: it takes writes.
    Primary,
    /// A server in recovery (a streaming or log-shipping standby).
    Replica,
    /// Any server that answers.
    Any,
}

/// How traffic returns to a better priority group once it is healthy again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Failback {
    /// As soon as the better group has a healthy endpoint (which, with active checks, takes
    /// `rise` passed checks in a row).
    #[default]
    Auto,
    /// Only when an operator asks (`POST /clusters/{cluster}/failback`); traffic otherwise
    /// stays on the group it failed over to while that group is healthy.
    Manual,
}

/// What happens to open TCP sessions when their endpoint goes down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnEndpointDown {
    /// They carry on until either side closes them.
    #[default]
    KeepSessions,
    /// They are closed the moment the endpoint turns unhealthy or is disabled, and sessions
    /// on a standby group are closed when traffic fails back (a demoted primary must not keep
    /// taking writes through the proxy).
    CloseSessions,
}

/// The PROXY protocol version sent to upstreams at the start of each TCP session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocol {
    /// Version 2 (binary), as HAProxy's `send-proxy-v2`.
    V2,
}

impl HealthCheck {
    /// The kinds of check given, by field name (exactly one is valid).
    pub fn kinds(&self) -> Vec<&'static str> {
        [
            ("http", self.http.is_some()),
            ("tcp", self.tcp.is_some()),
            ("postgres", self.postgres.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// The wait between checks while a state is changing.
    pub fn transition_interval(&self) -> std::time::Duration {
        self.transition_interval.unwrap_or(self.interval).get()
    }

    /// The port the check was told to use, if any.
    pub fn port(&self) -> Option<u16> {
        self.http
            .as_ref()
            .and_then(|h| h.port)
            .or(self.tcp.as_ref().and_then(|t| t.port))
            .or(self.postgres.as_ref().and_then(|p| p.port))
    }
}

/// Whether `status` is one of `expected` (codes, `2xx` classes or `200-299` ranges; entries
/// that do not parse match nothing, validation reports them).
pub fn status_expected(expected: &[String], status: u16) -> bool {
    expected
        .iter()
        .any(|e| parse_status_range(e).is_some_and(|(lo, hi)| (lo..=hi).contains(&status)))
}

/// `200` → (200, 200), `2xx` → (200, 299), `200-299` → (200, 299).
pub fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let text = text.trim();
    let code = |t: &str| {
        t.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
    };
    if let Some((lo, hi)) = text.split_once('-') {
        let (lo, hi) = (code(lo)?, code(hi)?);
        return (lo <= hi).then_some((lo, hi));
    }
    if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
        let class = class.parse::<u16>().ok().filter(|c| (1..=5).contains(c))?;
        return Some((class * 100, class * 100 + 99));
    }
    code(text).map(|c| (c, c))
}

fn default_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_jitter() -> f64 {
    0.1
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}
fn default_method() -> String {
    "GET".to_owned()
}
fn default_path() -> String {
    "/".to_owned()
}
fn default_expect_status() -> Vec<String> {
    vec!["200-399".to_owned()]
}
fn default_pg_user() -> String {
    "postgres".to_owned()
}
fn default_pg_database() -> String {
    "postgres".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_parse_codes_classes_and_ranges() {
        assert_eq!(parse_status_range("204"), Some((204, 204)));
        assert_eq!(parse_status_range("2xx"), Some((200, 299)));
        assert_eq!(parse_status_range("200-399"), Some((200, 399)));
        assert_eq!(parse_status_range("399-200"), None);
        assert_eq!(parse_status_range("6xx"), None);
        assert_eq!(parse_status_range("abc"), None);
        assert_eq!(parse_status_range("99"), None);
        let expected = vec!["200".to_owned(), "3xx".to_owned()];
        assert!(status_expected(&expected, 200));
        assert!(status_expected(&expected, 304));
        assert!(!status_expected(&expected, 201));
    }
}
