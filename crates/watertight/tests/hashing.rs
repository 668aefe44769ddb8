//! Two proxy processes with the same `balancer: hash` config send every key to the same
//! endpoint: the tables and key hashes are the same in every process.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use support::*;
use watertight_demo::SampleService;

fn hashed_config(listen: SocketAddr, admin: SocketAddr, endpoints: &[SocketAddr]) -> String {
    config_yaml(listen, admin, endpoints).replace(
        "  - name: app\n",
        "  - name: app\n    balancer: hash\n    hash: { key: { header: x-user }, algorithm: ring }\n",
    )
}

/// Which replica answered `/echo` for `user` through `proxy`.
async fn replica_for(client: &TestClient, proxy: SocketAddr, user: &str) -> u64 {
    let request = http::Request::get(format!("http://{proxy}/echo"))
        .header("x-user", user)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    json["replica"].as_u64().expect("echo names its replica")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxy_processes_put_every_key_on_the_same_endpoint() {
    let mut services = Vec::new();
    for replica in 0..4 {
        services.push(
            SampleService::start("app", replica, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
    }
    let endpoints: Vec<SocketAddr> = services.iter().map(|s| s.local_addr()).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut proxies = Vec::new();
    for name in ["a", "b"] {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&config, hashed_config(listen, admin, &endpoints)).unwrap();
        let process = Process::start(dir.path(), &["proxy", "--config", config.to_str().unwrap()]);
        assert!(
            wait_ready(admin, Duration::from_secs(20)).await,
            "{}",
            process.stderr()
        );
        proxies.push((process, listen));
    }
    let client = client();
    let mut placements = Vec::new();
    for (_, listen) in &proxies {
        let mut placed = Vec::new();
        for user in 0..40 {
            placed.push(replica_for(&client, *listen, &format!("user-{user}")).await);
        }
        placements.push(placed);
    }
    assert_eq!(
        placements[0], placements[1],
        "both processes agree on every key"
    );
    for replica in 0..4 {
        assert!(placements[0].contains(&replica), "{:?}", placements[0]);
    }
    for (process, _) in &proxies {
        process.signal("TERM");
    }
    for (mut process, _) in proxies {
        process
            .wait(Duration::from_secs(20))
            .expect("exits on SIGTERM");
    }
}
