//! The drill's side of the admin API: read `GET /clusters`, take endpoints out and put them
//! back (`POST /clusters/{c}/endpoints/{a}/{action}`), ask for a failback.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// Longest wait for one admin API answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running proxy's admin API, e.g. `http://127.0.0.1:9901`.
#[derive(Clone)]
pub struct AdminApi {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One cluster as `GET /clusters` shows it (the fields the drill reads).
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterView {
    /// Cluster name.
    pub name: String,
    /// The priority group traffic goes to now; `None` when nothing is available.
    pub active_priority: Option<u32>,
    /// `auto` or `manual`.
    pub failback: String,
    /// Its endpoints.
    pub endpoints: Vec<EndpointView>,
}

/// One endpoint as `GET /clusters` shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct EndpointView {
    /// `host:port`.
    pub address: String,
    /// Its priority group.
    pub priority: u32,
    /// `healthy`, `unhealthy`, `unknown`, `draining` or `disabled`.
    pub state: String,
    /// Why it is in that state.
    #[serde(default)]
    pub reason: String,
    /// Requests (or TCP sessions) sent to it since the cluster was built.
    #[serde(default)]
    pub requests: u64,
}

#[derive(Deserialize)]
struct ClustersReply {
    clusters: Vec<ClusterView>,
}

#[derive(Deserialize)]
struct FailbackReply {
    active_priority: Option<u32>,
}

/// What went wrong talking to the admin API.
#[derive(Debug)]
pub enum AdminError {
    /// No answer: refused, timed out, or the connection broke.
    Unreachable(String),
    /// An answer other than 200; the body usually says what exists.
    Refused {
        /// The status.
        status: StatusCode,
        /// The body text.
        body: String,
    },
    /// A 200 whose body is not what the drill expects.
    Unexpected(String),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Unreachable(why) => write!(f, "no answer: {why}"),
            AdminError::Refused { status, body } => write!(f, "{status}: {}", body.trim_end()),
            AdminError::Unexpected(why) => write!(f, "unexpected answer: {why}"),
        }
    }
}

impl AdminApi {
    /// The admin API at `base`: `http://host:port`, or just `host:port`.
    pub fn new(base: &str) -> Result<AdminApi, String> {
        let base = base.trim_end_matches('/');
        let base = if base.contains("://") {
            base.to_owned()
        } else {
            format!("http://{base}")
        };
        let uri: Uri = base
            .parse()
            .map_err(|e| format!("--admin {base:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(format!(
                "--admin {base:?}: give the admin API's http:// address, e.g. http://127.0.0.1:9901"
            ));
        }
        Ok(AdminApi {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// The base URL, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /readyz`: `Ok` when the proxy answers 200 (ready).
    pub async fn ready(&self) -> Result<(), AdminError> {
        self.call(Method::GET, "/readyz").await.map(|_| ())
    }

    /// `GET /clusters`.
    pub async fn clusters(&self) -> Result<Vec<ClusterView>, AdminError> {
        let body = self.call(Method::GET, "/clusters").await?;
        serde_json::from_slice::<ClustersReply>(&body)
            .map(|reply| reply.clusters)
            .map_err(|e| AdminError::Unexpected(format!("GET /clusters: {e}")))
    }

    /// One cluster from `GET /clusters`; `Ok(None)` when the proxy has no such cluster.
    pub async fn cluster(&self, name: &str) -> Result<Option<ClusterView>, AdminError> {
        Ok(self.clusters().await?.into_iter().find(|c| c.name == name))
    }

    /// `POST /clusters/{cluster}/endpoints/{address}/{action}` (`drain`, `disable`, `enable`).
    pub async fn set_endpoint(
        &self,
        cluster: &str,
        address: &str,
        action: &str,
    ) -> Result<(), AdminError> {
        let path = format!(
            "/clusters/{}/endpoints/{}/{action}",
            segment(cluster),
            segment(address)
        );
        self.call(Method::POST, &path).await.map(drop)
    }

    /// `POST /clusters/{cluster}/failback`: the priority traffic goes to afterwards.
    pub async fn fail_back(&self, cluster: &str) -> Result<Option<u32>, AdminError> {
        let path = format!("/clusters/{}/failback", segment(cluster));
        let body = self.call(Method::POST, &path).await?;
        serde_json::from_slice::<FailbackReply>(&body)
            .map(|reply| reply.active_priority)
            .map_err(|e| AdminError::Unexpected(format!("POST {path}: {e}")))
    }

    /// The `curl` command that does `POST path`, for messages telling an operator what to run.
    pub fn curl_post(&self, cluster: &str, address: &str, action: &str) -> String {
        format!(
            "curl -X POST {}/clusters/{}/endpoints/{}/{action}",
            self.base,
            segment(cluster),
            segment(address)
        )
    }

    async fn call(&self, method: Method, path: &str) -> Result<Bytes, AdminError> {
        let url = format!("{}{path}", self.base);
        let request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| AdminError::Unexpected(format!("{method} {url}: {e}")))?;
        let exchange = async {
            let response =
                self.client.request(request).await.map_err(|e| {
                    AdminError::Unreachable(format!("{method} {url}: {}", cause(&e)))
                })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| AdminError::Unreachable(format!("{method} {url}: {e}")))?
                .to_bytes();
            if status == StatusCode::OK {
                Ok(body)
            } else {
                Err(AdminError::Refused {
                    status,
                    body: String::from_utf8_lossy(&body).into_owned(),
                })
            }
        };
        tokio::time::timeout(ADMIN_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(AdminError::Unreachable(format!(
                    "{method} {url}: no answer within {} ms",
                    ADMIN_TIMEOUT.as_millis()
                )))
            })
    }
}

/// The innermost cause of an error: hyper-util's outer message ("client error (Connect)")
/// says less than what it wraps ("Connection refused").
pub fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// Percent-encodes what may not stand in a path segment (an IPv6 endpoint's brackets); the
/// admin API decodes `%XX`.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_path_segments() {
        assert_eq!(segment("127.0.0.1:9121"), "127.0.0.1:9121");
        assert_eq!(segment("[::1]:9121"), "%5B::1%5D:9121");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn the_admin_address_may_omit_the_scheme() {
        assert_eq!(
            AdminApi::new("127.0.0.1:9901/").unwrap().base(),
            "http://127.0.0.1:9901"
        );
        assert!(AdminApi::new("https://127.0.0.1:9901").is_err());
    }
}
