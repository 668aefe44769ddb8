//! Rendezvous (highest random weight) hashing: every node scores every key, the highest score
//! wins. Weighted as in Schindelhauer and Schomaker's logarithmic method: the score is
//! `weight / -ln(u)` with `u` the key's and node's hash mapped into (0, 1), so a node's share
//! is exactly its share of the weight. O(nodes) per lookup: for small node sets.

use super::{HashTable, node_hash};

/// A rendezvous-hashing table.
#[derive(Clone, Debug)]
pub struct Rendezvous {
    /// Each node's name hash and weight.
    nodes: Vec<(u64, f64)>,
}

impl Rendezvous {
    /// A table over `nodes` (`(name, weight)`); nodes of weight 0 never win.
    pub fn new(nodes: &[(&str, u32)]) -> Self {
        Self {
            nodes: nodes
                .iter()
                .map(|&(name, weight)| (node_hash(name, 0), f64::from(weight)))
                .collect(),
        }
    }

    /// Node `index`'s score for `key`.
    fn score(&self, index: usize, key: u64) -> f64 {
        let (hash, weight) = self.nodes[index];
        if weight <= 0.0 {
            return f64::NEG_INFINITY;
        }
        let mixed = xxhash_rust::xxh3::xxh3_64_with_seed(&key.to_le_bytes(), hash);
        // The top 53 bits as a uniform number strictly inside (0, 1).
        let unit = ((mixed >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        weight / -unit.ln()
    }
}

impl HashTable for Rendezvous {
    fn lookup(&self, key: u64) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].1 > 0.0)
            .map(|i| (self.score(i, key), i))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, i)| i)
    }

    fn candidates(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let mut scored: Vec<(f64, usize)> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].1 > 0.0)
            .map(|i| (self.score(i, key), i))
            .collect();
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(_, i)| i)
    }

    fn nodes(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::key_hash;

    #[test]
    fn the_lookup_is_the_first_candidate_and_weights_set_shares() {
        let table = Rendezvous::new(&[("a", 1), ("b", 3), ("c", 0)]);
        let mut wins = [0usize; 3];
        for k in 0..40_000u64 {
            let key = key_hash(&k.to_le_bytes());
            let order: Vec<usize> = table.candidates(key).collect();
            assert_eq!(Some(order[0]), table.lookup(key));
            assert_eq!(order.len(), 2, "the weight-0 node is never a candidate");
            wins[order[0]] += 1;
        }
        let share = wins[1] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "{share}");
        assert_eq!(wins[2], 0);
    }
}
