//! Active health checks, operator states and priority groups, end to end on loopback with
//! the demo's sample services as upstreams.

mod support;

use std::time::Duration;

use watertight_demo::{Faults, SampleService};
use watertight_proxy::Proxy;
use watertight_proxy::cluster::EndpointStatus;
use watertight_proxy::health::{Operator, State};

use support::{get, h1, proxy, upstream_replica};

/// A config whose route `all` sends to cluster `app`: `endpoints` as (address, priority),
/// and `cluster` lines added to the cluster.
fn config(endpoints: &[(&SampleService, u32)], cluster: &[&str]) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|(s, p)| {
            format!(
                "      - {{ address: \"{}\", priority: {p} }}\n",
                s.local_addr()
            )
        })
        .collect();
    let cluster: String = cluster.iter().map(|l| format!("    {l}\n")).collect();
    format!(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: all\n        cluster: app\n        fallback: {{ on: [no-healthy-endpoint], response: {{ status: 503, body: \"sorry\" }} }}\nclusters:\n  - name: app\n{cluster}    endpoints:\n{endpoints}"
    )
}

/// Fast, jitter-free checks on `/` of the traffic port.
const HTTP_CHECK: &str = "health_check: { interval: 50ms, timeout: 500ms, jitter: 0, rise: 2, fall: 2, http: { path: / } }";

fn endpoint(proxy: &Proxy, service: &SampleService) -> EndpointStatus {
    let address = service.local_addr().to_string();
    proxy.current().cluster_status()[0]
        .endpoints
        .iter()
        .find(|e| e.address == address)
        .cloned()
        .expect("the endpoint is in the cluster")
}

fn active_priority(proxy: &Proxy) -> Option<u32> {
    proxy.current().cluster_status()[0].active_priority
}

/// Polls `condition` every 20 ms for up to 10 s.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `n` requests and returns how many each service served.
async fn spread(proxy: std::net::SocketAddr, n: usize, services: &[&SampleService]) -> Vec<u64> {
    let before: Vec<u64> = services.iter().map(|s| s.requests_served()).collect();
    let client = h1();
    for _ in 0..n {
        let answer = get(&client, proxy, "/", &[]).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    services
        .iter()
        .zip(before)
        .map(|(s, b)| s.requests_served() - b)
        .collect()
}

#[tokio::test]
async fn a_failing_http_check_takes_the_endpoint_out_and_passing_ones_bring_it_back() {
    let (a, b) = (
        upstream_replica("app", 0).await,
        upstream_replica("app", 1).await,
    );
    let (proxy, address) = proxy(&config(&[(&a, 0), (&b, 0)], &[HTTP_CHECK])).await;
    until("both healthy", || {
        endpoint(&proxy, &a).state == State::Healthy && endpoint(&proxy, &b).state == State::Healthy
    })
    .await;
    assert!(proxy.is_ready());

    a.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    until("a unhealthy", || {
        endpoint(&proxy, &a).state == State::Unhealthy
    })
    .await;
    let status = endpoint(&proxy, &a);
    assert_eq!(status.reason, "health check failed: HTTP 503");
    assert!(
        status
            .checks
            .iter()
            .any(|c| !c.passed && c.detail == "HTTP 503")
    );
    let served_before = a.requests_served();
    assert_eq!(spread(address, 20, &[&b]).await, [20]);
    // Only health checks reached `a` meanwhile, no traffic: every request went to `b`.
    let checks_only = a.requests_served() - served_before;
    assert!(checks_only < 20, "{checks_only}");

    a.set_faults(Faults::default());
    until("a healthy again", || {
        endpoint(&proxy, &a).state == State::Healthy
    })
    .await;
    let served = spread(address, 20, &[&a, &b]).await;
    assert!(served[0] >= 5, "a takes traffic again: {served:?}");
}

#[tokio::test]
async fn a_check_with_an_unexpected_body_fails() {
    let a = upstream_replica("app", 0).await;
    let check = "health_check: { interval: 50ms, jitter: 0, rise: 1, fall: 1, http: { path: /, body_contains: \"no such text\" } }";
    let (proxy, address) = proxy(&config(&[(&a, 0)], &[check])).await;
    until("unhealthy", || {
        endpoint(&proxy, &a).state == State::Unhealthy
    })
    .await;
    assert!(endpoint(&proxy, &a).reason.contains("body without"));
    // Nothing healthy: the route's fallback answers at once instead of the upstream.
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.text(), "sorry");
    assert_eq!(
        answer.header("x-watertight-degraded"),
        Some("no-healthy-endpoint")
    );
}

#[tokio::test]
async fn traffic_fails_over_to_the_standby_group_and_back_after_rise_checks() {
    let (primary, standby) = (
        upstream_replica("app", 0).await,
        upstream_replica("app", 1).await,
    );
    let check =
        "health_check: { interval: 50ms, timeout: 300ms, jitter: 0, rise: 3, fall: 1, tcp: {} }";
    let (proxy, address) = proxy(&config(&[(&primary, 0), (&standby, 1)], &[check])).await;
    until("primary healthy", || active_priority(&proxy) == Some(0)).await;
    assert_eq!(spread(address, 10, &[&primary, &standby]).await, [10, 0]);

    assert_eq!(proxy.current().cluster_status()[0].moved_at, None);
    primary.stop().await;
    until("failover", || active_priority(&proxy) == Some(1)).await;
    assert!(proxy.current().cluster_status()[0].moved_at.is_some());
    assert_eq!(spread(address, 10, &[&standby]).await, [10]);

    primary.start_again().await.unwrap();
    until("failback", || active_priority(&proxy) == Some(0)).await;
    // Failback waited for `rise` passed checks in a row: the history shows them.
    let checks = endpoint(&proxy, &primary).checks;
    let passed_in_a_row = checks.iter().rev().take_while(|c| c.passed).count();
    assert!(passed_in_a_row >= 3, "{checks:?}");
    assert_eq!(spread(address, 10, &[&primary, &standby]).await, [10, 0]);

    let scrape = proxy
        .metrics()
        .encode(watertight_telemetry::Format::Prometheus);
    for line in [
        "watertight_cluster_failovers_total{cluster=\"app\",direction=\"failover\"} 1",
        "watertight_cluster_failovers_total{cluster=\"app\",direction=\"failback\"} 1",
        "watertight_cluster_active_priority{cluster=\"app\"} 0",
    ] {
        assert!(scrape.contains(line), "{line} missing from:\n{scrape}");
    }
}

#[tokio::test]
async fn manual_failback_stays_on_the_standby_until_the_operator_asks() {
    let (primary, standby) = (
        upstream_replica("app", 0).await,
        upstream_replica("app", 1).await,
    );
    let check =
        "health_check: { interval: 50ms, timeout: 300ms, jitter: 0, rise: 1, fall: 1, tcp: {} }";
    let (proxy, address) = proxy(&config(
        &[(&primary, 0), (&standby, 1)],
        &[check, "failback: manual"],
    ))
    .await;
    until("primary healthy", || active_priority(&proxy) == Some(0)).await;
    primary.stop().await;
    until("failover", || active_priority(&proxy) == Some(1)).await;
    primary.start_again().await.unwrap();
    until("primary healthy again", || {
        endpoint(&proxy, &primary).state == State::Healthy
    })
    .await;
    // Healthy, but traffic stays where it failed over to.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(active_priority(&proxy), Some(1));
    assert_eq!(spread(address, 10, &[&primary, &standby]).await, [0, 10]);

    let cluster = proxy.current().cluster("app").unwrap().clone();
    assert_eq!(cluster.fail_back(), Some(0));
    assert_eq!(active_priority(&proxy), Some(0));
    assert_eq!(spread(address, 10, &[&primary, &standby]).await, [10, 0]);
}

#[tokio::test]
async fn an_endpoint_is_unknown_and_takes_nothing_until_its_first_check() {
    // Checks against a port nothing listens on: the first check fails, so the endpoint never
    // takes traffic, even before any verdict.
    let a = upstream_replica("app", 0).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let check = format!(
        "health_check: {{ interval: 1s, timeout: 300ms, jitter: 0, tcp: {{ port: {port} }} }}"
    );
    let (proxy, address) = proxy(&config(&[(&a, 0)], &[&check])).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(a.requests_served(), 0);
    until("unhealthy", || {
        endpoint(&proxy, &a).state == State::Unhealthy
    })
    .await;
    assert!(proxy.is_ready(), "ready once every endpoint has a verdict");
    assert_eq!(active_priority(&proxy), None);
}

#[tokio::test]
async fn drain_stops_new_requests_but_lets_open_ones_finish_and_enable_restores() {
    let (a, b) = (
        upstream_replica("app", 0).await,
        upstream_replica("app", 1).await,
    );
    let (proxy, address) = proxy(&config(&[(&a, 0), (&b, 0)], &["balancer: round_robin"])).await;
    let cluster = proxy.current().cluster("app").unwrap().clone();
    // A slow request on each endpoint, then drain `a` while its request is in flight.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move { get(&h1(), address, "/delay?ms=500", &[]).await.status })
        })
        .collect();
    until("both busy", || endpoint(&proxy, &a).in_flight == 1).await;
    let drained = cluster
        .set_operator(&a.local_addr().to_string(), Operator::Draining)
        .unwrap();
    assert_eq!(drained.state, State::Draining);
    assert_eq!(drained.reason, "drained by operator");
    assert_eq!(spread(address, 6, &[&a, &b]).await[0], 0);
    for request in slow {
        assert_eq!(
            request.await.unwrap(),
            200,
            "the drained endpoint's request finished"
        );
    }

    cluster.set_operator(&a.local_addr().to_string(), Operator::Active);
    assert_eq!(endpoint(&proxy, &a).state, State::Healthy);
    assert!(spread(address, 6, &[&a, &b]).await[0] > 0);

    // Disabling every endpoint leaves nothing: the fallback answers.
    for service in [&a, &b] {
        cluster.set_operator(&service.local_addr().to_string(), Operator::Disabled);
    }
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.text(), "sorry");
    assert_eq!(active_priority(&proxy), None);
}

#[tokio::test]
async fn a_reload_keeps_drains_and_check_verdicts() {
    let (a, b) = (
        upstream_replica("app", 0).await,
        upstream_replica("app", 1).await,
    );
    let (proxy, _) = proxy(&config(&[(&a, 0), (&b, 0)], &[HTTP_CHECK])).await;
    until("both healthy", || {
        endpoint(&proxy, &a).state == State::Healthy && endpoint(&proxy, &b).state == State::Healthy
    })
    .await;
    let cluster = proxy.current().cluster("app").unwrap().clone();
    cluster.set_operator(&a.local_addr().to_string(), Operator::Draining);
    // A changed cluster (another balancer) is rebuilt; its endpoints keep their state.
    let yaml = config(
        &[(&a, 0), (&b, 0)],
        &[HTTP_CHECK, "balancer: least_request"],
    );
    proxy
        .reload(watertight_config::load_str(&yaml, "test.yaml").unwrap())
        .await
        .unwrap();
    assert!(!std::sync::Arc::ptr_eq(
        &cluster,
        proxy.current().cluster("app").unwrap()
    ));
    assert_eq!(endpoint(&proxy, &a).state, State::Draining);
    assert_eq!(endpoint(&proxy, &b).state, State::Healthy);
    assert!(proxy.is_ready());
}

#[tokio::test]
async fn a_retry_goes_to_the_standby_group_when_the_primary_refuses_before_its_checks_notice() {
    let standby = upstream_replica("app", 1).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_address = dead.local_addr().unwrap();
    drop(dead);
    // No active checks: the dead primary stays "healthy", only the retry can find out.
    let yaml = config(&[(&standby, 1)], &[])
        .replace(
            "    endpoints:\n",
            &format!("    endpoints:\n      - {{ address: \"{dead_address}\", priority: 0 }}\n"),
        )
        .replace(
            "        cluster: app\n",
            "        cluster: app\n        retry: { attempts: 2, retry_on: [connect-failure] }\n",
        );
    let (_proxy, address) = proxy(&yaml).await;
    for _ in 0..5 {
        let answer = get(&h1(), address, "/", &[]).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    assert_eq!(standby.requests_served(), 5);
}
