//! Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent
//! Hashing with Bounded Loads", SODA 2018): a key goes to the first node in its order of
//! preference whose load is under a cap of ⌈(1+ε) × its fair share⌉, so no node carries more
//! than (1+ε) × the average, and a key moves only while its home is over the cap.

/// The bounded-load rule over a table's candidates.
#[derive(Clone, Debug)]
pub struct BoundedLoad {
    epsilon: f64,
    /// Each node's share of the total weight.
    shares: Vec<f64>,
}

impl BoundedLoad {
    /// The rule with slack `epsilon` (0.25: no node above 1.25 × its share) for nodes of
    /// `weights`.
    pub fn new(epsilon: f64, weights: &[u32]) -> Self {
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        Self {
            epsilon,
            shares: weights
                .iter()
                .map(|&w| {
                    if total > 0.0 {
                        f64::from(w) / total
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }

    /// The slack ε.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The most load `node` may carry once one more unit is placed, with `total` units placed
    /// now over the nodes that can take load: ⌈(1+ε) × (total + 1) × its share of `live`
    /// weight⌉ (`live_share` is the share of the weight those nodes hold).
    pub fn cap(&self, node: usize, total: u64, live_share: f64) -> u64 {
        if live_share <= 0.0 {
            return u64::MAX;
        }
        let fair = (total + 1) as f64 * self.shares[node] / live_share;
        ((1.0 + self.epsilon) * fair).ceil() as u64
    }

    /// The first of `candidates` (a key's nodes in order of preference, unavailable ones
    /// already left out) whose `load` is under its cap, with `total` the load over all of
    /// them and `live_share` their share of the weight; the first candidate if none is
    /// (which the caps rule out when ε > 0).
    pub fn pick(
        &self,
        candidates: impl IntoIterator<Item = usize>,
        load: impl Fn(usize) -> u64,
        total: u64,
        live_share: f64,
    ) -> Option<usize> {
        let mut first = None;
        for node in candidates {
            first.get_or_insert(node);
            if load(node) < self.cap(node, total, live_share) {
                return Some(node);
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_one_plus_epsilon_times_the_fair_share_rounded_up() {
        let rule = BoundedLoad::new(0.25, &[1, 1, 1, 1]);
        // 99 placed, one more: fair share 25, cap 31.25 → 32.
        assert_eq!(rule.cap(0, 99, 1.0), 32);
        // Half the weight down: the other half's share doubles.
        assert_eq!(rule.cap(0, 99, 0.5), 63);
        let weighted = BoundedLoad::new(0.0, &[1, 3]);
        assert_eq!(weighted.cap(1, 3, 1.0), 3);
    }

    #[test]
    fn a_full_home_sends_the_key_to_the_next_candidate() {
        let rule = BoundedLoad::new(0.25, &[1, 1, 1]);
        let loads = [10u64, 0, 0];
        // 10 placed: cap ⌈1.25 × 11/3⌉ = 5.
        assert_eq!(rule.pick([0, 2, 1], |n| loads[n], 10, 1.0), Some(2));
        let even = [3u64, 3, 3];
        assert_eq!(rule.pick([0, 2, 1], |n| even[n], 9, 1.0), Some(0));
        assert_eq!(rule.pick([], |n| even[n], 9, 1.0), None);
    }
}
