//! watertight's resilience mechanisms, as small state machines the proxy wraps around a route.
//!
//! - [`RetryBudget`]: retries may add at most a ratio of recent requests plus a small floor
//!   per second (Finagle's and tower's budget), so retries cannot turn an outage into a storm.
//! - [`Backoff`]: exponential backoff with full jitter between attempts.
//! - [`Bulkhead`]: a concurrency limit with a bounded FIFO wait queue and a queue timeout, so a
//!   slow dependency holds at most its share of the proxy.
//! - [`CircuitBreaker`]: closed / open / half-open on failure and slow-call rates over a count
//!   or time window, with growing, jittered open periods (Resilience4j's semantics).
//! - [`AdaptiveLimit`]: a concurrency limit learned from latency (a gradient limiter), so
//!   overload sheds instead of queueing.
//! - [`OutlierDetector`]: passive health per cluster; consecutive failures eject an endpoint
//!   for growing periods, never more than a share of the cluster (Envoy's semantics).
//!
//! Time is always passed in (`now` arguments) or comes from tokio's clock, so tests run on
//! paused time and decide exactly.

pub mod adaptive;
mod backoff;
pub mod breaker;
mod budget;
mod bulkhead;
pub mod outlier;

pub use adaptive::{AdaptiveConfig, AdaptiveLimit};
pub use backoff::Backoff;
pub use breaker::{BreakerConfig, CircuitBreaker};
pub use budget::RetryBudget;
pub use bulkhead::{Bulkhead, BulkheadPermit, Priority, Rejected};
pub use outlier::{OutlierConfig, OutlierDetector};
