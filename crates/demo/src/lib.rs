//! Sample upstream services with fault knobs: the far end of the request lifecycle.
//!
//! A [`SampleService`] is a real hyper server on a real socket that serves HTTP/1.1 and HTTP/2
//! (prior knowledge) on one port. `watertight demo` runs a [`DemoFleet`] of them behind the
//! proxy, the proxy's integration tests use them as upstreams, and benchmarks use the plain
//! `GET /` path as a fast, allocation-light upstream. Each service can be slowed down, made to
//! fail or to reset connections ([`Faults`]), stopped and started again on the same port, so
//! the proxy's containment and failover can be watched working.
//!
//! Endpoints (any method unless noted; every response carries `x-demo-service` and
//! `x-demo-replica`):
//!
//! | path | what it does |
//! |---|---|
//! | `/` | tiny fixed body; the benchmark path |
//! | `/healthz` | `200 ok` for health checks; faults apply, but it is not counted as served |
//! | `/echo`, `/echo/...` | JSON description of the request (headers in received order), body counted |
//! | `/bytes?n=N[&chunk=C]` | streams `N` pattern bytes in chunks of `C` (default 64 KiB) |
//! | `POST`/`PUT /upload` | consumes the body as a stream, answers its length and FNV-1a 64 hash |
//! | `/delay?ms=N` | answers after `N` ms (tokio time) |
//! | `/status/{code}` | answers with that status |
//! | `/ws`, or `Upgrade: echo` | `101 Switching Protocols`, then echoes every byte back |
//! | `GET`/`POST /fault`, `POST /fault/reset` | read, patch or reset the knobs; never faulted |
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use watertight_demo::{Faults, SampleService};
//!
//! let service = SampleService::start("catalog", 0, "127.0.0.1:0".parse().unwrap()).await?;
//! println!("upstream at http://{}", service.local_addr());
//! // Half the requests now fail with 503, every one after a 200 ms wait.
//! service.set_faults(Faults { latency_ms: 200, error_rate: 0.5, ..Faults::default() });
//! service.stop().await; // clients now see connection refused
//! service.start_again().await?; // same port, served again
//! # Ok(()) }
//! ```

mod body;
mod connection;
mod endpoints;
mod faults;
mod fleet;
mod lifecycle;
mod pattern;
mod query;
mod replica;
mod response;
mod router;
mod service;
mod upgrade;

pub use faults::Faults;
pub use fleet::{Control, DemoFleet};
pub use service::SampleService;
