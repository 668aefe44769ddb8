//! The fault knobs change how a sample service answers; the `/fault` endpoints never change.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::{get, post, send, start};
use watertight_demo::Faults;

#[tokio::test]
async fn certain_error_rate_fails_every_request_but_not_the_fault_endpoint() {
    let service = start("recommendations").await;
    service.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for path in ["/", "/echo", "/bytes?n=10", "/status/200"] {
        let reply = get(service.local_addr(), path).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(reply.header("x-demo-service"), "recommendations", "{path}");
    }
    let knobs = get(service.local_addr(), "/fault").await;
    assert_eq!(knobs.status, StatusCode::OK);
    assert_eq!(knobs.json()["error_rate"], 1.0);
}

#[tokio::test]
async fn injected_errors_use_the_configured_status() {
    let service = start("recommendations").await;
    service.set_faults(Faults {
        error_rate: 1.0,
        error_status: 500,
        ..Faults::default()
    });
    assert_eq!(
        get(service.local_addr(), "/").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn certain_reset_rate_aborts_the_connection_without_a_response() {
    let service = start("recommendations").await;
    service.set_faults(Faults {
        reset_rate: 1.0,
        ..Faults::default()
    });
    let request = Request::get("/").body(Full::<Bytes>::default()).unwrap();
    let error = match send(service.local_addr(), request).await {
        Ok(reply) => panic!("expected a connection reset, got status {}", reply.status),
        Err(error) => error,
    };
    assert_eq!(
        io_error_kind(&error),
        Some(std::io::ErrorKind::ConnectionReset),
        "{error:?}"
    );
    // The control endpoint still answers, and turning the knob off heals the service.
    assert_eq!(
        post(service.local_addr(), "/fault/reset", "").await.status,
        StatusCode::OK
    );
    assert_eq!(get(service.local_addr(), "/").await.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn latency_delays_every_request_except_the_fault_endpoint() {
    let service = start("recommendations").await;
    service.set_faults(Faults {
        latency_ms: 5_000,
        ..Faults::default()
    });

    let started = tokio::time::Instant::now();
    assert_eq!(
        get(service.local_addr(), "/fault").await.status,
        StatusCode::OK
    );
    assert_eq!(started.elapsed(), Duration::ZERO);

    let reply = get(service.local_addr(), "/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn post_fault_changes_only_the_given_knobs() {
    let service = start("recommendations").await;
    let reply = post(service.local_addr(), "/fault", r#"{"latency_ms":200}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = post(service.local_addr(), "/fault", r#"{"error_rate":0.5}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    let expected = Faults {
        latency_ms: 200,
        error_rate: 0.5,
        ..Faults::default()
    };
    assert_eq!(service.faults(), expected);
    let shown: Faults =
        serde_json::from_value(get(service.local_addr(), "/fault").await.json()).unwrap();
    assert_eq!(shown, expected);
}

#[tokio::test]
async fn post_fault_rejects_invalid_knobs_and_keeps_the_old_ones() {
    let service = start("recommendations").await;
    for body in [
        r#"{"error_rate":1.5}"#,
        r#"{"latency":5}"#,
        "not json",
        r#"{"error_status":200}"#,
    ] {
        let reply = post(service.local_addr(), "/fault", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            String::from_utf8_lossy(&reply.body).contains("POST /fault"),
            "{body}"
        );
    }
    assert_eq!(service.faults(), Faults::default());
}

#[tokio::test]
async fn post_fault_reset_restores_the_defaults() {
    let service = start("recommendations").await;
    service.set_faults(Faults {
        latency_ms: 10,
        error_rate: 0.3,
        error_status: 502,
        reset_rate: 0.1,
    });
    let reply = post(service.local_addr(), "/fault/reset", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(service.faults(), Faults::default());
}

#[tokio::test]
async fn fault_endpoints_are_not_counted_as_served_requests() {
    let service = start("recommendations").await;
    get(service.local_addr(), "/fault").await;
    post(service.local_addr(), "/fault", "{}").await;
    assert_eq!(service.requests_served(), 0);
    get(service.local_addr(), "/").await;
    assert_eq!(service.requests_served(), 1);
}

#[tokio::test]
async fn get_on_fault_reset_is_refused() {
    let service = start("recommendations").await;
    let request = Request::get("/fault/reset")
        .body(Full::<Bytes>::default())
        .unwrap();
    let reply = send(service.local_addr(), request).await.unwrap();
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = e.source();
    }
    None
}
