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
