//! The config schema's resilience sections on a route: `retry` and `bulkhead`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Duration;

/// Retries of failed attempts, each on another endpoint when the cluster has one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Most tries in all, the first included (2 = one retry).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// What is retried: `connect-failure` (the request never left), `reset` (the connection
    /// broke before an answer), `timeout` (an attempt exceeded `per_try_timeout`), `5xx`,
    /// `gateway-error` (502, 503, 504), or a status code such as `503` or `429`.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<String>,
    /// Longest wait for one attempt's response head; the route's timeout still bounds the
    /// whole exchange, retries and waits included. Absent: only the route's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Wait between tries: exponential with full jitter.
    #[serde(default)]
    pub backoff: RetryBackoff,
    /// How many retries the route may add on top of its requests.
    #[serde(default)]
    pub budget: RetryBudget,
    /// Request bodies up to this many bytes are kept so they can be sent again; a larger body
    /// streams through and its request is not retried.
    #[serde(default = "default_replay_buffer")]
    pub replay_buffer: usize,
    /// Also retry non-idempotent requests (POST, PATCH) that may have reached the upstream.
    /// Off, they are retried only when the connection was never made.
    #[serde(default)]
    pub non_idempotent: bool,
}

/// Backoff between tries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBackoff {
    /// Ceiling of the first wait; it doubles per retry.
    #[serde(default = "default_backoff_base")]
    pub base: Duration,
    /// Most any wait may be.
    #[serde(default = "default_backoff_max")]
    pub max: Duration,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        Self {
            base: default_backoff_base(),
            max: default_backoff_max(),
        }
    }
}

/// Retries ≤ `ratio` × requests + `min_per_second` per second, over a 10 s window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries allowed per request, on average.
    #[serde(default = "default_budget_ratio")]
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic (so a quiet route can retry).
    #[serde(default = "default_budget_floor")]
    pub min_per_second: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: default_budget_ratio(),
            min_per_second: default_budget_floor(),
        }
    }
}

/// A concurrency limit: past `max_concurrent`, requests wait in a bounded queue; past that,
/// they are refused at once (`503`, `bulkhead-full`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bulkhead {
    /// Most requests in flight at once.
    pub max_concurrent: usize,
    /// Most requests waiting for a slot.
    #[serde(default)]
    pub max_queue: usize,
    /// Longest a request waits in the queue (`503`, `queue-timeout`).
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Duration,
    /// A request header naming the request's priority class: `critical`, `default` or
    /// `sheddable` (anything else is `default`). When the queue is full, lower classes are
    /// refused first, and freed slots go to higher classes first. Absent: all `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_header: Option<String>,
}

fn default_attempts() -> u32 {
    2
}
fn default_retry_on() -> Vec<String> {
    vec!["connect-failure".to_owned(), "reset".to_owned()]
}
fn default_backoff_base() -> Duration {
    Duration::from_millis(25)
}
fn default_backoff_max() -> Duration {
    Duration::from_millis(250)
}
fn default_budget_ratio() -> f64 {
    0.2
}
fn default_budget_floor() -> u32 {
    10
}
fn default_replay_buffer() -> usize {
    64 * 1024
}
fn default_queue_timeout() -> Duration {
    Duration::from_millis(100)
}

/// One `retry_on` condition, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryCondition {
    /// The connection to the endpoint could not be made: the request never left.
    ConnectFailure,
    /// The connection broke before a complete response head.
    Reset,
    /// The attempt exceeded `per_try_timeout`.
    Timeout,
    /// Any 5xx answer.
    ServerError,
    /// 502, 503 or 504.
    GatewayError,
    /// This status code.
    Status(u16),
}

impl RetryCondition {
    /// The keywords besides status codes.
    pub const KEYWORDS: [&'static str; 5] = [
        "connect-failure",
        "reset",
        "timeout",
        "5xx",
        "gateway-error",
    ];

    /// Reads a `retry_on` entry: a keyword or a status code from 400 to 599.
    pub fn parse(text: &str) -> Option<RetryCondition> {
        Some(match text {
            "connect-failure" => RetryCondition::ConnectFailure,
            "reset" => RetryCondition::Reset,
            "timeout" => RetryCondition::Timeout,
            "5xx" => RetryCondition::ServerError,
            "gateway-error" => RetryCondition::GatewayError,
            code if code.len() == 3 => {
                let code: u16 = code.parse().ok()?;
                (400..=599)
                    .contains(&code)
                    .then_some(RetryCondition::Status(code))?
            }
            _ => return None,
        })
    }

    /// Whether an answer with `status` meets this condition.
    pub fn matches_status(self, status: u16) -> bool {
        match self {
            RetryCondition::ServerError => (500..=599).contains(&status),
            RetryCondition::GatewayError => matches!(status, 502..=504),
            RetryCondition::Status(code) => code == status,
            _ => false,
        }
    }
}

/// A circuit breaker per endpoint of a cluster: an endpoint whose recent calls fail (or are
/// slow) too often is passed over for a while, then probed with a few trial calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Judge the last this many calls (count window). Give this or `window_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_calls: Option<u32>,
    /// Judge the calls of the last this many seconds (time window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u32>,
    /// Calls the window must hold before it is judged.
    #[serde(default = "default_minimum_calls")]
    pub minimum_calls: u32,
    /// Share of failed calls (0–1) that opens the breaker.
    #[serde(default = "default_failure_rate")]
    pub failure_rate: f64,
    /// Share of slow calls (0–1) that opens the breaker.
    #[serde(default = "default_slow_call_rate")]
    pub slow_call_rate: f64,
    /// A call whose response head takes at least this long is slow.
    #[serde(default = "default_slow_call_duration")]
    pub slow_call_duration: Duration,
    /// How long the first trip keeps the endpoint out.
    #[serde(default = "default_open_duration")]
    pub open_duration: Duration,
    /// Each consecutive trip multiplies the open period by this.
    #[serde(default = "default_backoff_multiplier")]
    pub backoff_multiplier: f64,
    /// Longest open period.
    #[serde(default = "default_max_open_duration")]
    pub max_open_duration: Duration,
    /// Up to this share of the open period is added at random (0–1).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Trial calls let through when half-open.
    #[serde(default = "default_half_open_calls")]
    pub half_open_calls: u32,
    /// What counts as a failure: the same words as a retry's `retry_on`.
    #[serde(default = "default_failure_on")]
    pub failure_on: Vec<String>,
}

/// A concurrency limit on each endpoint of a cluster: a full endpoint is passed over, and when
/// every endpoint is full the request waits in a bounded queue for the first to free up, or
/// is refused (`503`, `bulkhead-full` or `queue-timeout`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBulkhead {
    /// Most requests in flight to one endpoint.
    pub max_concurrent: u32,
    /// Most requests waiting, cluster-wide, for a place on any endpoint; 0 refuses at once.
    #[serde(default)]
    pub max_queue: usize,
    /// Longest wait in that queue.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Duration,
}

/// Passive health: endpoints that fail several times in a row are taken out of the cluster
/// for a while (Envoy's outlier detection).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// Failures in a row that eject an endpoint.
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// The first ejection's length; the n-th lasts n times as long.
    #[serde(default = "default_base_ejection_time")]
    pub base_ejection_time: Duration,
    /// The longest ejection.
    #[serde(default = "default_max_ejection_time")]
    pub max_ejection_time: Duration,
    /// Most of the cluster, in percent (rounded down), ejected at once.
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
    /// What counts as a failure: the words of a retry's `retry_on`.
    #[serde(default = "default_failure_on")]
    pub failure_on: Vec<String>,
}

/// A concurrency limit for the whole cluster, learned from latency: when answers slow down
/// because requests queue at the upstream, the limit falls and the excess is refused at once
/// (`503`, `shed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConcurrency {
    /// The limit to start from.
    #[serde(default = "default_initial_limit")]
    pub initial_limit: usize,
    /// Never below this.
    #[serde(default = "default_min_limit")]
    pub min_limit: usize,
    /// Never above this.
    #[serde(default = "default_max_limit")]
    pub max_limit: usize,
    /// How much slower than the best recent latency answers may get before the limit
    /// shrinks (1.5: half again as slow).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// How often the limit is recomputed.
    #[serde(default = "default_adaptive_interval")]
    pub interval: Duration,
    /// How long the best latency is remembered.
    #[serde(default = "default_min_rtt_window")]
    pub min_rtt_window: Duration,
}

fn default_initial_limit() -> usize {
    100
}
fn default_min_limit() -> usize {
    4
}
fn default_max_limit() -> usize {
    1000
}
fn default_tolerance() -> f64 {
    1.5
}
fn default_adaptive_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_min_rtt_window() -> Duration {
    Duration::from_secs(30)
}
fn default_consecutive_failures() -> u32 {
    5
}
fn default_base_ejection_time() -> Duration {
    Duration::from_secs(30)
}
fn default_max_ejection_time() -> Duration {
    Duration::from_secs(300)
}
fn default_max_ejection_percent() -> u32 {
    50
}
fn default_minimum_calls() -> u32 {
    10
}
fn default_failure_rate() -> f64 {
    0.5
}
fn default_slow_call_rate() -> f64 {
    1.0
}
fn default_slow_call_duration() -> Duration {
    Duration::from_secs(5)
}
fn default_open_duration() -> Duration {
    Duration::from_secs(5)
}
fn default_backoff_multiplier() -> f64 {
    2.0
}
fn default_max_open_duration() -> Duration {
    Duration::from_secs(60)
}
fn default_jitter() -> f64 {
    0.2
}
fn default_half_open_calls() -> u32 {
    3
}
fn default_failure_on() -> Vec<String> {
    ["connect-failure", "reset", "timeout", "5xx"]
        .map(str::to_owned)
        .to_vec()
}

/// What a route answers when its upstream cannot: another cluster, then a fixed response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// The failures that walk the chain: reason words (`breaker-open`, `bulkhead-full`,
    /// `queue-timeout`, `no-endpoint`, `no-healthy-endpoint`, `upstream-timeout`, `connect-refused`, …) and `5xx`
    /// for upstream answers with a 5xx status.
    #[serde(default = "default_fallback_on")]
    pub on: Vec<String>,
    /// A cluster to send the request to instead (requests without a body only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// A fixed answer, when the fallback cluster is absent or fails too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<StaticResponse>,
}

/// A fixed answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticResponse {
    /// Its status.
    #[serde(default = "default_static_status")]
    pub status: u16,
    /// Its headers.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Its body, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Its body, from a file read when the config is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_file: Option<String>,
}

/// Every failure to get an answer, except a garbled answer (`upstream-protocol`) and a
/// 5xx: those the origin gave, and a route opts in to covering them.
fn default_fallback_on() -> Vec<String> {
    crate::validate::FALLBACK_REASONS
        .iter()
        .filter(|reason| !matches!(**reason, "upstream-protocol" | "5xx"))
        .map(|reason| (*reason).to_owned())
        .collect()
}
fn default_static_status() -> u16 {
    200
}
