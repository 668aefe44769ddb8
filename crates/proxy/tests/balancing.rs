//! Load balancing across real upstream replicas.

mod support;

use std::time::Duration;

use support::*;
use watertight_demo::{Faults, SampleService};

async fn cluster_proxy(
    replicas: &[SampleService],
    weights: &[u32],
    balancer: &str,
) -> (watertight_proxy::Proxy, std::net::SocketAddr) {
    let endpoints: String = replicas
        .iter()
        .zip(weights)
        .map(|(r, w)| {
            format!(
                "      - {{ address: \"{}\", weight: {w} }}\n",
                r.local_addr()
            )
        })
        .collect();
    proxy(&format!(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [{{ name: all, cluster: app }}]\nclusters:\n  - name: app\n    balancer: {balancer}\n    endpoints:\n{endpoints}"
    ))
    .await
}

async fn replicas(n: usize) -> Vec<SampleService> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(upstream_replica("app", i).await);
    }
    out
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let apps = replicas(3).await;
    let (_proxy, address) = cluster_proxy(&apps, &[1, 1, 1], "round_robin").await;
    let client = h1();
    for _ in 0..30 {
        get(&client, address, "/", &[]).await;
    }
    let served: Vec<u64> = apps.iter().map(|a| a.requests_served()).collect();
    assert_eq!(served, vec![10, 10, 10]);
}

#[tokio::test]
async fn round_robin_follows_weights() {
    let apps = replicas(2).await;
    let (_proxy, address) = cluster_proxy(&apps, &[3, 1], "round_robin").await;
    let client = h1();
    for _ in 0..40 {
        get(&client, address, "/", &[]).await;
    }
    let served: Vec<u64> = apps.iter().map(|a| a.requests_served()).collect();
    assert_eq!(served, vec![30, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_sends_nothing_to_a_replica_with_requests_stuck_on_it() {
    let apps = replicas(2).await;
    apps[0].set_faults(Faults {
        latency_ms: 3000,
        ..Faults::default()
    });
    let (proxy, address) = cluster_proxy(&apps, &[1, 1], "least_request").await;
    let slow = apps[0].local_addr().to_string();
    let slow_in_flight = || {
        proxy.current().cluster_status()[0]
            .endpoints
            .iter()
            .find(|e| e.address == slow)
            .map_or(0, |e| e.in_flight)
    };
    // Park one request on the slow replica (requests that land on the fast one just finish).
    let mut parked = Vec::new();
    for _ in 0..50 {
        parked.push(tokio::spawn(async move {
            get(&h1(), address, "/", &[]).await.status
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
        if slow_in_flight() == 1 {
            break;
        }
    }
    assert_eq!(
        slow_in_flight(),
        1,
        "one request is stuck on the slow replica"
    );
    let slow_before = apps[0].requests_served();

    // With one in flight there and none on the fast replica, every pick prefers the fast one.
    let client = h1();
    for _ in 0..20 {
        assert_eq!(
            get(&client, address, "/", &[])
                .await
                .header("x-demo-replica"),
            Some("1")
        );
    }
    assert_eq!(apps[0].requests_served(), slow_before);
    for request in parked {
        assert_eq!(request.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn peak_ewma_steers_away_from_a_slow_endpoint() {
    let slow = upstream_replica("app", 0).await;
    slow.set_faults(watertight_demo::Faults {
        latency_ms: 100,
        ..watertight_demo::Faults::default()
    });
    let fast = upstream_replica("app", 1).await;
    let (_proxy, address) = proxy(&one_cluster(
        &[slow.local_addr(), fast.local_addr()],
        &["balancer: peak_ewma"],
        &[],
    ))
    .await;
    let client = h1();
    for _ in 0..100 {
        assert_eq!(get(&client, address, "/", &[]).await.status, 200);
    }
    // Once each has been seen, the 100 ms endpoint loses every comparison.
    let to_slow = slow.requests_served();
    assert!(to_slow <= 5, "{to_slow} of 100 went to the slow endpoint");
}
