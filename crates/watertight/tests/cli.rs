//! The command line: `check`, `config schema`, and quick mode.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn check_accepts_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.yaml");
    std::fs::write(
        &path,
        config_yaml(
            "127.0.0.1:8080".parse().unwrap(),
            "127.0.0.1:9901".parse().unwrap(),
            &["127.0.0.1:8000".parse().unwrap()],
        ),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok"));
}

#[test]
fn check_reports_problems_as_file_line_col_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listeners:\n  - name: main\n    address: 127.0.0.1:8080\n    routes:\n      - name: api\n        cluster: backend\nclusters:\n  - name: web\n    endpoints:\n      - address: 127.0.0.1:8000\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    let expected_place = format!("{}:6:18:", path.display());
    assert!(text.contains(&expected_place), "{text}");
    assert!(text.contains("\"backend\""), "{text}");
    assert!(
        text.contains("web"),
        "the hint lists the defined clusters: {text}"
    );
}

#[test]
fn check_of_a_missing_file_says_so() {
    let output = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/w.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("/nonexistent/w.yaml"));
}

#[test]
fn config_schema_is_a_json_schema_of_the_format() {
    let output = Command::new(BIN)
        .args(["config", "schema"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(schema["properties"]["listeners"].is_object(), "{schema}");
    assert!(schema["properties"]["clusters"].is_object(), "{schema}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_proxies_to_the_given_upstreams() {
    let a = watertight_demo::SampleService::start("a", 0, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = watertight_demo::SampleService::start("b", 1, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let _process = Process::start(
        dir.path(),
        &[
            "proxy",
            "--listen",
            &listen,
            "--to",
            &format!("http://{}", a.local_addr()),
            "--to",
            &format!("http://{}", b.local_addr()),
            "--admin",
            &admin,
        ],
    );
    assert!(wait_ready(admin.parse().unwrap(), Duration::from_secs(20)).await);
    let client = client();
    for _ in 0..4 {
        let (status, _) = get(&client, &format!("http://{listen}/")).await.unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!((a.requests_served(), b.requests_served()), (2, 2));
    // The access log goes to stdout by default, one JSON object per line.
    let mut lines = 0;
    for _ in 0..100 {
        lines = std::fs::read_to_string(dir.path().join("stdout"))
            .unwrap_or_default()
            .lines()
            .count();
        if lines == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines, 4);
}

#[test]
fn quick_mode_rejects_a_bad_upstream_url() {
    let output = Command::new(BIN)
        .args(["proxy", "--listen", "127.0.0.1:0", "--to", "ftp://x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("http://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_0_for_a_ready_proxy_and_1_otherwise() {
    let app = watertight_demo::SampleService::start("app", 0, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let _proxy = Process::start(
        dir.path(),
        &[
            "proxy",
            "--listen",
            &listen,
            "--to",
            &format!("http://{}", app.local_addr()),
            "--admin",
            &admin,
            "--access-log",
            "off",
        ],
    );
    assert!(wait_ready(admin.parse().unwrap(), Duration::from_secs(20)).await);
    let health = |url: String| {
        Command::new(BIN)
            .args(["health", "--admin", &url])
            .output()
            .unwrap()
    };
    let ready = health(format!("http://{admin}"));
    assert_eq!(
        ready.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let closed = health(format!("http://127.0.0.1:{}", free_port()));
    assert_eq!(closed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&closed.stderr).contains("/readyz"));
    let bad = health("ftp://nowhere".to_owned());
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_service_serves_one_sample_service_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut process = Process::start(
        dir.path(),
        &[
            "demo-service",
            "--name",
            "orders",
            "--listen",
            &listen,
            "--replica",
            "2",
        ],
    );
    let client = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        if let Some(answer) = get(&client, &format!("http://{listen}/echo")).await {
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "{}", process.stderr());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(status, 200);
    assert!(
        body.contains("\"replica\":2") || body.contains("\"replica\": 2"),
        "{body}"
    );
    process.signal("TERM");
    let exit = process
        .wait(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(exit.success());
}
