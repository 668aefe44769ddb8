//! Traces through two proxies (edge → sidecar → upstream) into a real OTLP receiver: the
//! parent/child chain across both hops, propagation formats, and tail sampling.

mod support;

use std::net::SocketAddr;

use support::otlp::{OtlpReceiver, Received};
use support::*;

/// A proxy in front of `upstream`, reporting spans as `service` to `receiver`.
fn traced(upstream: SocketAddr, service: &str, receiver: SocketAddr, tracing: &str) -> String {
    format!(
        "tracing:\n  service_name: {service}\n{tracing}  otlp:\n    endpoint: http://{receiver}\n    batch_interval: 50ms\n{}",
        one_cluster(&[upstream], &[], &[])
    )
}

/// The spans of one trace.
fn of_trace<'a>(spans: &'a [Received], trace_id: &[u8]) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|s| s.span.trace_id == trace_id)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_request_through_two_proxies_is_one_trace_with_intact_parent_links() {
    let receiver = OtlpReceiver::start().await;
    let app = upstream("app").await;
    let all = "  head_ratio: 1.0\n";
    let (_sidecar, sidecar) =
        proxy(&traced(app.local_addr(), "sidecar", receiver.address, all)).await;
    let (edge_proxy, edge) = proxy(&traced(sidecar, "edge", receiver.address, all)).await;

    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let answer = get(
        &h1(),
        edge,
        "/echo",
        &[(
            "traceparent",
            &format!("00-{caller_trace}-{caller_span}-01"),
        )],
    )
    .await;
    assert_eq!(answer.status, 200);
    let upstream_saw = echoed(&answer, "traceparent").expect("the upstream got a traceparent");

    let spans = receiver.wait_for(|spans| spans.len() >= 4).await;
    let trace: Vec<&Received> = of_trace(&spans, &hex_bytes(caller_trace));
    assert_eq!(trace.len(), 4, "{spans:#?}");
    let find = |service: &str, server: bool| {
        *trace
            .iter()
            .find(|s| s.service == service && s.is_server() == server)
            .unwrap_or_else(|| panic!("no {service} server={server} span"))
    };
    let (edge_server, edge_client) = (find("edge", true), find("edge", false));
    let (side_server, side_client) = (find("sidecar", true), find("sidecar", false));
    assert!(edge_client.is_client() && side_client.is_client());
    assert_eq!(hex(&edge_server.span.parent_span_id), caller_span);
    assert_eq!(edge_client.span.parent_span_id, edge_server.span.span_id);
    assert_eq!(side_server.span.parent_span_id, edge_client.span.span_id);
    assert_eq!(side_client.span.parent_span_id, side_server.span.span_id);
    assert_eq!(
        upstream_saw,
        format!("00-{caller_trace}-{}-01", hex(&side_client.span.span_id))
    );
    assert_eq!(edge_server.attribute("http.route").as_deref(), Some("all"));
    assert_eq!(
        edge_server
            .attribute("http.response.status_code")
            .as_deref(),
        Some("200")
    );
    assert_eq!(
        edge_client.attribute("server.address"),
        Some(sidecar.to_string())
    );
    // The kept trace is the exemplar of its latency bucket.
    let scrape = edge_proxy
        .metrics()
        .encode(watertight_telemetry::Format::OpenMetrics);
    assert!(
        scrape.contains(&format!("# {{trace_id=\"{caller_trace}\"}}")),
        "{scrape}"
    );
    assert!(edge_server.span.start_time_unix_nano <= edge_client.span.start_time_unix_nano);
    assert!(edge_client.span.end_time_unix_nano <= edge_server.span.end_time_unix_nano);
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn b3_callers_are_joined_and_b3_is_emitted_when_configured() {
    let receiver = OtlpReceiver::start().await;
    let app = upstream("app").await;
    let tracing = "  head_ratio: 0.0\n  propagation: [b3multi]\n";
    let (_proxy, address) =
        proxy(&traced(app.local_addr(), "edge", receiver.address, tracing)).await;
    let trace = "463ac35c9f6413ad48485a3953bb6124";
    let answer = get(
        &h1(),
        address,
        "/echo",
        &[("b3", &format!("{trace}-a2fb4a1d1a96d312-1"))],
    )
    .await;
    assert_eq!(echoed(&answer, "x-b3-traceid").as_deref(), Some(trace));
    assert_eq!(echoed(&answer, "x-b3-sampled").as_deref(), Some("1"));
    assert_eq!(
        echoed(&answer, "x-b3-parentspanid")
            .as_deref()
            .map(str::len),
        Some(16)
    );
    assert_eq!(
        echoed(&answer, "traceparent"),
        None,
        "only the configured format is sent"
    );
    assert_eq!(
        echoed(&answer, "b3"),
        None,
        "the caller's header is replaced"
    );
    let spans = receiver.wait_for(|spans| spans.len() >= 2).await;
    assert!(spans.iter().all(|s| hex(&s.span.trace_id) == trace));
}

#[tokio::test]
async fn tail_sampling_keeps_every_failed_and_slow_request_and_a_share_of_the_rest() {
    let receiver = OtlpReceiver::start().await;
    let app = upstream("app").await;
    let tracing = "  head_ratio: 0.2\n  tail:\n    latency_threshold: 150ms\n";
    let (_sidecar, sidecar) = proxy(&traced(
        app.local_addr(),
        "sidecar",
        receiver.address,
        tracing,
    ))
    .await;
    let (_edge, edge) = proxy(&traced(sidecar, "edge", receiver.address, tracing)).await;

    let client = h1();
    let mut traceparents = Vec::new();
    let send = async |path: &str| {
        let answer = get(&client, edge, path, &[]).await;
        let sent = (path == "/echo")
            .then(|| echoed(&answer, "traceparent"))
            .flatten();
        (answer.status, sent)
    };
    for _ in 0..10 {
        let (status, _) = send("/status/503").await;
        assert_eq!(status, 503);
    }
    for _ in 0..5 {
        send("/delay?ms=250").await;
    }
    for _ in 0..200 {
        let (status, sent) = send("/echo").await;
        assert_eq!(status, 200);
        traceparents.push(sent.expect("propagated even when not sampled"));
    }
    let edge_servers = |spans: &[Received], filter: &dyn Fn(&Received) -> bool| {
        spans
            .iter()
            .filter(|s| s.service == "edge" && s.is_server() && filter(s))
            .count()
    };
    let is_status = |code: &'static str| {
        move |s: &Received| s.attribute("http.response.status_code").as_deref() == Some(code)
    };
    // Of the 200 fast successes, the head-sampled share (20%, judged on the trace id by
    // every hop alike) is kept: as many as went upstream flagged sampled.
    let flagged = traceparents.iter().filter(|t| t.ends_with("-01")).count();
    assert!((15..=70).contains(&flagged), "{flagged} of 200 sampled");
    let is_echo = |s: &Received| s.attribute("url.path").as_deref() == Some("/echo");
    let spans = receiver
        .wait_for(|spans| {
            edge_servers(spans, &is_status("503")) == 10
                && edge_servers(spans, &|s| {
                    s.attribute("url.path").as_deref() == Some("/delay")
                }) == 5
                && edge_servers(spans, &is_echo) >= flagged
        })
        .await;
    assert_eq!(edge_servers(&spans, &is_echo), flagged);
    // The sidecar saw the same failures and kept them too.
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.service == "sidecar" && s.is_server() && is_status("503")(s))
            .count(),
        10
    );
}

#[tokio::test]
async fn otlp_http_posts_protobuf_to_v1_traces() {
    use http_body_util::BodyExt;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    // A minimal OTLP/HTTP receiver: records the path, content type and decoded spans.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = listener.local_addr().unwrap();
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let sender = sender.clone();
            let service =
                hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let sender = sender.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        let content_type = request.headers()[http::header::CONTENT_TYPE].clone();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let decoded = ExportTraceServiceRequest::decode(body).unwrap();
                        let _ = sender.send((path, content_type, decoded));
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::new()),
                        ))
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });

    let app = upstream("app").await;
    let yaml = format!(
        "tracing:\n  head_ratio: 1.0\n  otlp:\n    endpoint: http://{receiver}/\n    protocol: http\n    batch_interval: 50ms\n{}",
        one_cluster(&[app.local_addr()], &[], &[])
    );
    let (_proxy, address) = proxy(&yaml).await;
    assert_eq!(get(&h1(), address, "/", &[]).await.status, 200);
    let (path, content_type, request) =
        tokio::time::timeout(std::time::Duration::from_secs(20), received.recv())
            .await
            .expect("an export within 20 s")
            .unwrap();
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/x-protobuf");
    let spans: Vec<_> = request
        .resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
        .collect();
    assert_eq!(spans.len(), 2, "a server and a client span: {spans:#?}");
}

#[tokio::test]
async fn retries_are_sibling_client_spans_under_the_server_span() {
    let receiver = OtlpReceiver::start().await;
    let app = upstream("app").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = traced(
        app.local_addr(),
        "edge",
        receiver.address,
        "  head_ratio: 1.0\n",
    )
    .replace(
        &format!("      - address: \"{}\"\n", app.local_addr()),
        &format!(
            "      - address: \"{dead}\"\n      - address: \"{}\"\n",
            app.local_addr()
        ),
    )
    .replace(
        "        cluster: app\n",
        "        cluster: app\n        retry: {attempts: 2, retry_on: [connect-failure]}\n",
    );
    let (_proxy, address) = proxy(&yaml).await;
    // Round robin starts at the dead endpoint: the first request needs its retry.
    assert_eq!(get(&h1(), address, "/", &[]).await.status, 200);

    let spans = receiver.wait_for(|spans| spans.len() >= 3).await;
    let server = spans.iter().find(|s| s.is_server()).unwrap();
    let clients: Vec<&Received> = spans.iter().filter(|s| s.is_client()).collect();
    assert_eq!(clients.len(), 2, "{spans:#?}");
    for client in &clients {
        assert_eq!(client.span.parent_span_id, server.span.span_id, "siblings");
    }
    let failed = clients
        .iter()
        .find(|c| c.attribute("server.address") == Some(dead.to_string()))
        .expect("an attempt at the dead endpoint");
    assert_eq!(
        failed.span.status.as_ref().unwrap().code,
        2,
        "marked as an error"
    );
    let served = clients
        .iter()
        .find(|c| c.attribute("server.address") == Some(app.local_addr().to_string()))
        .expect("an attempt at the live endpoint");
    assert_eq!(
        served.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(failed.span.end_time_unix_nano <= served.span.start_time_unix_nano);
    let retry = server
        .span
        .events
        .iter()
        .find(|e| e.name == "retry")
        .expect("a retry event on the server span");
    assert!(
        retry
            .attributes
            .iter()
            .any(|kv| kv.key == "watertight.retry_reason")
    );
}

#[tokio::test]
async fn a_request_served_by_a_standby_group_carries_a_failover_event() {
    let receiver = OtlpReceiver::start().await;
    let standby = upstream("app").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = traced(standby.local_addr(), "edge", receiver.address, "  head_ratio: 1.0\n")
        .replace(
            &format!("      - address: \"{}\"\n", standby.local_addr()),
            &format!(
                "      - {{ address: \"{dead}\", priority: 0 }}\n      - {{ address: \"{}\", priority: 1 }}\n",
                standby.local_addr()
            ),
        )
        .replace(
            "  - name: app\n",
            "  - name: app\n    health_check: { interval: 50ms, timeout: 200ms, rise: 1, fall: 1, tcp: {} }\n",
        );
    let (proxy, address) = proxy(&yaml).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while proxy.current().cluster_status()[0].active_priority != Some(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "fails over to the standby"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(get(&h1(), address, "/", &[]).await.status, 200);
    let spans = receiver
        .wait_for(|spans| spans.iter().any(|s| s.is_server()))
        .await;
    let server = spans.iter().find(|s| s.is_server()).unwrap();
    let event = server
        .span
        .events
        .iter()
        .find(|e| e.name == "failover.standby")
        .expect("a failover event on the server span");
    assert!(
        event
            .attributes
            .iter()
            .any(|kv| kv.key == "watertight.priority")
    );
}

#[tokio::test]
async fn cache_decisions_are_span_events() {
    use support::origin::{Origin, Reply};
    let receiver = OtlpReceiver::start().await;
    let origin = Origin::start(Reply::ok("x", &[("cache-control", "max-age=60")])).await;
    let yaml = traced(
        origin.address,
        "edge",
        receiver.address,
        "  head_ratio: 1.0\n",
    )
    .replace(
        "        cluster: app\n",
        "        cluster: app\n        cache: {}\n",
    );
    let (_proxy, address) = proxy(&yaml).await;
    assert_eq!(get(&h1(), address, "/", &[]).await.status, 200);
    assert_eq!(get(&h1(), address, "/", &[]).await.status, 200);
    let spans = receiver
        .wait_for(|spans| spans.iter().filter(|s| s.is_server()).count() >= 2)
        .await;
    let decisions: Vec<String> = spans
        .iter()
        .filter(|s| s.is_server())
        .flat_map(|s| s.span.events.iter().filter(|e| e.name == "cache"))
        .flat_map(|e| e.attributes.iter())
        .filter(|kv| kv.key == "watertight.cache_status")
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                Some(s.clone())
            }
            _ => None,
        })
        .collect();
    assert!(
        decisions.iter().any(|d| d.contains("fwd=uri-miss")),
        "{decisions:?}"
    );
    assert!(
        decisions.iter().any(|d| d.contains("; hit")),
        "{decisions:?}"
    );
}
