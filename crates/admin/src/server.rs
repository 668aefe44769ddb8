//! Serving the admin API over HTTP/1.1.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use watertight_telemetry::Format;

use crate::api::Admin;

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 * 1024;

impl Admin {
    /// Serves the admin API on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.respond(request).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() == "/metrics"
            && (request.method() == Method::GET || request.method() == Method::HEAD)
        {
            let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let mut response = Response::new(Full::new(Bytes::from(self.metrics(format))));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            return response;
        }
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let (status, value) = self.answer(parts.method, parts.uri.path(), body).await;
        let (content_type, bytes) = match value {
            Value::String(text) => ("text/plain; charset=utf-8", Bytes::from(text)),
            other => {
                let mut text = serde_json::to_vec_pretty(&other).unwrap_or_default();
                text.push(b'\n');
                ("application/json", Bytes::from(text))
            }
        };
        let mut response = Response::new(Full::new(bytes));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}
