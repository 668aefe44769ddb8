//! HTTP/2 on either side of the proxy, in every combination with HTTP/1.1.

mod support;

use http::{StatusCode, Version};
use support::*;

#[tokio::test]
async fn http2_client_to_http2_upstream() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["protocol: http2"]).await;
    let answer = get(&h2(), address, "/echo", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.json()["version"], "HTTP/2.0");
    assert_eq!(answer.header("via"), Some("2 watertight"));
}

#[tokio::test]
async fn http2_upstreams_get_the_site_as_authority_and_no_conflicting_host() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["protocol: http2"]).await;
    let answer = get(&h1(), address, "/echo", &[("host", "shop.example")]).await;
    assert_eq!(answer.json()["authority"], "shop.example");
    assert_eq!(echoed(&answer, "host"), None);

    let (_proxy, address) = proxy_to(
        app.local_addr(),
        &["protocol: http2", "host_rewrite: internal.example"],
    )
    .await;
    let answer = get(&h1(), address, "/echo", &[("host", "shop.example")]).await;
    assert_eq!(answer.json()["authority"], "internal.example");
    assert_eq!(
        echoed(&answer, "x-forwarded-host").as_deref(),
        Some("shop.example")
    );
    assert_eq!(
        app.connections_accepted(),
        2,
        "one pooled connection per proxy, whatever the host"
    );
}

#[tokio::test]
async fn http2_client_to_http1_upstream_carries_the_authority_as_host() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["protocol: http1"]).await;
    let answer = get(&h2(), address, "/echo", &[]).await;
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.json()["version"], "HTTP/1.1");
    assert_eq!(echoed(&answer, "host"), Some(address.to_string()));
    assert_eq!(echoed(&answer, "via").as_deref(), Some("2 watertight"));
}

#[tokio::test]
async fn http1_client_to_http2_upstream() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["protocol: http2"]).await;
    let answer = get(&h1(), address, "/echo", &[("host", "shop.example")]).await;
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(answer.json()["version"], "HTTP/2.0");
}

#[tokio::test]
async fn many_concurrent_http2_streams_share_the_proxy() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["protocol: http2"]).await;
    let client = h2();
    let requests = (0..50).map(|i| {
        let client = client.clone();
        async move { get(&client, address, &format!("/echo?i={i}"), &[]).await }
    });
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(app.requests_served(), 50);
}

#[tokio::test]
async fn http2_cookie_fields_reach_an_http1_upstream_as_one() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["protocol: http1"]).await;
    let answer = get(
        &h2(),
        address,
        "/echo",
        &[("cookie", "a=1"), ("cookie", "b=2")],
    )
    .await;
    let cookies: Vec<String> = echoed_headers(&answer)
        .into_iter()
        .filter(|(n, _)| n == "cookie")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(cookies, vec!["a=1; b=2".to_owned()]);
}

#[tokio::test]
async fn an_http2_upstream_too_slow_is_a_504_upstream_timeout() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(
        app.local_addr(),
        &["protocol: http2", "request_timeout: 300ms"],
    )
    .await;
    let client = h2();
    let started = std::time::Instant::now();
    let answer = get(&client, address, "/delay?ms=20000", &[]).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.reason(), Some("upstream-timeout"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "answered at the timeout, not the delay"
    );
    let answer = get(&client, address, "/echo", &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "the next stream is served");
}

#[tokio::test]
async fn an_http2_host_field_must_agree_with_the_authority() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    let client = h2();
    let authority = address.to_string();
    let same = get(&client, address, "/echo", &[("host", authority.as_str())]).await;
    assert_eq!(same.status, StatusCode::OK, "the same name, spelled again");
    for (host, why) in [("elsewhere.example", "another name"), ("a/b", "not a host")] {
        let answer = get(&client, address, "/echo", &[("host", host)]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{why}");
        assert_eq!(answer.reason(), Some("bad-request"), "{why}");
    }
    assert_eq!(
        app.requests_served(),
        1,
        "only the agreeing request went up"
    );
}
