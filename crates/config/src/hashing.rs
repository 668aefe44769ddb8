//! The config schema's `hash` section on a cluster: consistent hashing as its balancer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Consistent hashing: requests with the same key go to the same endpoint while the cluster's
/// membership and health do not change, and a change moves only about 1/n of the keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashPolicy {
    /// Where a request's key comes from: `path`, `url`, `client_address`, or one of
    /// `{ header: NAME }`, `{ cookie: NAME }`, `{ query: NAME }`.
    pub key: HashKey,
    /// The table: `ring` (virtual nodes), `maglev` (one lookup per key) or `rendezvous`
    /// (highest random weight, for small clusters).
    #[serde(default)]
    pub algorithm: HashAlgorithm,
    /// Ring points per unit of endpoint weight.
    #[serde(default = "default_points_per_weight")]
    pub points_per_weight: u32,
    /// Maglev table size: a prime above 100 × the endpoints.
    #[serde(default = "default_table_size")]
    pub table_size: usize,
    /// Bounded load: no endpoint takes more than this factor × its fair share of the
    /// requests in flight (1.25: 25 % above); a key whose endpoint is over it goes to the next
    /// one. Absent: unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounded_load: Option<f64>,
    /// What a request without a key gets: `least_request` or `round_robin`.
    #[serde(default)]
    pub no_key: NoKey,
}

/// Where a request's hash key comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// The value of this request header.
    Header(String),
    /// The value of this cookie.
    Cookie(String),
    /// The value of this query parameter.
    Query(String),
    /// The request path (without the query).
    Path,
    /// The whole URL: host, path and query (the HTTP cache's key, for tiered caching).
    Url,
    /// The client's IP address.
    ClientAddress,
}

/// The consistent-hash table of a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// A ring with virtual nodes (ketama's scheme).
    #[default]
    Ring,
    /// Maglev's lookup table.
    Maglev,
    /// Rendezvous (highest random weight) hashing.
    Rendezvous,
}

/// What a request without a hash key gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoKey {
    /// Power of two choices on requests in flight.
    #[default]
    LeastRequest,
    /// Smooth weighted round robin.
    RoundRobin,
}

fn default_points_per_weight() -> u32 {
    160
}
fn default_table_size() -> usize {
    65_537
}
