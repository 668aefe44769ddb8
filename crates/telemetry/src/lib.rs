//! watertight's telemetry: what the proxy tells about itself.
//!
//! - [`metrics`]: the Prometheus metric families (the four golden signals per route, cluster
//!   and endpoint, saturation, config health) and their exposition.
//! - [`trace`]: W3C and B3 trace context, head and tail sampling, OTLP export.

pub mod metrics;
pub mod trace;

pub use metrics::{Format, Metrics};
