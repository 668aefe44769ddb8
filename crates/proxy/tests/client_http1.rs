//! HTTP/1.x as clients speak it to the proxy (RFC 9112), over raw sockets: framing the proxy
//! must refuse, pipelining, HTTP/1.0 keep-alive, `Expect: 100-continue`, and what happens to
//! a body the route never reads.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` on a fresh connection and reads until the proxy closes it (or 5 s pass):
/// everything it answered, as text.
async fn exchange_to_close(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_close(&mut stream).await
}

async fn read_until_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads from `stream` until `count` answers (heads through their Content-Length bodies)
/// are in.
async fn read_answers(stream: &mut TcpStream, count: usize) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while text.matches("HTTP/1.1 ").count() < count || !complete(&text) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("answers in time")
            .unwrap();
        assert!(n > 0, "connection closed early; got:\n{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

/// Whether the last answer in `text` has its whole Content-Length body.
fn complete(text: &str) -> bool {
    let Some(start) = text.rfind("HTTP/1.1 ") else {
        return false;
    };
    let last = &text[start..];
    let Some(end) = last.find("\r\n\r\n") else {
        return false;
    };
    let length = last[..end]
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    last.len() >= end + 4 + length
}

async fn proxy_to_sample() -> (
    watertight_proxy::Proxy,
    SocketAddr,
    watertight_demo::SampleService,
) {
    let app = upstream("app").await;
    let (proxy, address) = proxy_to(app.local_addr(), &[]).await;
    (proxy, address, app)
}

#[tokio::test]
async fn both_content_length_and_transfer_encoding_is_refused_and_closed() {
    let (_proxy, address, app) = proxy_to_sample().await;
    let answer = exchange_to_close(
        address,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "nothing after the refusal: {answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-watertight-reason: bad-request"),
        "{answer}"
    );
    assert_eq!(app.requests_served(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn refused_heads_are_counted_by_reason() {
    let (proxy, address, _app) = proxy_to_sample().await;
    exchange_to_close(address, b"GET / HTTP/3.0\r\nHost: a\r\n\r\n").await;
    exchange_to_close(address, b"GET / HTTP/3.0\r\nHost: a\r\n\r\n").await;
    exchange_to_close(
        address,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    )
    .await;
    let text = proxy
        .metrics()
        .encode(watertight_telemetry::Format::Prometheus);
    let count = |reason: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("watertight_proxy_errors_total{")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(count("unsupported-version").as_deref(), Some("2"), "{text}");
    assert_eq!(count("bad-request").as_deref(), Some("1"), "{text}");
}

#[tokio::test]
async fn unknown_transfer_codings_and_versions_are_refused() {
    let (_proxy, address, _app) = proxy_to_sample().await;
    let answer = exchange_to_close(
        address,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 501 "), "{answer}");
    let answer = exchange_to_close(address, b"GET / HTTP/3.0\r\nHost: a\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 505 "), "{answer}");
    let answer = exchange_to_close(address, b"GET / HTTP/1.1\r\nBad Field: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

#[tokio::test]
async fn http_1_1_without_one_valid_host_gets_400_and_reaches_nobody() {
    let (_proxy, address, app) = proxy_to_sample().await;
    for (head, why) in [
        ("GET / HTTP/1.1\r\n\r\n", "no Host"),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "more than one Host",
        ),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "bad Host"),
        ("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", "bad Host"),
    ] {
        let answer = exchange_to_close(address, head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{head:?}: {answer}");
        assert!(
            answer.ends_with(&format!(": {why}\n")),
            "{head:?}: {answer}"
        );
    }
    // HTTP/1.0 may leave it out.
    let answer = exchange_to_close(address, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(
        app.requests_served(),
        1,
        "only the HTTP/1.0 request went up"
    );
}

#[tokio::test]
async fn a_request_target_longer_than_a_whole_head_gets_414() {
    let (_proxy, address, _app) = proxy_to_sample().await;
    let head = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(70 * 1024));
    let answer = exchange_to_close(address, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-watertight-reason: uri-too-long"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let (_proxy, address, _app) = proxy_to_sample().await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let answer = exchange_to_close(address, head.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "{}",
        &answer[..answer.len().min(200)]
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_proxy, address, _app) = proxy_to_sample().await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/203 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answers = read_answers(&mut stream, 3).await;
    let statuses: Vec<&str> = answers
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answers[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, vec!["201", "202", "203"]);
}

#[tokio::test]
async fn http_1_0_clients_get_keep_alive_only_when_they_ask() {
    let (_proxy, address, _app) = proxy_to_sample().await;
    let answer = exchange_to_close(address, b"GET / HTTP/1.0\r\nHost: a\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    let mut stream = TcpStream::connect(address).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answers(&mut stream, 1).await;
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("connection: keep-alive"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn expect_100_continue_gets_the_go_ahead_before_the_body() {
    let (_proxy, address, _app) = proxy_to_sample().await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("a go-ahead before any body was sent")
        .unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").await.unwrap();
    let answer = read_answers(&mut stream, 1).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("\"body_bytes\":5"), "{answer}");
}

/// A proxy whose one route, `/only`, goes to a closed port: anything reaching it is a 502.
async fn proxy_with_one_route() -> (watertight_proxy::Proxy, SocketAddr) {
    proxy(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: only\n        match: { prefix: /only }\n        cluster: app\nclusters:\n  - name: app\n    endpoints: [{ address: \"127.0.0.1:9\" }]\n",
    )
    .await
}

#[tokio::test]
async fn a_body_the_route_never_reads_is_skipped_not_taken_for_a_request() {
    // No route matches, so nothing reads the body; its bytes look like a request of their
    // own (to /only, which would be a 502). They are all here, so the proxy skips them and
    // keeps the connection.
    let (_proxy, address) = proxy_with_one_route().await;
    let body = "GET /only/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let request = format!(
        "POST /elsewhere HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let first = read_answers(&mut stream, 1).await;
    assert!(first.starts_with("HTTP/1.1 404 "), "{first}");
    stream
        .write_all(b"GET /elsewhere/again HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let second = read_answers(&mut stream, 1).await;
    assert!(second.starts_with("HTTP/1.1 404 "), "{second}");
    assert!(
        !first.contains("502") && !second.contains("502"),
        "the body was read as a request"
    );
}

#[tokio::test]
async fn a_body_the_route_never_reads_and_still_coming_closes_the_connection() {
    let (_proxy, address) = proxy_with_one_route().await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"POST /elsewhere HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nGET /only/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}

#[tokio::test]
async fn a_chunked_request_body_reaches_the_upstream_whole() {
    let (_proxy, address, _app) = proxy_to_sample().await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answers(&mut stream, 1).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("\"bytes\":12"), "{answer}");
    // The connection stays usable after a chunked body.
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answers(&mut stream, 1).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[tokio::test]
async fn a_client_that_leaves_cancels_its_request_upstream() {
    let (proxy, address, _app) = proxy_to_sample().await;
    let in_flight = || proxy.current().cluster_status()[0].endpoints[0].in_flight;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /delay?ms=30000 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while in_flight() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request never went upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stream);
    // The upstream would answer in 30 s; the slot must be free long before.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while in_flight() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the abandoned request still holds the endpoint"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
