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

pub(crate) async fn handle(
    conn: Arc<ConnectionContext>,
    request: Request<Incoming>,
) -> Result<DemoResponse, AbortConnection> {
    let replica = &conn.replica;
    let mut response = if endpoints::fault::is_control(request.uri().path()) {
        endpoints::fault::respond(replica, request).await
    } else {
        replica.count_request();
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
    let path = request.uri().path();
    if upgrade::is_upgrade(&request) {
        return upgrade::respond(conn, request);
    }
    if path == "/" {
        text(StatusCode::OK, replica.root_body())
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
                "no endpoint {path} on {}; try /, /echo, /bytes?n=1024, /upload, /delay?ms=100, \
                 /status/503, /ws, /fault\n",
                replica.name()
            ),
        )
    }
}
