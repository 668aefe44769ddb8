//! Every request's path through a sample service: control endpoints bypass the knobs;
//! everything else is counted, delayed, maybe reset or failed, then routed by path.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode, Version};
use hyper::body::Incoming;

use crate::connection::ConnectionContext;
use crate::endpoints;
use crate::faults::Verdict;
use crate::response::{DemoResponse, text};
use crate::upgrade;

/// Returned to hyper to abort the exchange without a response: it closes an HTTP/1
/// connection and resets an HTTP/2 stream.
#[derive(Debug)]
pub(crate) struct AbortConnection;

impl fmt::Display for AbortConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection aborted by the reset_rate fault")
    }
}

impl std::error::Error for AbortConnection {}

/// The path health checks ask: `200 ok`, unless the fault knobs say otherwise, so a faulted
/// replica fails its checks as it fails its traffic.
const HEALTH_PATH: &str = "/healthz";

pub(crate) async fn handle(
    conn: Arc<ConnectionContext>,
    request: Request<Incoming>,
) -> Result<DemoResponse, AbortConnection> {
    let replica = &conn.replica;
    let mut response =
        if endpoints::fault::is_control(local_path(replica.name(), request.uri().path())) {
            endpoints::fault::respond(replica, request).await
        } else {
            // Health checks arrive every few hundred ms; counting them would drown the
            // requests a person sends in `requests_served`.
            if local_path(replica.name(), request.uri().path()) != HEALTH_PATH {
                replica.count_request();
            }
            let faults = replica.faults();
            if faults.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
            }
            match faults.verdict() {
                Verdict::Serve => route(&conn, request).await,
                Verdict::Fail(status) => text(
                    status,
                    format!(
                        "injected fault: {} from {}\n",
                        status.as_u16(),
                        replica.name()
                    ),
                ),
                Verdict::Reset => {
                    if request.version() < Version::HTTP_2 {
                        conn.reset_on_close();
                    }
                    return Err(AbortConnection);
                }
            }
        };
    replica.stamp(response.headers_mut());
    Ok(response)
}

async fn route(conn: &ConnectionContext, request: Request<Incoming>) -> DemoResponse {
    let replica = &conn.replica;
    let path = local_path(replica.name(), request.uri().path());
    if upgrade::is_upgrade(&request) {
        return upgrade::respond(conn, request);
    }
    if path == "/" {
        text(StatusCode::OK, replica.root_body())
    } else if path == HEALTH_PATH {
        text(StatusCode::OK, "ok\n")
    } else if path == "/echo" || path.starts_with("/echo/") {
        endpoints::echo::respond(replica, request).await
    } else if path == "/bytes" {
        endpoints::bytes::respond(&request)
    } else if path == "/upload" {
        endpoints::upload::respond(replica, request).await
    } else if path == "/delay" {
        endpoints::delay::respond(&request).await
    } else if let Some(code) = path.strip_prefix("/status/") {
        endpoints::status::respond(code)
    } else {
        text(
            StatusCode::NOT_FOUND,
            format!(
                "no endpoint {path} on {}; try /, /healthz, /echo, /bytes?n=1024, /upload, \
                 /delay?ms=100, /status/503, /ws, /fault\n",
                replica.name()
            ),
        )
    }
}

/// The path with a leading `/{service name}` segment removed, so a service answers under its
/// own name as well (`/catalog/echo` is `/echo` on catalog) and a proxy can route to it by
/// path prefix without rewriting.
pub(crate) fn local_path<'a>(service: &str, path: &'a str) -> &'a str {
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(service)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn the_service_name_prefix_is_optional() {
        assert_eq!(local_path("catalog", "/catalog"), "/");
        assert_eq!(local_path("catalog", "/catalog/echo"), "/echo");
        assert_eq!(local_path("catalog", "/echo"), "/echo");
        assert_eq!(local_path("catalog", "/catalogue/echo"), "/catalogue/echo");
        assert_eq!(local_path("catalog", "/checkout/echo"), "/checkout/echo");
    }
}
