//! Stopping a sample service closes everything it holds; starting it again reuses the port.

mod support;

use std::io::ErrorKind;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use support::{empty_get, get, h1, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for things that must happen promptly; only reached when the behaviour is broken.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Stops `service`; a stop that waits on a connection it failed to close fails the test.
async fn stop_promptly(service: &watertight_demo::SampleService) {
    tokio::time::timeout(PROMPTLY, service.stop())
        .await
        .expect("stop closed every connection");
}

#[tokio::test]
async fn stop_refuses_new_connections() {
    let service = start("recommendations").await;
    assert!(service.is_running());
    stop_promptly(&service).await;
    assert!(!service.is_running());
    let error = TcpStream::connect(service.local_addr()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn stop_closes_idle_keep_alive_connections() {
    let service = start("recommendations").await;
    let (mut sender, connection) = h1::<Empty<Bytes>>(service.local_addr()).await;
    let response = sender.send_request(empty_get("/")).await.unwrap();
    response.into_body().collect().await.unwrap();

    stop_promptly(&service).await;
    tokio::time::timeout(PROMPTLY, connection)
        .await
        .expect("the pooled connection was closed")
        .unwrap();
    assert!(sender.send_request(empty_get("/")).await.is_err());
}

#[tokio::test]
async fn stop_aborts_requests_in_flight() {
    let service = start("recommendations").await;
    let (mut sender, _connection) = h1::<Empty<Bytes>>(service.local_addr()).await;
    let in_flight = tokio::spawn(sender.send_request(empty_get("/delay?ms=600000")));
    while service.requests_served() == 0 {
        tokio::task::yield_now().await;
    }
    stop_promptly(&service).await;
    let result = tokio::time::timeout(PROMPTLY, in_flight)
        .await
        .expect("the request ended")
        .unwrap();
    assert!(result.is_err(), "the request was answered despite the stop");
}

#[tokio::test]
async fn stop_closes_upgraded_streams() {
    let service = start("recommendations").await;
    let (mut sender, _connection) = h1(service.local_addr()).await;
    let request = Request::get("/ws")
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut stream = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    stream.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    stop_promptly(&service).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut rest))
        .await
        .expect("the stream was closed");
    assert!(matches!(read, Ok(0) | Err(_)), "read {read:?} after stop");
}

#[tokio::test]
async fn start_again_serves_on_the_same_port_and_keeps_counting() {
    let service = start("recommendations").await;
    let addr = service.local_addr();
    assert_eq!(get(addr, "/").await.status, StatusCode::OK);
    stop_promptly(&service).await;

    service.start_again().await.unwrap();
    assert!(service.is_running());
    assert_eq!(service.local_addr(), addr);
    assert_eq!(get(addr, "/").await.status, StatusCode::OK);
    assert_eq!(service.requests_served(), 2);
}

#[tokio::test]
async fn start_again_while_running_changes_nothing() {
    let service = start("recommendations").await;
    service.start_again().await.unwrap();
    assert!(service.is_running());
    assert_eq!(get(service.local_addr(), "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_restarted_service_can_be_stopped_again() {
    let service = start("recommendations").await;
    for _ in 0..3 {
        stop_promptly(&service).await;
        assert_eq!(
            TcpStream::connect(service.local_addr())
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::ConnectionRefused
        );
        service.start_again().await.unwrap();
        assert_eq!(get(service.local_addr(), "/").await.status, StatusCode::OK);
    }
}
