//! A bulkhead: at most `limit` requests at once, at most `max_queue` more waiting for at most
//! `queue_timeout`. Past that it fails fast, so a slow dependency holds a bounded share of the
//! proxy instead of all of it.
//!
//! Waiting requests have a [`Priority`]. A freed slot goes to the oldest waiter of the highest
//! class. When the queue is full, a newcomer displaces the newest waiter of a lower class
//! (which is refused at once), or is refused itself: under overload, `sheddable` work goes
//! first and `critical` work last.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// All slots busy and the queue full (or the request was displaced from it by a more
    /// important one).
    Full,
    /// Waited `queue_timeout` in the queue without a slot.
    QueueTimeout,
}

/// How important a request is when the bulkhead is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Shed first.
    Sheddable = 0,
    /// Ordinary traffic.
    #[default]
    Default = 1,
    /// Shed last.
    Critical = 2,
}

impl Priority {
    /// Reads `critical`, `default` or `sheddable`.
    pub fn parse(text: &str) -> Option<Priority> {
        match text {
            "critical" => Some(Priority::Critical),
            "default" => Some(Priority::Default),
            "sheddable" => Some(Priority::Sheddable),
            _ => None,
        }
    }
}

struct Waiter {
    id: u64,
    /// Gets `true` when handed a slot, `false` when displaced.
    wake: oneshot::Sender<bool>,
}

struct State {
    in_flight: usize,
    /// Waiters by priority (index = `Priority as usize`), oldest first.
    queues: [VecDeque<Waiter>; 3],
}

impl State {
    fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }
}

/// A concurrency limit with a bounded, prioritised wait queue.
pub struct Bulkhead {
    limit: usize,
    max_queue: usize,
    queue_timeout: Duration,
    state: Arc<Mutex<State>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead")
            .field("limit", &self.limit)
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

/// A slot in the bulkhead, handed to the next waiter (or given back) when dropped.
pub struct BulkheadPermit {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for BulkheadPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BulkheadPermit")
    }
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        release(&mut lock(&self.state));
    }
}

/// Gives a slot up: to the most important, oldest waiter still waiting, or back to the pool.
fn release(state: &mut State) {
    for class in (0..3).rev() {
        while let Some(waiter) = state.queues[class].pop_front() {
            if waiter.wake.send(true).is_ok() {
                return;
            }
        }
    }
    state.in_flight -= 1;
}

/// A request waiting in the queue. If it stops waiting for any reason (its client left, the
/// queue timeout), it leaves the queue, and a slot handed to it in the meantime is passed on.
struct Waiting {
    state: Arc<Mutex<State>>,
    id: u64,
    class: usize,
    woken: oneshot::Receiver<bool>,
    settled: bool,
}

impl Waiting {
    /// Stops waiting: `true` if a slot had been handed over after all (it is now ours).
    fn leave(&mut self) -> bool {
        self.settled = true;
        let mut state = lock(&self.state);
        let queue = &mut state.queues[self.class];
        if let Some(at) = queue.iter().position(|w| w.id == self.id) {
            queue.remove(at);
            return false;
        }
        // Gone from the queue: handed a slot or displaced, under the lock, so the answer is
        // already in the channel.
        matches!(self.woken.try_recv(), Ok(true))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.settled && self.leave() {
            release(&mut lock(&self.state));
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Bulkhead {
    /// `limit` at once, `max_queue` waiting, each for at most `queue_timeout`.
    pub fn new(limit: usize, max_queue: usize, queue_timeout: Duration) -> Self {
        Self {
            limit,
            max_queue,
            queue_timeout,
            state: Arc::new(Mutex::new(State {
                in_flight: 0,
                queues: Default::default(),
            })),
            next_id: AtomicU64::new(0),
        }
    }

    /// Admits a request of `priority`, waiting in the queue if needed; the permit holds its
    /// slot. Also returns whether it had to queue.
    pub async fn admit(&self, priority: Priority) -> Result<(BulkheadPermit, bool), Rejected> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let woken = {
            let mut state = lock(&self.state);
            if state.in_flight < self.limit && state.queued() == 0 {
                state.in_flight += 1;
                return Ok((self.permit(), false));
            }
            if state.queued() >= self.max_queue {
                // Displace the newest waiter of the least important class below this one.
                let lower = (0..priority as usize).find(|&c| !state.queues[c].is_empty());
                let Some(class) = lower else {
                    return Err(Rejected::Full);
                };
                if let Some(displaced) = state.queues[class].pop_back() {
                    let _ = displaced.wake.send(false);
                }
            }
            let (wake, woken) = oneshot::channel();
            state.queues[priority as usize].push_back(Waiter { id, wake });
            woken
        };
        let mut waiting = Waiting {
            state: self.state.clone(),
            id,
            class: priority as usize,
            woken,
            settled: false,
        };
        match tokio::time::timeout(self.queue_timeout, &mut waiting.woken).await {
            Ok(Ok(true)) => {
                waiting.settled = true;
                Ok((self.permit(), true))
            }
            Ok(Ok(false) | Err(_)) => {
                waiting.settled = true;
                Err(Rejected::Full)
            }
            Err(_) if waiting.leave() => Ok((self.permit(), true)),
            Err(_) => Err(Rejected::QueueTimeout),
        }
    }

    fn permit(&self) -> BulkheadPermit {
        BulkheadPermit {
            state: self.state.clone(),
        }
    }

    /// The most requests admitted at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Requests admitted now.
    pub fn in_flight(&self) -> usize {
        lock(&self.state).in_flight
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        lock(&self.state).queued()
    }

    /// The most requests that may wait.
    pub fn max_queue(&self) -> usize {
        self.max_queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn admits_up_to_the_limit_then_queues_then_fails_fast() {
        let bulkhead = Arc::new(Bulkhead::new(2, 1, Duration::from_secs(1)));
        let (a, queued_a) = bulkhead.admit(Priority::Default).await.unwrap();
        let (_b, _) = bulkhead.admit(Priority::Default).await.unwrap();
        assert!(!queued_a);
        assert_eq!(bulkhead.in_flight(), 2);
        // The third waits in the queue; the fourth finds it full.
        let waiting = tokio::spawn({
            let bulkhead = bulkhead.clone();
            async move { bulkhead.admit(Priority::Default).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(bulkhead.queued(), 1);
        assert_eq!(
            bulkhead.admit(Priority::Default).await.unwrap_err(),
            Rejected::Full
        );
        // A slot frees: the queued request gets it.
        drop(a);
        let (_permit, queued) = waiting.await.unwrap().unwrap();
        assert!(queued);
        assert_eq!(bulkhead.queued(), 0);
        assert_eq!(bulkhead.in_flight(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_gives_up_at_the_queue_timeout() {
        let bulkhead = Bulkhead::new(1, 5, Duration::from_millis(300));
        let _held = bulkhead.admit(Priority::Default).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(
            bulkhead.admit(Priority::Default).await.unwrap_err(),
            Rejected::QueueTimeout
        );
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(bulkhead.queued(), 0, "the queue slot is given back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_sheds_the_least_important_first_and_frees_go_to_the_most() {
        let bulkhead = Arc::new(Bulkhead::new(1, 2, Duration::from_secs(10)));
        let held = bulkhead.admit(Priority::Default).await.unwrap();
        let wait = |priority| {
            let bulkhead = bulkhead.clone();
            tokio::spawn(async move {
                let admitted = bulkhead.admit(priority).await;
                admitted.map(|(permit, _)| (priority, permit))
            })
        };
        let sheddable = wait(Priority::Sheddable);
        tokio::task::yield_now().await;
        let default = wait(Priority::Default);
        tokio::task::yield_now().await;
        assert_eq!(bulkhead.queued(), 2);
        // The queue is full: a critical request displaces the sheddable one…
        let critical = wait(Priority::Critical);
        tokio::task::yield_now().await;
        assert_eq!(sheddable.await.unwrap().unwrap_err(), Rejected::Full);
        // …and another sheddable one finds no one below it to displace.
        assert_eq!(
            bulkhead.admit(Priority::Sheddable).await.unwrap_err(),
            Rejected::Full
        );
        // The freed slot goes to the critical request although the default one came first.
        drop(held);
        let (first, _slot) = critical.await.unwrap().unwrap();
        assert_eq!(first, Priority::Critical);
        tokio::task::yield_now().await;
        assert!(!default.is_finished(), "the default request still waits");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_leaves_the_queue_and_never_takes_a_slot_with_it() {
        let bulkhead = Arc::new(Bulkhead::new(1, 2, Duration::from_secs(60)));
        let held = bulkhead.admit(Priority::Default).await.unwrap();
        let gone = tokio::spawn({
            let bulkhead = bulkhead.clone();
            async move { bulkhead.admit(Priority::Default).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert_eq!(bulkhead.queued(), 1);
        // Its client leaves: it is out of the queue at once.
        gone.abort();
        let _ = gone.await;
        assert_eq!(bulkhead.queued(), 0);

        // Now one leaves just as the slot is handed to it: the slot is not lost.
        let mut racing = Box::pin({
            let bulkhead = bulkhead.clone();
            async move { bulkhead.admit(Priority::Default).await }
        });
        assert!(futures_poll_once(racing.as_mut()).await.is_none());
        drop(held); // hands the slot to the racing waiter, which has not looked yet
        drop(racing);
        assert_eq!(bulkhead.in_flight(), 0, "the handed slot went back");
        let (_again, queued) = bulkhead.admit(Priority::Default).await.unwrap();
        assert!(!queued);
    }

    /// Polls a future once; `Some` if it finished.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(value) => Some(value),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_admits_more_than_the_limit_under_contention() {
        let bulkhead = Arc::new(Bulkhead::new(3, 1000, Duration::from_secs(30)));
        let peak = Arc::new(AtomicUsize::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (bulkhead, peak, inside) = (bulkhead.clone(), peak.clone(), inside.clone());
                let priority = [Priority::Sheddable, Priority::Default, Priority::Critical][i % 3];
                tokio::spawn(async move {
                    let _permit = bulkhead.admit(priority).await.unwrap();
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
        assert_eq!(bulkhead.queued(), 0);
    }
}

#[cfg(test)]
mod properties {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    /// One step of a caller population.
    #[derive(Clone, Debug)]
    enum Step {
        /// A new caller asks for a slot.
        Admit(Priority),
        /// The k-th (modulo) holder finishes.
        Release(usize),
        /// The k-th (modulo) caller still waiting gives up (its future is dropped).
        Cancel(usize),
        /// Time passes (queue timeouts fire).
        Advance(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => prop_oneof![
                Just(Priority::Sheddable),
                Just(Priority::Default),
                Just(Priority::Critical)
            ]
            .prop_map(Step::Admit),
            3 => any::<usize>().prop_map(Step::Release),
            1 => any::<usize>().prop_map(Step::Cancel),
            1 => (1u64..80).prop_map(Step::Advance),
        ]
    }

    /// Lets every runnable task run until nothing changes.
    async fn settle() {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Under any interleaving of arrivals, releases, cancellations and timeouts, the
        /// bulkhead never has more than its limit in flight nor more than its queue waiting,
        /// every slot it counts is held by a caller, and when everyone is gone nothing leaks.
        #[test]
        fn never_admits_more_than_its_limit(
            limit in 1usize..5,
            max_queue in 0usize..5,
            steps in proptest::collection::vec(step(), 1..120),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async move {
                let bulkhead = Arc::new(Bulkhead::new(limit, max_queue, Duration::from_millis(50)));
                let held: Arc<Mutex<Vec<BulkheadPermit>>> = Arc::default();
                let mut waiting: Vec<tokio::task::JoinHandle<()>> = Vec::new();
                for step in steps {
                    match step {
                        Step::Admit(priority) => {
                            let (bulkhead, held) = (bulkhead.clone(), held.clone());
                            waiting.push(tokio::spawn(async move {
                                if let Ok((permit, _)) = bulkhead.admit(priority).await {
                                    held.lock().unwrap().push(permit);
                                }
                            }));
                        }
                        Step::Release(k) => {
                            let mut held = held.lock().unwrap();
                            if !held.is_empty() {
                                let at = k % held.len();
                                drop(held.swap_remove(at));
                            }
                        }
                        Step::Cancel(k) => {
                            waiting.retain(|task| !task.is_finished());
                            if !waiting.is_empty() {
                                let at = k % waiting.len();
                                waiting.swap_remove(at).abort();
                            }
                        }
                        Step::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                    }
                    settle().await;
                    let holders = held.lock().unwrap().len();
                    prop_assert!(bulkhead.in_flight() <= limit, "in flight {} > limit {limit}", bulkhead.in_flight());
                    prop_assert!(holders <= limit);
                    prop_assert!(bulkhead.queued() <= max_queue);
                    prop_assert_eq!(bulkhead.in_flight(), holders, "every counted slot is held");
                }
                for task in waiting {
                    task.abort();
                }
                settle().await;
                held.lock().unwrap().clear();
                tokio::time::advance(Duration::from_millis(100)).await;
                settle().await;
                prop_assert_eq!(bulkhead.in_flight(), 0);
                prop_assert_eq!(bulkhead.queued(), 0);
                Ok(())
            })?;
        }
    }
}
