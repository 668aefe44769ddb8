//! Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016): each node walks its own permutation of a prime-sized table and
//! claims the next free slot in turn, so every node owns nearly the same share of slots (by
//! weight) and a key's lookup is one array access.

use super::{HashTable, Seen, node_hash};

/// The default table size: a prime well above 100 × the nodes of a typical cluster, so shares
/// stay within about 1 % of each other.
pub const DEFAULT_TABLE_SIZE: usize = 65_537;

/// Seeds of a node's permutation: where it starts, and its stride.
const OFFSET_SEED: u64 = 0x6d61_676c_6576_0001;
const SKIP_SEED: u64 = 0x6d61_676c_6576_0002;

/// A Maglev lookup table.
#[derive(Clone, Debug)]
pub struct Maglev {
    table: Vec<u32>,
    nodes: usize,
    /// Nodes that own slots (weight above 0).
    owning: usize,
}

impl Maglev {
    /// A table of `size` slots (a prime; see [`is_prime`]) over `nodes` (`(name, weight)`).
    /// Weights follow Envoy's scheme: in round `r`, a node may claim a slot while it owns
    /// fewer than `r` × weight ÷ the largest weight.
    ///
    /// # Panics
    ///
    /// If `size` is not a prime above the number of nodes: the permutations would not cover
    /// the table.
    pub fn new(nodes: &[(&str, u32)], size: usize) -> Self {
        assert!(
            is_prime(size) && size > nodes.len(),
            "a Maglev table size must be a prime above the node count, not {size}"
        );
        let mut table = vec![u32::MAX; size];
        let live: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].1 > 0).collect();
        if live.is_empty() {
            return Self {
                table: Vec::new(),
                nodes: nodes.len(),
                owning: 0,
            };
        }
        let size64 = size as u64;
        let max_weight = live.iter().map(|&i| nodes[i].1).max().unwrap_or(1) as f64;
        struct Walker {
            node: usize,
            offset: u64,
            skip: u64,
            next: u64,
            share: f64,
            owned: f64,
        }
        let mut walkers: Vec<Walker> = live
            .iter()
            .map(|&node| {
                let (name, weight) = nodes[node];
                Walker {
                    node,
                    offset: node_hash(name, OFFSET_SEED) % size64,
                    skip: node_hash(name, SKIP_SEED) % (size64 - 1) + 1,
                    next: 0,
                    share: f64::from(weight) / max_weight,
                    owned: 0.0,
                }
            })
            .collect();
        let mut filled = 0;
        let mut round = 1.0;
        while filled < size {
            for walker in &mut walkers {
                if walker.owned >= round * walker.share {
                    continue;
                }
                // The node's next slot in its permutation that nobody claimed yet.
                let slot = loop {
                    let slot = (walker.offset + walker.next * walker.skip) % size64;
                    walker.next += 1;
                    if table[slot as usize] == u32::MAX {
                        break slot as usize;
                    }
                };
                table[slot] = walker.node as u32;
                walker.owned += 1.0;
                filled += 1;
                if filled == size {
                    break;
                }
            }
            round += 1.0;
        }
        Self {
            table,
            nodes: nodes.len(),
            owning: live.len(),
        }
    }

    /// Slots in the table.
    pub fn size(&self) -> usize {
        self.table.len()
    }
}

impl HashTable for Maglev {
    fn lookup(&self, key: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.table[(key % self.table.len() as u64) as usize] as usize)
    }

    /// The key's slot, then the slots after it: a node that is down hands each of its keys to
    /// the owner of the next slot, so its keys spread over the others by their shares.
    fn candidates(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let len = self.table.len();
        let start = if len == 0 {
            0
        } else {
            (key % len as u64) as usize
        };
        let mut seen = Seen::new(self.nodes);
        (0..len)
            .map(move |k| self.table[(start + k) % len] as usize)
            .filter(move |&node| seen.insert(node))
            .take(self.owning)
    }

    fn nodes(&self) -> usize {
        self.nodes
    }
}

/// Whether `n` is prime (trial division; table sizes are small).
pub fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_is_owned_and_shares_follow_weights() {
        let table = Maglev::new(&[("a", 1), ("b", 1), ("c", 2)], 65_537);
        let count = |n: u32| table.table.iter().filter(|&&o| o == n).count() as f64;
        assert!(table.table.iter().all(|&o| o < 3));
        let total = 65_537.0;
        assert!((count(0) / total - 0.25).abs() < 0.01, "{}", count(0));
        assert!((count(2) / total - 0.5).abs() < 0.01, "{}", count(2));
    }

    #[test]
    fn primes_are_told_apart() {
        assert!(is_prime(65_537) && is_prime(251) && is_prime(2));
        assert!(!is_prime(65_536) && !is_prime(1) && !is_prime(91));
    }

    #[test]
    #[should_panic(expected = "prime")]
    fn a_size_that_is_not_prime_is_refused() {
        Maglev::new(&[("a", 1)], 1000);
    }

    #[test]
    fn zero_weight_nodes_own_nothing_and_no_nodes_give_no_answer() {
        let table = Maglev::new(&[("a", 0), ("b", 1)], 251);
        assert!(table.table.iter().all(|&o| o == 1));
        assert_eq!(table.candidates(5).collect::<Vec<_>>(), [1]);
        assert_eq!(Maglev::new(&[], 251).lookup(3), None);
    }
}
