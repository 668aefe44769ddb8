//! A hash ring with virtual nodes: each node owns `points_per_weight` × weight points on a
//! 64-bit circle; a key belongs to the first point at or after its hash.
//!
//! A lookup does not binary-search the whole circle: an index over the top bits of the hash
//! (a bucket per two to four points, 4 bytes each) gives the few points a key's bucket can
//! hold, and only those are searched. The answer is the same as a search of the whole array.

use super::{HashTable, Seen, node_hash};

/// Points per unit of weight by default, as ketama (and nginx, and Pingora) use.
pub const DEFAULT_POINTS_PER_WEIGHT: u32 = 160;

/// A consistent-hash ring.
#[derive(Clone, Debug)]
pub struct Ring {
    /// Point positions, sorted.
    points: Vec<u64>,
    /// The node owning each point.
    owners: Vec<u32>,
    nodes: usize,
    /// Nodes that own points (weight above 0).
    owning: usize,
    /// For each bucket of the top `64 - shift` bits, the first point at or past its start
    /// (one more entry at the end: the point count).
    index: Vec<u32>,
    shift: u32,
}

impl Ring {
    /// A ring over `nodes` (`(name, weight)`), `points_per_weight` points per unit of weight.
    /// A point's position is the hash of the node's name seeded with the point's number, so
    /// a node keeps its points whatever else joins or leaves.
    pub fn new(nodes: &[(&str, u32)], points_per_weight: u32) -> Self {
        let total: usize = nodes
            .iter()
            .map(|&(_, w)| w as usize * points_per_weight as usize)
            .sum();
        let mut points: Vec<(u64, u32)> = Vec::with_capacity(total);
        for (index, &(name, weight)) in nodes.iter().enumerate() {
            let count = u64::from(weight) * u64::from(points_per_weight);
            points.extend((0..count).map(|i| (node_hash(name, i), index as u32)));
        }
        // Ties (vanishingly rare) go to the lower index, the same everywhere.
        points.sort_unstable();
        let (points, owners): (Vec<u64>, Vec<u32>) = points.into_iter().unzip();
        let (index, shift) = bucket_index(&points);
        Self {
            index,
            shift,
            points,
            owners,
            nodes: nodes.len(),
            owning: nodes.iter().filter(|&&(_, w)| w > 0).count(),
        }
    }

    /// Points on the ring.
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// The index of the first point at or after `key`, wrapping around.
    fn position(&self, key: u64) -> usize {
        // Every point before `lo` is below the key's bucket; the point at `hi`, if any, is
        // at or past the next bucket's start: the answer lies in `lo..=hi`.
        let bucket = (key >> self.shift) as usize;
        let (lo, hi) = (self.index[bucket] as usize, self.index[bucket + 1] as usize);
        let at = lo + self.points[lo..hi].partition_point(|&p| p < key);
        if at == self.points.len() { 0 } else { at }
    }
}

/// The bucket index of sorted `points`: a bucket per two to four points (at most 2^24), each
/// entry the first point at or past the bucket's start; and the shift that takes a hash to
/// its bucket.
fn bucket_index(points: &[u64]) -> (Vec<u32>, u32) {
    let bits = (usize::BITS - points.len().max(2).leading_zeros())
        .saturating_sub(2)
        .clamp(1, 24);
    let shift = 64 - bits;
    let buckets = 1usize << bits;
    let mut index = Vec::with_capacity(buckets + 1);
    let mut at = 0;
    for bucket in 0..buckets as u64 {
        let start = bucket << shift;
        while at < points.len() && points[at] < start {
            at += 1;
        }
        index.push(at as u32);
    }
    index.push(points.len() as u32);
    (index, shift)
}

impl HashTable for Ring {
    fn lookup(&self, key: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        Some(self.owners[self.position(key)] as usize)
    }

    fn candidates(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let len = self.points.len();
        let start = if len == 0 { 0 } else { self.position(key) };
        let mut seen = Seen::new(self.nodes);
        (0..len)
            .map(move |k| self.owners[(start + k) % len] as usize)
            .filter(move |&node| seen.insert(node))
            .take(self.owning)
    }

    fn nodes(&self) -> usize {
        self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::key_hash;

    #[test]
    fn a_ring_has_its_points_per_weight() {
        let ring = Ring::new(&[("a", 1), ("b", 3)], 10);
        assert_eq!(ring.points(), 40);
        assert_eq!(ring.owners.iter().filter(|&&o| o == 1).count(), 30);
        assert!(ring.points.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn candidates_list_every_node_once_starting_with_the_lookup() {
        let ring = Ring::new(&[("a", 1), ("b", 1), ("c", 2), ("d", 1)], 40);
        for k in 0..200u64 {
            let key = key_hash(&k.to_le_bytes());
            let order: Vec<usize> = ring.candidates(key).collect();
            assert_eq!(order[0], ring.lookup(key).unwrap());
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3]);
        }
    }

    #[test]
    fn an_empty_ring_has_no_answer() {
        let ring = Ring::new(&[], 160);
        assert_eq!(ring.lookup(7), None);
        assert_eq!(ring.candidates(7).count(), 0);
    }

    #[test]
    fn the_bucket_index_finds_what_a_whole_search_finds() {
        let ring = Ring::new(&[("a", 1), ("b", 2), ("c", 1)], 50);
        let whole = |key: u64| {
            let at = ring.points.partition_point(|&p| p < key);
            if at == ring.points.len() { 0 } else { at }
        };
        let mut keys: Vec<u64> = (0..20_000u64).map(|k| key_hash(&k.to_le_bytes())).collect();
        // The edges: every point, one either side of it, and the ends of the circle.
        for &p in &ring.points {
            keys.extend([p, p.wrapping_sub(1), p.wrapping_add(1)]);
        }
        keys.extend([0, u64::MAX]);
        for key in keys {
            assert_eq!(ring.position(key), whole(key), "key {key:#x}");
        }
    }

    #[test]
    fn a_key_past_the_last_point_wraps_to_the_first() {
        let ring = Ring::new(&[("a", 1), ("b", 1)], 4);
        let first_owner = ring.owners[0] as usize;
        assert_eq!(ring.lookup(u64::MAX), Some(first_owner));
    }
}
