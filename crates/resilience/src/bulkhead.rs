//! A bulkhead: at most `limit` requests at once, at most `max_queue` more waiting (first come,
//! first served) for at most `queue_timeout`. Past that it fails fast, so a slow dependency
//! holds a bounded share of the proxy instead of all of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// All slots busy and the queue full.
    Full,
    /// Waited `queue_timeout` in the queue without a slot.
    QueueTimeout,
}

/// A concurrency limit with a bounded wait queue.
#[derive(Debug)]
pub struct Bulkhead {
    limit: usize,
    max_queue: usize,
    queue_timeout: Duration,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
}

/// A slot in the bulkhead, given back when dropped.
#[derive(Debug)]
pub struct BulkheadPermit {
    _slot: OwnedSemaphorePermit,
}

impl Bulkhead {
    /// `limit` at once, `max_queue` waiting, each for at most `queue_timeout`.
    pub fn new(limit: usize, max_queue: usize, queue_timeout: Duration) -> Self {
        Self {
            limit,
            max_queue,
            queue_timeout,
            slots: Arc::new(Semaphore::new(limit)),
            queued: AtomicUsize::new(0),
        }
    }

    /// Admits a request, waiting in the queue if needed; the permit holds its slot.
    /// Also returns whether it had to queue.
    pub async fn admit(&self) -> Result<(BulkheadPermit, bool), Rejected> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok((BulkheadPermit { _slot: slot }, false));
        }
        // Join the queue only if it has room.
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.max_queue).then_some(q + 1)
            })
            .map_err(|_| Rejected::Full)?;
        let waited =
            tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(slot)) => Ok((BulkheadPermit { _slot: slot }, true)),
            // The semaphore is never closed; treat it like a timeout if it were.
            Ok(Err(_)) | Err(_) => Err(Rejected::QueueTimeout),
        }
    }

    /// The most requests admitted at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Requests admitted now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.slots.available_permits()
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The most requests that may wait.
    pub fn max_queue(&self) -> usize {
        self.max_queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_up_to_the_limit_then_queues_then_fails_fast() {
        let bulkhead = Arc::new(Bulkhead::new(2, 1, Duration::from_secs(1)));
        let (a, queued_a) = bulkhead.admit().await.unwrap();
        let (_b, _) = bulkhead.admit().await.unwrap();
        assert!(!queued_a);
        assert_eq!(bulkhead.in_flight(), 2);
        // The third waits in the queue; the fourth finds it full.
        let waiting = tokio::spawn({
            let bulkhead = bulkhead.clone();
            async move {
                bulkhead
                    .admit()
                    .await
                    .map(|(permit, queued)| (queued, permit))
            }
        });
        tokio::task::yield_now().await;
        assert_eq!(bulkhead.queued(), 1);
        assert_eq!(bulkhead.admit().await.unwrap_err(), Rejected::Full);
        // A slot frees: the queued request gets it.
        drop(a);
        let (queued, _permit) = waiting.await.unwrap().unwrap();
        assert!(queued);
        assert_eq!(bulkhead.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_gives_up_at_the_queue_timeout() {
        let bulkhead = Bulkhead::new(1, 5, Duration::from_millis(300));
        let _held = bulkhead.admit().await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(bulkhead.admit().await.unwrap_err(), Rejected::QueueTimeout);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(bulkhead.queued(), 0, "the queue slot is given back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_admits_more_than_the_limit_under_contention() {
        let bulkhead = Arc::new(Bulkhead::new(3, 1000, Duration::from_secs(30)));
        let peak = Arc::new(AtomicUsize::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (bulkhead, peak, inside) = (bulkhead.clone(), peak.clone(), inside.clone());
                tokio::spawn(async move {
                    let _permit = bulkhead.admit().await.unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(bulkhead.in_flight(), 0);
    }
}
