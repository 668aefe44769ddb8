//! Failures the proxy answers itself: status code and `x-watertight-reason` per cause.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use watertight_demo::Faults;

/// A loopback port with nothing listening on it.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn refused_connection_is_a_502_connect_refused() {
    let (_proxy, address) = proxy_to(closed_port(), &[]).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.reason(), Some("connect-refused"));
}

#[tokio::test]
async fn slow_upstream_is_a_504_upstream_timeout() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["request_timeout: 300ms"]).await;
    let started = Instant::now();
    let answer = get(&h1(), address, "/delay?ms=20000", &[]).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.reason(), Some("upstream-timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered at the timeout, not the delay"
    );
}

#[tokio::test]
async fn route_timeout_overrides_the_cluster_timeout() {
    let app = upstream("app").await;
    let yaml = format!(
        r#"
access_log: "off"
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: patient
        match: {{ prefix: /delay }}
        cluster: app
        timeout: 30s
clusters:
  - name: app
    request_timeout: 100ms
    endpoints: [{{ address: "{}" }}]
"#,
        app.local_addr()
    );
    let (_proxy, address) = proxy(&yaml).await;
    let answer = get(&h1(), address, "/delay?ms=400", &[]).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the route's 30s applies, not the cluster's 100ms"
    );
}

#[tokio::test]
async fn reset_connection_is_a_502_upstream_reset() {
    let app = upstream("app").await;
    app.set_faults(Faults {
        reset_rate: 1.0,
        ..Faults::default()
    });
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.reason(), Some("upstream-reset"));
}

#[tokio::test]
async fn garbage_from_upstream_is_a_502_upstream_protocol() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await;
        }
    });
    let (_proxy, address) = proxy_to(endpoint, &[]).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.reason(), Some("upstream-protocol"));
}

#[tokio::test]
async fn unanswered_connect_is_a_504_connect_timeout() {
    // A listener that never accepts, with its backlog full: further SYNs go unanswered, the
    // way a black-holed host behaves, but on loopback.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let endpoint = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let connecting = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(endpoint),
        );
        if let Ok(Ok(stream)) = connecting.await {
            fillers.push(stream);
        }
    }
    let (_proxy, address) = proxy_to(endpoint, &["connect_timeout: 250ms"]).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.reason(), Some("connect-timeout"));

    // The request's deadline running out first, with a body that has not begun to go: still
    // the endpoint's connect, not a slow client.
    let (proxy, address) = proxy_to(
        endpoint,
        &["connect_timeout: 30s", "request_timeout: 300ms"],
    )
    .await;
    let request = http::Request::post(format!("http://{address}/upload"))
        .body(watertight_proxy::body::full("some body"))
        .unwrap();
    let answer = send(&h1(), request).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.reason(), Some("connect-timeout"));
    assert_eq!(proxy.current().cluster_status()[0].endpoints[0].failures, 1);
    drop(socket);
}

#[tokio::test]
async fn failures_are_counted_on_the_endpoint() {
    let (proxy, address) = proxy_to(closed_port(), &[]).await;
    for _ in 0..3 {
        get(&h1(), address, "/", &[]).await;
    }
    let status = proxy.current().cluster_status();
    assert_eq!(status[0].endpoints[0].failures, 3);
    assert_eq!(status[0].endpoints[0].in_flight, 0);
}

#[tokio::test]
async fn a_client_too_slow_with_its_body_gets_408_and_the_upstream_is_not_blamed() {
    let app = upstream("app").await;
    let (proxy, address) = proxy_to(app.local_addr(), &["request_timeout: 300ms"]).await;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head))
        .await
        .expect("answered at the request timeout")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(
        head.contains("x-watertight-reason: client-timeout"),
        "{head}"
    );
    assert_eq!(proxy.current().cluster_status()[0].endpoints[0].failures, 0);
}
