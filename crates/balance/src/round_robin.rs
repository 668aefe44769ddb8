//! Weighted round robin with a precomputed smooth schedule.
//!
//! The schedule is the sequence nginx's smooth weighted round robin produces (weights 5,1,1
//! give a a b a c a a rather than a a a a a b c), computed once when the cluster is built. A
//! pick is then an index into it, so callers can share one atomic turn counter and pick
//! without locks.

/// Longest schedule kept; larger weight sums are scaled down to fit.
const MAX_SCHEDULE: u64 = 4096;

/// A weighted round-robin schedule over endpoint indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    schedule: Vec<usize>,
}

impl WeightedRoundRobin {
    /// Builds the schedule for endpoints with these weights. Zero weights never get picked
    /// unless every weight is zero, in which case all are treated as 1.
    pub fn new(weights: &[u32]) -> Self {
        let weights = normalise(weights);
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = vec![0i64; weights.len()];
        let mut schedule = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for (i, &w) in weights.iter().enumerate() {
                current[i] += i64::from(w);
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            schedule.push(best);
        }
        Self { schedule }
    }

    /// The endpoint for the `turn`-th request (turns count up from any start).
    pub fn pick(&self, turn: usize) -> usize {
        match self.schedule.len() {
            0 => 0,
            len => self.schedule[turn % len],
        }
    }

    /// Number of turns in one full cycle of the schedule.
    pub fn cycle_len(&self) -> usize {
        self.schedule.len()
    }
}

/// Divides weights by their common divisor and scales them so the schedule stays short.
fn normalise(weights: &[u32]) -> Vec<u32> {
    if weights.iter().all(|&w| w == 0) {
        return vec![1; weights.len()];
    }
    let divisor = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    let mut reduced: Vec<u32> = weights.iter().map(|&w| w / divisor).collect();
    let total: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
    if total > MAX_SCHEDULE {
        reduced = reduced
            .iter()
            .map(|&w| match w {
                0 => 0,
                w => ((u64::from(w) * MAX_SCHEDULE / total) as u32).max(1),
            })
            .collect();
    }
    reduced
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(rr: &WeightedRoundRobin, n: usize, turns: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for turn in 0..turns {
            counts[rr.pick(turn)] += 1;
        }
        counts
    }

    #[test]
    fn equal_weights_alternate() {
        let rr = WeightedRoundRobin::new(&[1, 1, 1]);
        let picks: Vec<usize> = (0..6).map(|t| rr.pick(t)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weights_interleave_smoothly() {
        let rr = WeightedRoundRobin::new(&[5, 1, 1]);
        let picks: Vec<usize> = (0..7).map(|t| rr.pick(t)).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn share_tracks_weight() {
        let rr = WeightedRoundRobin::new(&[3, 1]);
        assert_eq!(counts(&rr, 2, 400), vec![300, 100]);
    }

    #[test]
    fn zero_weight_is_never_picked() {
        let rr = WeightedRoundRobin::new(&[0, 2, 2]);
        assert_eq!(counts(&rr, 3, 100)[0], 0);
    }

    #[test]
    fn huge_weights_are_scaled_to_a_short_schedule() {
        let rr = WeightedRoundRobin::new(&[1_000_000, 3_000_000, 1]);
        assert!(rr.cycle_len() <= MAX_SCHEDULE as usize + 3);
        let c = counts(&rr, 3, rr.cycle_len());
        assert!(c[2] >= 1, "a tiny weight still gets a turn: {c:?}");
        assert!((c[1] as f64 / c[0] as f64 - 3.0).abs() < 0.05, "{c:?}");
    }
}
