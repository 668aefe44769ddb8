//! Client connections: graceful shutdown, idle timeout, header-read timeout.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy in front of `app` whose listener has these client timeouts.
async fn proxy_with(
    app: &watertight_demo::SampleService,
    idle: &str,
    header_read: &str,
) -> (watertight_proxy::Proxy, std::net::SocketAddr) {
    let idle = format!("idle_timeout: {idle}");
    let header_read = format!("header_read_timeout: {header_read}");
    proxy(&one_cluster(
        &[app.local_addr()],
        &[],
        &[&idle, &header_read],
    ))
    .await
}

async fn in_flight(proxy: &watertight_proxy::Proxy) -> u32 {
    proxy.current().cluster_status()[0].endpoints[0].in_flight
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let app = upstream("app").await;
    let (proxy, address) = proxy_with(&app, "60s", "10s").await;
    let slow: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(async move { get(&h1(), address, "/delay?ms=1500", &[]).await.status })
        })
        .collect();
    for _ in 0..500 {
        if in_flight(&proxy).await == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        in_flight(&proxy).await,
        5,
        "the slow requests reached the upstream"
    );

    let shutdown = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.shutdown(Duration::from_secs(30)).await }
    });
    // Draining: not ready, and the listener no longer accepts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!proxy.is_ready());
    assert!(
        TcpStream::connect(address).await.is_err(),
        "new connections are refused while draining"
    );

    for request in slow {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert!(shutdown.await.unwrap(), "drain finished before its timeout");
    assert_eq!(proxy.open_connections(), 0);
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_at_once() {
    let app = upstream("app").await;
    let (proxy, address) = proxy_with(&app, "60s", "10s").await;
    let (mut stream, head) = raw_exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut buf = vec![0u8; 4096];
    // The connection is idle (kept alive); shutdown must not wait the 60 s idle timeout for it.
    assert!(proxy.shutdown(Duration::from_secs(10)).await);
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(closed.unwrap(), 0, "the proxy closed the idle connection");
}

#[tokio::test]
async fn idle_client_connections_are_closed_after_the_idle_timeout() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_with(&app, "300ms", "10s").await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(n > 0);
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    assert_eq!(closed.expect("closed well before 10 s").unwrap(), 0);
}

#[tokio::test]
async fn a_slow_request_is_not_cut_by_the_idle_timeout() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_with(&app, "200ms", "10s").await;
    // The request is in flight for longer than the idle timeout: that is not idleness.
    let answer = get(&h1(), address, "/delay?ms=800", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn a_trickled_request_head_is_cut_at_the_header_read_timeout() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_with(&app, "60s", "300ms").await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    let closed = closed.expect("closed long before the 60 s idle timeout");
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "connection closed: {closed:?}"
    );
    assert_eq!(app.requests_served(), 0);
}

#[tokio::test]
async fn keep_alive_connections_outlive_the_header_read_timeout() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_with(&app, "60s", "200ms").await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Waiting between requests is keep-alive idleness, not a slow request head.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    assert_eq!(app.requests_served(), 2);
}

#[tokio::test]
async fn a_half_sent_head_does_not_hold_up_a_shutdown() {
    let app = upstream("app").await;
    let (proxy, address) = proxy_with(&app, "60s", "300ms").await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    assert!(proxy.shutdown(Duration::from_secs(20)).await);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed at the header-read timeout"
    );
}

#[tokio::test]
async fn a_pipelined_head_left_half_sent_is_cut_at_the_header_read_timeout() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_with(&app, "60s", "300ms").await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The second head's start comes with the first request, and its rest never does.
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .is_ok();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "the first request was answered"
    );
    assert!(closed, "the half-sent head held the connection");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed at the header-read timeout, not the idle one"
    );
    assert_eq!(app.requests_served(), 1);
}

#[tokio::test]
async fn a_trickled_head_is_cut_even_when_the_idle_timeout_is_shorter() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_with(&app, "300ms", "1s").await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let started = std::time::Instant::now();
    let mut cut = false;
    // One byte every 100 ms: never silent for the idle timeout, never a complete head.
    for byte in b"GET /a-very-long-path-that-never-ends-"
        .iter()
        .cycle()
        .take(100)
    {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cut, "the trickling client was never disconnected");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(app.requests_served(), 0);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_frees_the_endpoint() {
    let app = upstream("app").await;
    let yaml = one_cluster(
        &[app.local_addr()],
        &["request_timeout: 0s"],
        &["idle_timeout: 500ms"],
    );
    let (proxy, address) = proxy(&yaml).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /bytes?n=1073741824 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read: the proxy's socket to us fills up and its writes stall.
    let mut freed = false;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let endpoint = &proxy.current().cluster_status()[0].endpoints[0];
        if endpoint.requests == 1 && endpoint.in_flight == 0 && proxy.open_connections() == 0 {
            freed = true;
            break;
        }
    }
    assert!(
        freed,
        "the stalled exchange still holds the endpoint or the connection"
    );
    drop(stream);
}

#[tokio::test]
async fn an_upgraded_connection_is_closed_when_draining_begins() {
    let app = upstream("app").await;
    let (proxy, address) = proxy_with(&app, "60s", "10s").await;
    let (mut stream, head) = raw_exchange(
        address,
        b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut buf = vec![0u8; 1024];
    stream.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    let started = std::time::Instant::now();
    assert!(proxy.shutdown(Duration::from_secs(20)).await);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the tunnel did not hold the drain"
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "tunnel closed: {closed:?}"
    );
}
