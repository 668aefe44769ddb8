//! TCP (L4) listeners: each accepted connection becomes a session to an endpoint of the
//! listener's cluster.
//!
//! A session waits for a place in the listener's bulkhead (bounded queue, queue timeout),
//! picks an available endpoint of the active priority group (another one if the connect
//! fails), optionally sends a PROXY protocol v2 header, then copies bytes both ways through
//! fixed 16 KiB buffers (a slow reader slows its writer instead of filling memory). A FIN from
//! one side is passed on as a FIN to the other, which may keep sending (half-close). The
//! session ends when both sides have closed, on an error, after `idle_timeout` without bytes
//! either way, or, with `on_endpoint_down: close_sessions`, the moment its endpoint goes down.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use watertight_config as config;
use watertight_resilience::{Bulkhead, Priority};
use watertight_telemetry::metrics::TcpMetrics;

use crate::cluster::{Cluster, InFlight, Unavailable};
use crate::error::ErrorKind;

/// Bytes copied per read, per direction.
const BUFFER: usize = 16 * 1024;

/// What a TCP listener forwards to, compiled from its config.
pub struct TcpForward {
    /// The cluster sessions go to.
    pub cluster: Arc<Cluster>,
    /// The connection bulkhead, if configured (kept across reloads while unchanged).
    pub bulkhead: Option<Arc<Bulkhead>>,
    /// Session metrics, when metrics are on.
    pub metrics: Option<TcpMetrics>,
    /// A session with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
}

impl TcpForward {
    /// Compiles `listener`'s forwarding to `cluster`, keeping `previous`'s bulkhead (and the
    /// places it holds) when its config is unchanged.
    pub fn new(
        listener: &config::Listener,
        cluster: Arc<Cluster>,
        previous: Option<(&config::Listener, &TcpForward)>,
        metrics: Option<TcpMetrics>,
    ) -> Self {
        let bulkhead = listener.bulkhead.as_ref().map(|b| {
            previous
                .filter(|(old, _)| old.bulkhead.as_ref() == Some(b))
                .and_then(|(_, forward)| forward.bulkhead.clone())
                .unwrap_or_else(|| {
                    Arc::new(Bulkhead::new(
                        b.max_concurrent,
                        b.max_queue,
                        b.queue_timeout.get(),
                    ))
                })
        });
        Self {
            cluster,
            bulkhead,
            metrics,
            idle_timeout: listener.idle_timeout.get(),
        }
    }
}

/// Serves one accepted connection as a session to the end.
pub async fn serve(client: TcpStream, peer: SocketAddr, forward: Arc<TcpForward>) {
    let _active = forward.metrics.as_ref().map(TcpMetrics::opened);
    let reason = session(client, peer, &forward).await;
    tracing::debug!(client = %peer, cluster = forward.cluster.name(), reason, "tcp session ended");
    if let Some(metrics) = &forward.metrics {
        metrics.closed(reason);
    }
}

/// Runs the session; returns why it ended (a `reason` label of the session metrics).
async fn session(client: TcpStream, peer: SocketAddr, forward: &TcpForward) -> &'static str {
    let _place = match &forward.bulkhead {
        Some(bulkhead) => match bulkhead.admit(Priority::Default).await {
            Ok((permit, _queued)) => Some(permit),
            Err(_) => return "refused",
        },
        None => None,
    };
    let (upstream, mut slot) = match connect(&forward.cluster, peer).await {
        Ok(connected) => connected,
        Err(reason) => return reason,
    };
    let endpoint = slot.endpoint().clone();
    // Subscribed before anything else can happen, so a change from now on is seen.
    let mut severed = endpoint.health.severed();
    severed.borrow_and_update();
    let cluster_config = forward.cluster.config();
    let close_on_down = cluster_config.on_endpoint_down == config::OnEndpointDown::CloseSessions;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let local = client.local_addr().ok();
    let (from_client, to_client) = client.into_split();
    let (from_upstream, mut to_upstream) = upstream.into_split();
    if let (Some(config::ProxyProtocol::V2), Some(local)) = (cluster_config.proxy_protocol, local)
        && let Err(error) = send_proxy_header(&mut to_upstream, peer, local).await
    {
        tracing::debug!(%error, endpoint = %endpoint.address, "PROXY header not sent");
        slot.failed(ErrorKind::UpstreamReset);
        return "upstream-closed";
    }

    let moved = Moved::default();
    let upstream_pump = pump(from_client, to_upstream, &moved.up, &moved.last);
    let downstream_pump = pump(from_upstream, to_client, &moved.down, &moved.last);
    tokio::pin!(upstream_pump, downstream_pump);
    let (mut client_done, mut upstream_done) = (false, false);
    let mut first_closed: Option<&'static str> = None;
    let reason = loop {
        tokio::select! {
            result = &mut upstream_pump, if !client_done => {
                client_done = true;
                first_closed.get_or_insert("client-closed");
                if result.is_err() {
                    break "client-closed";
                }
            }
            result = &mut downstream_pump, if !upstream_done => {
                upstream_done = true;
                first_closed.get_or_insert("upstream-closed");
                if result.is_err() {
                    break "upstream-closed";
                }
            }
            () = idle(forward.idle_timeout, &moved) => break "idle-timeout",
            Ok(()) = severed.changed(), if close_on_down => break "endpoint-down",
        }
        if client_done && upstream_done {
            break first_closed.unwrap_or("client-closed");
        }
    };
    if let Some(metrics) = &forward.metrics {
        metrics.bytes(
            moved.up.load(Ordering::Relaxed),
            moved.down.load(Ordering::Relaxed),
        );
    }
    if reason == "endpoint-down" {
        tracing::info!(client = %peer, endpoint = %endpoint.address, "tcp session closed: endpoint down");
    }
    reason
}

/// Picks an endpoint and connects to it, moving to another one while connects fail.
async fn connect(
    cluster: &Cluster,
    client: SocketAddr,
) -> Result<(TcpStream, InFlight), &'static str> {
    let timeout = cluster.config().connect_timeout.get();
    let key = cluster.session_key(client.ip());
    let mut tried: Vec<Arc<str>> = Vec::new();
    loop {
        let mut slot = cluster
            .pick_keyed(&tried, key)
            .map_err(|refused| match refused {
                Unavailable::NoEndpoint | Unavailable::NoHealthy => "no-healthy-endpoint",
                _ => "refused",
            })?;
        let endpoint = slot.endpoint().clone();
        if tried.contains(&endpoint.address) {
            // Every available endpoint has refused this session already.
            return Err("connect-failed");
        }
        tried.push(endpoint.address.clone());
        let kind = match tokio::time::timeout(timeout, TcpStream::connect(&*endpoint.address)).await
        {
            Ok(Ok(stream)) => {
                slot.connected();
                return Ok((stream, slot));
            }
            Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => {
                ErrorKind::ConnectRefused
            }
            Ok(Err(_)) => ErrorKind::ConnectFailed,
            Err(_) => ErrorKind::ConnectTimeout,
        };
        tracing::debug!(endpoint = %endpoint.address, reason = kind.reason(), "tcp connect failed");
        endpoint.record_failure();
        slot.failed(kind);
    }
}

/// Bytes moved each way, and when any last moved.
#[derive(Default)]
struct Moved {
    up: AtomicU64,
    down: AtomicU64,
    /// Milliseconds since the session's clock started, at the last bytes moved.
    last: Activity,
}

/// The time of the last bytes moved, as milliseconds since a fixed start.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Copies `from` into `to` until `from` ends, then passes the end on (half-close).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    moved: &AtomicU64,
    activity: &Activity,
) -> io::Result<()> {
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            // A peer that already went away cannot be told; that is not an error here.
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buffer[..read]).await?;
        moved.fetch_add(read as u64, Ordering::Relaxed);
        activity.touch();
    }
}

/// Resolves once no bytes have moved for `timeout`.
async fn idle(timeout: Duration, moved: &Moved) {
    loop {
        let deadline = moved.last.last() + timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Writes a PROXY protocol v2 header naming the client and the address it connected to.
async fn send_proxy_header(
    upstream: &mut OwnedWriteHalf,
    client: SocketAddr,
    local: SocketAddr,
) -> io::Result<()> {
    let header = proxy_header(client, local)?;
    upstream.write_all(&header).await
}

/// The PROXY protocol v2 header for a stream from `client` to `local`.
fn proxy_header(client: SocketAddr, local: SocketAddr) -> io::Result<Vec<u8>> {
    use ppp::v2::{Builder, Command, Protocol, Version};
    // Both addresses in one family: an IPv4 client on a dual-stack socket shows as mapped.
    let (client, local) = match (client, local) {
        (SocketAddr::V6(c), SocketAddr::V4(l)) => (
            SocketAddr::V6(c),
            SocketAddr::new(l.ip().to_ipv6_mapped().into(), l.port()),
        ),
        (SocketAddr::V4(c), SocketAddr::V6(l)) => (
            SocketAddr::new(c.ip().to_ipv6_mapped().into(), c.port()),
            SocketAddr::V6(l),
        ),
        pair => pair,
    };
    Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        (client, local),
    )
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_header_is_the_v2_signature_and_both_ipv4_addresses() {
        let header = proxy_header(
            "192.0.2.7:40000".parse().unwrap(),
            "127.0.0.1:6432".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(header[12], 0x21, "version 2, PROXY command");
        assert_eq!(header[13], 0x11, "TCP over IPv4");
        assert_eq!(u16::from_be_bytes([header[14], header[15]]), 12);
        assert_eq!(&header[16..20], &[192, 0, 2, 7]);
        assert_eq!(&header[20..24], &[127, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([header[24], header[25]]), 40000);
        assert_eq!(u16::from_be_bytes([header[26], header[27]]), 6432);
        assert_eq!(header.len(), 28);
    }

    #[test]
    fn mixed_families_are_sent_as_ipv6() {
        let header = proxy_header(
            "192.0.2.7:40000".parse().unwrap(),
            "[::1]:6432".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(header[13], 0x21, "TCP over IPv6");
        assert_eq!(header.len(), 16 + 36);
    }
}
