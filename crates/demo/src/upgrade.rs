//! `/ws` and `Upgrade: echo`: HTTP/1.1 upgrades to a raw byte echo, for testing a proxy's
//! upgrade tunnelling.
//!
//! WebSocket handshakes are refused with 501: answering one needs SHA-1 for
//! `Sec-WebSocket-Accept`, and no SHA-1 crate is in the workspace.

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use crate::body::ResponseBody;
use crate::connection::ConnectionContext;
use crate::response::{DemoResponse, text};

const ECHO: &str = "echo";

/// Whether the request is for this module: it is an HTTP/1.1 upgrade to `echo` or
/// `websocket`, or it is for `/ws`.
pub(crate) fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.uri().path() == "/ws"
        || requested_protocol(request)
            .is_some_and(|p| p.eq_ignore_ascii_case(ECHO) || p.eq_ignore_ascii_case("websocket"))
}

pub(crate) fn respond(conn: &ConnectionContext, mut request: Request<Incoming>) -> DemoResponse {
    match requested_protocol(&request) {
        Some(p) if p.eq_ignore_ascii_case(ECHO) => {
            // The echo task owns a socket, so it must hold the run open and end with it.
            let Some(token) = conn.upgrades.upgrade() else {
                return text(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping\n");
            };
            let on_upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let mut token = token;
                tokio::select! {
                    () = echo(on_upgrade) => {}
                    () = token.stop_requested() => {}
                }
            });
            let mut response = Response::new(ResponseBody::empty());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static(ECHO));
            response
        }
        Some(p) if p.eq_ignore_ascii_case("websocket") => text(
            StatusCode::NOT_IMPLEMENTED,
            "websocket handshakes are not implemented by the demo services; \
             send `Connection: upgrade` and `Upgrade: echo` for a raw byte echo\n",
        ),
        _ => {
            let mut response = text(
                StatusCode::UPGRADE_REQUIRED,
                "/ws needs an HTTP/1.1 upgrade: send `Connection: upgrade` and `Upgrade: echo`\n",
            );
            response
                .headers_mut()
                .insert(UPGRADE, HeaderValue::from_static(ECHO));
            response
        }
    }
}

/// The protocol named in `Upgrade`, if this is an HTTP/1.1 request with `Connection: upgrade`
/// (HTTP/2 has no upgrades).
fn requested_protocol<B>(request: &Request<B>) -> Option<&str> {
    if request.version() != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = request
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    request.headers().get(UPGRADE)?.to_str().ok().map(str::trim)
}

/// Copies every byte received back to the client until it closes its side.
async fn echo(on_upgrade: OnUpgrade) {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade to echo failed");
            return;
        }
    };
    let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
    if let Err(e) = tokio::io::copy(&mut reader, &mut writer).await {
        tracing::debug!(error = %e, "echo stream ended with an error");
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/anything").version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn echo_upgrade_needs_the_connection_token() {
        let with = request(
            Version::HTTP_11,
            &[("connection", "keep-alive, Upgrade"), ("upgrade", "Echo")],
        );
        assert!(is_upgrade(&with));
        let without = request(Version::HTTP_11, &[("upgrade", "echo")]);
        assert!(!is_upgrade(&without));
    }

    #[test]
    fn unknown_protocols_and_http2_are_not_upgrades() {
        let other = request(
            Version::HTTP_11,
            &[("connection", "upgrade"), ("upgrade", "h2c")],
        );
        assert!(!is_upgrade(&other));
        let h2 = request(
            Version::HTTP_2,
            &[("connection", "upgrade"), ("upgrade", "echo")],
        );
        assert!(!is_upgrade(&h2));
    }
}
