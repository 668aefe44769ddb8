//! watertight's admin API, on its own listener (default `127.0.0.1:9901`).
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs (liveness) |
//! | `GET /readyz` | 200 while taking traffic, 503 once draining (readiness) |
//! | `GET /config` | the running config as JSON with its version hash |
//! | `GET /clusters` | clusters, endpoints and their live state |
//! | `GET /reloads` | config reloads applied and rejected |
//! | `GET /metrics` | Prometheus metrics (text format; OpenMetrics with exemplars when the `Accept` header asks) |
//!
//! Other parts of the binary mount extra paths with [`Admin::mount`] (the demo mounts `/demo`).
//!
//! ```no_run
//! # async fn run(proxy: watertight_proxy::Proxy) -> std::io::Result<()> {
//! let admin = watertight_admin::Admin::new(proxy);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9901").await?;
//! tokio::spawn(admin.serve(listener));
//! # Ok(()) }
//! ```

mod api;
mod server;

pub use api::{Admin, Handler, Reply};
