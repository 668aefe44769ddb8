//! Plain hyper clients for talking to sample services in tests.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;
use watertight_demo::SampleService;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub async fn start(name: &str) -> SampleService {
    SampleService::start(name, 0, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("binding 127.0.0.1:0 works in tests")
}

/// An HTTP/1.1 connection (upgrades enabled); the returned task ends when it closes.
pub async fn h1<B>(addr: SocketAddr) -> (http1::SendRequest<B>, tokio::task::JoinHandle<()>)
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    (sender, task)
}

/// An HTTP/2 prior-knowledge connection.
pub async fn h2<B>(addr: SocketAddr) -> http2::SendRequest<B>
where
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

/// Sends `request` on a fresh HTTP/1.1 connection and reads the whole reply.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Result<Reply, hyper::Error> {
    let (mut sender, _conn) = h1(addr).await;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Request::get(path).body(Full::default()).unwrap())
        .await
        .unwrap()
}

pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    let request = Request::post(path)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    send(addr, request).await.unwrap()
}

pub fn empty_get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path).body(Empty::new()).unwrap()
}
