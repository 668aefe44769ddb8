//! Config reloads: atomic, lossless under load, keeping unchanged clusters' state, and never
//! replacing a working config with one that cannot be applied.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;
use support::*;
use watertight_config::Loaded;

fn config(listener: &str, endpoint: SocketAddr, extra_route_prefix: &str) -> Loaded {
    let yaml = format!(
        r#"
access_log: "off"
listeners:
  - name: main
    address: "{listener}"
    routes:
      - name: extra
        match: {{ prefix: "{extra_route_prefix}" }}
        cluster: app
      - name: all
        cluster: app
clusters:
  - name: app
    endpoints: [{{ address: "{endpoint}" }}]
  - name: spare
    endpoints: [{{ address: "127.0.0.1:9" }}]
"#
    );
    watertight_config::load_str(&yaml, "reload.yaml").unwrap_or_else(|d| panic!("{d}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_drop_no_request() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    // Bind on a fixed port picked now, so both configs name the same listener address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let proxy = watertight_proxy::Proxy::start(config(&listen, a.local_addr(), "/x"))
        .await
        .unwrap();
    let address: SocketAddr = listen.parse().unwrap();

    const TOTAL: u64 = 2000;
    let sent = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (sent, ok) = (sent.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            let client = h1();
            while sent.fetch_add(1, Ordering::SeqCst) < TOTAL {
                let answer = get(&client, address, "/echo", &[]).await;
                if answer.status == StatusCode::OK {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    eprintln!(
                        "non-2xx during reload: {} {:?}",
                        answer.status,
                        answer.reason()
                    );
                }
            }
        }));
    }
    let mut reloads = 0;
    while sent.load(Ordering::SeqCst) < TOTAL {
        let (endpoint, prefix) = if reloads % 2 == 0 {
            (b.local_addr(), "/y")
        } else {
            (a.local_addr(), "/x")
        };
        proxy
            .reload(config(&listen, endpoint, prefix))
            .await
            .unwrap();
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(60), worker)
            .await
            .unwrap()
            .unwrap();
    }
    assert!(
        reloads >= 5,
        "only {reloads} reloads happened during the load"
    );
    assert_eq!(
        ok.load(Ordering::SeqCst),
        TOTAL,
        "every request sent got a 2xx"
    );
    assert!(
        a.requests_served() > 0 && b.requests_served() > 0,
        "both configs served traffic"
    );
    assert_eq!(proxy.reload_counts().applied, reloads);
}

#[tokio::test]
async fn unchanged_clusters_keep_their_state_across_reloads() {
    let a = upstream("a").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let proxy = watertight_proxy::Proxy::start(config(&listen, a.local_addr(), "/x"))
        .await
        .unwrap();
    let client = h1();
    for _ in 0..3 {
        get(&client, listen.parse().unwrap(), "/", &[]).await;
    }
    let before = proxy.current().cluster("app").unwrap().clone();
    // Only a route changes: the cluster (and its pool and counters) is the same object after.
    proxy
        .reload(config(&listen, a.local_addr(), "/other"))
        .await
        .unwrap();
    let after = proxy.current().cluster("app").unwrap().clone();
    assert!(Arc::ptr_eq(&before, &after));
    assert_eq!(after.status().endpoints[0].requests, 3);
    // Changing the cluster builds a new one.
    let b = upstream("b").await;
    proxy
        .reload(config(&listen, b.local_addr(), "/other"))
        .await
        .unwrap();
    assert!(!Arc::ptr_eq(
        &after,
        proxy.current().cluster("app").unwrap()
    ));
}

#[tokio::test]
async fn a_reload_that_cannot_bind_changes_nothing() {
    let a = upstream("a").await;
    let (proxy, address) = proxy(&format!(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [{{ name: all, cluster: app }}]\nclusters:\n  - name: app\n    endpoints: [{{ address: \"{}\" }}]\n",
        a.local_addr()
    ))
    .await;
    let version_before = proxy.current().version.clone();
    // A second listener on an address that is taken cannot be bound.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let yaml = format!(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [{{ name: all, cluster: app }}]\n  - name: second\n    address: \"{}\"\n    routes: [{{ name: all, cluster: app }}]\nclusters:\n  - name: app\n    endpoints: [{{ address: \"127.0.0.1:9\" }}]\n",
        taken.local_addr().unwrap()
    );
    let loaded = watertight_config::load_str(&yaml, "bad.yaml").unwrap();
    let error = proxy.reload(loaded).await.unwrap_err();
    assert!(error.contains("cannot listen"), "{error}");
    assert_eq!(proxy.current().version, version_before);
    assert_eq!(proxy.reload_counts().rejected, 1);
    assert_eq!(
        get(&h1(), address, "/", &[]).await.status,
        StatusCode::OK,
        "old config still serves"
    );
}

#[tokio::test]
async fn removed_listeners_stop_accepting() {
    let a = upstream("a").await;
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let two = format!(
        "access_log: \"off\"\nlisteners:\n  - name: one\n    address: 127.0.0.1:{}\n    routes: [{{ name: all, cluster: app }}]\n  - name: two\n    address: 127.0.0.1:{}\n    routes: [{{ name: all, cluster: app }}]\nclusters:\n  - name: app\n    endpoints: [{{ address: \"{}\" }}]\n",
        ports[0],
        ports[1],
        a.local_addr()
    );
    let (proxy, _) = proxy(&two).await;
    let one = two.split("  - name: two").next().unwrap().to_owned()
        + &format!(
            "clusters:\n  - name: app\n    endpoints: [{{ address: \"{}\" }}]\n",
            a.local_addr()
        );
    proxy
        .reload(watertight_config::load_str(&one, "one.yaml").unwrap())
        .await
        .unwrap();
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", ports[1]))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the removed listener's port still accepts");
    let kept: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
    assert_eq!(get(&h1(), kept, "/", &[]).await.status, StatusCode::OK);
}
