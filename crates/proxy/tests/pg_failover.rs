//! Database-aware failover with a real PostgreSQL primary and streaming replica: the proxy's
//! PostgreSQL-native checks find the primary, and when it dies and the replica is promoted,
//! writes through the proxy resume on the new primary within a second.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use watertight_proxy::health::State;

use support::postgres::{PgNode, PgPair};

/// One write attempt through the proxy: when it finished, and the port of the server that
/// acknowledged it (or the error).
struct Write {
    at: Instant,
    acked_by: Result<u16, String>,
}

/// Writes through `proxy` every 20 ms until `stop`, reconnecting after every error.
async fn writer(
    proxy: std::net::SocketAddr,
    log: Arc<Mutex<Vec<Write>>>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(proxy.port())
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(1));
    let mut session: Option<tokio_postgres::Client> = None;
    let mut seq: i64 = 0;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        seq += 1;
        let attempt = async {
            if session.as_ref().is_none_or(|s| s.is_closed()) {
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                session = Some(client);
            }
            let client = session.as_ref().expect("connected above");
            let row = client
                .query_one(
                    "INSERT INTO writes (seq) VALUES ($1) RETURNING inet_server_port()",
                    &[&seq],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok::<u16, String>(row.get::<_, i32>(0) as u16)
        };
        let acked_by = match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_owned()),
        };
        if acked_by.is_err() {
            session = None;
        }
        log.lock().unwrap().push(Write {
            at: Instant::now(),
            acked_by,
        });
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

fn state_of(proxy: &watertight_proxy::Proxy, node: &PgNode) -> State {
    let address = node.addr.to_string();
    proxy.current().cluster_status()[0]
        .endpoints
        .iter()
        .find(|e| e.address == address)
        .map(|e| e.state)
        .expect("the node is an endpoint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_on_the_promoted_replica_within_a_second() {
    assert!(
        support::postgres::available(),
        "PostgreSQL is not installed: apt-get install postgresql"
    );
    let pg = PgPair::start().await;
    pg.primary
        .connect()
        .await
        .batch_execute("CREATE TABLE writes (seq bigint PRIMARY KEY)")
        .await
        .unwrap();
    let (proxy, address) = support::proxy(&format!(
        "access_log: \"off\"\nlisteners:\n  - name: pg\n    address: 127.0.0.1:0\n    protocol: tcp\n    cluster: pg-primary\nclusters:\n  - name: pg-primary\n    connect_timeout: 1s\n    on_endpoint_down: close_sessions\n    health_check: {{ interval: 100ms, timeout: 500ms, rise: 1, fall: 1, postgres: {{ role: primary }} }}\n    endpoints:\n      - address: \"{}\"\n      - address: \"{}\"\n",
        pg.primary.addr, pg.replica.addr
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(state_of(&proxy, &pg.primary) == State::Healthy
        && state_of(&proxy, &pg.replica) == State::Unhealthy)
    {
        assert!(
            Instant::now() < deadline,
            "checks tell primary from replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let replica_reason = proxy.current().cluster_status()[0]
        .endpoints
        .iter()
        .find(|e| e.address == pg.replica.addr.to_string())
        .unwrap()
        .reason
        .clone();
    assert_eq!(replica_reason, "health check failed: replica, not primary");

    let log = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let writes = tokio::spawn(writer(address, log.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Notes when the proxy marks the old primary down.
    let marked_down = {
        let proxy = proxy.clone();
        let primary = pg.primary.addr.to_string();
        tokio::spawn(async move {
            loop {
                let down = proxy.current().cluster_status()[0]
                    .endpoints
                    .iter()
                    .any(|e| e.address == primary && e.state == State::Unhealthy);
                if down {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // The primary dies; the replica is promoted.
    let crashed = Instant::now();
    let (primary, replica) = (&pg.primary, &pg.replica);
    tokio::task::block_in_place(|| primary.stop_immediate());
    tokio::task::block_in_place(|| replica.promote());
    let promoted = Instant::now();

    // Writes go on for a while on the new primary.
    let deadline = promoted + Duration::from_secs(15);
    loop {
        let acked_after = log
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.at > promoted && w.acked_by == Ok(replica.port))
            .count();
        if acked_after >= 20 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.notify_one();
    writes.await.unwrap();

    let marked_down = tokio::time::timeout(Duration::from_secs(10), marked_down)
        .await
        .expect("the proxy marks the old primary down")
        .unwrap();
    let log = log.lock().unwrap();
    let before: Vec<&Write> = log.iter().filter(|w| w.at < crashed).collect();
    assert!(
        !before.is_empty() && before.iter().all(|w| w.acked_by == Ok(primary.port)),
        "writes went to the primary before the crash"
    );
    // Nothing is acknowledged by the old primary once the proxy marked it down, and the new
    // primary acknowledges everything after the first success.
    assert!(
        log.iter()
            .filter(|w| w.at > marked_down)
            .all(|w| w.acked_by != Ok(primary.port)),
        "no write acknowledged by the old primary after it was marked down"
    );
    let resumed = log
        .iter()
        .find(|w| w.at > promoted && w.acked_by == Ok(replica.port))
        .expect("writes resumed on the promoted replica");
    let outage = resumed.at - promoted;
    eprintln!(
        "writes resumed {} ms after the promotion ({} ms after the crash)",
        outage.as_millis(),
        (resumed.at - crashed).as_millis()
    );
    assert!(
        outage < Duration::from_secs(1),
        "writes resumed {outage:?} after the promotion"
    );
    let failed_after: Vec<&String> = log
        .iter()
        .filter(|w| w.at > resumed.at)
        .filter_map(|w| w.acked_by.as_ref().err())
        .collect();
    assert!(
        failed_after.is_empty(),
        "writes failed after resuming: {failed_after:?}"
    );
    assert_eq!(state_of(&proxy, &pg.replica), State::Healthy);
    assert_eq!(state_of(&proxy, &pg.primary), State::Unhealthy);
}
