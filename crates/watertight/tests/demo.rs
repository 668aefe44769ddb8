//! `watertight demo`: the embedded config, the sample services behind the proxy, `/demo`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn the_printed_demo_config_passes_check() {
    let output = Command::new(BIN)
        .args(["demo", "--print-config"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.yaml");
    std::fs::write(&path, &output.stdout).unwrap();
    let check = Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_sample_services_and_lets_you_break_them() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let mut process = Process::start(
        dir.path(),
        &["demo", "--listen", &listen, "--admin-listen", &admin],
    );
    assert!(
        wait_ready(admin.parse().unwrap(), Duration::from_secs(20)).await,
        "{}",
        process.stderr()
    );
    assert!(process.stderr().contains("curl"), "prints what to try");
    let client = client();

    // Traffic reaches all three catalog replicas through the proxy.
    for _ in 0..30 {
        let (status, body) = get(&client, &format!("http://{listen}/catalog"))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(body.starts_with("ok catalog"), "{body}");
    }
    let (_, demo) = get(&client, &format!("http://{admin}/demo")).await.unwrap();
    let demo: serde_json::Value = serde_json::from_str(&demo).unwrap();
    let catalog = &demo["services"][0];
    assert_eq!(catalog["name"], "catalog");
    let served: Vec<u64> = catalog["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests_served"].as_u64().unwrap())
        .collect();
    assert_eq!(served.iter().sum::<u64>(), 30);

    // A fault set through the admin API shows on the next request.
    let faults = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(format!("http://{admin}/demo/checkout/0/faults"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"error_rate":1.0,"error_status":500}"#,
        )))
        .unwrap();
    assert_eq!(faults.request(request).await.unwrap().status(), 200);
    let (status, _) = get(&client, &format!("http://{listen}/checkout"))
        .await
        .unwrap();
    assert_eq!(status, 500);

    // Recommendations turns 5 s slow: its bulkhead, timeout and breaker make it fail fast
    // while the catalog keeps answering.
    let request = http::Request::post(format!("http://{admin}/demo/recommendations/0/faults"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"latency_ms":5000}"#,
        )))
        .unwrap();
    assert_eq!(faults.request(request).await.unwrap().status(), 200);
    let slow: Vec<_> = (0..30)
        .map(|_| {
            let (listen, client) = (listen.clone(), client.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let answer = get(&client, &format!("http://{listen}/recommendations")).await;
                (answer, started.elapsed())
            })
        })
        .collect();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let (status, _) = get(&client, &format!("http://{listen}/catalog"))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    for answer in slow {
        let (answer, took) = answer.await.unwrap();
        let (status, body) = answer.unwrap();
        assert!(matches!(status, 503 | 504), "{status} {body}");
        assert!(
            [
                "upstream-timeout",
                "bulkhead-full",
                "queue-timeout",
                "breaker-open"
            ]
            .iter()
            .any(|reason| body.contains(reason)),
            "{body}"
        );
        assert!(
            took < Duration::from_secs(4),
            "bounded by the route's 2 s timeout"
        );
    }
    // Twenty timeouts in a row opened the breaker: the next request does not wait at all.
    let started = std::time::Instant::now();
    let (status, body) = get(&client, &format!("http://{listen}/recommendations"))
        .await
        .unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("breaker-open"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(1));

    process.signal("INT");
    let status = process
        .wait(Duration::from_secs(20))
        .expect("demo exits on SIGINT");
    assert!(status.success());
}
