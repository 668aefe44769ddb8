//! watertight's telemetry: what the proxy tells about itself.
//!
//! - [`metrics`]: the Prometheus metric families (the four golden signals per route, cluster
//!   and endpoint, saturation, config health) and their exposition.

pub mod metrics;

pub use metrics::{Format, Metrics};
