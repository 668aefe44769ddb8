//! Least request by the power of two choices.
//!
//! Draw two distinct endpoints at random, in proportion to weight, and take the one with fewer
//! requests in flight relative to its weight. This avoids herding onto the single least-loaded
//! endpoint (which every proxy in a fleet would otherwise pick at once) while still steering
//! away from slow or overloaded ones.

/// A least-request picker over weighted endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeastRequest {
    weights: Vec<u32>,
    /// Running sums of weights, for weighted draws by binary search.
    cumulative: Vec<u64>,
}

impl LeastRequest {
    /// A picker over endpoints with these weights (all zero counts as all equal).
    pub fn new(weights: &[u32]) -> Self {
        let weights: Vec<u32> = if weights.iter().all(|&w| w == 0) {
            vec![1; weights.len()]
        } else {
            weights.to_vec()
        };
        let mut total = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                total += u64::from(w);
                total
            })
            .collect();
        Self {
            weights,
            cumulative,
        }
    }

    /// Picks an endpoint given each endpoint's requests in flight (`in_flight(i)`) and two
    /// independent random numbers.
    pub fn pick(&self, in_flight: impl Fn(usize) -> u32, random_a: u64, random_b: u64) -> usize {
        if self.weights.len() <= 1 {
            return 0;
        }
        let (a, b) = self.two(random_a, random_b);
        // Compare in_flight/weight without division: a_load * w_b vs b_load * w_a.
        let load = |i: usize| u64::from(in_flight(i));
        let score_a = load(a) * u64::from(self.weights[b]);
        let score_b = load(b) * u64::from(self.weights[a]);
        if score_b < score_a { b } else { a }
    }

    /// Like [`pick`](Self::pick), comparing any cost per unit of weight instead of requests
    /// in flight.
    pub fn pick_by_cost(&self, cost: impl Fn(usize) -> f64, random_a: u64, random_b: u64) -> usize {
        let (a, b) = self.two(random_a, random_b);
        let per_weight = |i: usize| cost(i) / f64::from(self.weights[i].max(1));
        if per_weight(b) < per_weight(a) { b } else { a }
    }

    /// Two distinct weighted draws (the same twice only with one endpoint).
    fn two(&self, random_a: u64, random_b: u64) -> (usize, usize) {
        let n = self.weights.len();
        if n <= 1 {
            return (0, 0);
        }
        let a = self.draw(random_a);
        let mut b = self.draw(random_b);
        if b == a {
            // Fall to a neighbour with weight, keeping the two choices distinct.
            b = (1..n)
                .map(|step| (a + step) % n)
                .find(|&i| self.weights[i] > 0)
                .unwrap_or(a);
        }
        (a, b)
    }

    fn draw(&self, random: u64) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1).max(1);
        let target = random % total;
        self.cumulative.partition_point(|&c| c <= target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator so tests do not depend on a random crate.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn prefers_the_less_loaded_of_two() {
        let lr = LeastRequest::new(&[1, 1]);
        assert_eq!(lr.pick(|i| [10, 2][i], 0, 1), 1);
        assert_eq!(lr.pick(|i| [2, 10][i], 0, 1), 0);
    }

    #[test]
    fn a_busy_endpoint_gets_less_traffic() {
        let lr = LeastRequest::new(&[1, 1, 1, 1]);
        let mut state = 7;
        let mut picks = [0usize; 4];
        for _ in 0..10_000 {
            let i = lr.pick(
                |i| [50, 0, 0, 0][i],
                splitmix(&mut state),
                splitmix(&mut state),
            );
            picks[i] += 1;
        }
        assert_eq!(picks[0], 0, "endpoint 0 loses every comparison: {picks:?}");
    }

    #[test]
    fn idle_endpoints_share_by_weight() {
        let lr = LeastRequest::new(&[3, 1]);
        let mut state = 11;
        let mut picks = [0usize; 2];
        for _ in 0..10_000 {
            // Both idle: ties go to the first draw, which is weighted.
            picks[lr.pick(|i| [0, 0][i], splitmix(&mut state), splitmix(&mut state))] += 1;
        }
        let share = picks[0] as f64 / 10_000.0;
        assert!((share - 0.75).abs() < 0.03, "share {share}");
    }

    #[test]
    fn load_is_weighed_against_weight() {
        // 4 in flight on weight 4 is lighter than 2 in flight on weight 1.
        let lr = LeastRequest::new(&[4, 1]);
        assert_eq!(lr.pick(|i| [4, 2][i], 0, 4), 0);
    }

    #[test]
    fn single_endpoint_is_always_picked() {
        assert_eq!(LeastRequest::new(&[5]).pick(|_| 100, 3, 9), 0);
    }
}
