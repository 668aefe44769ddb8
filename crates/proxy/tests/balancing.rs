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
async fn least_request_steers_away_from_a_slow_replica() {
    let apps = replicas(2).await;
    apps[0].set_faults(Faults {
        latency_ms: 400,
        ..Faults::default()
    });
    let (_proxy, address) = cluster_proxy(&apps, &[1, 1], "least_request").await;
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(tokio::spawn(async move {
            let client = h1();
            for _ in 0..15 {
                get(&client, address, "/", &[]).await;
            }
        }));
    }
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .unwrap()
            .unwrap();
    }
    let (slow, fast) = (apps[0].requests_served(), apps[1].requests_served());
    assert_eq!(slow + fast, 60);
    assert!(slow * 4 < fast, "slow replica got {slow}, fast {fast}");
}
