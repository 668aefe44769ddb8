//! Latency-aware balancing: power of two choices over a peak-sensitive moving average of each
//! endpoint's latency (Finagle's and Linkerd's "peak EWMA").
//!
//! Each endpoint's cost estimate jumps up at once to any slower observation (the peak) and
//! otherwise decays towards recent observations, and towards zero while the endpoint is not
//! observed, with time constant `decay`. An endpoint's load is its cost times one more than
//! its requests in flight. A failed call counts as an observation of at least `penalty`:
//! without that, an endpoint that fails fast looks fast and attracts more traffic, the
//! well-known flaw of latency and least-request balancers.
//!
//! State is a pair of atomics per endpoint; two calls racing on one endpoint may lose one of
//! their observations, which an estimate can afford. Time is passed in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::LeastRequest;

#[derive(Debug)]
struct Estimate {
    /// Cost in nanoseconds, as `f64` bits.
    cost: AtomicU64,
    /// When it was last updated, in nanoseconds since `origin`.
    stamp: AtomicU64,
}

/// A peak-EWMA picker over weighted endpoints.
#[derive(Debug)]
pub struct PeakEwma {
    choices: LeastRequest,
    estimates: Vec<Estimate>,
    decay_nanos: f64,
    penalty: Duration,
    origin: Instant,
}

impl PeakEwma {
    /// A picker over endpoints with these weights.
    pub fn new(weights: &[u32], decay: Duration, penalty: Duration, now: Instant) -> Self {
        Self {
            choices: LeastRequest::new(weights),
            estimates: weights
                .iter()
                .map(|_| Estimate {
                    cost: AtomicU64::new(0f64.to_bits()),
                    stamp: AtomicU64::new(0),
                })
                .collect(),
            decay_nanos: decay.as_nanos().max(1) as f64,
            penalty,
            origin: now,
        }
    }

    /// Records a call to endpoint `i` that took `latency`.
    pub fn observe(&self, i: usize, latency: Duration, now: Instant) {
        let Some(estimate) = self.estimates.get(i) else {
            return;
        };
        let rtt = latency.as_nanos() as f64;
        let stored = f64::from_bits(estimate.cost.load(Ordering::Relaxed));
        let next = if rtt > stored {
            rtt
        } else {
            let w = self.weight_since(estimate, now);
            stored * w + rtt * (1.0 - w)
        };
        estimate.cost.store(next.to_bits(), Ordering::Relaxed);
        estimate.stamp.store(self.nanos(now), Ordering::Relaxed);
    }

    /// Records a failed call to endpoint `i` that took `latency`.
    pub fn observe_failure(&self, i: usize, latency: Duration, now: Instant) {
        self.observe(i, latency.max(self.penalty), now);
    }

    /// Endpoint `i`'s load now, given its requests in flight.
    pub fn load(&self, i: usize, in_flight: u32, now: Instant) -> f64 {
        let Some(estimate) = self.estimates.get(i) else {
            return f64::MAX;
        };
        let cost = self.decayed(estimate, now);
        if cost == 0.0 && in_flight > 0 {
            // Never observed but busy: assume the worst until it answers.
            return self.penalty.as_nanos() as f64 * f64::from(in_flight);
        }
        cost * f64::from(in_flight + 1)
    }

    /// Picks an endpoint by two random draws (weighted), taking the lower load per weight.
    pub fn pick(
        &self,
        in_flight: impl Fn(usize) -> u32,
        random_a: u64,
        random_b: u64,
        now: Instant,
    ) -> usize {
        self.choices
            .pick_by_cost(|i| self.load(i, in_flight(i), now), random_a, random_b)
    }

    /// The estimate decayed to `now` (towards zero while unobserved).
    fn decayed(&self, estimate: &Estimate, now: Instant) -> f64 {
        f64::from_bits(estimate.cost.load(Ordering::Relaxed)) * self.weight_since(estimate, now)
    }

    fn weight_since(&self, estimate: &Estimate, now: Instant) -> f64 {
        let elapsed = self
            .nanos(now)
            .saturating_sub(estimate.stamp.load(Ordering::Relaxed)) as f64;
        (-elapsed / self.decay_nanos).exp()
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECAY: Duration = Duration::from_secs(10);
    const PENALTY: Duration = Duration::from_secs(1);

    fn picks_of(ewma: &PeakEwma, now: Instant, draws: u64) -> [usize; 2] {
        let mut counts = [0; 2];
        for k in 0..draws {
            let i = ewma.pick(
                |_| 0,
                k.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                k.wrapping_mul(31) ^ 0xABCD,
                now,
            );
            counts[i] += 1;
        }
        counts
    }

    #[test]
    fn the_slow_endpoint_loses_every_comparison() {
        let now = Instant::now();
        let ewma = PeakEwma::new(&[1, 1], DECAY, PENALTY, now);
        for _ in 0..10 {
            ewma.observe(0, Duration::from_millis(200), now);
            ewma.observe(1, Duration::from_millis(2), now);
        }
        assert!(ewma.load(0, 0, now) > 50.0 * ewma.load(1, 0, now));
        let counts = picks_of(&ewma, now, 1_000);
        assert_eq!(counts[0], 0, "{counts:?}");
    }

    #[test]
    fn a_peak_is_taken_at_once_and_decays_back() {
        let now = Instant::now();
        let ewma = PeakEwma::new(&[1], DECAY, PENALTY, now);
        ewma.observe(0, Duration::from_millis(10), now);
        ewma.observe(0, Duration::from_millis(500), now);
        assert!(
            (ewma.load(0, 0, now) - 500e6).abs() < 1.0,
            "the peak at once"
        );
        // Fast calls bring it down over the decay time, not at once.
        let later = now + Duration::from_secs(5);
        ewma.observe(0, Duration::from_millis(10), later);
        // w = e^(-5/10) ≈ 0.607: 500 × 0.607 + 10 × 0.393 ≈ 307 ms.
        let cost = ewma.load(0, 0, later) / 1e6;
        assert!((cost - 307.2).abs() < 1.0, "{cost}");
    }

    #[test]
    fn failing_fast_does_not_attract_traffic() {
        let now = Instant::now();
        let ewma = PeakEwma::new(&[1, 1], DECAY, PENALTY, now);
        for _ in 0..10 {
            // Endpoint 0 fails in a millisecond; endpoint 1 succeeds in 20.
            ewma.observe_failure(0, Duration::from_millis(1), now);
            ewma.observe(1, Duration::from_millis(20), now);
        }
        let counts = picks_of(&ewma, now, 1_000);
        assert!(counts[1] > 900, "{counts:?}");
    }

    #[test]
    fn in_flight_requests_raise_the_load() {
        let now = Instant::now();
        let ewma = PeakEwma::new(&[1, 1], DECAY, PENALTY, now);
        ewma.observe(0, Duration::from_millis(10), now);
        ewma.observe(1, Duration::from_millis(10), now);
        assert_eq!(ewma.load(0, 3, now), 4.0 * ewma.load(0, 0, now));
        // Never observed but busy counts as slow.
        let fresh = PeakEwma::new(&[1, 1], DECAY, PENALTY, now);
        assert!(fresh.load(0, 1, now) >= PENALTY.as_nanos() as f64);
        assert_eq!(fresh.load(1, 0, now), 0.0);
    }
}
