//! A client connection's request to close: raised by its watchdog (idle, draining, listener
//! removed), looked at and waited on by the connection between requests. A flag and one
//! waker, as only the connection's own task waits: waiting before every request takes no
//! lock and allocates nothing.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

#[derive(Debug, Default)]
struct Shared {
    raised: AtomicBool,
    waiter: AtomicWaker,
}

/// The side that asks: raising is for good. Dropping it raises too, so a connection whose
/// watchdog is gone closes rather than living unwatched.
#[derive(Debug)]
pub struct Closer(Arc<Shared>);

/// The side that is asked (the connection's task).
#[derive(Clone, Debug)]
pub struct Closing(Arc<Shared>);

/// A request to close, not yet raised.
pub fn channel() -> (Closer, Closing) {
    let shared = Arc::new(Shared::default());
    (Closer(shared.clone()), Closing(shared))
}

impl Closer {
    /// Asks the connection to close once its request in flight is answered.
    pub fn raise(&self) {
        self.0.raised.store(true, Ordering::Release);
        self.0.waiter.wake();
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.raise();
    }
}

impl Closing {
    /// Whether the connection has been asked to close.
    pub fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::Acquire)
    }

    /// Resolves once the connection has been asked to close (at once if it already was).
    /// Only one task may wait at a time: a second waiter takes the first one's place.
    pub async fn raised(&self) {
        poll_fn(|cx| {
            if self.is_raised() {
                return Poll::Ready(());
            }
            self.0.waiter.register(cx.waker());
            // Raised between the look and the registration: not missed.
            if self.is_raised() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_waiting_connection_wakes_when_raised() {
        let (closer, closing) = channel();
        assert!(!closing.is_raised());
        let waiting = tokio::spawn({
            let closing = closing.clone();
            async move { closing.raised().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "nothing raised yet");
        closer.raise();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken by the raise")
            .unwrap();
        assert!(closing.is_raised());
        // Raised for good: a later wait ends at once.
        tokio::time::timeout(Duration::from_millis(1), closing.raised())
            .await
            .expect("already raised");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_closer_raises() {
        let (closer, closing) = channel();
        let waiting = tokio::spawn(async move { closing.raised().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(closer);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken by the drop")
            .unwrap();
    }
}
