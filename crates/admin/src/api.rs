//! The admin API's routes and answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use watertight_proxy::Proxy;
use watertight_proxy::health::Operator;

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
        if method == Method::POST
            && let Some(rest) = path.strip_prefix("/clusters/")
        {
            return self.operate(rest);
        }
        if method == Method::POST && path == "/cache/purge" {
            return self.purge(&body);
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
            "/readyz" if self.proxy.is_draining() => (
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
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                Value::String("waiting for first health checks\n".into()),
            ),
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

    /// `POST /cache/purge` with a JSON body: one of `{"url": …}`, `{"prefix": …}`,
    /// `{"tag": …}` (a surrogate key) or `{"all": true}`, and `"soft": true` to mark stale
    /// instead of forgetting.
    fn purge(&self, body: &[u8]) -> Reply {
        use watertight_proxy::cache::PurgeTarget;
        let runtime = self.proxy.current();
        let Some(cache) = &runtime.cache else {
            return (
                StatusCode::NOT_FOUND,
                Value::String("no route caches, so there is nothing to purge\n".into()),
            );
        };
        let usage = "send a JSON body with one of {\"url\": \"http://host/path\"}, {\"prefix\": \"http://host/img/\"}, {\"tag\": \"product-42\"} or {\"all\": true}, and \"soft\": true to mark stale instead\n";
        let request: Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Value::String(format!("the body is not JSON ({e}); {usage}")),
                );
            }
        };
        let text = |field: &str| {
            request
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let targets: Vec<PurgeTarget> = [
            text("url").map(PurgeTarget::Url),
            text("prefix").map(PurgeTarget::Prefix),
            text("tag").map(PurgeTarget::Tag),
            (request.get("all") == Some(&Value::Bool(true))).then_some(PurgeTarget::All),
        ]
        .into_iter()
        .flatten()
        .collect();
        let [target] = targets.as_slice() else {
            return (StatusCode::BAD_REQUEST, Value::String(usage.into()));
        };
        let soft = request.get("soft") == Some(&Value::Bool(true));
        let purged = cache.purge(target, soft);
        (StatusCode::OK, json!({ "purged": purged, "soft": soft }))
    }

    /// `POST /clusters/{cluster}/endpoints/{endpoint}/{drain|disable|enable}` and
    /// `POST /clusters/{cluster}/failback`: maintenance without a config change.
    fn operate(&self, rest: &str) -> Reply {
        let runtime = self.proxy.current();
        let parts: Vec<String> = rest.split('/').map(percent_decode).collect();
        let find = |name: &str| {
            runtime.cluster(name).ok_or_else(|| {
                let names: Vec<&str> = runtime.clusters.iter().map(|c| c.name()).collect();
                (
                    StatusCode::NOT_FOUND,
                    Value::String(format!(
                        "no cluster {name:?}; clusters: {}\n",
                        names.join(", ")
                    )),
                )
            })
        };
        match parts.as_slice() {
            [cluster, endpoints, endpoint, action] if endpoints == "endpoints" => {
                let operator = match action.as_str() {
                    "drain" => Operator::Draining,
                    "disable" => Operator::Disabled,
                    "enable" => Operator::Active,
                    other => {
                        return (
                            StatusCode::NOT_FOUND,
                            Value::String(format!(
                                "no endpoint action {other:?}; use drain, disable or enable\n"
                            )),
                        );
                    }
                };
                let cluster = match find(cluster) {
                    Ok(cluster) => cluster,
                    Err(reply) => return reply,
                };
                match cluster.set_operator(endpoint, operator) {
                    Some(status) => (StatusCode::OK, json!(status)),
                    None => {
                        let names: Vec<&str> =
                            cluster.endpoints().iter().map(|e| &*e.address).collect();
                        (
                            StatusCode::NOT_FOUND,
                            Value::String(format!(
                                "cluster {:?} has no endpoint {endpoint:?}; endpoints: {}\n",
                                cluster.name(),
                                names.join(", ")
                            )),
                        )
                    }
                }
            }
            [cluster, failback] if failback == "failback" => {
                let cluster = match find(cluster) {
                    Ok(cluster) => cluster,
                    Err(reply) => return reply,
                };
                let active = cluster.fail_back();
                (StatusCode::OK, json!({ "active_priority": active }))
            }
            _ => (
                StatusCode::NOT_FOUND,
                Value::String(format!(
                    "no admin action /clusters/{rest}; try POST /clusters/CLUSTER/endpoints/ADDRESS/{{drain,disable,enable}} or POST /clusters/CLUSTER/failback\n"
                )),
            ),
        }
    }
}

/// Decodes `%XX` escapes (an IPv6 endpoint's brackets and colons may arrive encoded).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
