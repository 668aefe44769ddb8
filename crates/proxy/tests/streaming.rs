//! Bodies stream through the proxy both ways without being buffered whole. (Memory staying
//! flat is checked on the real binary in the watertight crate's tests; here, correctness.)

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use support::*;
use watertight_proxy::body::boxed;

const MIB: u64 = 1024 * 1024;

/// A request body of `total` bytes produced chunk by chunk, counting what was pulled.
fn generated_body(total: u64, pulled: Arc<AtomicU64>) -> watertight_proxy::body::ProxyBody {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let chunks = total / chunk.len() as u64;
    let stream = futures_util::stream::iter((0..chunks).map(move |_| {
        pulled.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(Frame::data(chunk.clone()))
    }));
    boxed(StreamBody::new(stream))
}

async fn download(client: &TestClient, address: std::net::SocketAddr, size: u64) -> u64 {
    let request = Request::get(format!("http://{address}/bytes?n={size}"))
        .body(watertight_proxy::body::empty())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            received += data.len() as u64;
        }
    }
    received
}

#[tokio::test]
async fn large_download_streams_through() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(
        app.local_addr(),
        &["protocol: http1", "request_timeout: 120s"],
    )
    .await;
    assert_eq!(download(&h1(), address, 256 * MIB).await, 256 * MIB);
}

#[tokio::test]
async fn large_upload_streams_through() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(
        app.local_addr(),
        &["protocol: http1", "request_timeout: 120s"],
    )
    .await;
    let pulled = Arc::new(AtomicU64::new(0));
    let request = Request::post(format!("http://{address}/upload"))
        .body(generated_body(256 * MIB, pulled.clone()))
        .unwrap();
    let answer = send(&h1(), request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["bytes"].as_u64(), Some(256 * MIB));
    assert_eq!(pulled.load(Ordering::Relaxed), 256 * MIB);
}

#[tokio::test]
async fn large_bodies_stream_over_http2_on_both_sides() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(
        app.local_addr(),
        &["protocol: http2", "request_timeout: 120s"],
    )
    .await;
    let client = h2();
    assert_eq!(download(&client, address, 64 * MIB).await, 64 * MIB);
    let pulled = Arc::new(AtomicU64::new(0));
    let request = Request::post(format!("http://{address}/upload"))
        .body(generated_body(64 * MIB, pulled))
        .unwrap();
    let answer = send(&client, request).await;
    assert_eq!(answer.json()["bytes"].as_u64(), Some(64 * MIB));
}
