//! The binary's life: graceful drain on SIGTERM, reload on file change and SIGHUP, invalid
//! configs rejected without harm, and flat memory while huge bodies stream through.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use watertight_demo::SampleService;

async fn sample(name: &str) -> SampleService {
    SampleService::start(name, 0, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn addresses() -> (SocketAddr, SocketAddr) {
    (
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let app = sample("app").await;
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = addresses();
    let config = dir.path().join("watertight.yaml");
    std::fs::write(&config, config_yaml(listen, admin, &[app.local_addr()])).unwrap();
    let mut process = Process::start(dir.path(), &["proxy", "--config", config.to_str().unwrap()]);
    assert!(
        wait_ready(admin, Duration::from_secs(20)).await,
        "{}",
        process.stderr()
    );

    let slow: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(
                async move { get(&client(), &format!("http://{listen}/delay?ms=2000")).await },
            )
        })
        .collect();
    // Let the requests reach the upstream before the signal.
    tokio::time::sleep(Duration::from_millis(500)).await;
    process.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let readiness = get(&client(), &format!("http://{admin}/readyz")).await;
    assert_eq!(
        readiness.map(|(s, _)| s),
        Some(503),
        "readyz turns 503 while draining"
    );
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "no new connections while draining"
    );
    for request in slow {
        assert_eq!(
            request.await.unwrap().map(|(s, _)| s),
            Some(200),
            "in-flight request completed"
        );
    }
    let status = process
        .wait(Duration::from_secs(20))
        .expect("exited after draining");
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        process.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_changes_and_sighup_reload_and_bad_files_are_rejected() {
    let a = sample("a").await;
    let b = sample("b").await;
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = addresses();
    let config = dir.path().join("watertight.yaml");
    std::fs::write(&config, config_yaml(listen, admin, &[a.local_addr()])).unwrap();
    let process = Process::start(dir.path(), &["proxy", "--config", config.to_str().unwrap()]);
    assert!(
        wait_ready(admin, Duration::from_secs(20)).await,
        "{}",
        process.stderr()
    );
    let client = client();
    let served_by = || async {
        let (_, body) = get(&client, &format!("http://{listen}/echo"))
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["service"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(served_by().await, "a");

    // 1. The file changes: picked up without a signal.
    std::fs::write(&config, config_yaml(listen, admin, &[b.local_addr()])).unwrap();
    let mut switched = false;
    for _ in 0..100 {
        if served_by().await == "b" {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        switched,
        "file change was not applied; stderr:\n{}",
        process.stderr()
    );

    // 2. An invalid file is rejected with check's text, and the running config stays.
    std::fs::write(
        &config,
        config_yaml(listen, admin, &[b.local_addr()]).replace("cluster: app", "cluster: nowhere"),
    )
    .unwrap();
    process.signal("HUP");
    let mut logged = false;
    for _ in 0..100 {
        if process.stderr().contains("watertight.yaml:") && process.stderr().contains("nowhere") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        logged,
        "rejection not logged with file:line:col; stderr:\n{}",
        process.stderr()
    );
    assert_eq!(served_by().await, "b", "the valid config is still serving");
    let (_, reloads) = get(&client, &format!("http://{admin}/reloads"))
        .await
        .unwrap();
    let reloads: serde_json::Value = serde_json::from_str(&reloads).unwrap();
    assert!(reloads["rejected"].as_u64().unwrap() >= 1, "{reloads}");

    // 3. SIGHUP with a valid file applies it.
    std::fs::write(&config, config_yaml(listen, admin, &[a.local_addr()])).unwrap();
    process.signal("HUP");
    let mut back = false;
    for _ in 0..100 {
        if served_by().await == "a" {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "SIGHUP reload was not applied; stderr:\n{}",
        process.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_each_way_keeps_the_proxy_memory_flat() {
    use http_body_util::BodyExt;
    const GIB: u64 = 1 << 30;
    let app = sample("app").await;
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = addresses();
    let config = dir.path().join("watertight.yaml");
    std::fs::write(&config, config_yaml(listen, admin, &[app.local_addr()])).unwrap();
    let process = Process::start(dir.path(), &["proxy", "--config", config.to_str().unwrap()]);
    assert!(
        wait_ready(admin, Duration::from_secs(20)).await,
        "{}",
        process.stderr()
    );

    // Download.
    let response = client()
        .get(format!("http://{listen}/bytes?n={GIB}").parse().unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(received, GIB);

    // Upload, generated chunk by chunk.
    let chunk = bytes::Bytes::from(vec![b'u'; 256 * 1024]);
    let stream = futures_util::stream::iter(
        (0..GIB / chunk.len() as u64)
            .map(move |_| Ok::<_, std::io::Error>(http_body::Frame::data(chunk.clone()))),
    );
    let upload: hyper_util::client::legacy::Client<_, _> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let request = http::Request::post(format!("http://{listen}/upload"))
        .body(http_body_util::StreamBody::new(stream))
        .unwrap();
    let response = upload.request(request).await.unwrap();
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["bytes"].as_u64(), Some(GIB));

    let peak_mib = process.memory_kib("VmHWM") / 1024;
    eprintln!("proxy peak RSS while streaming 1 GiB each way: {peak_mib} MiB");
    assert!(
        peak_mib < 64,
        "peak RSS {peak_mib} MiB while streaming 1 GiB each way"
    );
}
