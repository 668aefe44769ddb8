//! Adaptive concurrency: a concurrency limit learned from latency, in the spirit of Netflix's
//! gradient limiter and Envoy's adaptive concurrency filter, so overload sheds instead of
//! queueing.
//!
//! The limiter keeps the lowest latency seen recently (the latency without queueing) and,
//! every `interval`, compares the interval's average latency with it:
//! `gradient = clamp(tolerance × min_rtt / sample_rtt, 0.5, 1)`, and the new limit is
//! `limit × gradient + √limit` (the square root lets it probe upwards while latency holds),
//! kept within `[min_limit, max_limit]`. When latency rises because requests queue up behind
//! the upstream, the limit falls towards what the upstream can serve at its best latency; the
//! excess is refused at once. The lowest latency is forgotten every `min_rtt_window`, so a
//! service that got permanently slower is relearned.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveConfig {
    /// The limit to start from.
    pub initial_limit: usize,
    /// Never below this.
    pub min_limit: usize,
    /// Never above this.
    pub max_limit: usize,
    /// How much slower than the best latency the average may be before the limit shrinks.
    pub tolerance: f64,
    /// How often the limit is recomputed.
    pub interval: Duration,
    /// How long the lowest latency is remembered.
    pub min_rtt_window: Duration,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    min_rtt: Option<Duration>,
    min_rtt_since: Option<Instant>,
    sum: Duration,
    count: u32,
    interval_start: Option<Instant>,
}

/// One cluster's adaptive limit.
#[derive(Debug)]
pub struct AdaptiveLimit {
    config: AdaptiveConfig,
    state: Mutex<State>,
}

/// A request admitted under the limit; report its latency with [`Admitted::done`]. Dropped
/// without a report, it only frees its place.
#[derive(Debug)]
pub struct Admitted {
    limiter: Arc<AdaptiveLimit>,
    reported: bool,
}

impl Admitted {
    /// The request got its answer after `rtt`.
    pub fn done(mut self, rtt: Duration, now: Instant) {
        self.reported = true;
        self.limiter.complete(Some(rtt), now);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if !self.reported {
            self.limiter.complete(None, Instant::now());
        }
    }
}

impl AdaptiveLimit {
    /// A limiter starting at `initial_limit`.
    pub fn new(config: AdaptiveConfig) -> Arc<Self> {
        let limit = config
            .initial_limit
            .clamp(config.min_limit.max(1), config.max_limit.max(1)) as f64;
        Arc::new(Self {
            config,
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                min_rtt: None,
                min_rtt_since: None,
                sum: Duration::ZERO,
                count: 0,
                interval_start: None,
            }),
        })
    }

    /// Admits a request if fewer than the limit are in flight.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Admitted> {
        let mut state = self.lock();
        if state.in_flight as f64 >= state.limit.floor() {
            return None;
        }
        state.in_flight += 1;
        Some(Admitted {
            limiter: self.clone(),
            reported: false,
        })
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.lock().limit.floor() as usize
    }

    /// Requests admitted now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    fn complete(&self, rtt: Option<Duration>, now: Instant) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        let Some(rtt) = rtt else { return };
        let since = *state.min_rtt_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.config.min_rtt_window {
            state.min_rtt = None;
            state.min_rtt_since = Some(now);
        }
        state.min_rtt = Some(state.min_rtt.map_or(rtt, |m| m.min(rtt)));
        state.sum += rtt;
        state.count += 1;
        let start = *state.interval_start.get_or_insert(now);
        if now.saturating_duration_since(start) < self.config.interval {
            return;
        }
        let sample = state.sum / state.count.max(1);
        let best = state.min_rtt.unwrap_or(sample);
        let gradient = if sample.is_zero() {
            1.0
        } else {
            (self.config.tolerance * best.as_secs_f64() / sample.as_secs_f64()).clamp(0.5, 1.0)
        };
        let limit = state.limit * gradient + state.limit.sqrt();
        state.limit = limit.clamp(
            self.config.min_limit.max(1) as f64,
            self.config.max_limit.max(1) as f64,
        );
        state.sum = Duration::ZERO;
        state.count = 0;
        state.interval_start = Some(now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AdaptiveConfig {
        AdaptiveConfig {
            initial_limit: 10,
            min_limit: 2,
            max_limit: 100,
            tolerance: 1.5,
            interval: Duration::from_secs(1),
            min_rtt_window: Duration::from_secs(30),
        }
    }

    /// Runs one interval of `calls` calls, each taking `rtt`.
    fn interval(limiter: &Arc<AdaptiveLimit>, now: &mut Instant, calls: usize, rtt: Duration) {
        for _ in 0..calls {
            if let Some(admitted) = limiter.try_acquire() {
                admitted.done(rtt, *now);
            }
        }
        *now += Duration::from_secs(1);
        if let Some(admitted) = limiter.try_acquire() {
            admitted.done(rtt, *now);
        }
    }

    #[test]
    fn refuses_beyond_the_limit() {
        let limiter = AdaptiveLimit::new(config());
        let held: Vec<Admitted> = (0..10).map(|_| limiter.try_acquire().unwrap()).collect();
        assert!(limiter.try_acquire().is_none());
        drop(held);
        assert_eq!(limiter.in_flight(), 0);
        assert!(limiter.try_acquire().is_some());
    }

    #[test]
    fn steady_latency_lets_the_limit_grow_and_queueing_latency_shrinks_it() {
        let limiter = AdaptiveLimit::new(config());
        let mut now = Instant::now();
        for _ in 0..10 {
            interval(&limiter, &mut now, 20, Duration::from_millis(10));
        }
        let grown = limiter.limit();
        assert!(grown > 30, "grew to {grown}");
        // Latency triples (requests queue upstream): the limit falls.
        for _ in 0..5 {
            interval(&limiter, &mut now, 20, Duration::from_millis(30));
        }
        let shrunk = limiter.limit();
        assert!(shrunk < grown / 2, "from {grown} to {shrunk}");
        assert!(shrunk >= 2);
    }

    #[test]
    fn a_permanently_slower_service_is_relearned() {
        let limiter = AdaptiveLimit::new(AdaptiveConfig {
            min_rtt_window: Duration::from_secs(5),
            ..config()
        });
        let mut now = Instant::now();
        for _ in 0..3 {
            interval(&limiter, &mut now, 20, Duration::from_millis(10));
        }
        // It is now always 40 ms: after the window, 40 ms is the new best and the limit grows.
        for _ in 0..5 {
            interval(&limiter, &mut now, 20, Duration::from_millis(40));
        }
        let low = limiter.limit();
        for _ in 0..10 {
            interval(&limiter, &mut now, 20, Duration::from_millis(40));
        }
        assert!(limiter.limit() > low, "{} > {low}", limiter.limit());
    }
}
