//! `watertight drill` against real proxies on loopback: the demo's checkout fails over to its
//! standby and back; drills that cannot start say why and exit 2; a drill whose standby
//! cannot serve exits 1 and still puts the primary back.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// What a finished drill left: exit status, stdout, stderr.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `watertight drill ARGS` to the end (killed after a minute, which fails the test).
async fn drill(args: &[&str]) -> Finished {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut child = Command::new(BIN)
            .arg("drill")
            .args(&args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the drill did not end by itself within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Finished {
            code: status.code(),
            stdout: std::fs::read_to_string(out).unwrap(),
            stderr: std::fs::read_to_string(err).unwrap(),
        }
    })
    .await
    .unwrap()
}

/// `watertight demo` on free ports, sample services included, ready: (process, proxy, admin).
async fn demo(dir: &Path) -> (Process, String, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let process = Process::start(
        dir,
        &[
            "demo",
            "--listen",
            &listen,
            "--admin-listen",
            &admin,
            "--free-sample-ports",
        ],
    );
    assert!(
        wait_ready(admin.parse().unwrap(), Duration::from_secs(20)).await,
        "{}",
        process.stderr()
    );
    (process, listen, admin)
}

/// One cluster from the admin API's `GET /clusters`.
async fn cluster(admin: &str, name: &str) -> Value {
    let (_, body) = get(&client(), &format!("http://{admin}/clusters"))
        .await
        .unwrap();
    let clusters: Value = serde_json::from_str(&body).unwrap();
    clusters["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name} in {body}"))
        .clone()
}

fn states(cluster: &Value) -> Vec<(String, u64, String)> {
    cluster["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_owned(),
                e["priority"].as_u64().unwrap(),
                e["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_fails_over_to_its_standby_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_demo, listen, admin) = demo(dir.path()).await;
    let before = cluster(&admin, "checkout").await;
    let primary = states(&before)[0].0.clone();

    let finished = drill(&[
        "--admin",
        &format!("http://{admin}"),
        "--cluster",
        "checkout",
        "--target",
        &format!("http://{listen}/checkout"),
        "--phase-timeout",
        "10s",
        "--json",
    ])
    .await;
    assert_eq!(
        finished.code,
        Some(0),
        "{}\n{}",
        finished.stdout,
        finished.stderr
    );
    let report = finished.json();
    assert_eq!(report["completed"], true, "{report}");
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["action"], "disable");
    assert_eq!(report["endpoints"], serde_json::json!([primary]));
    assert_eq!(report["original_priority"], 0);
    assert_eq!(report["standby_priority"], 1, "the standby group took over");
    assert!(
        report["standby_requests"].as_u64().unwrap() > 0,
        "the standby served probes during the take-out: {report}"
    );
    let detect = report["time_to_detect_ms"].as_u64().unwrap();
    let failover = report["time_to_failover_ms"].as_u64().unwrap();
    assert!(detect <= failover, "{report}");
    assert!(failover < 5000, "{report}");
    assert!(report["time_to_failback_ms"].as_u64().unwrap() < 5000);
    assert_eq!(report["failback"], "auto");
    assert_eq!(report["failback_requested"], false);
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["baseline", "take_out", "restore"]);
    assert!(
        report["phases"][1]["sent"].as_u64().unwrap() > 10,
        "{report}"
    );

    // The demo's standby replica did serve, and the primary is back and active.
    let (_, fleet) = get(&client(), &format!("http://{admin}/demo"))
        .await
        .unwrap();
    let fleet: Value = serde_json::from_str(&fleet).unwrap();
    let checkout = &fleet["services"][2];
    assert_eq!(checkout["name"], "checkout");
    assert!(checkout["replicas"][1]["requests_served"].as_u64().unwrap() > 0);
    let after = cluster(&admin, "checkout").await;
    assert_eq!(after["active_priority"], 0);
    assert!(
        states(&after)
            .iter()
            .all(|(_, _, state)| state == "healthy"),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_a_standby_group_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (_demo, listen, admin) = demo(dir.path()).await;
    let finished = drill(&[
        "--admin",
        &admin,
        "--cluster",
        "catalog",
        "--target",
        &format!("http://{listen}/catalog"),
    ])
    .await;
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("\"catalog\" has a single priority group")
            && finished.stderr.contains("no standby"),
        "{}",
        finished.stderr
    );
    assert!(finished.stdout.is_empty());
    let catalog = cluster(&admin, "catalog").await;
    assert!(
        states(&catalog).iter().all(|(_, _, s)| s == "healthy"),
        "nothing was taken out: {catalog}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cluster_is_refused_naming_the_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let (_demo, listen, admin) = demo(dir.path()).await;
    let finished = drill(&[
        "--admin",
        &admin,
        "--cluster",
        "inventory",
        "--target",
        &format!("http://{listen}/inventory"),
    ])
    .await;
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("no cluster \"inventory\"")
            && finished
                .stderr
                .contains("catalog, recommendations, checkout"),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn an_admin_api_that_does_not_answer_is_exit_2() {
    let admin = format!("http://127.0.0.1:{}", free_port());
    let finished = drill(&[
        "--admin",
        &admin,
        "--cluster",
        "checkout",
        "--target",
        "http://127.0.0.1:1/",
    ])
    .await;
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    assert!(
        finished.stderr.contains(&admin) && finished.stderr.contains("is the proxy running"),
        "{}",
        finished.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_cannot_serve_fails_the_drill_and_the_primary_goes_back() {
    // No health check: the standby, a closed port, counts as healthy until traffic tries it.
    let primary = watertight_demo::SampleService::start("app", 0, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let standby = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{ address: \"{admin}\" }}\naccess_log: \"off\"\nlisteners:\n  - name: main\n    address: \"{listen}\"\n    routes:\n      - name: all\n        cluster: app\nclusters:\n  - name: app\n    endpoints:\n      - address: \"{}\"\n      - address: \"{standby}\"\n        priority: 1\n",
            primary.local_addr()
        ),
    )
    .unwrap();
    let proxy = Process::start(dir.path(), &["proxy", "--config", config.to_str().unwrap()]);
    assert!(
        wait_ready(admin.parse().unwrap(), Duration::from_secs(20)).await,
        "{}",
        proxy.stderr()
    );

    let finished = drill(&[
        "--admin",
        &admin,
        "--cluster",
        "app",
        "--target",
        &format!("http://{listen}/"),
        "--settle",
        "300ms",
        "--phase-timeout",
        "2s",
        "--max-outage",
        "10s",
        "--json",
    ])
    .await;
    assert_eq!(
        finished.code,
        Some(1),
        "{}\n{}",
        finished.stdout,
        finished.stderr
    );
    let report = finished.json();
    assert_eq!(report["completed"], false);
    assert_eq!(report["passed"], false);
    assert_eq!(
        report["standby_priority"], 1,
        "detected, but nothing flowed"
    );
    assert!(report["time_to_failover_ms"].is_null(), "{report}");
    let take_out = &report["phases"][1];
    assert_eq!(take_out["sent"], take_out["failed"], "{report}");
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("did not pass steadily"),
        "{report}"
    );

    // Put back, and traffic reaches the primary again.
    let app = cluster(&admin, "app").await;
    assert_eq!(app["active_priority"], 0, "{app}");
    assert_eq!(states(&app)[0].2, "healthy", "{app}");
    let (status, _) = get(&client(), &format!("http://{listen}/")).await.unwrap();
    assert_eq!(status, 200);
}
