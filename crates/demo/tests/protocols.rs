//! HTTP/2 prior knowledge and HTTP/1.1 upgrades on the same port as plain HTTP/1.1.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use support::{empty_get, get, h1, h2, send, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use watertight_demo::Faults;

#[tokio::test]
async fn http2_prior_knowledge_is_served_on_the_http1_port() {
    let service = start("catalog").await;
    let mut sender = h2::<Empty<Bytes>>(service.local_addr()).await;

    let response = sender
        .send_request(empty_get("http://demo/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.headers()["x-demo-service"], "catalog");
    assert_eq!(
        &response.into_body().collect().await.unwrap().to_bytes()[..],
        b"ok catalog 0\n"
    );

    let response = sender
        .send_request(empty_get("http://demo/echo"))
        .await
        .unwrap();
    let echo: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echo["version"], "HTTP/2.0");

    assert_eq!(get(service.local_addr(), "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn http2_streams_bytes_with_exact_length() {
    let service = start("catalog").await;
    let mut sender = h2::<Empty<Bytes>>(service.local_addr()).await;
    let response = sender
        .send_request(empty_get("http://demo/bytes?n=3000000"))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-length"], "3000000");
    assert_eq!(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .len(),
        3_000_000
    );
}

#[tokio::test]
async fn http2_reset_fault_resets_the_stream_not_the_connection() {
    let service = start("catalog").await;
    let mut sender = h2::<Empty<Bytes>>(service.local_addr()).await;
    service.set_faults(Faults {
        reset_rate: 1.0,
        ..Faults::default()
    });
    assert!(
        sender
            .send_request(empty_get("http://demo/"))
            .await
            .is_err()
    );
    service.set_faults(Faults::default());
    let response = sender
        .send_request(empty_get("http://demo/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn upgrade_to_echo(path: &str) {
    let service = start("catalog").await;
    let (mut sender, _connection) = h1(service.local_addr()).await;
    let request = Request::get(path)
        .header("connection", "Upgrade")
        .header("upgrade", "echo")
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["upgrade"], "echo");
    assert_eq!(response.headers()["x-demo-service"], "catalog");

    let mut stream = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    for message in [
        &b"hello"[..],
        &[0u8, 255, 10, 13][..],
        &vec![7u8; 100_000][..],
    ] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
    }
    // Closing our side ends the echo, which closes its side.
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0);
}

#[tokio::test]
async fn ws_path_upgrades_to_a_byte_echo() {
    upgrade_to_echo("/ws").await;
}

#[tokio::test]
async fn any_path_upgrades_to_a_byte_echo() {
    upgrade_to_echo("/some/other/path").await;
}

#[tokio::test]
async fn websocket_handshake_is_refused_with_a_pointer_to_echo() {
    let service = start("catalog").await;
    let request = Request::get("/ws")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(Full::default())
        .unwrap();
    let reply = send(service.local_addr(), request).await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED);
    assert!(String::from_utf8_lossy(&reply.body).contains("Upgrade: echo"));
}

#[tokio::test]
async fn ws_without_upgrade_headers_says_how_to_upgrade() {
    let service = start("catalog").await;
    let reply = get(service.local_addr(), "/ws").await;
    assert_eq!(reply.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(reply.header("upgrade"), "echo");
}
