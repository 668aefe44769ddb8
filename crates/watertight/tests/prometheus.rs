//! The metrics as Prometheus itself reads them: `promtool check metrics` accepts a real scrape,
//! and a real Prometheus scraping a proxy under a known load computes the error ratio and p99
//! the load generator measured, and the rules in `deploy/prometheus` record and alert on them.
//!
//! Needs `prometheus` and `promtool` on PATH (Debian: `apt-get install prometheus`).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;
use watertight_demo::SampleService;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prometheus");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_mixed_traffic_passes_promtool_check_metrics() {
    require("promtool");
    let app = sample().await;
    let closed = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (loopback(), loopback());
    // `/broken` goes to a cluster nobody listens on, so the error families have series too.
    let config = config_yaml(listen, admin, &[app.local_addr()]).replace(
        "      - name: all\n",
        "      - name: broken\n        match: { prefix: /broken }\n        cluster: nowhere\n      - name: all\n",
    ) + &format!("  - name: nowhere\n    endpoints:\n      - address: \"127.0.0.1:{closed}\"\n");
    let proxy = start_proxy(dir.path(), &config, admin).await;
    let client = client();
    for (path, expected) in [
        ("/", 200),
        ("/delay?ms=20", 200),
        ("/status/503", 503),
        ("/broken", 502),
    ] {
        let response = get(&client, &format!("http://{listen}{path}")).await;
        assert_eq!(response.map(|(s, _)| s), Some(expected), "GET {path}");
    }

    let (status, scrape) = get(&client, &format!("http://{admin}/metrics"))
        .await
        .expect("the admin API answers /metrics");
    assert_eq!(status, 200);
    assert!(
        scrape.contains("reason=\"connect-refused\""),
        "the scrape has the error series:\n{scrape}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), scrape.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    // Exit 3 is lint problems only (names, help, units): a failure here all the same.
    assert!(
        checked.status.success(),
        "promtool check metrics: {}\n{}{}\nproxy stderr:\n{}",
        checked.status,
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr),
        proxy.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_computes_the_error_ratio_and_p99_the_clients_measured() {
    require("prometheus");
    let app = sample().await;
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (loopback(), loopback());
    let config = config_yaml(listen, admin, &[app.local_addr()]);
    let proxy = start_proxy(dir.path(), &config, admin).await;
    let prometheus = Prometheus::start(dir.path(), admin).await;
    // A first sample from before the load, so every counter's window starts at its zero.
    prometheus
        .eventually("the first scrape", async |p| {
            p.value(r#"up{job="watertight"}"#)
                .await
                .filter(|up| *up == 1.0)
        })
        .await;

    let load = Load::run(listen).await;
    let requests = load.latencies.len() as f64;
    prometheus
        .eventually("two scrapes after the load, holding all of it", async |p| {
            let now = epoch_seconds(SystemTime::now());
            let since = (((now - epoch_seconds(load.ended)) * 1000.0) as u64).max(1);
            let scrapes = p
                .value_at(
                    &format!(r#"count_over_time(up{{job="watertight"}}[{since}ms])"#),
                    now,
                )
                .await?;
            let counted = p.value("sum(watertight_route_requests_total)").await?;
            (scrapes >= 2.0 && counted == requests).then_some(())
        })
        .await;

    let error_ratio = prometheus
        .value(
            r#"sum(increase(watertight_route_requests_total{status_class="5xx"}[1m])) / sum(increase(watertight_route_requests_total[1m]))"#,
        )
        .await
        .expect("an error ratio");
    let p99 = prometheus
        .value(
            "histogram_quantile(0.99, sum by (le) (rate(watertight_route_request_duration_seconds_bucket[1m])))",
        )
        .await
        .expect("a p99");
    let bounds = prometheus
        .label_values("le", "watertight_route_request_duration_seconds_bucket")
        .await;
    let (below, above) = bucket_around(&bounds, load.p99());
    eprintln!(
        "error ratio: clients {:.4}, prometheus {error_ratio:.4}; p99: clients {:.4}s, \
         prometheus {p99:.4}s (bucket {below}..{above}); slow share: clients {:.4}",
        load.error_ratio(),
        load.p99(),
        load.slow_share(0.5)
    );
    assert!(
        (error_ratio - load.error_ratio()).abs() <= 0.03,
        "Prometheus error ratio {error_ratio} vs {} seen by the clients",
        load.error_ratio()
    );
    assert!(
        (below..=above).contains(&p99),
        "Prometheus p99 {p99}s is outside the bucket {below}..{above}s of the clients' p99 {}s",
        load.p99()
    );

    // The deploy/prometheus rules, evaluated on the same data.
    let route = r#"{job="watertight",route="all",cluster="app"}"#;
    let (errors, slow) = prometheus
        .eventually("the recording rules after the last scrape", async |p| {
            let scraped = p.value(r#"timestamp(up{job="watertight"})"#).await?;
            let errors = format!("route:watertight_route_errors:ratio_rate5m{route}");
            let slow = format!("route:watertight_route_slow_requests:ratio_rate5m{route}");
            let recorded = p.value(&format!("timestamp({slow})")).await?;
            (recorded > scraped).then_some(())?;
            Some((p.value(&errors).await?, p.value(&slow).await?))
        })
        .await;
    eprintln!("recorded: error ratio {errors:.4}, share slower than 0.5 s {slow:.4}");
    assert!(
        (errors - load.error_ratio()).abs() <= 0.03,
        "recorded error ratio {errors} vs {} seen by the clients",
        load.error_ratio()
    );
    assert!(
        (slow - load.slow_share(0.5)).abs() <= 0.03,
        "recorded share slower than 0.5 s {slow} vs {} seen by the clients",
        load.slow_share(0.5)
    );
    // 10% 5xx is 100 times the 0.1% budget: the page is pending (it fires after 2m).
    prometheus
        .eventually("the fast-burn page to be pending", async |p| {
            p.value(r#"ALERTS{alertname="WatertightAvailabilityFastBurn",route="all"}"#)
                .await
        })
        .await;

    // Every panel of the Grafana dashboard evaluates on the same data, as "All" selects it.
    let expressions = dashboard_expressions();
    assert!(expressions.len() > 20, "{expressions:?}");
    for expression in expressions {
        prometheus
            .query(&expression, epoch_seconds(SystemTime::now()))
            .await;
    }
    drop(prometheus);
    drop(proxy);
}

/// The known load: 400 requests, one every 15 ms; one in ten answers 503, five wait 0 ms and
/// four wait 150 ms (well inside the 0.1..0.25 s bucket, so a busy machine's jitter does not move
/// the p99 to another bucket).
struct Load {
    statuses: Vec<u16>,
    latencies: Vec<Duration>,
    ended: SystemTime,
}

impl Load {
    const REQUESTS: u32 = 400;
    const PACE: Duration = Duration::from_millis(15);

    async fn run(listen: SocketAddr) -> Load {
        let client = client();
        let start = tokio::time::Instant::now();
        let mut requests = Vec::new();
        for i in 0..Self::REQUESTS {
            tokio::time::sleep_until(start + Self::PACE * i).await;
            let path = match i % 10 {
                0 => "/status/503",
                1..=5 => "/delay?ms=0",
                _ => "/delay?ms=150",
            };
            let url = format!("http://{listen}{path}");
            let client = client.clone();
            requests.push(tokio::spawn(async move {
                let sent = Instant::now();
                let response =
                    tokio::time::timeout(Duration::from_secs(10), get(&client, &url)).await;
                (url, response, sent.elapsed())
            }));
        }
        let mut load = Load {
            statuses: Vec::new(),
            latencies: Vec::new(),
            ended: SystemTime::now(),
        };
        for request in requests {
            let (url, response, latency) = request.await.unwrap();
            let Ok(Some((status, _))) = response else {
                panic!("GET {url} got no response within 10 s");
            };
            load.statuses.push(status);
            load.latencies.push(latency);
        }
        load.ended = SystemTime::now();
        load.latencies.sort();
        load
    }

    fn error_ratio(&self) -> f64 {
        let errors = self.statuses.iter().filter(|s| **s >= 500).count();
        errors as f64 / self.statuses.len() as f64
    }

    /// The smallest latency at least 99% of the requests did not exceed.
    fn p99(&self) -> f64 {
        let rank = (self.latencies.len() as f64 * 0.99).ceil() as usize;
        self.latencies[rank - 1].as_secs_f64()
    }

    fn slow_share(&self, threshold: f64) -> f64 {
        let slow = self
            .latencies
            .iter()
            .filter(|l| l.as_secs_f64() > threshold)
            .count();
        slow as f64 / self.latencies.len() as f64
    }
}

/// The PromQL of every panel of `deploy/grafana/watertight.json`, its template variables
/// replaced as Grafana would with "All" selected.
fn dashboard_expressions() -> Vec<String> {
    fn collect(node: &serde_json::Value, found: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(fields) => {
                for (name, value) in fields {
                    match (name.as_str(), value.as_str()) {
                        ("expr", Some(expr)) => found.push(expr.to_owned()),
                        _ => collect(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, found)),
            _ => {}
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/watertight.json"
    );
    let dashboard = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut found = Vec::new();
    collect(&dashboard["panels"], &mut found);
    found
        .into_iter()
        .map(|expr| {
            ["$route", "$cluster", "$instance"]
                .into_iter()
                .fold(expr, |expr, variable| expr.replace(variable, ".*"))
                .replace("$__rate_interval", "1m")
        })
        .collect()
}

/// The bucket bounds on either side of `value` (0 below the first).
fn bucket_around(bounds: &[f64], value: f64) -> (f64, f64) {
    let above = bounds
        .iter()
        .copied()
        .find(|b| *b >= value)
        .unwrap_or(f64::INFINITY);
    let below = bounds
        .iter()
        .copied()
        .filter(|b| *b < value)
        .fold(0.0, f64::max);
    (below, above)
}

/// A `prometheus` server scraping one watertight admin API every second, with the rules of
/// `deploy/prometheus` loaded; killed when dropped.
struct Prometheus {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl Prometheus {
    async fn start(dir: &Path, admin: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {RULES}/recording.yml\n  - {RULES}/alerts.yml\n\
                 scrape_configs:\n  - job_name: watertight\n    static_configs:\n      - targets: [\"{admin}\"]\n"
            ),
        )
        .unwrap();
        let address = loopback();
        let log = dir.join("prometheus.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            // Asks for OpenMetrics (with exemplars) when scraping; the text format has
            // promtool's check above.
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let prometheus = Prometheus {
            child,
            address,
            log,
        };
        prometheus
            .eventually("prometheus to be ready", async |p| {
                let ready = get(&client(), &format!("http://{}/-/ready", p.address)).await;
                matches!(ready, Some((200, _))).then_some(())
            })
            .await;
        prometheus
    }

    /// Calls `check` every 200 ms until it gives a value, for at most 30 seconds.
    async fn eventually<T>(&self, what: &str, mut check: impl AsyncFnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(value) = check(self).await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "timed out waiting for {what}; prometheus log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// The value of a query that yields one sample, or None if it yields none.
    async fn value(&self, promql: &str) -> Option<f64> {
        self.value_at(promql, epoch_seconds(SystemTime::now()))
            .await
    }

    async fn value_at(&self, promql: &str, at: f64) -> Option<f64> {
        let result = self.query(promql, at).await;
        let samples = result.as_array().expect("a vector result");
        assert!(
            samples.len() <= 1,
            "{promql} gave several samples: {result}"
        );
        let value = samples.first()?["value"][1].as_str()?;
        value.parse().ok()
    }

    /// The values of `label` across the series of `metric`, as numbers, in order.
    async fn label_values(&self, label: &str, metric: &str) -> Vec<f64> {
        let result = self
            .query(
                &format!("count by ({label}) ({metric})"),
                epoch_seconds(SystemTime::now()),
            )
            .await;
        let mut values: Vec<f64> = result
            .as_array()
            .expect("a vector result")
            .iter()
            .filter_map(|sample| sample["metric"][label].as_str()?.parse().ok())
            .collect();
        values.sort_by(f64::total_cmp);
        values
    }

    /// `data.result` of an instant query at `at` (seconds since the epoch).
    async fn query(&self, promql: &str, at: f64) -> serde_json::Value {
        let url = format!(
            "http://{}/api/v1/query?query={}&time={at:.3}",
            self.address,
            percent_encode(promql)
        );
        let (status, body) = get(&client(), &url)
            .await
            .unwrap_or_else(|| panic!("prometheus did not answer {url}"));
        assert_eq!(status, 200, "{promql}: {body}");
        let mut answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        answer["data"]["result"].take()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails with what to install when a Prometheus tool is missing.
fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "`{tool}` is not on PATH: this test runs the real Prometheus tools; \
         install them with `apt-get install prometheus` (CI does)"
    );
}

async fn sample() -> SampleService {
    SampleService::start("app", 0, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Starts `watertight proxy` with `config` (written to `dir`) and waits until its `admin` API
/// says it is ready.
async fn start_proxy(dir: &Path, config: &str, admin: SocketAddr) -> Process {
    let path = dir.join("watertight.yaml");
    std::fs::write(&path, config).unwrap();
    let process = Process::start(dir, &["proxy", "--config", path.to_str().unwrap()]);
    assert!(
        wait_ready(admin, Duration::from_secs(20)).await,
        "{}",
        process.stderr()
    );
    process
}

fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A query string value: everything but unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
