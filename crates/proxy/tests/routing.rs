//! Routing through real sockets: declared order, every condition, 404 for the rest.

mod support;

use http::{Request, StatusCode};
use support::*;
use watertight_proxy::body::empty;

async fn two_cluster_proxy() -> (
    watertight_proxy::Proxy,
    std::net::SocketAddr,
    Vec<watertight_demo::SampleService>,
) {
    let catalog = upstream("catalog").await;
    let checkout = upstream("checkout").await;
    let yaml = format!(
        r#"
access_log: "off"
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: checkout-post
        match: {{ prefix: /checkout, methods: [POST] }}
        cluster: checkout
      - name: canary
        match: {{ headers: [{{ name: x-canary, exact: "1" }}] }}
        cluster: checkout
      - name: shop
        match: {{ hosts: ["*.shop.test"] }}
        cluster: catalog
      - name: exact-echo
        match: {{ path: /echo }}
        cluster: catalog
clusters:
  - name: catalog
    endpoints: [{{ address: "{}" }}]
  - name: checkout
    endpoints: [{{ address: "{}" }}]
"#,
        catalog.local_addr(),
        checkout.local_addr()
    );
    let (proxy, address) = proxy(&yaml).await;
    (proxy, address, vec![catalog, checkout])
}

#[tokio::test]
async fn routes_are_tried_in_declared_order() {
    let (_proxy, address, _upstreams) = two_cluster_proxy().await;
    let client = h1();
    // Both "canary" and "shop" match: the earlier route, canary → checkout, wins.
    let answer = get(
        &client,
        address,
        "/echo",
        &[("host", "www.shop.test"), ("x-canary", "1")],
    )
    .await;
    assert_eq!(answer.header("x-demo-service"), Some("checkout"));
    // Without the canary header the host route takes it.
    let answer = get(&client, address, "/anything", &[("host", "www.shop.test")]).await;
    assert_eq!(answer.header("x-demo-service"), Some("catalog"));
}

#[tokio::test]
async fn method_and_prefix_must_both_match() {
    let (_proxy, address, _upstreams) = two_cluster_proxy().await;
    let client = h1();
    let post = Request::post(format!("http://{address}/checkout/cart"))
        .body(empty())
        .unwrap();
    assert_eq!(
        send(&client, post).await.header("x-demo-service"),
        Some("checkout")
    );
    let answer = get(&client, address, "/checkout/cart", &[]).await;
    assert_eq!(
        answer.status,
        StatusCode::NOT_FOUND,
        "GET is not routed by checkout-post"
    );
}

#[tokio::test]
async fn exact_path_matches_only_that_path() {
    let (_proxy, address, _upstreams) = two_cluster_proxy().await;
    let client = h1();
    assert_eq!(
        get(&client, address, "/echo?x=1", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&client, address, "/echo/more", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unmatched_requests_get_a_short_404() {
    let (_proxy, address, upstreams) = two_cluster_proxy().await;
    let answer = get(&h1(), address, "/nowhere", &[("host", "example.org")]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.reason(), Some("no-route"));
    assert!(answer.body.len() < 100, "short body: {}", answer.text());
    assert!(upstreams.iter().all(|u| u.requests_served() == 0));
}
