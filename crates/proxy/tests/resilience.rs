//! Retries and bulkheads on real routes: another endpoint after a failure, no duplicated
//! writes, the budget holding a failing upstream to its share, and bulkheads that fail fast.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use support::*;
use watertight_demo::{Faults, SampleService};
use watertight_proxy::body::full;

fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn faulty(name: &str, faults: Faults) -> SampleService {
    let service = upstream(name).await;
    service.set_faults(faults);
    service
}

/// YAML lines that add cluster `backup` on `service` to a config's clusters.
fn backup_cluster(service: &SampleService) -> String {
    format!(
        "  - name: backup\n    endpoints:\n      - address: \"{}\"\n",
        service.local_addr()
    )
}

/// An upstream that answers every request with 503.
async fn failing(name: &str) -> SampleService {
    faulty(
        name,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    )
    .await
}

/// An upstream that resets every request's connection without answering.
async fn resetting(name: &str) -> SampleService {
    faulty(
        name,
        Faults {
            reset_rate: 1.0,
            ..Faults::default()
        },
    )
    .await
}

async fn post(address: SocketAddr, body: &'static str) -> Answer {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{address}/upload"))
        .body(full(body))
        .unwrap();
    send(&h1(), request).await
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_endpoint() {
    let app = upstream("app").await;
    let dead = closed_port();
    let retry = "        retry: {attempts: 2, retry_on: [connect-failure]}\n";
    let (_proxy, address) = proxy(&one_route(&[dead, app.local_addr()], &[], retry)).await;
    for _ in 0..10 {
        let answer = get(&h1(), address, "/", &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.reason());
    }
    assert_eq!(app.requests_served(), 10);

    // Without a retry, round robin sends half of them to the dead endpoint.
    let (_plain, plain) = proxy(&one_cluster(&[dead, app.local_addr()], &[], &[])).await;
    let mut failed = 0;
    for _ in 0..10 {
        if get(&h1(), plain, "/", &[]).await.status == StatusCode::BAD_GATEWAY {
            failed += 1;
        }
    }
    assert_eq!(failed, 5);
}

#[tokio::test]
async fn a_post_the_upstream_received_is_not_sent_again() {
    let resets = Faults {
        reset_rate: 1.0,
        ..Faults::default()
    };
    let first = faulty("app", resets).await;
    let second = faulty("app", resets).await;
    let endpoints = [first.local_addr(), second.local_addr()];
    let retry = "        retry: {attempts: 3, retry_on: [reset]}\n";
    let (_proxy, address) = proxy(&one_route(&endpoints, &[], retry)).await;

    let answer = post(address, "pay 10 euros").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.reason(), Some("upstream-reset"));
    let served = || first.requests_served() + second.requests_served();
    assert_eq!(served(), 1, "the write reached one upstream, once");

    // A GET is idempotent: it is tried three times.
    get(&h1(), address, "/", &[]).await;
    assert_eq!(served(), 1 + 3);

    // A route that opts in replays the POST too.
    let opted = "        retry: {attempts: 3, retry_on: [reset], non_idempotent: true}\n";
    let (_opted, opted_address) = proxy(&one_route(&endpoints, &[], opted)).await;
    post(opted_address, "pay 10 euros").await;
    assert_eq!(served(), 4 + 3);
}

#[tokio::test]
async fn a_post_whose_connection_was_refused_is_retried() {
    let app = upstream("app").await;
    let dead = closed_port();
    let retry = "        retry: {attempts: 2, retry_on: [connect-failure]}\n";
    let (_proxy, address) = proxy(&one_route(&[dead, app.local_addr()], &[], retry)).await;
    for _ in 0..4 {
        let answer = post(address, "hello").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["bytes"], 5, "the replayed body arrives whole");
    }
}

#[tokio::test]
async fn status_retries_move_to_a_healthy_endpoint() {
    let broken = failing("app").await;
    let healthy = upstream("app").await;
    let retry = "        retry: {attempts: 2, retry_on: [gateway-error]}\n";
    let endpoints = [broken.local_addr(), healthy.local_addr()];
    let (_proxy, address) = proxy(&one_route(&endpoints, &[], retry)).await;
    for _ in 0..10 {
        assert_eq!(get(&h1(), address, "/", &[]).await.status, StatusCode::OK);
    }
    // Every retry avoided the endpoint that had just failed.
    assert_eq!(healthy.requests_served(), 10);
    assert!(broken.requests_served() <= 10);
}

/// A hash balancer sends a key to the same endpoint every time: only the endpoint the first
/// try named (with the access log off, nothing else asks for it) keeps the retry off it.
#[tokio::test]
async fn a_retry_avoids_the_endpoint_a_keyed_request_just_failed_on() {
    let broken = failing("app").await;
    let healthy = upstream("app").await;
    let retry = "        retry: {attempts: 2, retry_on: [gateway-error]}\n";
    let endpoints = [broken.local_addr(), healthy.local_addr()];
    let config = one_route(
        &endpoints,
        &["balancer: hash", "hash: { key: { header: x-user } }"],
        retry,
    );
    assert!(config.starts_with("access_log: \"off\""));
    let (_proxy, address) = proxy(&config).await;
    for user in 0..20 {
        let user = user.to_string();
        let answer = get(&h1(), address, "/", &[("x-user", &user)]).await;
        assert_eq!(answer.status, StatusCode::OK, "user {user}");
    }
    // Some keys hash to the broken endpoint; each of their retries went to the other one.
    assert!(broken.requests_served() > 0);
    assert_eq!(healthy.requests_served(), 20);
}

#[tokio::test]
async fn the_budget_holds_a_failing_upstream_to_its_share_of_retries() {
    let failing = failing("app").await;
    // Up to 3 tries each, but retries may add only 20% (and no floor).
    let retry = "        retry:\n          attempts: 3\n          retry_on: [\"503\"]\n          backoff: {base: 1ms, max: 1ms}\n          budget: {ratio: 0.2, min_per_second: 0}\n";
    let (_proxy, address) = proxy(&one_route(&[failing.local_addr()], &[], retry)).await;
    let client = h1();
    for _ in 0..200 {
        assert_eq!(
            get(&client, address, "/", &[]).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let served = failing.requests_served();
    assert!(
        (200..=240).contains(&served),
        "the upstream saw {served} requests for 200 client requests"
    );
}

#[tokio::test]
async fn retries_with_some_failures_hide_them_from_clients() {
    let flaky = faulty(
        "app",
        Faults {
            error_rate: 0.2,
            ..Faults::default()
        },
    )
    .await;
    let retry =
        "        retry: {attempts: 3, retry_on: [\"503\"], backoff: {base: 1ms, max: 2ms}}\n";
    let (_proxy, address) = proxy(&one_route(&[flaky.local_addr()], &[], retry)).await;
    let client = h1();
    let mut errors = 0;
    for _ in 0..300 {
        if get(&client, address, "/", &[]).await.status != StatusCode::OK {
            errors += 1;
        }
    }
    // Three 20% failures in a row: 0.8% of requests, about 2 of 300.
    assert!(errors <= 12, "{errors} of 300 failed");
}

#[tokio::test]
async fn a_full_bulkhead_fails_fast_with_retry_after() {
    let app = upstream("app").await;
    let bulkhead =
        "        bulkhead: {max_concurrent: 2, max_queue: 0}\n        retry: {attempts: 2}\n";
    let (proxy, address) = proxy(&one_route(&[app.local_addr()], &[], bulkhead)).await;
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(&h1(), address, "/delay?ms=1500", &[]).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let refused = get(&h1(), address, "/", &[]).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.reason(), Some("bulkhead-full"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "refused at once"
    );
    // The admin API's view: both slots taken, and the route's retry budget.
    let routes = serde_json::to_value(proxy.current().route_status()).unwrap();
    assert_eq!(routes[0]["bulkhead"]["in_flight"], 2);
    assert_eq!(routes[0]["bulkhead"]["limit"], 2);
    assert!(routes[0]["retry_budget_available"].as_f64().unwrap() > 0.0);
    for answer in slow {
        assert_eq!(answer.await.unwrap().status, StatusCode::OK);
    }
    // The slots are free again.
    assert_eq!(get(&h1(), address, "/", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_queued_request_gets_a_slot_or_gives_up_at_the_queue_timeout() {
    let app = upstream("app").await;
    let bulkhead = "        bulkhead: {max_concurrent: 1, max_queue: 1, queue_timeout: 300ms}\n";
    let (_proxy, address) = proxy(&one_route(&[app.local_addr()], &[], bulkhead)).await;
    let holder = tokio::spawn(async move { get(&h1(), address, "/delay?ms=1500", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let timed_out = get(&h1(), address, "/", &[]).await;
    assert_eq!(timed_out.reason(), Some("queue-timeout"));
    assert_eq!(holder.await.unwrap().status, StatusCode::OK);

    // A short wait in the queue ends with the slot.
    let holder = tokio::spawn(async move { get(&h1(), address, "/delay?ms=100", &[]).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(get(&h1(), address, "/", &[]).await.status, StatusCode::OK);
    assert_eq!(holder.await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_cut_off_by_its_breaker() {
    let broken = failing("app").await;
    let healthy = upstream("app").await;
    let breaker = [
        "circuit_breaker:",
        "  window_calls: 4",
        "  minimum_calls: 4",
        "  failure_rate: 0.5",
        "  open_duration: 30s",
        "  failure_on: [5xx]",
    ];
    let endpoints = [broken.local_addr(), healthy.local_addr()];
    let (proxy, address) = proxy(&one_cluster(&endpoints, &breaker, &[])).await;
    let client = h1();
    let mut failures = 0;
    for _ in 0..40 {
        if get(&client, address, "/", &[]).await.status != StatusCode::OK {
            failures += 1;
        }
    }
    // Four calls fill the window, all failed: the breaker opens and stays open.
    assert_eq!(broken.requests_served(), 4);
    assert_eq!(failures, 4);
    let status = serde_json::to_value(proxy.current().cluster_status()).unwrap();
    let states: Vec<&str> = status[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["breaker"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["open", "closed"]);
    let scrape = proxy
        .metrics()
        .encode(watertight_telemetry::Format::Prometheus);
    assert!(scrape.contains(&format!(
        "watertight_breaker_transitions_total{{cluster=\"app\",endpoint=\"{}\",to=\"open\"}} 1\n",
        broken.local_addr()
    )));
}

#[tokio::test]
async fn with_every_breaker_open_requests_fail_fast_then_a_trial_closes_it() {
    let app = failing("app").await;
    let breaker = [
        "circuit_breaker:",
        "  window_calls: 2",
        "  minimum_calls: 2",
        "  open_duration: 1s",
        "  jitter: 0",
        "  half_open_calls: 1",
    ];
    let (_proxy, address) = proxy(&one_cluster(&[app.local_addr()], &breaker, &[])).await;
    let client = h1();
    for _ in 0..2 {
        assert_eq!(get(&client, address, "/", &[]).await.status, 503);
    }
    let refused = get(&client, address, "/", &[]).await;
    assert_eq!(refused.reason(), Some("breaker-open"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        app.requests_served(),
        2,
        "refused without reaching the upstream"
    );

    // The upstream recovers; after the open period one trial goes through and closes it.
    app.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&client, address, "/", &[]).await.status, 200);
    for _ in 0..5 {
        assert_eq!(get(&client, address, "/", &[]).await.status, 200);
    }
    assert_eq!(app.requests_served(), 2 + 6);
}

#[tokio::test]
async fn a_failing_route_falls_back_to_its_fixed_answer_marked_degraded() {
    let dead = closed_port();
    let fallback = "        fallback:\n          response:\n            status: 200\n            headers: {content-type: text/plain}\n            body: \"catalog unavailable, showing nothing\"\n";
    let (_proxy, address) = proxy(&one_route(&[dead], &[], fallback)).await;
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "catalog unavailable, showing nothing");
    assert_eq!(
        answer.header("x-watertight-degraded"),
        Some("connect-refused")
    );
    assert_eq!(answer.header("content-type"), Some("text/plain"));
}

#[tokio::test]
async fn a_fallback_cluster_answers_first_and_only_for_the_listed_reasons() {
    let failing = failing("app").await;
    let backup = upstream("backup").await;
    let yaml = one_route(
        &[failing.local_addr()],
        &[],
        "        fallback: {on: [\"5xx\"], cluster: backup, response: {status: 503, body: last resort}}\n",
    ) + &backup_cluster(&backup);
    let (_proxy, address) = proxy(&yaml).await;

    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text().starts_with("ok backup"), "{}", answer.text());
    assert_eq!(answer.header("x-watertight-degraded"), Some("5xx"));
    assert_eq!(backup.requests_served(), 1);

    // A request with a body cannot be sent twice: the fixed answer stands in.
    let answer = post(address, "order").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.text(), "last resort");
    assert_eq!(backup.requests_served(), 1);

    // 4xx is not a listed reason: the upstream's answer goes through untouched.
    failing.set_faults(Faults {
        error_rate: 1.0,
        error_status: 404,
        ..Faults::default()
    });
    let answer = get(&h1(), address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.header("x-watertight-degraded"), None);
}

#[tokio::test]
async fn under_overload_sheddable_requests_go_first() {
    let app = upstream("app").await;
    let bulkhead = "        bulkhead: {max_concurrent: 1, max_queue: 1, queue_timeout: 5s, priority_header: x-priority}\n";
    let (_proxy, address) = proxy(&one_route(&[app.local_addr()], &[], bulkhead)).await;
    let holder = tokio::spawn(async move { get(&h1(), address, "/delay?ms=800", &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A sheddable request waits in the (one-place) queue…
    let sheddable =
        tokio::spawn(async move { get(&h1(), address, "/", &[("x-priority", "sheddable")]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // …until a critical one takes its place: the sheddable one is refused at once.
    let critical =
        tokio::spawn(async move { get(&h1(), address, "/", &[("x-priority", "critical")]).await });
    let shed = sheddable.await.unwrap();
    assert_eq!(shed.reason(), Some("bulkhead-full"));
    assert_eq!(critical.await.unwrap().status, StatusCode::OK);
    assert_eq!(holder.await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn time_spent_queueing_counts_against_the_route_deadline() {
    let app = upstream("app").await;
    let route = "        timeout: 500ms\n        bulkhead: {max_concurrent: 1, max_queue: 1, queue_timeout: 5s}\n";
    let (_proxy, address) = proxy(&one_route(&[app.local_addr()], &[], route)).await;
    let holder = tokio::spawn(async move { get(&h1(), address, "/delay?ms=400", &[]).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Queued ~250 ms behind the holder, then the holder's slot comes free with less than
    // the upstream's 400 ms left: the deadline passes during the try (504 upstream-timeout),
    // or before it starts (deadline-exceeded). Counted from the slot instead, it would have
    // had its full 500 ms and succeeded.
    let started = Instant::now();
    let late = get(&h1(), address, "/delay?ms=400", &[]).await;
    assert_eq!(late.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        matches!(
            late.reason(),
            Some("upstream-timeout" | "deadline-exceeded")
        ),
        "{:?}",
        late.reason()
    );
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(holder.await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn a_bodyless_post_is_not_sent_to_the_fallback_cluster_after_it_may_have_been_applied() {
    let hanging = resetting("app").await;
    let backup = upstream("backup").await;
    let yaml = one_route(
        &[hanging.local_addr()],
        &[],
        "        fallback: {cluster: backup}\n",
    ) + &backup_cluster(&backup);
    let (_proxy, address) = proxy(&yaml).await;
    let confirm = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{address}/orders/42/confirm"))
        .body(watertight_proxy::body::empty())
        .unwrap();
    let answer = send(&h1(), confirm).await;
    assert_eq!(answer.reason(), Some("upstream-reset"));
    assert_eq!(
        backup.requests_served(),
        0,
        "the write is not applied twice"
    );
    // A GET is safe to repeat: the backup answers it.
    assert_eq!(get(&h1(), address, "/", &[]).await.status, StatusCode::OK);
    assert_eq!(backup.requests_served(), 1);
}

#[tokio::test]
async fn an_upstream_asking_to_wait_past_the_deadline_is_not_waited_for() {
    let retry = "        timeout: 2s\n        retry: {attempts: 3, retry_on: [\"503\"]}\n";
    // A raw upstream answering 503 with an absurd Retry-After.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for _ in 0..10 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 18446744073709551615\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let (_raw_proxy, raw_address) = proxy(&one_route(&[raw], &[], retry)).await;
    let started = Instant::now();
    let answer = get(&h1(), raw_address, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once, no panic, no wait"
    );
    // Nothing panicked: the proxy still serves.
    assert_eq!(get(&h1(), raw_address, "/", &[]).await.status, 503);
}

#[tokio::test]
async fn a_reload_keeps_the_bulkhead_and_the_requests_it_holds() {
    let app = upstream("app").await;
    let bulkhead = "        bulkhead: {max_concurrent: 1, max_queue: 0}\n";
    let yaml = one_route(&[app.local_addr()], &[], bulkhead);
    let (proxy, address) = proxy(&yaml).await;
    let holder = tokio::spawn(async move { get(&h1(), address, "/delay?ms=800", &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // An unrelated change: the route's bulkhead is the same one, still full.
    let changed = yaml.replace(
        "access_log: \"off\"",
        "access_log: \"off\"\ndrain_timeout: 5s",
    );
    proxy
        .reload(watertight_config::load_str(&changed, "test.yaml").unwrap())
        .await
        .unwrap();
    assert_eq!(
        get(&h1(), address, "/", &[]).await.reason(),
        Some("bulkhead-full")
    );
    assert_eq!(holder.await.unwrap().status, StatusCode::OK);
    // A changed bulkhead is a new one.
    let wider = changed.replace("max_concurrent: 1", "max_concurrent: 2");
    proxy
        .reload(watertight_config::load_str(&wider, "test.yaml").unwrap())
        .await
        .unwrap();
    let routes = serde_json::to_value(proxy.current().route_status()).unwrap();
    assert_eq!(routes[0]["bulkhead"]["limit"], 2);
}

#[tokio::test]
async fn outlier_detection_ejects_an_endpoint_that_keeps_failing() {
    let broken = failing("app").await;
    let healthy = upstream("app").await;
    let outlier = [
        "outlier_detection:",
        "  consecutive_failures: 3",
        "  base_ejection_time: 30s",
        "  max_ejection_percent: 50",
    ];
    let endpoints = [broken.local_addr(), healthy.local_addr()];
    let (proxy, address) = proxy(&one_cluster(&endpoints, &outlier, &[])).await;
    let client = h1();
    let mut failures = 0;
    for _ in 0..20 {
        if get(&client, address, "/", &[]).await.status != StatusCode::OK {
            failures += 1;
        }
    }
    assert_eq!(
        broken.requests_served(),
        3,
        "ejected after three failures in a row"
    );
    assert_eq!(failures, 3);
    let status = serde_json::to_value(proxy.current().cluster_status()).unwrap();
    assert_eq!(status[0]["endpoints"][0]["state"], "unhealthy");
    assert_eq!(status[0]["endpoints"][0]["ejected"], true);
    assert_eq!(
        status[0]["endpoints"][0]["reason"],
        "ejected by outlier detection"
    );
    let scrape = proxy
        .metrics()
        .encode(watertight_telemetry::Format::Prometheus);
    assert!(scrape.contains(&format!(
        "watertight_outlier_ejections_total{{cluster=\"app\",endpoint=\"{}\"}} 1\n",
        broken.local_addr()
    )));

    // Never more than half the cluster: once the healthy one fails too, it stays in.
    healthy.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..10 {
        get(&client, address, "/", &[]).await;
    }
    assert_eq!(healthy.requests_served(), 17 + 10);
}

#[tokio::test]
async fn adaptive_concurrency_sheds_past_its_limit() {
    let app = upstream("app").await;
    let adaptive = [
        "adaptive_concurrency:",
        "  initial_limit: 2",
        "  min_limit: 1",
        "  max_limit: 2",
    ];
    let (proxy, address) = proxy(&one_cluster(&[app.local_addr()], &adaptive, &[])).await;
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(&h1(), address, "/delay?ms=800", &[]).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shed = get(&h1(), address, "/", &[]).await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.reason(), Some("shed"));
    assert_eq!(shed.header("retry-after"), Some("1"));
    let scrape = proxy
        .metrics()
        .encode(watertight_telemetry::Format::Prometheus);
    assert!(
        scrape.contains("watertight_adaptive_concurrency_in_flight{cluster=\"app\"} 2"),
        "{scrape}"
    );
    for answer in slow {
        assert_eq!(answer.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(get(&h1(), address, "/", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_full_endpoint_is_passed_over_and_all_full_fails_fast() {
    let first = upstream_replica("app", 0).await;
    let second = upstream_replica("app", 1).await;
    let endpoints = [first.local_addr(), second.local_addr()];
    let limit = ["endpoint_bulkhead: {max_concurrent: 1}"];
    let (_proxy, address) = proxy(&one_cluster(&endpoints, &limit, &[])).await;
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(&h1(), address, "/delay?ms=800", &[]).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One slow request on each endpoint: both full.
    assert_eq!(first.requests_served(), 1);
    assert_eq!(second.requests_served(), 1);
    let refused = get(&h1(), address, "/", &[]).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.reason(), Some("bulkhead-full"));
    for answer in slow {
        assert_eq!(answer.await.unwrap().status, StatusCode::OK);
    }
    // With one endpoint busy, requests go to the other whatever the round robin says.
    let busy = tokio::spawn(async move { get(&h1(), address, "/delay?ms=800", &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..4 {
        assert_eq!(get(&h1(), address, "/", &[]).await.status, StatusCode::OK);
    }
    assert_eq!(busy.await.unwrap().status, StatusCode::OK);
    assert_eq!(
        first.requests_served() + second.requests_served(),
        2 + 1 + 4
    );
}

#[tokio::test]
async fn with_every_endpoint_full_a_request_queues_for_the_first_place_freed() {
    let only = upstream("app").await;
    let limit = ["endpoint_bulkhead: {max_concurrent: 1, max_queue: 1, queue_timeout: 2s}"];
    let (proxy, address) = proxy(&one_cluster(&[only.local_addr()], &limit, &[])).await;
    let busy = tokio::spawn(async move { get(&h1(), address, "/delay?ms=300", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Waits in the queue and is served when the slow request ends.
    let queued = tokio::spawn(async move { get(&h1(), address, "/", &[]).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The queue holds one: the next is refused at once.
    let refused = get(&h1(), address, "/", &[]).await;
    assert_eq!(refused.reason(), Some("bulkhead-full"));
    assert_eq!(busy.await.unwrap().status, StatusCode::OK);
    assert_eq!(queued.await.unwrap().status, StatusCode::OK);
    assert_eq!(only.requests_served(), 2);
    assert_eq!(
        proxy.current().cluster_status()[0].endpoints[0].in_flight,
        0
    );
}

#[tokio::test]
async fn a_request_queued_for_a_full_endpoint_gives_up_at_the_queue_timeout() {
    let only = upstream("app").await;
    let limit = ["endpoint_bulkhead: {max_concurrent: 1, max_queue: 4, queue_timeout: 100ms}"];
    let (_proxy, address) = proxy(&one_cluster(&[only.local_addr()], &limit, &[])).await;
    let busy = tokio::spawn(async move { get(&h1(), address, "/delay?ms=600", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let timed_out = get(&h1(), address, "/", &[]).await;
    assert_eq!(timed_out.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(timed_out.reason(), Some("queue-timeout"));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "gave up at the queue timeout"
    );
    assert_eq!(busy.await.unwrap().status, StatusCode::OK);
    assert_eq!(only.requests_served(), 1);
}

#[tokio::test]
async fn a_cluster_bulkhead_is_shared_by_every_route_to_the_cluster() {
    let app = upstream("app").await;
    let yaml = format!(
        r#"
access_log: "off"
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - {{name: reads, match: {{methods: [GET]}}, cluster: app}}
      - {{name: writes, cluster: app}}
clusters:
  - name: app
    bulkhead: {{max_concurrent: 1, max_queue: 0}}
    endpoints: [{{address: "{}"}}]
"#,
        app.local_addr()
    );
    let (proxy, address) = proxy(&yaml).await;
    let reading = tokio::spawn(async move { get(&h1(), address, "/delay?ms=800", &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The other route to the same cluster finds its bulkhead full.
    let write = post(address, "x").await;
    assert_eq!(write.reason(), Some("bulkhead-full"));
    let scrape = proxy
        .metrics()
        .encode(watertight_telemetry::Format::Prometheus);
    assert!(
        scrape.contains("watertight_cluster_bulkhead_in_flight{cluster=\"app\"} 1"),
        "{scrape}"
    );
    assert_eq!(reading.await.unwrap().status, StatusCode::OK);
    assert_eq!(post(address, "x").await.status, StatusCode::OK);
}
