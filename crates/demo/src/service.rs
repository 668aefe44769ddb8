//! [`SampleService`]: one sample upstream on one address, which can be stopped and started
//! again on the same port.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Mutex;

use crate::connection::{self, ConnectionBuilder};
use crate::faults::Faults;
use crate::lifecycle::{RunControl, RunToken, new_run};
use crate::replica::Replica;

/// Pending connections the kernel queues before `accept`; generous for benchmarks.
const LISTEN_BACKLOG: u32 = 4096;
/// How long to back off after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// One running sample service: a hyper server on a real socket, HTTP/1.1 and HTTP/2 (prior
/// knowledge) on the same port. Dropping it stops it without waiting.
pub struct SampleService {
    replica: Arc<Replica>,
    addr: SocketAddr,
    // Held across `stop` so that concurrent stops and starts happen one after the other.
    run: Mutex<Option<RunControl>>,
    running: AtomicBool,
}

impl SampleService {
    /// Binds `addr` (port 0 = any) and serves; `name` appears in responses (`x-demo-service`
    /// header and JSON bodies), `replica` too (`x-demo-replica`).
    pub async fn start(name: &str, replica: usize, addr: SocketAddr) -> io::Result<SampleService> {
        let replica = Arc::new(Replica::new(name, replica)?);
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let control = spawn_run(listener, replica.clone());
        Ok(SampleService {
            replica,
            addr,
            run: Mutex::new(Some(control)),
            running: AtomicBool::new(true),
        })
    }

    /// The bound address (with the port the OS picked, if asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far (across restarts): shows whether clients reuse them.
    pub fn connections_accepted(&self) -> u64 {
        self.replica.connections_accepted()
    }

    /// The current fault knobs.
    pub fn faults(&self) -> Faults {
        self.replica.faults()
    }

    /// Replaces the fault knobs; they apply from the next request on.
    pub fn set_faults(&self, faults: Faults) {
        self.replica.set_faults(faults);
    }

    /// Closes the listening socket and every open connection, idle keep-alive and upgraded
    /// ones included: clients see connections refused and reset. Returns once all are closed.
    pub async fn stop(&self) {
        let mut run = self.run.lock().await;
        if let Some(control) = run.take() {
            control.stop().await;
            self.running.store(false, Ordering::Release);
        }
    }

    /// Binds the same address again and serves; does nothing if already running.
    pub async fn start_again(&self) -> io::Result<()> {
        let mut run = self.run.lock().await;
        if run.is_none() {
            let listener = bind(self.addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("restarting {} on {}: {e}", self.replica.name(), self.addr),
                )
            })?;
            *run = Some(spawn_run(listener, self.replica.clone()));
            self.running.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Whether the service is accepting connections.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Requests received, across restarts, faulted ones included; the `/fault` control
    /// endpoints and `/healthz` are not counted.
    pub fn requests_served(&self) -> u64 {
        self.replica.requests_served()
    }

    /// The service name given to [`SampleService::start`].
    pub fn name(&self) -> &str {
        self.replica.name()
    }

    /// The replica number given to [`SampleService::start`].
    pub fn replica(&self) -> usize {
        self.replica.index()
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // `start_again` rebinds the port while the old run's connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn spawn_run(listener: TcpListener, replica: Arc<Replica>) -> RunControl {
    let (control, token) = new_run();
    tokio::spawn(accept_loop(listener, replica, token));
    control
}

async fn accept_loop(listener: TcpListener, replica: Arc<Replica>, mut token: RunToken) {
    let builder = Arc::new(ConnectionBuilder::new(TokioExecutor::new()));
    loop {
        let accepted = tokio::select! {
            () = token.stop_requested() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                replica.count_connection();
                // Small responses must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                let serve =
                    connection::serve(stream, builder.clone(), replica.clone(), token.clone());
                tokio::spawn(serve);
            }
            Err(e) => {
                tracing::warn!(service = replica.name(), error = %e, "accepting a connection failed");
                tokio::select! {
                    () = token.stop_requested() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                }
            }
        }
    }
    // Close the port before the run counts as stopped, so a restart can bind it.
    drop(listener);
    drop(token);
}
