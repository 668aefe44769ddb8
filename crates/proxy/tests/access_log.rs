//! The JSON-lines access log, as written for real exchanges.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test]
async fn each_exchange_is_one_json_line_with_its_facts() {
    let app = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (_proxy, address) = proxy(&format!(
        r#"
access_log: "{}"
listeners:
  - name: edge
    address: 127.0.0.1:0
    routes:
      - {{ name: api, match: {{ prefix: /echo }}, cluster: app }}
clusters:
  - name: app
    endpoints: [{{ address: "{}" }}]
"#,
        log.display(),
        app.local_addr()
    ))
    .await;
    let client = h1();
    get(
        &client,
        address,
        "/echo?secret=1",
        &[("host", "shop.example")],
    )
    .await;
    get(&client, address, "/missing", &[]).await;

    let mut lines = Vec::new();
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let ok: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["authority"], "shop.example");
    assert_eq!(ok["path"], "/echo", "no query string in the log");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["route"], "api");
    assert_eq!(ok["cluster"], "app");
    assert_eq!(ok["listener"], "edge");
    assert_eq!(ok["upstream"], app.local_addr().to_string());
    assert!(ok["bytes_out"].as_u64().unwrap() > 0);
    assert!(ok["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(ok["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(ok["reason"].is_null());

    let missing: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["reason"], "no-route");
    assert!(missing["route"].is_null());
}

/// A proxy to `app` (with `extra` top-level config lines) that logs to a file in a fresh temp
/// dir: the proxy, its address, the log's path, and the dir (removed when dropped).
async fn logging_to(
    app: &watertight_demo::SampleService,
    extra: &str,
) -> (
    watertight_proxy::Proxy,
    std::net::SocketAddr,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let yaml = one_cluster(&[app.local_addr()], &[], &[]).replace(
        "access_log: \"off\"",
        &format!("{extra}access_log: \"{}\"", log.display()),
    );
    let (proxy, address) = proxy(&yaml).await;
    (proxy, address, log, dir)
}

/// Reads the log file until it has `n` lines (or a generous time passes).
async fn log_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for _ in 0..500 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lines
}

#[tokio::test]
async fn a_client_that_abandons_its_upload_is_logged_and_not_blamed_on_the_upstream() {
    use tokio::io::AsyncWriteExt;
    let app = upstream("app").await;
    let (proxy, address, log, _dir) = logging_to(&app, "").await;

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    stream.write_all(&[b'x'; 4096]).await.unwrap();
    // Let the upload start flowing upstream, then leave without finishing it.
    for _ in 0..200 {
        if proxy.current().cluster_status()[0].endpoints[0].in_flight == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(stream);

    let lines = log_lines(&log, 1).await;
    assert_eq!(lines.len(), 1, "the abandoned request is logged");
    assert_eq!(lines[0]["status"], 499);
    assert_eq!(lines[0]["reason"], "client-aborted");
    let endpoint = &proxy.current().cluster_status()[0].endpoints[0];
    assert_eq!(endpoint.failures, 0, "the upstream did nothing wrong");
    assert_eq!(endpoint.in_flight, 0);
}

#[tokio::test]
async fn traced_lines_carry_the_trace_and_server_span_ids() {
    let app = upstream("app").await;
    // Nothing listens at the collector address; only the ids matter here.
    let tracing = "tracing:\n  head_ratio: 0.0\n  otlp: {endpoint: \"http://127.0.0.1:9\"}\n";
    let (_proxy, address, log, _dir) = logging_to(&app, tracing).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = get(
        &h1(),
        address,
        "/echo",
        &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-00"))],
    )
    .await;
    let entry = log_lines(&log, 1).await.remove(0);
    assert_eq!(entry["trace_id"], trace);
    let span_id = entry["span_id"].as_str().unwrap();
    assert_eq!(span_id.len(), 16);
    assert_ne!(
        span_id, "00f067aa0ba902b7",
        "the proxy's own span, not the caller's"
    );
    // The upstream's parent is the attempt's client span, a child of the logged span.
    let sent = echoed(&answer, "traceparent").unwrap();
    assert!(
        sent.starts_with(&format!("00-{trace}-")) && sent.ends_with("-00"),
        "{sent}"
    );
}

#[tokio::test]
async fn untraced_lines_have_no_trace_fields() {
    let app = upstream("app").await;
    let (_proxy, address, log, _dir) = logging_to(&app, "").await;
    get(&h1(), address, "/", &[]).await;
    let entry = log_lines(&log, 1).await.remove(0);
    assert_eq!(entry["status"], 200);
    assert!(entry.get("trace_id").is_none(), "{entry}");
}
