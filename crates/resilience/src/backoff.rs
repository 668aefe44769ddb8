//! Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
//! Jitter"): the wait before retry `n` is uniform in `[0, min(max, base × 2ⁿ⁻¹)]`, which
//! spreads retrying clients apart instead of having them return in lockstep.

use std::time::Duration;

/// Backoff between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first wait.
    pub base: Duration,
    /// Most any wait may be.
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry `retry` (1 for the first retry), given `random` uniform in
    /// `[0, 1)`.
    pub fn delay(&self, retry: u32, random: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1u32 << doublings).min(self.max);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_per_retry_up_to_max() {
        let backoff = Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_millis(150),
        };
        let ceiling = |retry| backoff.delay(retry, 1.0);
        assert_eq!(ceiling(1), Duration::from_millis(25));
        assert_eq!(ceiling(2), Duration::from_millis(50));
        assert_eq!(ceiling(3), Duration::from_millis(100));
        assert_eq!(ceiling(4), Duration::from_millis(150));
        assert_eq!(ceiling(60), Duration::from_millis(150), "no overflow");
        assert_eq!(backoff.delay(3, 0.0), Duration::ZERO);
        assert_eq!(backoff.delay(3, 0.5), Duration::from_millis(50));
    }
}
