//! The golden signals as a scrape shows them after real traffic through the proxy.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use watertight_proxy::Proxy;
use watertight_telemetry::Format;

/// The value of the series `series` (name and labels exactly as exposed) in a scrape.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

/// Scrapes until `series` has `expected` (exchanges are recorded when the server drops their
/// body, which can be a moment after the client has read it), for at most ten seconds.
async fn eventually(proxy: &Proxy, series: &str, expected: f64) -> String {
    let mut text = String::new();
    for _ in 0..1000 {
        text = proxy.metrics().encode(Format::Prometheus);
        if value(&text, series) == Some(expected) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{series} never reached {expected}:\n{text}");
}

fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn responses_latency_and_bytes_are_counted_per_route_and_endpoint() {
    let app = upstream("app").await;
    let (proxy, address) = proxy_to(app.local_addr(), &[]).await;
    let client = h1();
    for _ in 0..3 {
        assert_eq!(
            get(&client, address, "/bytes?n=1000", &[]).await.status,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(get(&client, address, "/status/503", &[]).await.status, 503);
    }
    let route = r#"route="all",cluster="app""#;
    let endpoint = format!(r#"cluster="app",endpoint="{}""#, app.local_addr());
    let text = eventually(
        &proxy,
        &format!("watertight_route_request_duration_seconds_count{{{route}}}"),
        5.0,
    )
    .await;
    let at = |series: String| value(&text, &series);
    assert_eq!(
        at(format!(
            r#"watertight_route_requests_total{{{route},status_class="2xx"}}"#
        )),
        Some(3.0)
    );
    assert_eq!(
        at(format!(
            r#"watertight_route_requests_total{{{route},status_class="5xx"}}"#
        )),
        Some(2.0)
    );
    assert!(at(format!("watertight_route_response_bytes_total{{{route}}}")).unwrap() >= 3000.0);
    assert_eq!(
        at(format!("watertight_route_requests_in_flight{{{route}}}")),
        Some(0.0)
    );
    assert_eq!(
        at(format!(
            r#"watertight_upstream_requests_total{{{endpoint},status_class="2xx"}}"#
        )),
        Some(3.0)
    );
    assert_eq!(
        at(format!(
            r#"watertight_upstream_requests_total{{{endpoint},status_class="5xx"}}"#
        )),
        Some(2.0)
    );
    assert_eq!(
        at(format!(
            "watertight_upstream_request_duration_seconds_count{{{endpoint}}}"
        )),
        Some(5.0)
    );
    assert!(
        at(format!(
            "watertight_upstream_response_bytes_total{{{endpoint}}}"
        ))
        .unwrap()
            >= 3000.0
    );
    // One keep-alive client, one request at a time: one pooled connection, idle now.
    assert_eq!(
        at(format!(
            "watertight_upstream_connections_open{{{endpoint}}}"
        )),
        Some(1.0)
    );
    assert_eq!(
        at(format!(
            "watertight_upstream_connections_idle{{{endpoint}}}"
        )),
        Some(1.0)
    );
    assert_eq!(
        at(r#"watertight_listener_connections_total{listener="main"}"#.to_owned()),
        Some(1.0)
    );
    assert!(at(r#"watertight_upstream_pool_max_idle{cluster="app"}"#.to_owned()) == Some(64.0));
    assert!(at("watertight_process_resident_memory_bytes".to_owned()).unwrap() > 1e6);
}

#[tokio::test]
async fn proxy_made_failures_are_counted_by_reason() {
    let dead = closed_port();
    let (proxy, address) = proxy_to(dead, &[]).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.reason(), Some("connect-refused"));
    let text = eventually(
        &proxy,
        r#"watertight_proxy_errors_total{listener="main",route="all",cluster="app",reason="connect-refused"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        value(
            &text,
            &format!(
                r#"watertight_upstream_requests_total{{cluster="app",endpoint="{dead}",status_class="failed"}}"#
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"watertight_route_requests_total{route="all",cluster="app",status_class="5xx"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn unrouted_requests_count_as_no_route_errors() {
    let app = upstream("app").await;
    let yaml = one_cluster(&[app.local_addr()], &[], &[]).replace(
        "        cluster: app\n",
        "        match: {path: /only}\n        cluster: app\n",
    );
    let (proxy, address) = proxy(&yaml).await;
    assert_eq!(get(&h1(), address, "/elsewhere", &[]).await.status, 404);
    eventually(
        &proxy,
        r#"watertight_proxy_errors_total{listener="main",route="",cluster="",reason="no-route"}"#,
        1.0,
    )
    .await;
}

#[tokio::test]
async fn counters_survive_a_reload_and_the_version_follows_it() {
    let app = upstream("app").await;
    let yaml = one_cluster(&[app.local_addr()], &[], &[]);
    let (proxy, address) = proxy(&yaml).await;
    let series = r#"watertight_route_requests_total{route="all",cluster="app",status_class="2xx"}"#;
    get(&h1(), address, "/", &[]).await;
    eventually(&proxy, series, 1.0).await;

    let changed = yaml.replace(
        "access_log: \"off\"",
        "access_log: \"off\"\ndrain_timeout: 5s",
    );
    let loaded = watertight_config::load_str(&changed, "test.yaml").unwrap();
    let version = loaded.version.clone();
    proxy.reload(loaded).await.unwrap();
    get(&h1(), address, "/", &[]).await;
    let text = eventually(&proxy, series, 2.0).await;
    assert_eq!(
        value(
            &text,
            &format!(r#"watertight_config_info{{version="{version}"}}"#)
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"watertight_config_reloads_total{outcome="applied"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_off_records_nothing_on_the_request_path() {
    let app = upstream("app").await;
    let yaml = format!(
        "metrics: {{enabled: false}}\n{}",
        one_cluster(&[app.local_addr()], &[], &[])
    );
    let (proxy, address) = proxy(&yaml).await;
    assert_eq!(get(&h1(), address, "/", &[]).await.status, 200);
    // Exchanges are recorded when the server drops their body, just after the client has
    // it: give that a moment, so this checks metrics off and not a race.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = proxy.metrics().encode(Format::Prometheus);
    assert!(!text.contains("watertight_route_requests_total{"), "{text}");
    assert!(
        !text.contains("watertight_upstream_requests_total{"),
        "{text}"
    );
    // Process and config metrics are still there.
    assert!(text.contains("watertight_process_open_fds "), "{text}");
    assert!(text.contains("watertight_config_info{"), "{text}");
}
