//! Shared test support: a proxy from YAML on loopback, demo upstreams, and HTTP clients.
#![allow(dead_code)]

pub mod origin;
pub mod otlp;
pub mod postgres;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use watertight_demo::SampleService;
use watertight_proxy::Proxy;
use watertight_proxy::body::{ProxyBody, empty};

pub type TestClient = Client<HttpConnector, ProxyBody>;

/// Starts a proxy from YAML text (listeners on port 0) and returns it with its first
/// listener's bound address.
pub async fn proxy(yaml: &str) -> (Proxy, SocketAddr) {
    let loaded = watertight_config::load_str(yaml, "test.yaml").unwrap_or_else(|d| panic!("{d}"));
    let proxy = Proxy::start(loaded).await.unwrap();
    let address = proxy.listener_addrs().await[0].1;
    (proxy, address)
}

/// A sample upstream service on a free loopback port.
pub async fn upstream(name: &str) -> SampleService {
    upstream_replica(name, 0).await
}

/// Replica `replica` of a sample upstream service on a free loopback port.
pub async fn upstream_replica(name: &str, replica: usize) -> SampleService {
    SampleService::start(name, replica, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// An HTTP/1.1 keep-alive client.
pub fn h1() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn h2() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A response with its body read in full.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub version: http::Version,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `x-watertight-reason` header.
    pub fn reason(&self) -> Option<&str> {
        self.header("x-watertight-reason")
    }
}

/// Sends `request` and reads the whole answer.
pub async fn send(client: &TestClient, request: Request<ProxyBody>) -> Answer {
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        version,
        body,
    }
}

/// `GET http://{proxy}{path}` with extra headers.
pub async fn get(
    client: &TestClient,
    proxy: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::get(format!("http://{proxy}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(client, request.body(empty()).unwrap()).await
}

/// The headers an `/echo` answer says the upstream received, as (name, value) pairs.
pub fn echoed_headers(answer: &Answer) -> Vec<(String, String)> {
    echo_fields(&answer.json())
}

/// The headers an `/echo` body (as JSON) says the upstream received, as (name, value) pairs.
pub fn echo_fields(echo: &serde_json::Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .expect("echo lists headers")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or_default().to_owned(),
                pair[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The single value of header `name` as the upstream received it.
pub fn echoed(answer: &Answer, name: &str) -> Option<String> {
    echo_field(&answer.json(), name)
}

/// The values of header `name` an `/echo` body (as JSON) says the upstream received.
pub fn echo_field_values(echo: &serde_json::Value, name: &str) -> Vec<String> {
    echo_fields(echo)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

/// The first value of header `name` an `/echo` body (as JSON) says the upstream received.
pub fn echo_field(echo: &serde_json::Value, name: &str) -> Option<String> {
    echo_field_values(echo, name).into_iter().next()
}

/// A config with one listener on a free loopback port whose single route sends everything to
/// cluster `app` over `endpoints`. `cluster` and `listener` add `key: value` lines to the
/// cluster and the listener.
pub fn one_cluster(endpoints: &[SocketAddr], cluster: &[&str], listener: &[&str]) -> String {
    let lines = field_lines;
    let endpoints = endpoint_lines(endpoints);
    format!(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n{}    routes:\n      - name: all\n        cluster: app\nclusters:\n  - name: app\n{}    endpoints:\n{endpoints}",
        lines(listener),
        lines(cluster),
    )
}

/// [`one_cluster`] with `route` lines (a `match:`, a `retry:` block, eight spaces in) added
/// to its one route.
pub fn one_route(endpoints: &[SocketAddr], cluster: &[&str], route: &str) -> String {
    one_cluster(endpoints, cluster, &[]).replace(
        "        cluster: app\n",
        &format!("        cluster: app\n{route}"),
    )
}

/// `extra` as `key: value` lines of a listener or cluster (four spaces in).
pub fn field_lines(extra: &[&str]) -> String {
    extra.iter().map(|l| format!("    {l}\n")).collect()
}

/// A cluster's `endpoints:` items for `endpoints`.
pub fn endpoint_lines(endpoints: &[SocketAddr]) -> String {
    endpoints
        .iter()
        .map(|e| format!("      - address: \"{e}\"\n"))
        .collect()
}

/// A proxy from [`one_cluster`] with one endpoint.
pub async fn proxy_to(endpoint: SocketAddr, cluster: &[&str]) -> (Proxy, SocketAddr) {
    proxy(&one_cluster(&[endpoint], cluster, &[])).await
}

/// Opens a raw TCP connection to `address`, writes `request` and reads the first chunk of the
/// answer: the stream, to go on with, and that chunk as text.
pub async fn raw_exchange(address: SocketAddr, request: &[u8]) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    (stream, String::from_utf8_lossy(&buf[..n]).into_owned())
}
