//! A simulator for capacity planning and for checking the algorithms: place keys (or requests
//! with a Zipf popularity) on a table, change its membership, and measure balance, movement
//! and lookup cost. Deterministic for a given seed (lookup timings aside).

use std::time::Instant;

use super::{BoundedLoad, HashTable, Maglev, Rendezvous, Ring, key_hash};

/// Which table to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// [`Ring`] with virtual nodes.
    Ring,
    /// [`Maglev`].
    Maglev,
    /// [`Rendezvous`].
    Rendezvous,
}

impl Algorithm {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ring => "ring",
            Algorithm::Maglev => "maglev",
            Algorithm::Rendezvous => "rendezvous",
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// The table.
    pub algorithm: Algorithm,
    /// Node weights (their count is the number of nodes).
    pub weights: Vec<u32>,
    /// Ring points per unit of weight.
    pub points_per_weight: u32,
    /// Maglev table size (a prime).
    pub table_size: usize,
    /// Distinct keys; with `zipf`, also the number of requests.
    pub keys: usize,
    /// Nodes (of weight 1) that join after the first placement.
    pub add: usize,
    /// Nodes (the last ones) that leave after the first placement.
    pub remove: usize,
    /// Bounded load ε: requests are placed one by one under ⌈(1+ε) × fair share⌉.
    pub bounded_load: Option<f64>,
    /// Zipf exponent of key popularity: loads then count requests, not keys.
    pub zipf: Option<f64>,
    /// Seed of the keys and the request draw.
    pub seed: u64,
}

/// What a simulation measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The most loaded node's load ÷ its fair share (weighted), before the change.
    pub max_over_avg: f64,
    /// Standard deviation of load ÷ fair share, before the change.
    pub stddev_over_avg: f64,
    /// Share of keys (or requests) whose node changed with the membership change.
    pub moved_fraction: f64,
    /// What perfect consistency would move: the joining nodes' share of the new weight, or
    /// the leaving nodes' share of the old.
    pub ideal_moved_fraction: f64,
    /// Mean lookup time of one key, hashing included, in nanoseconds.
    pub lookup_ns: f64,
    /// The most loaded node's load ÷ its fair share after the change.
    pub max_over_avg_after: f64,
}

/// Runs `simulation`.
///
/// # Panics
///
/// If `remove` leaves no node, or a Maglev `table_size` is not a prime above the node count.
pub fn run(simulation: &Simulation) -> Report {
    let n = simulation.weights.len();
    assert!(
        simulation.remove < n,
        "removing {} of {n} nodes leaves none",
        simulation.remove
    );
    let names: Vec<String> = (0..n + simulation.add)
        .map(|i| format!("node-{i}"))
        .collect();
    let before_weights = simulation.weights.clone();
    let after_weights: Vec<u32> = if simulation.add > 0 {
        before_weights
            .iter()
            .copied()
            .chain(std::iter::repeat_n(1, simulation.add))
            .collect()
    } else {
        before_weights[..n - simulation.remove].to_vec()
    };
    let before = Table::build(simulation, &names, &before_weights);
    let after = Table::build(simulation, &names, &after_weights);

    let keys: Vec<u64> = (0..simulation.keys as u64)
        .map(|k| key_hash(format!("key-{}-{k}", simulation.seed).as_bytes()))
        .collect();
    let requests: Vec<u64> = match simulation.zipf {
        Some(s) => Zipf::new(keys.len(), s)
            .draw(keys.len(), simulation.seed)
            .into_iter()
            .map(|k| keys[k])
            .collect(),
        None => keys.clone(),
    };
    let place = |table: &Table, weights: &[u32]| -> (Vec<usize>, Vec<u64>) {
        let mut loads = vec![0u64; weights.len()];
        let bounded = simulation
            .bounded_load
            .map(|epsilon| BoundedLoad::new(epsilon, weights));
        let mut placed = Vec::with_capacity(requests.len());
        for (total, &key) in (0u64..).zip(&requests) {
            let node = match &bounded {
                Some(rule) => rule
                    .pick(table.candidates(key), |i| loads[i], total, 1.0)
                    .unwrap_or(0),
                None => table.lookup(key),
            };
            loads[node] += 1;
            placed.push(node);
        }
        (placed, loads)
    };
    let (first, loads_before) = place(&before, &before_weights);
    let (second, loads_after) = place(&after, &after_weights);
    let moved = first
        .iter()
        .zip(&second)
        .filter(|(a, b)| names[**a] != names[**b])
        .count();

    let started = Instant::now();
    let mut sink = 0usize;
    for &key in &keys {
        sink = sink.wrapping_add(before.lookup(key));
    }
    let lookup_ns = started.elapsed().as_nanos() as f64 / keys.len().max(1) as f64;
    std::hint::black_box(sink);

    let total_before: u64 = before_weights.iter().map(|&w| u64::from(w)).sum();
    let total_after: u64 = after_weights.iter().map(|&w| u64::from(w)).sum();
    let ideal_moved_fraction = if simulation.add > 0 {
        simulation.add as f64 / total_after as f64
    } else {
        (total_before - total_after) as f64 / total_before as f64
    };
    let (max_over_avg, stddev_over_avg) = balance(&loads_before, &before_weights);
    let (max_over_avg_after, _) = balance(&loads_after, &after_weights);
    Report {
        max_over_avg,
        stddev_over_avg,
        moved_fraction: moved as f64 / requests.len().max(1) as f64,
        ideal_moved_fraction,
        lookup_ns,
        max_over_avg_after,
    }
}

/// Peak and standard deviation of load ÷ fair share.
fn balance(loads: &[u64], weights: &[u32]) -> (f64, f64) {
    let total: u64 = loads.iter().sum();
    let weight: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    if total == 0 || weight == 0.0 {
        return (0.0, 0.0);
    }
    let ratios: Vec<f64> = loads
        .iter()
        .zip(weights)
        .filter(|&(_, &w)| w > 0)
        .map(|(&l, &w)| l as f64 / (total as f64 * f64::from(w) / weight))
        .collect();
    let max = ratios.iter().copied().fold(0.0, f64::max);
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let variance = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / ratios.len() as f64;
    (max, variance.sqrt())
}

/// A table of either kind behind one face.
enum Table {
    Ring(Ring),
    Maglev(Maglev),
    Rendezvous(Rendezvous),
}

impl Table {
    fn build(simulation: &Simulation, names: &[String], weights: &[u32]) -> Self {
        let nodes: Vec<(&str, u32)> = names
            .iter()
            .map(String::as_str)
            .zip(weights.iter().copied())
            .collect();
        match simulation.algorithm {
            Algorithm::Ring => Table::Ring(Ring::new(&nodes, simulation.points_per_weight)),
            Algorithm::Maglev => Table::Maglev(Maglev::new(&nodes, simulation.table_size)),
            Algorithm::Rendezvous => Table::Rendezvous(Rendezvous::new(&nodes)),
        }
    }

    fn lookup(&self, key: u64) -> usize {
        match self {
            Table::Ring(t) => t.lookup(key),
            Table::Maglev(t) => t.lookup(key),
            Table::Rendezvous(t) => t.lookup(key),
        }
        .unwrap_or(0)
    }

    fn candidates(&self, key: u64) -> Vec<usize> {
        match self {
            Table::Ring(t) => t.candidates(key).collect(),
            Table::Maglev(t) => t.candidates(key).collect(),
            Table::Rendezvous(t) => t.candidates(key).collect(),
        }
    }
}

/// Zipf-distributed ranks: rank k (0-based) has weight 1 / (k+1)^s.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(ranks: usize, s: f64) -> Self {
        let mut sum = 0.0;
        let cumulative = (0..ranks)
            .map(|k| {
                sum += 1.0 / ((k + 1) as f64).powf(s);
                sum
            })
            .collect();
        Self { cumulative }
    }

    /// `count` ranks drawn with a seeded generator (splitmix64).
    fn draw(&self, count: usize, seed: u64) -> Vec<usize> {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                let u = (z >> 11) as f64 / (1u64 << 53) as f64 * total;
                self.cumulative
                    .partition_point(|&c| c <= u)
                    .min(self.cumulative.len() - 1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulation(algorithm: Algorithm) -> Simulation {
        Simulation {
            algorithm,
            weights: vec![1; 10],
            points_per_weight: 160,
            table_size: 65_537,
            keys: 50_000,
            add: 1,
            remove: 0,
            bounded_load: None,
            zipf: None,
            seed: 7,
        }
    }

    #[test]
    fn adding_a_node_moves_about_its_share() {
        for algorithm in [Algorithm::Ring, Algorithm::Maglev, Algorithm::Rendezvous] {
            let report = run(&simulation(algorithm));
            assert!((report.ideal_moved_fraction - 1.0 / 11.0).abs() < 1e-9);
            assert!(
                (report.moved_fraction - report.ideal_moved_fraction).abs() < 0.03,
                "{algorithm:?}: {report:?}"
            );
            assert!(report.max_over_avg < 1.4, "{algorithm:?}: {report:?}");
        }
    }

    #[test]
    fn removing_nodes_moves_their_share() {
        let report = run(&Simulation {
            add: 0,
            remove: 2,
            ..simulation(Algorithm::Rendezvous)
        });
        assert!((report.ideal_moved_fraction - 0.2).abs() < 1e-9);
        assert!((report.moved_fraction - 0.2).abs() < 0.02, "{report:?}");
    }

    #[test]
    fn a_bounded_load_caps_the_peak_under_skew() {
        let skewed = Simulation {
            zipf: Some(1.1),
            keys: 20_000,
            ..simulation(Algorithm::Ring)
        };
        let unbounded = run(&skewed);
        let bounded = run(&Simulation {
            bounded_load: Some(0.25),
            ..skewed
        });
        assert!(unbounded.max_over_avg > 1.5, "{unbounded:?}");
        assert!(bounded.max_over_avg <= 1.25 + 0.01, "{bounded:?}");
    }

    #[test]
    fn zipf_draws_favour_low_ranks_and_repeat_per_seed() {
        let zipf = Zipf::new(100, 1.0);
        let draws = zipf.draw(10_000, 3);
        assert_eq!(draws, zipf.draw(10_000, 3));
        let first = draws.iter().filter(|&&k| k == 0).count();
        let tenth = draws.iter().filter(|&&k| k == 9).count();
        assert!(first > 5 * tenth, "{first} vs {tenth}");
    }
}
