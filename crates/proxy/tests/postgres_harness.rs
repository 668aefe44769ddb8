//! The PostgreSQL test harness itself: a real primary and streaming replica that replicate,
//! report their roles, fail over by promotion and restart after a crash.

mod support;

use std::time::{Duration, Instant};

use support::postgres::{self, PgNode, PgPair};

/// Polls `node` until `query` succeeds with at least one row (it may fail meanwhile, e.g. on
/// a table not replicated yet), for up to 10 s.
async fn eventually_rows(node: &PgNode, query: &str) -> Vec<tokio_postgres::Row> {
    let client = node.connect().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = match client.query(query, &[]).await {
            Ok(rows) if !rows.is_empty() => return rows,
            Ok(_) => "no rows".to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "`{query}` on {} after 10 s: {last}\n{}",
            node.name,
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_replicates_to_a_replica_that_can_be_promoted() {
    assert!(
        postgres::available(),
        "PostgreSQL server binaries not found: install postgresql (apt-get install -y postgresql)"
    );
    let started = Instant::now();
    let pair = PgPair::start().await;
    println!("primary + replica ready in {:?}", started.elapsed());
    assert_ne!(pair.primary.port, pair.replica.port);

    assert!(
        !pair.primary.is_in_recovery().await,
        "the primary is not in recovery"
    );
    assert!(
        pair.replica.is_in_recovery().await,
        "the replica is in recovery"
    );

    // A write on the primary shows up on the replica.
    let primary = pair.primary.connect().await;
    primary
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        .await
        .unwrap();
    primary
        .execute("INSERT INTO t VALUES (1, $1)", &[&"hello"])
        .await
        .unwrap();
    let rows = eventually_rows(&pair.replica, "SELECT note FROM t WHERE id = 1").await;
    assert_eq!(rows[0].get::<_, String>(0), "hello");

    // The replica is read-only.
    let replica = pair.replica.connect().await;
    let error = replica
        .execute("INSERT INTO t VALUES (2, 'no')", &[])
        .await
        .unwrap_err();
    let message = error.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert!(message.contains("read-only"), "unexpected error: {error:?}");

    // Crash the primary, promote the replica: it takes writes.
    pair.primary.stop_immediate();
    assert!(!pair.primary.is_running());
    assert!(pair.primary.try_connect().await.is_err());
    let promoting = Instant::now();
    pair.replica.promote();
    println!("promoted in {:?}", promoting.elapsed());
    assert!(
        !pair.replica.is_in_recovery().await,
        "promoted, not in recovery"
    );
    let promoted = pair.replica.connect().await;
    promoted
        .execute("INSERT INTO t VALUES (2, 'after failover')", &[])
        .await
        .unwrap();
    let count: i64 = promoted
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);

    // The crashed primary restarts (crash recovery) with its committed row.
    pair.primary.start();
    pair.primary.wait_ready(Duration::from_secs(30)).await;
    let count: i64 = pair
        .primary
        .connect()
        .await
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);

    pair.replica.stop_fast();
    assert!(!pair.replica.is_running());
    let data_dir = pair.primary.data_dir().to_owned();
    drop(pair);
    assert!(
        !data_dir.exists(),
        "the scratch directory goes with the pair"
    );
}
