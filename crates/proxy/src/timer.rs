//! A deadline timer that is moved along rather than made anew.
//!
//! A tokio `Sleep` made per exchange costs a trip to the runtime's timer wheel twice (a lock
//! to insert its entry when first polled, another to take it out when dropped), a clone of
//! the runtime handle, and a waker clone. An upstream connection carries one exchange at a
//! time, one after the other, each with a deadline a little later than the last: its
//! [`Timer`] stays in the wheel, and a later deadline is only noted. The entry still fires
//! at the earlier one; the timer then sees that the deadline in force is later, moves the
//! entry there and waits on (the way the kernel's and tokio's own wheels cascade). A busy
//! connection so touches the wheel once per timeout period, not once per exchange: the
//! per-connection timer nginx and HAProxy keep, in tokio's terms.
//!
//! An unset timer never fires. One left in the wheel past its last deadline, unset, may wake
//! the task that last waited on it once, for nothing. Whoever waits on the timer polls it
//! first (that registers their waker), so the deadline in force always wakes its waiter.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Further off than any deadline: about thirty years (as tokio's own "far future").
const NEVER: Duration = Duration::from_secs(86_400 * 365 * 30);

/// A deadline that can be set, moved and cleared without a new timer each time.
#[derive(Debug)]
pub struct Timer {
    sleep: Pin<Box<Sleep>>,
    /// The deadline in force, if any.
    at: Option<Instant>,
}

impl Timer {
    /// A timer with no deadline. It enters the runtime's wheel when first set.
    pub fn new() -> Self {
        Self {
            // Not in the wheel until polled or reset; any deadline set is earlier.
            sleep: Box::pin(tokio::time::sleep_until(Instant::now() + NEVER)),
            at: None,
        }
    }

    /// A timer firing at `at` (or never). Like [`Timer::new`], it enters the wheel only
    /// when first polled.
    pub fn at(at: Option<Instant>) -> Self {
        match at {
            Some(at) => Self {
                sleep: Box::pin(tokio::time::sleep_until(at)),
                at: Some(at),
            },
            None => Self::new(),
        }
    }

    /// Fires at `at` from now on, or never if `None`.
    pub fn set(&mut self, at: Option<Instant>) {
        // A later deadline waits for the entry to fire at the earlier one.
        if let Some(at) = at
            && at < self.sleep.deadline()
        {
            self.sleep.as_mut().reset(at);
        }
        self.at = at;
    }

    /// Ready once the deadline has passed; pending for ever when none is set.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.at else {
            return Poll::Pending;
        };
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if at <= self.sleep.deadline() {
                return Poll::Ready(());
            }
            // Fired at an earlier deadline, left in place when this one was set.
            self.sleep.as_mut().reset(at);
        }
    }

    /// Resolves once the deadline has passed; never when none is set.
    pub async fn expired(&mut self) {
        std::future::poll_fn(|cx| self.poll_expired(cx)).await;
    }

    /// `work`'s output, or `None` if the deadline passes first (`work` is polled first).
    pub async fn run<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            done = work => Some(done),
            () = self.expired() => None,
        }
    }
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_and_not_before() {
        let start = Instant::now();
        let mut timer = Timer::at(Some(start + Duration::from_secs(5)));
        timer.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_replaces_the_earlier_one() {
        let start = Instant::now();
        let mut timer = Timer::at(Some(start + Duration::from_secs(1)));
        // Polled once, so the entry is in the wheel with the first deadline.
        assert!(futures_util::poll!(std::pin::pin!(timer.expired())).is_pending());
        timer.set(Some(start + Duration::from_secs(3)));
        timer.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_holds_after_the_earlier_one_passed_unwatched() {
        // An idle pooled connection: its timer fired at the last exchange's deadline with
        // nobody waiting; the next exchange's deadline still counts in full.
        let start = Instant::now();
        let mut timer = Timer::at(Some(start + Duration::from_secs(1)));
        assert!(futures_util::poll!(std::pin::pin!(timer.expired())).is_pending());
        tokio::time::sleep(Duration::from_secs(5)).await;
        for later in [6, 7, 8] {
            timer.set(Some(start + Duration::from_secs(later)));
        }
        timer.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_replaces_a_later_one() {
        let start = Instant::now();
        let mut timer = Timer::at(Some(start + Duration::from_secs(10)));
        assert!(futures_util::poll!(std::pin::pin!(timer.expired())).is_pending());
        timer.set(Some(start + Duration::from_secs(2)));
        timer.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_set_again_after_firing_fires_again() {
        let start = Instant::now();
        let mut timer = Timer::at(Some(start + Duration::from_secs(1)));
        timer.expired().await;
        timer.set(Some(start + Duration::from_secs(4)));
        timer.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cleared_timer_never_fires() {
        let start = Instant::now();
        let mut timer = Timer::at(Some(start + Duration::from_secs(1)));
        assert!(futures_util::poll!(std::pin::pin!(timer.expired())).is_pending());
        timer.set(None);
        let outcome = tokio::time::timeout(Duration::from_secs(60), timer.expired()).await;
        assert!(outcome.is_err(), "a timer with no deadline fired");
    }
}
