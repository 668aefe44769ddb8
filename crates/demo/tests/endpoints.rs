//! The HTTP behaviour of each endpoint of a sample service, over real sockets.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use support::{get, h1, post, send, start};

#[tokio::test]
async fn root_answers_a_tiny_body_with_length_and_identity_headers() {
    let service =
        watertight_demo::SampleService::start("catalog", 2, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let reply = get(service.local_addr(), "/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"ok catalog 2\n");
    assert_eq!(reply.header("content-length"), "13");
    assert_eq!(reply.header("x-demo-service"), "catalog");
    assert_eq!(reply.header("x-demo-replica"), "2");
}

#[tokio::test]
async fn keep_alive_connection_serves_many_requests_and_counts_them() {
    let service = start("catalog").await;
    let (mut sender, _conn) = h1(service.local_addr()).await;
    for _ in 0..5 {
        let response = sender
            .send_request(Request::get("/").body(Full::<Bytes>::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(service.requests_served(), 5);
}

#[tokio::test]
async fn echo_describes_the_request_with_headers_in_received_order() {
    let service = start("checkout").await;
    let request = Request::put("/echo/orders/7?dry_run=1")
        .header("x-first", "1")
        .header("x-dup", "a")
        .header("x-dup", "b")
        .header("x-last", "z")
        .body(Full::new(Bytes::from_static(b"twelve bytes")))
        .unwrap();
    let reply = send(service.local_addr(), request).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let echo = reply.json();
    assert_eq!(echo["service"], "checkout");
    assert_eq!(echo["replica"], 0);
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/echo/orders/7");
    assert_eq!(echo["query"], "dry_run=1");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["body_bytes"], 12);
    let custom: Vec<(String, String)> = echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_owned(),
                h[1].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(name, _)| name.starts_with("x-"))
        .collect();
    let expected = [
        ("x-first", "1"),
        ("x-dup", "a"),
        ("x-dup", "b"),
        ("x-last", "z"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(custom, expected);
}

#[tokio::test]
async fn bytes_streams_exactly_n_pattern_bytes() {
    const N: u64 = 50 * 1024 * 1024 + 3; // not a multiple of the chunk or the pattern period
    let service = start("catalog").await;
    let (mut sender, _conn) = h1(service.local_addr()).await;
    let response = sender
        .send_request(
            Request::get(format!("/bytes?n={N}&chunk=100000"))
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], N.to_string().as_str());
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            for (i, byte) in data.iter().enumerate() {
                let expected = b"0123456789abcdef"[((received + i as u64) % 16) as usize];
                assert_eq!(
                    *byte,
                    expected,
                    "byte {} breaks the pattern",
                    received + i as u64
                );
            }
            received += data.len() as u64;
        }
    }
    assert_eq!(received, N);
}

#[tokio::test]
async fn bytes_without_a_count_is_a_bad_request_that_shows_an_example() {
    let service = start("catalog").await;
    let reply = get(service.local_addr(), "/bytes").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&reply.body).contains("/bytes?n="));
    assert_eq!(
        get(service.local_addr(), "/bytes?n=10&chunk=0")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn upload_counts_and_hashes_a_streamed_body() {
    let service = start("checkout").await;
    // 10 MiB in 160 chunks, sent chunked (no content-length).
    let chunk = Bytes::from((0..65_536u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let chunks =
        (0..160).map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone())));
    let (mut sender, _conn) = h1(service.local_addr()).await;
    let request = Request::post("/upload")
        .body(StreamBody::new(stream::iter(chunks)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();

    let mut hash: u64 = 0xcbf29ce484222325;
    for _ in 0..160 {
        for i in 0..65_536u32 {
            hash = (hash ^ u64::from((i % 251) as u8)).wrapping_mul(0x100000001b3);
        }
    }
    assert_eq!(reply["bytes"], 160 * 65_536);
    assert_eq!(reply["fnv1a64"], format!("{hash:016x}"));
}

#[tokio::test]
async fn upload_refuses_get() {
    let service = start("checkout").await;
    let reply = get(service.local_addr(), "/upload").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), "POST, PUT");
}

#[tokio::test(start_paused = true)]
async fn delay_answers_after_the_requested_time() {
    let service = start("recommendations").await;
    let started = tokio::time::Instant::now();
    let reply = get(service.local_addr(), "/delay?ms=1500").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn status_answers_the_requested_code() {
    let service = start("catalog").await;
    let reply = get(service.local_addr(), "/status/418").await;
    assert_eq!(reply.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(reply.header("x-demo-service"), "catalog");
    assert_eq!(
        get(service.local_addr(), "/status/204").await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn unknown_path_is_404_listing_the_endpoints() {
    let service = start("catalog").await;
    let reply = post(service.local_addr(), "/nope", "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&reply.body).contains("/echo"));
}

#[tokio::test]
async fn healthz_passes_unless_faulted_and_is_not_counted_as_served() {
    let service = start("checkout").await;
    let reply = get(service.local_addr(), "/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"ok\n");
    assert_eq!(
        get(service.local_addr(), "/checkout/healthz").await.status,
        StatusCode::OK
    );
    assert_eq!(
        service.requests_served(),
        0,
        "health checks are not traffic"
    );

    service.set_faults(watertight_demo::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    assert_ne!(
        get(service.local_addr(), "/healthz").await.status,
        StatusCode::OK,
        "a faulted replica fails its checks"
    );
}
