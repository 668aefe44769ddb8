//! Consistent hashing: a key always maps to the same node while the node set is unchanged, and
//! a membership change moves only about 1/n of the keys.
//!
//! Three tables, one interface ([`HashTable`]): a [`Ring`] with virtual nodes (ketama's
//! scheme, 160 points per unit of weight by default), [`Maglev`] (Eisenbud et al., NSDI 2016:
//! a lookup table of prime size, one array access per key) and [`Rendezvous`] (highest random
//! weight, for small node sets). Each gives, for a key, its nodes in order of preference:
//! the first is where the key lives; the next ones are where it goes while the first is down,
//! so a node going down moves only its own keys, and they return when it does.
//! [`BoundedLoad`] walks that order to the first node under ⌈(1+ε)·average⌉ load (Mirrokni,
//! Thorup and Zadimoghaddam), so a hot key cannot melt one node.
//!
//! Hashes are xxh3 (64 bit, unseeded for keys): the same key maps to the same node in every
//! process on every machine, so a fleet of proxies agrees without talking.
//!
//! ```
//! use watertight_balance::hashing::{HashTable, Ring, key_hash};
//!
//! let nodes = [("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)];
//! let ring = Ring::new(&nodes, 160);
//! let home = ring.lookup(key_hash(b"user-42")).unwrap();
//! // Without its home node, the key goes to the next node on the ring...
//! let next = ring.candidates(key_hash(b"user-42")).nth(1).unwrap();
//! assert_ne!(home, next);
//! // ...which is where a ring without that node puts it.
//! let without: Vec<_> = nodes.iter().enumerate().filter(|(i, _)| *i != home).map(|(_, n)| *n).collect();
//! let smaller = Ring::new(&without, 160);
//! assert_eq!(without[smaller.lookup(key_hash(b"user-42")).unwrap()].0, nodes[next].0);
//! ```

mod bounded;
mod maglev;
mod rendezvous;
mod ring;
pub mod simulate;

pub use bounded::BoundedLoad;
pub use maglev::{DEFAULT_TABLE_SIZE, Maglev, is_prime};
pub use rendezvous::Rendezvous;
pub use ring::{DEFAULT_POINTS_PER_WEIGHT, Ring};

/// The hash of a key (a header value, a path, a client address…).
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// A node's hash under `seed` (a virtual node's index, or a table's offset and skip).
fn node_hash(name: &str, seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), seed)
}

/// A consistent-hash table over nodes given as `(name, weight)`: node indices in the order the
/// nodes were given.
pub trait HashTable {
    /// The node `key` lives on, or `None` for an empty table.
    fn lookup(&self, key: u64) -> Option<usize>;

    /// Every node, each once, in `key`'s order of preference (the first is [`lookup`]'s).
    ///
    /// [`lookup`]: HashTable::lookup
    fn candidates(&self, key: u64) -> impl Iterator<Item = usize> + '_;

    /// How many nodes the table was built over.
    fn nodes(&self) -> usize;
}

/// Remembers which node indices a walk has yielded: inline for up to 256 nodes, so a walk
/// allocates nothing in the common case.
#[derive(Debug)]
struct Seen {
    inline: [u64; 4],
    heap: Vec<u64>,
}

impl Seen {
    fn new(nodes: usize) -> Self {
        Self {
            inline: [0; 4],
            heap: if nodes > 256 {
                vec![0; nodes.div_ceil(64)]
            } else {
                Vec::new()
            },
        }
    }

    /// Marks `node`; true if it was not seen before.
    fn insert(&mut self, node: usize) -> bool {
        let words: &mut [u64] = if self.heap.is_empty() {
            &mut self.inline
        } else {
            &mut self.heap
        };
        let (word, bit) = (node / 64, 1u64 << (node % 64));
        let fresh = words[word] & bit == 0;
        words[word] |= bit;
        fresh
    }
}
