//! TCP (L4) listeners: sessions forwarded to a cluster, half-close, the connection bulkhead,
//! idle timeout, closing sessions when their endpoint goes down, PROXY protocol v2, and
//! moving on from an endpoint that refuses.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use watertight_proxy::Proxy;
use watertight_proxy::health::Operator;

use support::{proxy, upstream};

/// A TCP upstream that echoes what it reads until the client's FIN, then closes; it counts
/// the sessions it accepted.
struct Echo {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn echo() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    Echo { address, accepted }
}

/// A free loopback port with nothing listening on it.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A proxy with one TCP listener forwarding to cluster `db` over `endpoints`; `listener` and
/// `cluster` add lines to each.
async fn tcp_proxy(
    endpoints: &[SocketAddr],
    listener: &[&str],
    cluster: &[&str],
) -> (Proxy, SocketAddr) {
    let lines = support::field_lines;
    let endpoints = support::endpoint_lines(endpoints);
    proxy(&format!(
        "access_log: \"off\"\nlisteners:\n  - name: db\n    address: 127.0.0.1:0\n    protocol: tcp\n    cluster: db\n{}clusters:\n  - name: db\n    connect_timeout: 1s\n{}    endpoints:\n{endpoints}",
        lines(listener),
        lines(cluster)
    ))
    .await
}

/// Reads until EOF, bounded by 5 s.
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .expect("the session ends")
        .expect("read");
    out
}

/// Whether the session was closed (EOF or reset) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn scrape(proxy: &Proxy) -> String {
    proxy
        .metrics()
        .encode(watertight_telemetry::Format::Prometheus)
}

#[tokio::test]
async fn a_session_carries_bytes_both_ways_and_passes_the_client_half_close_on() {
    let echo = echo().await;
    let (proxy, address) = tcp_proxy(&[echo.address], &[], &[]).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let payload: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = client.split();
    let send = async {
        write.write_all(&payload).await.unwrap();
        // Half-close: the echo only finishes (and closes) after our FIN reaches it.
        write.shutdown().await.unwrap();
    };
    let mut echoed = Vec::new();
    let receive = read.read_to_end(&mut echoed);
    let ((), received) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(send, receive)
    })
    .await
    .expect("the exchange completes");
    received.unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "the bytes came back unchanged");

    let text = scrape(&proxy);
    for line in [
        "watertight_tcp_sessions_total{listener=\"db\",cluster=\"db\"} 1",
        "watertight_tcp_bytes_total{listener=\"db\",cluster=\"db\",direction=\"upstream\"} 4194304",
        "watertight_tcp_bytes_total{listener=\"db\",cluster=\"db\",direction=\"downstream\"} 4194304",
        "watertight_tcp_sessions_closed_total{listener=\"db\",cluster=\"db\",reason=\"client-closed\"} 1",
        "watertight_tcp_sessions_active{listener=\"db\",cluster=\"db\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[tokio::test]
async fn http_goes_through_a_tcp_listener_unchanged() {
    let service = upstream("app").await;
    let (_proxy, address) = tcp_proxy(&[service.local_addr()], &[], &[]).await;
    let (_stream, head) = support::raw_exchange(
        address,
        b"GET /echo HTTP/1.1\r\nhost: example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Layer 4: the proxy adds nothing to the request.
    assert!(!head.contains("x-forwarded-for"), "{head}");
}

#[tokio::test]
async fn a_refusing_endpoint_is_passed_over_for_the_next() {
    let echo = echo().await;
    let (_proxy, address) =
        tcp_proxy(&[closed_port(), echo.address], &["idle_timeout: 5s"], &[]).await;
    for _ in 0..4 {
        let mut client = TcpStream::connect(address).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await, b"ping");
    }
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn the_connection_bulkhead_refuses_beyond_its_limit_and_queue() {
    let echo = echo().await;
    let (proxy, address) = tcp_proxy(
        &[echo.address],
        &["bulkhead: { max_concurrent: 1, max_queue: 1, queue_timeout: 200ms }"],
        &[],
    )
    .await;
    let mut first = TcpStream::connect(address).await.unwrap();
    first.write_all(b"a").await.unwrap();
    let mut byte = [0u8; 1];
    first.read_exact(&mut byte).await.unwrap();
    // The second waits in the queue and gives up after the queue timeout; the third finds
    // the queue full and is closed at once.
    let mut second = TcpStream::connect(address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut third = TcpStream::connect(address).await.unwrap();
    assert!(closed_within(&mut third, Duration::from_millis(150)).await);
    assert!(closed_within(&mut second, Duration::from_secs(2)).await);
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 1);
    assert!(scrape(&proxy).contains(
        "watertight_tcp_sessions_closed_total{listener=\"db\",cluster=\"db\",reason=\"refused\"} 2"
    ));
    // The place frees when the first session ends.
    first.shutdown().await.unwrap();
    read_to_end(&mut first).await;
    let mut fourth = TcpStream::connect(address).await.unwrap();
    fourth.write_all(b"d").await.unwrap();
    fourth.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut fourth).await, b"d");
}

#[tokio::test]
async fn a_session_with_no_bytes_moving_is_closed_after_the_idle_timeout() {
    let echo = echo().await;
    let (proxy, address) = tcp_proxy(&[echo.address], &["idle_timeout: 300ms"], &[]).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    // Traffic keeps it open past the timeout...
    for _ in 0..4 {
        client.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // ...silence closes it.
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    assert!(
        scrape(&proxy).contains(
            "watertight_tcp_sessions_closed_total{listener=\"db\",cluster=\"db\",reason=\"idle-timeout\"} 1"
        )
    );
}

#[tokio::test]
async fn close_sessions_cuts_sessions_of_a_disabled_or_unhealthy_endpoint() {
    let echo = echo().await;
    // The endpoint's checks go to a separate port, so the test can fail them while the
    // endpoint itself keeps serving.
    let health = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health_port = health.local_addr().unwrap().port();
    let (proxy, address) = proxy(&format!(
        "access_log: \"off\"\nlisteners:\n  - name: db\n    address: 127.0.0.1:0\n    protocol: tcp\n    cluster: db\nclusters:\n  - name: db\n    on_endpoint_down: close_sessions\n    health_check: {{ interval: 50ms, timeout: 300ms, jitter: 0, rise: 1, fall: 1, tcp: {{}} }}\n    endpoints:\n      - {{ address: \"{}\", health_check_port: {health_port} }}\n",
        echo.address
    ))
    .await;
    let cluster = proxy.current().cluster("db").unwrap().clone();
    let endpoint = echo.address.to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cluster.endpoints()[0].health.available() {
        assert!(tokio::time::Instant::now() < deadline, "first check passes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Disabled by an operator: the open session is closed at once.
    let mut session = TcpStream::connect(address).await.unwrap();
    session.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    session.read_exact(&mut byte).await.unwrap();
    cluster.set_operator(&endpoint, Operator::Disabled);
    assert!(closed_within(&mut session, Duration::from_secs(2)).await);
    cluster.set_operator(&endpoint, Operator::Active);

    // Marked down by its checks (the health port stops listening): closed as well.
    let mut session = TcpStream::connect(address).await.unwrap();
    session.write_all(b"y").await.unwrap();
    session.read_exact(&mut byte).await.unwrap();
    drop(health);
    assert!(closed_within(&mut session, Duration::from_secs(5)).await);
    let text = scrape(&proxy);
    assert!(
        text.contains("watertight_tcp_sessions_closed_total{listener=\"db\",cluster=\"db\",reason=\"endpoint-down\"} 2"),
        "{text}"
    );
    // And new sessions find nothing healthy: closed without reaching the echo.
    let accepted = echo.accepted.load(Ordering::SeqCst);
    let mut refused = TcpStream::connect(address).await.unwrap();
    assert!(closed_within(&mut refused, Duration::from_secs(2)).await);
    assert_eq!(echo.accepted.load(Ordering::SeqCst), accepted);
}

#[tokio::test]
async fn keep_sessions_lets_a_drained_endpoint_finish_its_sessions() {
    let echo = echo().await;
    let (proxy, address) = tcp_proxy(&[echo.address], &[], &[]).await;
    let cluster = proxy.current().cluster("db").unwrap().clone();
    let mut session = TcpStream::connect(address).await.unwrap();
    session.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    session.read_exact(&mut byte).await.unwrap();
    cluster.set_operator(&echo.address.to_string(), Operator::Disabled);
    assert!(!closed_within(&mut session, Duration::from_millis(300)).await);
    session.write_all(b"still here").await.unwrap();
    session.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut session).await, b"still here");
}

#[tokio::test]
async fn proxy_protocol_v2_tells_the_upstream_the_client_address() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_address = upstream.local_addr().unwrap();
    let (_proxy, address) = tcp_proxy(&[upstream_address], &[], &["proxy_protocol: v2"]).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let client_port = client.local_addr().unwrap().port();
    let (mut stream, _) = upstream.accept().await.unwrap();
    let mut header = [0u8; 28];
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(header[13], 0x11, "TCP over IPv4");
    assert_eq!(&header[16..20], &[127, 0, 0, 1]);
    assert_eq!(u16::from_be_bytes([header[24], header[25]]), client_port);
    assert_eq!(u16::from_be_bytes([header[26], header[27]]), address.port());
    let mut body = [0u8; 5];
    stream.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"hello");
}
