//! RFC 9110 intermediary behaviour: hop-by-hop fields, forwarding fields, Host, Via, upgrades.

mod support;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn hop_by_hop_fields_do_not_reach_the_upstream() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    let answer = get(
        &h1(),
        address,
        "/echo",
        &[
            ("connection", "keep-alive, x-private-hop"),
            ("keep-alive", "timeout=5"),
            ("x-private-hop", "secret"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    let names: Vec<String> = echoed_headers(&answer)
        .into_iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    for hop in ["keep-alive", "x-private-hop", "proxy-connection", "te"] {
        assert!(
            !names.contains(&hop.to_owned()),
            "{hop} reached the upstream: {names:?}"
        );
    }
    // The proxy's own connection to the upstream may say keep-alive, never the client's list.
    assert_ne!(
        echoed(&answer, "connection").as_deref(),
        Some("keep-alive, x-private-hop")
    );
    assert_eq!(echoed(&answer, "x-end-to-end").as_deref(), Some("kept"));
}

#[tokio::test]
async fn forwarding_fields_are_appended_and_host_preserved() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    let answer = get(
        &h1(),
        address,
        "/echo",
        &[
            ("host", "shop.example"),
            ("x-forwarded-for", "203.0.113.7"),
            ("via", "1.1 edge"),
        ],
    )
    .await;
    assert_eq!(echoed(&answer, "host").as_deref(), Some("shop.example"));
    assert_eq!(
        echoed(&answer, "x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(
        echoed(&answer, "x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(
        echoed(&answer, "x-forwarded-host").as_deref(),
        Some("shop.example")
    );
    assert_eq!(
        echoed(&answer, "via").as_deref(),
        Some("1.1 edge, 1.1 watertight")
    );
    // The response says the proxy was on the way back too.
    assert_eq!(answer.header("via"), Some("1.1 watertight"));
}

#[tokio::test]
async fn host_is_rewritten_when_the_cluster_asks() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["host_rewrite: app.internal"]).await;
    let answer = get(&h1(), address, "/echo", &[("host", "shop.example")]).await;
    assert_eq!(echoed(&answer, "host").as_deref(), Some("app.internal"));
    assert_eq!(
        echoed(&answer, "x-forwarded-host").as_deref(),
        Some("shop.example")
    );
}

#[tokio::test]
async fn upgrade_is_tunnelled_end_to_end() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    echo_through_a_tunnel(address).await;
}

#[tokio::test]
async fn upgrade_is_tunnelled_through_a_route_with_layers() {
    // A route with a layer runs its forward through a boxed future, not in place.
    let app = upstream("app").await;
    let yaml = one_cluster(&[app.local_addr()], &[], &[]).replace(
        "        cluster: app\n",
        "        cluster: app\n        bulkhead: {max_concurrent: 10, max_queue: 0}\n",
    );
    let (_proxy, address) = proxy(&yaml).await;
    echo_through_a_tunnel(address).await;
}

/// Upgrades a connection to the demo's `echo` protocol through the proxy and checks that
/// bytes come back through the tunnel.
async fn echo_through_a_tunnel(address: std::net::SocketAddr) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for message in [&b"hello through the tunnel"[..], b"and again"] {
        stream.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message);
    }
}

/// Sends `request` (which asks to close) on a raw connection and returns what the `/echo`
/// upstream says it received.
async fn echo_raw(address: std::net::SocketAddr, request: &[u8]) -> serde_json::Value {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the proxy closes after the answer")
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).expect("an echo")
}

#[tokio::test]
async fn an_absolute_form_request_goes_upstream_in_origin_form_with_its_host() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    let echo = echo_raw(
        address,
        b"GET http://shop.example/echo?x=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Origin form: the upstream's URI has no authority, only the path and query.
    assert_eq!(echo["authority"], serde_json::Value::Null, "{echo}");
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo_field(&echo, "host").as_deref(), Some("shop.example"));
}

#[tokio::test]
async fn an_absolute_form_target_names_the_host_whatever_host_says() {
    // RFC 9112 §3.2.2: the target's host is routed on and forwarded, the client's `Host`
    // dropped.
    let app = upstream("app").await;
    let yaml = one_route(
        &[app.local_addr()],
        &[],
        "        match: { hosts: [\"shop.example\"] }\n",
    );
    let (_proxy, address) = proxy(&yaml).await;
    let echo = echo_raw(
        address,
        b"GET http://shop.example/echo HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(echo_field_values(&echo, "host"), ["shop.example"], "{echo}");
    assert_eq!(
        echo_field(&echo, "x-forwarded-host").as_deref(),
        Some("shop.example")
    );
}

#[tokio::test]
async fn a_request_without_host_names_the_endpoint() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    let echo = echo_raw(address, b"GET /echo HTTP/1.0\r\n\r\n").await;
    // Once.
    assert_eq!(
        echo_field_values(&echo, "host"),
        [app.local_addr().to_string()],
        "{echo}"
    );
}

#[tokio::test]
async fn a_host_named_in_connection_still_reaches_the_upstream() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    let echo = echo_raw(
        address,
        b"GET /echo HTTP/1.1\r\nHost: shop.example\r\nConnection: close, host\r\n\r\n",
    )
    .await;
    assert_eq!(
        echo_field(&echo, "host").as_deref(),
        Some("shop.example"),
        "{echo}"
    );
}
