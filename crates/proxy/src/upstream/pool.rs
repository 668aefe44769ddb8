//! Keep-alive HTTP/1.1 connections to one endpoint.
//!
//! A request takes the most recently returned idle connection (its socket buffers and the
//! endpoint's worker are the warmest), or dials a new one; its response body puts the
//! connection back when the last byte has been read and the upstream said it stays open.
//! Nothing else touches a connection while a request holds it: there is no connection task
//! and no channel between the request and its socket.
//!
//! Idle connections are closed after the cluster's idle timeout, when the upstream closes
//! them, and beyond the cluster's idle limit. A reaper task per endpoint (started with its
//! first connection, gone with the endpoint) does the first two for connections nobody asks
//! for.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::clock;
use crate::error::{ErrorKind, ProxyError};
use crate::timer::Timer;

/// Read buffer given to a new connection; it grows for large heads and bodies.
pub const READ_BUFFER: usize = 8 * 1024;

/// One connection to the endpoint, with its read buffer and its deadline timer.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not yet consumed.
    pub read: BytesMut,
    /// The deadline of the exchange the connection carries, set anew for each one (the
    /// same timer for the connection's life: see `timer.rs`).
    pub timer: Timer,
    _open: OpenGuard,
}

/// Uncounts a connection when dropped.
#[derive(Debug)]
pub struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// The socket, and the rest: the buffer, the timer, and what keeps the connection
    /// counted as open.
    pub fn into_parts(self) -> (TcpStream, Held) {
        let held = Held {
            read: self.read,
            timer: self.timer,
            open: self._open,
        };
        (self.stream, held)
    }

    /// Puts a connection back together from [`Connection::into_parts`].
    pub fn from_parts(stream: TcpStream, held: Held) -> Self {
        Self {
            stream,
            read: held.read,
            timer: held.timer,
            _open: held.open,
        }
    }
}

/// What a connection holds beside its socket, while the socket is split in two.
#[derive(Debug)]
pub struct Held {
    /// Bytes read and not yet consumed.
    pub read: BytesMut,
    /// The exchange's deadline timer.
    pub timer: Timer,
    /// Keeps the connection counted as open.
    pub open: OpenGuard,
}

#[derive(Debug)]
struct Idle {
    connection: Connection,
    since: Instant,
}

/// The connections to one endpoint.
#[derive(Debug)]
pub struct Pool {
    /// `host:port` to dial.
    target: Arc<str>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Connections open to the endpoint (idle or carrying a request).
    open: Arc<AtomicUsize>,
    /// Idle connections, the most recently returned last.
    idle: Mutex<Vec<Idle>>,
    reaper: AtomicBool,
}

impl Pool {
    /// A pool dialing `target`, counting its open connections in `open`.
    pub fn new(
        target: Arc<str>,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
        open: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            target,
            connect_timeout,
            idle_timeout,
            max_idle,
            open,
            idle: Mutex::new(Vec::new()),
            reaper: AtomicBool::new(false),
        }
    }

    /// The `host:port` this pool dials.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// An idle connection still open, or none.
    pub fn take_idle(&self) -> Option<Connection> {
        // The time this wake-up of the connection's task read (`clock.rs`): at most one poll,
        // microseconds, older than a fresh read.
        let now = clock::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(entry) = idle.pop() {
            if self.usable(&entry, now) {
                return Some(entry.connection);
            }
        }
        None
    }

    /// Returns a connection whose exchange completed cleanly.
    pub fn put_back(&self, connection: Connection) {
        if !connection.read.is_empty() {
            // Bytes nobody asked for: the connection is out of step with the upstream.
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                connection,
                since: clock::now(),
            });
        }
    }

    /// Idle connections now.
    #[cfg(test)]
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Dials a new connection, within the connect timeout.
    pub async fn connect(self: &Arc<Self>) -> Result<Connection, ProxyError> {
        let dialing = TcpStream::connect(&*self.target);
        let stream = match tokio::time::timeout(self.connect_timeout, dialing).await {
            Err(_) => {
                let error = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                return Err(ProxyError::with_source(ErrorKind::ConnectTimeout, error));
            }
            Ok(Err(error)) => {
                let kind = match error.kind() {
                    io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
                    io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
                    _ => ErrorKind::ConnectFailed,
                };
                return Err(ProxyError::with_source(kind, error));
            }
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        self.open.fetch_add(1, Ordering::Relaxed);
        if !self.reaper.swap(true, Ordering::Relaxed) {
            tokio::spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
        Ok(Connection {
            stream,
            read: BytesMut::with_capacity(READ_BUFFER),
            timer: Timer::new(),
            _open: OpenGuard(self.open.clone()),
        })
    }

    /// Closes idle connections past the idle timeout or closed by the upstream.
    fn reap(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|entry| self.usable(entry, now));
    }

    /// Whether an idle connection may still be handed out at `now`: idle for less than the
    /// idle timeout, and not closed by the upstream.
    fn usable(&self, entry: &Idle, now: Instant) -> bool {
        now.duration_since(entry.since) < self.idle_timeout && still_open(&entry.connection)
    }
}

/// Runs while the pool lives, closing its stale idle connections.
async fn reap(pool: Weak<Pool>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(pool) => pool.reap(),
            None => return,
        }
    }
}

/// Whether an idle connection can carry a request: the upstream has neither closed it nor
/// sent anything unasked. `try_read` asks the socket only when the event loop saw it
/// readable, so the common case costs no system call, and it leaves no waker behind (the
/// socket's waker slot is locked to change one).
fn still_open(connection: &Connection) -> bool {
    let mut probe = [0u8; 1];
    matches!(connection.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pool_to(listener: &TcpListener, idle_timeout: Duration, max_idle: usize) -> Arc<Pool> {
        let target: Arc<str> = listener.local_addr().unwrap().to_string().into();
        Arc::new(Pool::new(
            target,
            Duration::from_secs(1),
            idle_timeout,
            max_idle,
            Arc::new(AtomicUsize::new(0)),
        ))
    }

    #[tokio::test]
    async fn connections_are_reused_most_recent_first_up_to_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = pool_to(&listener, Duration::from_secs(60), 2).await;
        let mut accepted = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(pool.connect().await.unwrap());
            accepted.push(listener.accept().await.unwrap().0);
        }
        assert_eq!(pool.open.load(Ordering::Relaxed), 3);
        let ports: Vec<u16> = conns
            .iter()
            .map(|c| c.stream.local_addr().unwrap().port())
            .collect();
        for conn in conns {
            pool.put_back(conn);
        }
        assert_eq!(pool.idle_count(), 2, "the third is over the idle limit");
        assert_eq!(pool.open.load(Ordering::Relaxed), 2, "and was closed");
        let taken = pool.take_idle().unwrap();
        assert_eq!(taken.stream.local_addr().unwrap().port(), ports[1]);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_handed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = pool_to(&listener, Duration::from_secs(60), 4).await;
        let conn = pool.connect().await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        pool.put_back(conn);
        server.shutdown().await.unwrap();
        drop(server);
        // Let the event loop see the close.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take_idle().is_none());
        assert_eq!(pool.open.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_connection_with_unasked_bytes_is_not_handed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = pool_to(&listener, Duration::from_secs(60), 4).await;
        let conn = pool.connect().await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        pool.put_back(conn);
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take_idle().is_none());
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = pool_to(&listener, Duration::from_millis(200), 4).await;
        let conn = pool.connect().await.unwrap();
        let _server = listener.accept().await.unwrap();
        pool.put_back(conn);
        assert_eq!(pool.idle_count(), 1);
        // The reaper runs every 100 ms here: give it ample time.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(pool.open.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_refused_connect_is_classified() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = pool_to(&listener, Duration::from_secs(60), 4).await;
        drop(listener);
        let error = pool.connect().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectRefused);
    }
}
