//! The config schema's cache sections: the proxy-wide store (`cache` at the top level) and a
//! route's caching (`cache` on a route).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Duration;

/// The HTTP cache's memory tier, shared by every route that caches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheStore {
    /// Most bytes stored (bodies and headers).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// The largest response body stored; larger ones stream through uncached.
    #[serde(default = "default_max_object_bytes")]
    pub max_object_bytes: usize,
    /// A disk tier under the memory tier, surviving restarts; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskTier>,
}

impl Default for CacheStore {
    fn default() -> Self {
        Self {
            max_bytes: default_max_bytes(),
            max_object_bytes: default_max_object_bytes(),
            disk: None,
        }
    }
}

/// The cache's disk tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskTier {
    /// The directory it keeps its files in (created if missing).
    pub path: String,
    /// Most bytes it keeps; the oldest responses go first.
    #[serde(default = "default_disk_bytes")]
    pub max_bytes: u64,
}

/// A route's HTTP caching (RFC 9111, as a shared cache).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCache {
    /// Serve a stale response this long past its freshness while it is revalidated in the
    /// background, when the origin's response does not say (`stale-while-revalidate`).
    #[serde(default = "zero")]
    pub stale_while_revalidate: Duration,
    /// Serve a stale response this long past its freshness when the origin fails or answers
    /// 5xx, when the origin's response does not say (`stale-if-error`).
    #[serde(default = "zero")]
    pub stale_if_error: Duration,
    /// Concurrent misses for one URL wait this long for the first to fetch it, then go to
    /// the origin themselves.
    #[serde(default = "default_coalesce_timeout")]
    pub coalesce_timeout: Duration,
}

impl Default for RouteCache {
    fn default() -> Self {
        Self {
            stale_while_revalidate: zero(),
            stale_if_error: zero(),
            coalesce_timeout: default_coalesce_timeout(),
        }
    }
}

fn default_max_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_max_object_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_disk_bytes() -> u64 {
    4 * 1024 * 1024 * 1024
}
fn zero() -> Duration {
    Duration::from_secs(0)
}
fn default_coalesce_timeout() -> Duration {
    Duration::from_secs(5)
}
