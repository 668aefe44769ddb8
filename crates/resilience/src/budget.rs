//! A retry budget: over a sliding window, retries may be at most `ratio` × the requests seen
//! plus `min_per_second` × the window's seconds (the floor lets a quiet route still retry).
//! Requests deposit, retries withdraw; a retry the budget cannot pay for is not made.
//!
//! The window is ten slots wide and slides a slot at a time. Its state sits behind a mutex
//! held for a few additions; requests on one route share it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const SLOTS: usize = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Which slot of time this is (time since `origin` / slot width); stale when behind.
    index: u64,
    requests: u64,
    retries: u64,
}

#[derive(Debug)]
struct Window {
    origin: Option<Instant>,
    slots: [Slot; SLOTS],
}

/// A retry budget shared by the requests of one route.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    window: Duration,
    state: Mutex<Window>,
}

impl RetryBudget {
    /// Retries ≤ `ratio` × requests + `min_per_second` × seconds, over `window`.
    pub fn new(ratio: f64, min_per_second: u32, window: Duration) -> Self {
        Self {
            ratio: ratio.max(0.0),
            min_per_second,
            window: window.max(Duration::from_millis(SLOTS as u64)),
            state: Mutex::new(Window {
                origin: None,
                slots: [Slot::default(); SLOTS],
            }),
        }
    }

    /// Records a request (a first attempt).
    pub fn deposit(&self, now: Instant) {
        self.with_slot(now, |slot| slot.requests += 1);
    }

    /// Takes one retry from the budget if it allows one now; false means: do not retry.
    pub fn withdraw(&self, now: Instant) -> bool {
        let mut window = self.lock();
        let current = self.slot_index(&mut window, now);
        let (requests, retries) = window
            .slots
            .iter()
            .filter(|s| s.index + SLOTS as u64 > current)
            .fold((0, 0), |(q, r), s| (q + s.requests, r + s.retries));
        let allowed = self.ratio * requests as f64
            + f64::from(self.min_per_second) * self.window.as_secs_f64();
        if (retries + 1) as f64 > allowed {
            return false;
        }
        Self::slot(&mut window, current).retries += 1;
        true
    }

    /// Retries the budget would allow now, for the admin API and metrics.
    pub fn available(&self, now: Instant) -> f64 {
        let mut window = self.lock();
        let current = self.slot_index(&mut window, now);
        let (requests, retries) = window
            .slots
            .iter()
            .filter(|s| s.index + SLOTS as u64 > current)
            .fold((0, 0), |(q, r), s| (q + s.requests, r + s.retries));
        (self.ratio * requests as f64 + f64::from(self.min_per_second) * self.window.as_secs_f64()
            - retries as f64)
            .max(0.0)
    }

    fn with_slot(&self, now: Instant, f: impl FnOnce(&mut Slot)) {
        let mut window = self.lock();
        let current = self.slot_index(&mut window, now);
        f(Self::slot(&mut window, current));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot_index(&self, window: &mut Window, now: Instant) -> u64 {
        let origin = *window.origin.get_or_insert(now);
        let width = self.window / SLOTS as u32;
        (now.saturating_duration_since(origin).as_nanos() / width.as_nanos().max(1)) as u64
    }

    /// The slot for `index`, cleared first if it last held an older slot of time.
    fn slot(window: &mut Window, index: u64) -> &mut Slot {
        let slot = &mut window.slots[(index % SLOTS as u64) as usize];
        if slot.index != index {
            *slot = Slot {
                index,
                ..Slot::default()
            };
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retries_are_limited_to_the_ratio_plus_the_floor() {
        let start = Instant::now();
        let budget = RetryBudget::new(0.2, 1, Duration::from_secs(10));
        for _ in 0..100 {
            budget.deposit(start);
        }
        // 0.2 × 100 + 1 × 10 s = 30 retries, then no more.
        let granted = (0..50).filter(|_| budget.withdraw(start)).count();
        assert_eq!(granted, 30);
        assert_eq!(budget.available(start), 0.0);
    }

    #[test]
    fn the_window_slides_so_old_requests_stop_paying() {
        let start = Instant::now();
        let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10));
        for _ in 0..10 {
            budget.deposit(start);
        }
        assert!(budget.withdraw(start + Duration::from_secs(9)));
        // Eleven seconds on, those deposits have left the window (the retry at 9 s has not).
        let later = start + Duration::from_secs(11);
        assert!(!budget.withdraw(later));
        for _ in 0..4 {
            budget.deposit(later);
        }
        // 0.5 × 4 = 2 retries in the window, one of them already taken at 9 s.
        assert!(budget.withdraw(later));
        assert!(!budget.withdraw(later));
    }

    proptest! {
        /// Whatever the interleaving of requests, retries and time, the retries granted never
        /// exceed ratio × requests + floor × (elapsed + window).
        #[test]
        fn never_grants_more_than_ratio_times_requests_plus_floor(
            steps in proptest::collection::vec((0u64..3_000, any::<bool>()), 1..400),
            ratio in 0.0f64..1.0,
            floor in 0u32..5,
        ) {
            let window = Duration::from_secs(10);
            let budget = RetryBudget::new(ratio, floor, window);
            let start = Instant::now();
            let mut now = start;
            let (mut requests, mut granted) = (0u64, 0u64);
            for (advance_ms, is_request) in steps {
                now += Duration::from_millis(advance_ms);
                if is_request {
                    budget.deposit(now);
                    requests += 1;
                } else if budget.withdraw(now) {
                    granted += 1;
                }
            }
            let elapsed = (now - start + window).as_secs_f64();
            let bound = ratio * requests as f64 + f64::from(floor) * elapsed;
            prop_assert!(granted as f64 <= bound + 1e-9, "granted {} > bound {}", granted, bound);
        }
    }
}
