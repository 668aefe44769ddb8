//! The admin API's routes and answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use watertight_proxy::Proxy;

/// An answer: status and a JSON (or plain text, for a JSON string) body.
pub type Reply = (StatusCode, Value);

/// A mounted handler: method, path below the mount point, request body → reply.
pub type Handler =
    Arc<dyn Fn(Method, String, Bytes) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// The admin API of one proxy.
#[derive(Clone)]
pub struct Admin {
    proxy: Proxy,
    mounts: Vec<(String, Handler)>,
}

impl Admin {
    /// The admin API for `proxy`.
    pub fn new(proxy: Proxy) -> Self {
        Self {
            proxy,
            mounts: Vec::new(),
        }
    }

    /// Serves `prefix` (e.g. `/demo`) and everything below it with `handler`.
    pub fn mount(mut self, prefix: &str, handler: Handler) -> Self {
        self.mounts
            .push((prefix.trim_end_matches('/').to_owned(), handler));
        self
    }

    /// The metrics exposition in `format` (`GET /metrics`, served by the HTTP layer because
    /// it is text with its own content type).
    pub fn metrics(&self, format: watertight_telemetry::Format) -> String {
        self.proxy.metrics().encode(format)
    }

    /// Answers one request.
    pub async fn answer(&self, method: Method, path: &str, body: Bytes) -> Reply {
        for (prefix, handler) in &self.mounts {
            if let Some(rest) = path.strip_prefix(prefix.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return handler(method, rest.to_owned(), body).await;
            }
        }
        if method != Method::GET && method != Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                Value::String(format!("{method} is not allowed on {path}\n")),
            );
        }
        match path {
            "/healthz" => (StatusCode::OK, Value::String("ok\n".into())),
            "/readyz" if self.proxy.is_ready() => (StatusCode::OK, Value::String("ready\n".into())),
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                Value::String("draining\n".into()),
            ),
            "/config" => {
                let (config, version) = self.proxy.config();
                (
                    StatusCode::OK,
                    json!({ "version": version, "config": config }),
                )
            }
            "/clusters" => {
                let runtime = self.proxy.current();
                (
                    StatusCode::OK,
                    json!({
                        "version": runtime.version,
                        "clusters": runtime.cluster_status(),
                        "routes": runtime.route_status(),
                    }),
                )
            }
            "/reloads" => (StatusCode::OK, json!(self.proxy.reload_counts())),
            _ => (
                StatusCode::NOT_FOUND,
                Value::String(format!(
                    "no admin endpoint {path}; try /healthz /readyz /config /clusters /reloads /metrics{}\n",
                    self.mounts
                        .iter()
                        .map(|(p, _)| format!(" {p}"))
                        .collect::<String>()
                )),
            ),
        }
    }
}
