//! `balancer: hash` end to end: a key sticks to its endpoint across requests and across
//! proxies, an endpoint going away moves only its own keys (and they come back), a load bound
//! spreads a hot key, and requests without a key are balanced as usual.

mod support;

use std::net::SocketAddr;

use watertight_demo::SampleService;
use watertight_proxy::health::Operator;

use support::{get, h1, proxy, upstream_replica};

async fn services(n: usize) -> Vec<SampleService> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(upstream_replica("app", i).await);
    }
    out
}

fn config(services: &[SampleService], hash: &str) -> String {
    let endpoints: Vec<SocketAddr> = services.iter().map(|s| s.local_addr()).collect();
    support::one_cluster(
        &endpoints,
        &["balancer: hash", &format!("hash: {hash}")],
        &[],
    )
}

/// Which service served one request with `headers`.
async fn served_by(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    services: &[SampleService],
) -> usize {
    let before: Vec<u64> = services.iter().map(|s| s.requests_served()).collect();
    let answer = get(&h1(), address, path, headers).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    services
        .iter()
        .zip(before)
        .position(|(s, b)| s.requests_served() > b)
        .expect("one service served it")
}

async fn placement(
    address: SocketAddr,
    users: &[String],
    services: &[SampleService],
) -> Vec<usize> {
    let mut out = Vec::new();
    for user in users {
        out.push(served_by(address, "/", &[("x-user", user)], services).await);
    }
    out
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

#[tokio::test]
async fn a_key_sticks_to_its_endpoint_across_requests_and_proxies() {
    let services = services(4).await;
    let yaml = config(&services, "{ key: { header: x-user } }");
    let (_a, first) = proxy(&yaml).await;
    let (_b, second) = proxy(&yaml).await;
    let users = users(40);
    let placed = placement(first, &users, &services).await;
    assert_eq!(
        placement(first, &users, &services).await,
        placed,
        "same proxy, again"
    );
    assert_eq!(
        placement(second, &users, &services).await,
        placed,
        "another proxy agrees"
    );
    // The keys spread over every endpoint.
    for endpoint in 0..4 {
        assert!(placed.contains(&endpoint), "{placed:?}");
    }
}

#[tokio::test]
async fn an_endpoint_taken_out_moves_only_its_keys_and_gets_them_back() {
    for algorithm in ["ring", "maglev", "rendezvous"] {
        let services = services(4).await;
        let yaml = config(
            &services,
            &format!("{{ key: {{ header: x-user }}, algorithm: {algorithm} }}"),
        );
        let (proxy, address) = proxy(&yaml).await;
        let users = users(60);
        let before = placement(address, &users, &services).await;
        let cluster = proxy.current().cluster("app").unwrap().clone();
        let out = before[0];
        cluster.set_operator(&services[out].local_addr().to_string(), Operator::Disabled);
        let during = placement(address, &users, &services).await;
        for (b, d) in before.iter().zip(&during) {
            if *b == out {
                assert_ne!(*d, out, "{algorithm}: the disabled endpoint's keys moved");
            } else {
                assert_eq!(b, d, "{algorithm}: other keys stayed");
            }
        }
        cluster.set_operator(&services[out].local_addr().to_string(), Operator::Active);
        assert_eq!(
            placement(address, &users, &services).await,
            before,
            "{algorithm}: keys came back"
        );
        drop(proxy);
    }
}

#[tokio::test]
async fn a_bounded_load_spreads_a_hot_key_once_its_endpoint_is_over_the_cap() {
    let services = services(3).await;
    for (bound, spread) in [("", false), (", bounded_load: 1.25", true)] {
        let yaml = config(
            &services,
            &format!("{{ key: {{ header: x-user }}{bound} }}"),
        );
        let (proxy, address) = proxy(&yaml).await;
        let before: Vec<u64> = services.iter().map(|s| s.requests_served()).collect();
        // Nine slow requests for one hot key at once.
        let hot: Vec<_> = (0..9)
            .map(|_| {
                tokio::spawn(async move {
                    get(&h1(), address, "/delay?ms=400", &[("x-user", "celebrity")])
                        .await
                        .status
                })
            })
            .collect();
        for request in hot {
            assert_eq!(request.await.unwrap(), 200);
        }
        let served: Vec<u64> = services
            .iter()
            .zip(before)
            .map(|(s, b)| s.requests_served() - b)
            .collect();
        let busiest = *served.iter().max().unwrap();
        if spread {
            // At most ⌈1.25 × 9/3⌉ = 4 at once on the hot key's endpoint.
            assert!(busiest <= 4, "bounded: {served:?}");
        } else {
            assert_eq!(busiest, 9, "unbounded, the key stays home: {served:?}");
        }
        drop(proxy);
    }
}

#[tokio::test]
async fn requests_without_a_key_are_balanced_over_every_endpoint() {
    let services = services(3).await;
    let yaml = config(
        &services,
        "{ key: { header: x-user }, no_key: round_robin }",
    );
    let (_proxy, address) = proxy(&yaml).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(served_by(address, "/", &[], &services).await);
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 0, 1, 1, 2, 2]);
}

#[tokio::test]
async fn cookies_query_parameters_paths_and_client_addresses_are_keys_too() {
    let services = services(4).await;
    for (hash, path, headers) in [
        (
            "{ key: { cookie: session } }",
            "/",
            vec![("cookie", "theme=dark; session=abc123")],
        ),
        ("{ key: { query: user } }", "/?user=ann&page=2", vec![]),
        (
            "{ key: path, algorithm: maglev }",
            "/echo/img/logo.png",
            vec![],
        ),
        (
            "{ key: client_address, algorithm: rendezvous }",
            "/",
            vec![],
        ),
    ] {
        let (proxy, address) = proxy(&config(&services, hash)).await;
        let first = served_by(address, path, &headers, &services).await;
        for _ in 0..5 {
            assert_eq!(
                served_by(address, path, &headers, &services).await,
                first,
                "{hash}"
            );
        }
        drop(proxy);
    }
}
