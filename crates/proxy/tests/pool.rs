//! The upstream connection pool: keep-alive reuse, idle timeout and the idle cap.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &[]).await;
    // A fresh client connection per request: reuse must come from the proxy's pool.
    for _ in 0..20 {
        assert_eq!(get(&h1(), address, "/", &[]).await.status, 200);
    }
    assert_eq!(app.requests_served(), 20);
    assert_eq!(app.connections_accepted(), 1);
}

#[tokio::test]
async fn pooled_connections_close_after_the_idle_timeout() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["pool: { idle_timeout: 200ms }"]).await;
    let client = h1();
    get(&client, address, "/", &[]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    get(&client, address, "/", &[]).await;
    assert_eq!(
        app.connections_accepted(),
        2,
        "the idle pooled connection was closed and replaced"
    );
}

#[tokio::test]
async fn no_idle_connections_are_kept_when_the_cap_is_zero() {
    let app = upstream("app").await;
    let (_proxy, address) =
        proxy_to(app.local_addr(), &["pool: { max_idle_per_endpoint: 0 }"]).await;
    let client = h1();
    for _ in 0..5 {
        get(&client, address, "/", &[]).await;
    }
    assert_eq!(app.connections_accepted(), 5);
}

#[tokio::test]
async fn a_zero_pool_idle_timeout_keeps_no_connection_for_reuse() {
    let app = upstream("app").await;
    let (_proxy, address) = proxy_to(app.local_addr(), &["pool: { idle_timeout: 0s }"]).await;
    let client = h1();
    for _ in 0..3 {
        get(&client, address, "/", &[]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.connections_accepted(), 3);
}
