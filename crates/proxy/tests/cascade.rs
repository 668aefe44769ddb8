//! The cascade scenario: one route's upstream turns 5 s slow under heavy load. With a
//! bulkhead on that route, its excess requests fail fast and the other route keeps answering
//! every request quickly.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use support::*;
use watertight_demo::Faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_dependency_behind_a_bulkhead_cannot_take_the_other_route_down() {
    let slow = upstream("slow").await;
    slow.set_faults(Faults {
        latency_ms: 5_000,
        ..Faults::default()
    });
    let fast = upstream("fast").await;
    let yaml = format!(
        r#"
access_log: "off"
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: slow
        match: {{prefix: /slow/}}
        cluster: slow
        timeout: 10s
        bulkhead: {{max_concurrent: 10, max_queue: 0}}
      - name: fast
        match: {{prefix: /fast/}}
        cluster: fast
clusters:
  - name: slow
    endpoints: [{{address: "{}"}}]
  - name: fast
    endpoints: [{{address: "{}"}}]
"#,
        slow.local_addr(),
        fast.local_addr()
    );
    let (_proxy, address) = proxy(&yaml).await;
    let load_for = Duration::from_secs(2);

    // 100 clients keep asking the slow route; every answer is noted.
    let started = Instant::now();
    let slow_answers = Arc::new(Mutex::new(Vec::new()));
    let slow_clients: Vec<_> = (0..100)
        .map(|_| {
            let slow_answers = slow_answers.clone();
            tokio::spawn(async move {
                let client = h1();
                for _ in 0..1_000 {
                    if started.elapsed() >= load_for {
                        break;
                    }
                    let sent = Instant::now();
                    let answer = get(&client, address, "/slow/", &[]).await;
                    let reason = answer.reason().map(str::to_owned);
                    slow_answers
                        .lock()
                        .unwrap()
                        .push((answer.status, reason, sent.elapsed()));
                }
            })
        })
        .collect();
    // Meanwhile 10 clients use the fast route.
    let fast_clients: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(async move {
                let client = h1();
                let mut answers = Vec::new();
                while started.elapsed() < load_for && answers.len() < 10_000 {
                    let sent = Instant::now();
                    let status = get(&client, address, "/fast/", &[]).await.status;
                    answers.push((status, sent.elapsed()));
                }
                answers
            })
        })
        .collect();

    let mut fast_answers = Vec::new();
    for client in fast_clients {
        fast_answers.extend(client.await.unwrap());
    }
    assert!(
        fast_answers.len() > 100,
        "{} fast answers",
        fast_answers.len()
    );
    let failed = fast_answers
        .iter()
        .filter(|(s, _)| *s != StatusCode::OK)
        .count();
    assert_eq!(failed, 0, "every request on the healthy route succeeds");
    let mut latencies: Vec<Duration> = fast_answers.iter().map(|(_, l)| *l).collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(p99 < Duration::from_secs(1), "fast route p99 {p99:?}");

    // The slow upstream only ever held the bulkhead's ten; the rest was refused at once.
    assert_eq!(slow.requests_served(), 10);
    let answers = slow_answers.lock().unwrap().clone();
    for (status, reason, _) in &answers {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reason.as_deref(), Some("bulkhead-full"));
    }
    let mut refused: Vec<Duration> = answers.iter().map(|(_, _, took)| *took).collect();
    assert!(refused.len() > 100, "{} refusals", refused.len());
    refused.sort();
    let slowest = refused[refused.len() * 99 / 100];
    assert!(slowest < Duration::from_secs(1), "refusal p99 {slowest:?}");
    // The ten admitted requests are still waiting on the slow upstream: stop them.
    for client in slow_clients {
        client.abort();
    }
}
