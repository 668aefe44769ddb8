//! HTTP listeners: accept connections and serve HTTP/1.x and cleartext HTTP/2 on the same
//! port (told apart by the HTTP/2 connection preface, in `downstream`), closing connections
//! that sit idle and finishing them gracefully when the proxy or the listener drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::activity::{self, Activity, Expiry};
use crate::clock;
use crate::closing::{self, Closer};
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
                    let connection =
                        Arc::new(Connection::new(runtime.clone(), key, client, activity));
                    let signals = (drain.signal(), listener_stop.clone());
                    serve(stream, connection, signals, (open, counted));
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

/// Serves one client connection to its end on a task of its own, watched by a second task:
/// a connection idle past its timeout, draining, or whose listener is removed finishes the
/// request in flight and closes; a slow head or a client that stopped reading is cut at
/// once. (The watchdog has its own task so that the connection's task, woken several times
/// per request, polls nothing but the connection.) `guards` live as long as the connection.
fn serve(
    stream: TcpStream,
    connection: Arc<Connection>,
    signals: (watch::Receiver<bool>, watch::Receiver<bool>),
    guards: impl Send + 'static,
) {
    let _ = stream.set_nodelay(true);
    let activity = connection.activity.clone();
    let client = connection.client;
    let (close, closing) = closing::channel();
    // Each wake-up of the connection reads the clock at most once.
    let served = tokio::spawn(clock::Scoped::new(async move {
        downstream::serve(stream, connection, closing).await;
        drop(guards);
    }));
    tokio::spawn(watchdog(activity, client, close, served, signals));
}

/// Asks the connection to close (it finishes the request in flight) when it has been idle,
/// the proxy drains or its listener is removed; aborts it outright on a slow head, a client
/// that stopped reading, or a connection still open a full idle period after being asked.
/// Ends with the connection.
async fn watchdog(
    activity: Arc<Activity>,
    client: SocketAddr,
    close: Closer,
    mut connection: JoinHandle<()>,
    (mut proxy_drain, mut listener_stop): (watch::Receiver<bool>, watch::Receiver<bool>),
) {
    let mut asked = false;
    loop {
        tokio::select! {
            _ = &mut connection => return,
            expiry = activity::expired(&activity) => {
                tracing::debug!(?expiry, client = %client, asked, "client connection expired");
                if asked || expiry != Expiry::Idle {
                    connection.abort();
                    return;
                }
            }
            () = raised(&mut proxy_drain), if !asked => {}
            () = raised(&mut listener_stop), if !asked => {}
        }
        asked = true;
        activity.restart_idle_clock();
        close.raise();
    }
}
