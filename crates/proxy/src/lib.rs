//! watertight's data plane.
//!
//! A [`Proxy`] is started from a loaded config. Each HTTP listener accepts connections
//! ([`server`]), and every request goes through the same path:
//!
//! ```text
//! server (h1 / h2c auto) → edge (snapshot, route, intermediary headers, log, errors)
//!   → route stack (stack.rs: layers slot in here) → forward (endpoint pick, pool, deadline)
//! ```
//!
//! The config lives in an atomically swapped [`Runtime`] snapshot. A reload compiles a new one,
//! keeps the clusters whose config did not change (pools and counters survive), and swaps it
//! in; requests in flight finish on the snapshot they started with.
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! let loaded = watertight_config::load_file("watertight.yaml".as_ref()).map_err(|d| d.to_string())?;
//! let proxy = watertight_proxy::Proxy::start(loaded).await?;
//! // ... later, on SIGTERM:
//! proxy.shutdown(proxy.drain_timeout()).await;
//! # Ok(()) }
//! ```

pub mod access_log;
mod activity;
pub mod body;
mod bulkhead;
pub mod cache;
mod chunked;
mod clock;
mod closing;
pub mod cluster;
mod connector;
mod downstream;
mod drain;
pub mod edge;
pub mod error;
mod exchange;
pub mod fallback;
pub mod forward;
mod framed;
mod hash_balancer;
pub mod headers;
pub mod health;
mod proxy;
pub mod reload;
pub mod retry;
pub mod router;
pub mod runtime;
mod saturation;
pub mod server;
pub mod stack;
pub mod tcp;
mod timer;
mod upstream;
mod watched_io;
mod wire;

pub use error::{ErrorKind, ProxyError};
pub use proxy::{Proxy, ReloadCounts};
pub use runtime::Runtime;
