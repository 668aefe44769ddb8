//! watertight's configuration.
//!
//! A config file is YAML. [`load_file`] parses it into a [`Config`], validates it as a whole and
//! returns either the config with its version hash or every problem found, each pinned to a
//! `FILE:LINE:COL` with a hint. The proxy compiles a loaded config into its runtime; `watertight
//! check` prints the same diagnostics; [`json_schema`] describes the format for editors.
//!
//! ```
//! let text = "listeners:\n  - name: main\n    address: 127.0.0.1:8080\n    routes:\n      - name: all\n        cluster: web\nclusters:\n  - name: web\n    endpoints:\n      - address: 127.0.0.1:8000\n";
//! let loaded = watertight_config::load_str(text, "example.yaml").unwrap();
//! assert_eq!(loaded.config.clusters[0].name, "web");
//!
//! let broken = text.replace("cluster: web", "cluster: api");
//! let problems = watertight_config::load_str(&broken, "example.yaml").unwrap_err();
//! assert_eq!(
//!     problems.to_string(),
//!     "example.yaml:6:18: route \"all\" points to cluster \"api\", which is not defined\n  hint: defined clusters: web"
//! );
//! ```
//!
//! Inside, loading is a pipeline of small parts: `source_map` (YAML events → positions by path),
//! `unknown_fields` (serde with every unknown field collected), `decode_error` (serde errors
//! reworded), `validate` (semantic checks), and `load` tying them together.

mod address;
mod cache;
mod decode_error;
mod diagnostic;
mod duration;
mod failover;
mod hashing;
mod load;
mod model;
mod path;
mod resilience;
mod source_map;
mod suggest;
mod telemetry;
mod unknown_fields;
mod validate;

pub use address::{parse_endpoint_address, parse_listen_address};
pub use cache::{CacheStore, DiskTier, RouteCache};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use duration::Duration;
pub use failover::{
    Failback, HealthCheck, HttpCheck, OnEndpointDown, PostgresCheck, PostgresRole, ProxyProtocol,
    TcpCheck, parse_status_range, status_expected,
};
pub use hashing::{HashAlgorithm, HashKey, HashPolicy, NoKey};
pub use load::{Loaded, load_file, load_str, version_of};
pub use model::*;
pub use resilience::{
    AdaptiveConcurrency, Bulkhead, CircuitBreaker, EndpointBulkhead, Fallback, OutlierDetection,
    Retry, RetryBackoff, RetryBudget, RetryCondition, StaticResponse,
};
pub use telemetry::{Metrics, Otlp, OtlpProtocol, Propagation, TailSampling, Tracing};
pub use validate::validate;

/// The JSON Schema of the config file format.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a JSON Schema is always valid JSON")
}
