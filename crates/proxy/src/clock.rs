//! One clock read per wake-up of a client connection's task.
//!
//! A proxied request reads the time at several steps that happen in the same poll of its
//! connection's task: the edge notes its arrival, Forward checks the deadline, the pool checks
//! an idle connection's age; later, on the answer, the endpoint slot notes the head, the pool
//! notes when the connection went idle, the slot and the exchange note the end. Inside
//! [`Scoped`] (which wraps a client connection's task) the first [`now`] of a poll reads the
//! clock and the rest of that poll reuses the time, as nginx reads it once per turn of its
//! event loop; outside, [`now`] is `Instant::now()`. A poll runs for microseconds, so the
//! times differ from fresh reads by no more than that.
//!
//! The time is tokio's, so tests that pause it see paused time here too.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;

#[derive(Clone, Copy)]
enum Reading {
    /// Not in a scope: every call reads the clock.
    Unscoped,
    /// In a scope that has not read it yet.
    Unread,
    /// Read in this scope.
    Read(Instant),
}

thread_local! {
    static READING: Cell<Reading> = const { Cell::new(Reading::Unscoped) };
}

/// The time: read once per scope, or every time outside one.
pub fn now() -> Instant {
    READING.with(|reading| match reading.get() {
        Reading::Unscoped => Instant::now(),
        Reading::Read(at) => at,
        Reading::Unread => {
            let at = Instant::now();
            reading.set(Reading::Read(at));
            at
        }
    })
}

/// Runs `f` with [`now`] read at most once (a scope inside another starts afresh and leaves
/// the outer one as it was).
pub fn scope<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the outer reading back, even if `f` panics (tokio catches a task's panic, and
    /// the thread would otherwise keep a stopped clock).
    struct Restore(Reading);
    impl Drop for Restore {
        fn drop(&mut self) {
            READING.with(|reading| reading.set(self.0));
        }
    }
    let _restore = Restore(READING.with(|reading| reading.replace(Reading::Unread)));
    f()
}

pin_project_lite::pin_project! {
    /// A future each poll of which is a [`scope`].
    pub struct Scoped<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Scoped<F> {
    /// `inner`, its polls scoped.
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        scope(|| inner.poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_scope_reads_the_clock_once_and_outside_every_call_reads_it() {
        let pause = || std::thread::sleep(Duration::from_millis(2));
        let before = now();
        pause();
        assert!(now() > before, "unscoped: a fresh read");
        let (first, second, nested, after_nested) = scope(|| {
            let first = now();
            pause();
            let second = now();
            let nested = scope(|| {
                pause();
                now()
            });
            (first, second, nested, now())
        });
        assert_eq!(second, first, "the scope's second read is its first");
        assert!(nested > first, "a nested scope reads afresh");
        assert_eq!(
            after_nested, first,
            "and leaves the outer reading as it was"
        );
        pause();
        assert!(now() > first, "after the scope: fresh again");
    }

    #[test]
    fn a_panic_inside_a_scope_does_not_leave_the_clock_stopped() {
        let panicked = std::panic::catch_unwind(|| {
            scope(|| {
                now();
                panic!("inside the scope");
            })
        });
        assert!(panicked.is_err());
        let before = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() > before, "unscoped again: a fresh read");
    }

    #[tokio::test(start_paused = true)]
    async fn each_poll_of_a_scoped_future_reads_afresh() {
        let times = Scoped::new(async {
            let first = now();
            tokio::time::sleep(Duration::from_secs(5)).await;
            let after_wait = now();
            (first, after_wait)
        })
        .await;
        assert_eq!(times.1, times.0 + Duration::from_secs(5));
    }
}
