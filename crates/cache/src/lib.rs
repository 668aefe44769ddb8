//! watertight's HTTP cache, a shared cache as RFC 9111 defines it.
//!
//! - [`semantics`]: what the RFCs say, as pure functions of headers and times (storability,
//!   freshness, age, validation, `Vary`, invalidation). No I/O, no clock: times are passed in.
//! - [`store`]: the memory tier, bounded in bytes, with a scan-resistant admission policy.
//! - [`disk`]: the disk tier, bounded in bytes, that survives a restart.
//! - [`coalesce`]: one origin fetch per key while others wait.
//! - [`encode`]: brotli or gzip for uncompressed text on the way out.
//!
//! The proxy's cache layer (`watertight-proxy`'s `cache.rs`) puts them on a route.

pub mod coalesce;
pub mod disk;
pub mod encode;
pub mod semantics;
pub mod store;
