//! Counters and gauges that the request path adds to without lock-prefixed instructions.
//!
//! An atomic add (`lock xadd`) costs tens of cycles even when no other core touches the
//! line, and a proxied request made about ten of them for its route's and endpoint's golden
//! signals. Here each value keeps one slot per thread that writes it: the first
//! [`OWNED_SLOTS`] threads to record anything are each given a slot index of their own for
//! their whole life, and add to it with a plain load and store (nobody else writes that
//! slot, so no update is lost). Any later thread shares the last slot, with an atomic add.
//! Reading a value sums its slots (Envoy keeps per-worker copies of its stats for the same
//! reason, and merges them on a timer; here a scrape sums them when it runs).
//!
//! Slots hold wrapping sums: a gauge raised on one thread and lowered on another has +1 in
//! one slot and -1 (wrapped) in the other, and the sum is right. A scrape reads the slots one
//! after the other, so it may see a lowering without the raise before it: the per-thread
//! gauges count things (requests in flight, open connections), and read below zero as zero.
//!
//! A value's slots share 64 bytes: with several workers recording on one route the line
//! still moves between their cores (as the one atomic did), only without the locked
//! instruction. Slots are never handed back: a thread that recorded once (a blocking-pool
//! thread, say) keeps its slot, and a worker started after seven such threads shares.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::metrics::{counter, gauge};

/// Threads that get a slot of their own; the rest share one. The proxy's worker threads
/// record first and are few (one per CPU): on a machine with more, the others share.
pub const OWNED_SLOTS: usize = 7;

/// Slots per value: the owned ones and the shared one, one cache line.
const SLOTS: usize = OWNED_SLOTS + 1;

/// The shared slot's index.
const SHARED: usize = OWNED_SLOTS;

/// Slot indices handed out so far.
static HANDED_OUT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot: `UNASSIGNED` until it first records.
    static SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
}

const UNASSIGNED: usize = usize::MAX;

/// The slot this thread adds to, given on its first call and kept for its life.
fn slot() -> usize {
    SLOT.with(|slot| match slot.get() {
        UNASSIGNED => {
            let given = HANDED_OUT.fetch_add(1, Ordering::Relaxed).min(SHARED);
            slot.set(given);
            given
        }
        given => given,
    })
}

/// A `u64` that threads add to, each in its own slot (wrapping), read as the slots' sum.
#[derive(Debug, Default)]
pub struct PerThread([AtomicU64; SLOTS]);

impl PerThread {
    /// Adds `v` (wrapping).
    pub fn add(&self, v: u64) {
        match slot() {
            SHARED => {
                self.0[SHARED].fetch_add(v, Ordering::Relaxed);
            }
            own => {
                // This thread alone writes this slot: no read-modify-write needed.
                let cell = &self.0[own];
                cell.store(
                    cell.load(Ordering::Relaxed).wrapping_add(v),
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// The sum over every thread's slot (wrapping).
    pub fn sum(&self) -> u64 {
        self.0.iter().fold(0, |sum, slot| {
            sum.wrapping_add(slot.load(Ordering::Relaxed))
        })
    }
}

/// A Prometheus counter kept per thread.
pub type Counter = counter::Counter<u64, PerThread>;

/// A Prometheus gauge kept per thread.
pub type Gauge = gauge::Gauge<i64, PerThread>;

impl counter::Atomic<u64> for PerThread {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    /// Returns 0: the value before, across threads, is not known without summing.
    fn inc_by(&self, v: u64) -> u64 {
        self.add(v);
        0
    }

    fn get(&self) -> u64 {
        self.sum()
    }
}

impl gauge::Atomic<i64> for PerThread {
    fn inc(&self) -> i64 {
        self.inc_by(1)
    }

    /// Returns 0 (see [`counter::Atomic::inc_by`]).
    fn inc_by(&self, v: i64) -> i64 {
        self.add(v as u64);
        0
    }

    fn dec(&self) -> i64 {
        self.dec_by(1)
    }

    fn dec_by(&self, v: i64) -> i64 {
        self.add(v.wrapping_neg() as u64);
        0
    }

    /// Sets the value as this thread sees it: not exact while other threads record. The
    /// proxy's per-thread gauges are only raised and lowered.
    fn set(&self, v: i64) -> i64 {
        let before = self.sum() as i64;
        self.add(v.wrapping_sub(before) as u64);
        before
    }

    /// The count, never below zero (see the module's notes).
    fn get(&self) -> i64 {
        (self.sum() as i64).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_is_counted_more_threads_than_slots_included() {
        let counter = Counter::default();
        let threads = 3 * SLOTS;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let counter = counter.clone();
                scope.spawn(move || {
                    for _ in 0..20_000 {
                        counter.inc();
                    }
                });
            }
        });
        // A slot written by two threads with a plain load and store would lose updates.
        assert_eq!(counter.get(), threads as u64 * 20_000);
    }

    #[test]
    fn a_gauge_raised_on_one_thread_and_lowered_on_another_sums_right() {
        let gauge = Gauge::default();
        for _ in 0..5 {
            gauge.inc();
        }
        let lowering = gauge.clone();
        std::thread::spawn(move || {
            for _ in 0..3 {
                lowering.dec();
            }
        })
        .join()
        .unwrap();
        assert_eq!(gauge.get(), 2);
        let lowering = gauge.clone();
        std::thread::spawn(move || lowering.dec_by(4))
            .join()
            .unwrap();
        assert_eq!(gauge.get(), 0, "a count reads below zero as zero");
        gauge.set(7);
        assert_eq!(gauge.get(), 7);
        gauge.inc();
        assert_eq!(gauge.get(), 8);
    }

    #[test]
    fn a_thread_keeps_its_slot() {
        let first = slot();
        assert_eq!(slot(), first);
        let value = PerThread::default();
        value.add(3);
        value.add(4);
        assert_eq!(value.0[first].load(Ordering::Relaxed), 7);
        assert_eq!(value.sum(), 7);
    }
}
