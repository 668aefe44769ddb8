//! HTTP listeners: accept connections and serve HTTP/1.x and cleartext HTTP/2 on the same
//! port (told apart by the HTTP/2 connection preface, in `downstream`), closing connections
//! that sit idle and finishing them gracefully when the proxy or the listener drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::activity::{self, Activity, Expiry};
use crate::downstream;
use crate::drain::{Drain, raised};
use crate::edge::Connection;
use crate::runtime::Runtime;
use crate::tcp;

/// Binds a listening socket the way a proxy wants it (address reuse, a deep backlog).
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(4096)
}

/// Accepts on `listener` until `stop` turns true; each connection is served on its own task.
/// `key` is the listener's configured address, its key in the runtime snapshot.
pub async fn accept_loop(
    listener: TcpListener,
    key: SocketAddr,
    runtime: Arc<ArcSwap<Runtime>>,
    drain: Drain,
    stop: watch::Receiver<bool>,
) {
    let listener_stop = stop.clone();
    let mut stop = stop;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    // Timeouts come from the snapshot current at accept time.
                    let Some((activity, counted, tcp)) = runtime.load().listeners.get(&key).map(|l| {
                        let activity = Activity::new(
                            l.config.idle_timeout.get(),
                            l.config.header_read_timeout.get(),
                        );
                        (activity, l.metrics.as_ref().map(|m| m.accepted()), l.tcp.clone())
                    }) else {
                        continue;
                    };
                    let open = drain.track();
                    if let Some(forward) = tcp {
                        // A TCP session has no request boundary to finish at: a shutdown lets
                        // it run until the drain timeout.
                        tokio::spawn(async move {
                            tcp::serve(stream, client, forward).await;
                            drop((open, counted));
                        });
                        continue;
                    }
                    let connection = Arc::new(Connection {
                        runtime: runtime.clone(),
                        listener: key,
                        client,
                        activity,
                    });
                    let signals = (drain.signal(), listener_stop.clone());
                    tokio::spawn(async move {
                        serve(stream, connection, signals).await;
                        drop((open, counted));
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, listener = %key, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = raised(&mut stop) => break,
        }
    }
}

/// Serves one client connection to its end, under the connection's watchdog: a connection
/// idle past its timeout, draining, or whose listener is removed finishes the request in
/// flight and closes; a slow head or a client that stopped reading is cut at once.
async fn serve(
    stream: TcpStream,
    connection: Arc<Connection>,
    (mut proxy_drain, mut listener_stop): (watch::Receiver<bool>, watch::Receiver<bool>),
) {
    let _ = stream.set_nodelay(true);
    let activity = connection.activity.clone();
    let client = connection.client;
    let (close, closing) = watch::channel(false);
    let served = downstream::serve(stream, connection, closing);
    tokio::pin!(served);

    let mut asked = false;
    loop {
        tokio::select! {
            () = served.as_mut() => return,
            expiry = activity::expired(&activity) => {
                tracing::debug!(?expiry, client = %client, asked, "client connection expired");
                if asked || expiry != Expiry::Idle {
                    // A slow head, a client that stopped reading, or a connection still idle
                    // a full idle period after being asked to close: no more waiting.
                    return;
                }
            }
            () = raised(&mut proxy_drain), if !asked => {}
            () = raised(&mut listener_stop), if !asked => {}
        }
        // Idle, draining, or its listener removed: finish the requests in flight, then close.
        asked = true;
        activity.restart_idle_clock();
        close.send_replace(true);
    }
}
