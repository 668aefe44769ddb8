//! Tracking open client connections and tunnels, so a shutdown or a removed listener can
//! ask them to finish and wait until they have.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Counts open connections and broadcasts "finish up" to them.
#[derive(Clone, Debug)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    open: AtomicUsize,
    all_closed: Notify,
    signal: watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    /// A tracker with nothing open.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                open: AtomicUsize::new(0),
                all_closed: Notify::new(),
                signal: watch::channel(false).0,
            }),
        }
    }

    /// Registers an open connection; it counts until the guard drops.
    pub fn track(&self) -> Open {
        self.inner.open.fetch_add(1, Ordering::SeqCst);
        Open(self.inner.clone())
    }

    /// Connections and tunnels open now.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::SeqCst)
    }

    /// A receiver that sees `true` once draining has begun.
    pub fn signal(&self) -> watch::Receiver<bool> {
        self.inner.signal.subscribe()
    }

    /// Tells every tracked connection to finish its current requests and close.
    pub fn begin(&self) {
        self.inner.signal.send_replace(true);
    }

    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        *self.inner.signal.borrow()
    }

    /// Resolves once draining has begun.
    pub async fn begun(&self) {
        raised(&mut self.signal()).await;
    }

    /// Waits until everything tracked has closed or `timeout` passes; true if all closed.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let closed = async {
            loop {
                let notified = self.inner.all_closed.notified();
                if self.open() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, closed).await.is_ok()
    }
}

/// Resolves once a stop flag is (or already was) set, or its sender is gone.
pub(crate) async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// One open connection or tunnel.
#[derive(Debug)]
pub struct Open(Arc<Inner>);

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_returns_when_the_last_connection_closes() {
        let drain = Drain::new();
        let a = drain.track();
        let b = drain.track();
        drain.begin();
        assert!(*drain.signal().borrow());
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.wait(Duration::from_secs(30)).await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        drop(b);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn wait_gives_up_at_the_timeout() {
        let drain = Drain::new();
        let _stuck = drain.track();
        assert!(!drain.wait(Duration::from_secs(5)).await);
    }
}
