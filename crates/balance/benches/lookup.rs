//! Consistent-hashing lookups and table builds: ours ([`Ring`], [`Maglev`], [`Rendezvous`])
//! next to the peer crates `pingora-ketama`, `hashring` and `maglev`, on the same keys.
//!
//! `cargo bench -p watertight-balance --bench lookup` (about 5 s on 2 cores once built;
//! results and caveats in `bench/README.md`, "Consistent hashing lookups").
//!
//! Fairness:
//! - every lookup takes a string key (`user-NNNNN`, 1024 of them, cycled) and hashes it, as
//!   the peers hash their keys internally: ours with `key_hash` (xxh3), pingora-ketama with
//!   crc32, hashring and maglev with SipHash. `ours_*_prehashed` leave the hashing out;
//! - rings have 160 points per node (ketama's, pingora's and ours); `hashring` has no virtual
//!   nodes of its own, so it gets 160 `(node, replica)` entries per node, the smallest entry
//!   it can take (16 bytes with the key);
//! - Maglev tables have 65 537 slots, ours and the `maglev` crate's (`with_capacity`).
//!
//! Each lookup iteration is one key; samples are 1024 iterations, so a sample walks every key
//! once. Nothing here asserts: it measures.

use std::hint::black_box;
use std::net::SocketAddr;

use divan::Bencher;
use maglev::ConsistentHasher;
use watertight_balance::hashing::{
    BoundedLoad, DEFAULT_POINTS_PER_WEIGHT, DEFAULT_TABLE_SIZE, HashTable, Maglev, Rendezvous,
    Ring, key_hash,
};

fn main() {
    divan::main();
}

/// Keys per run, cycled; a power of two.
const KEYS: usize = 1024;
/// Lookup samples per benchmark, each of `KEYS` lookups.
const SAMPLES: u32 = 300;

/// Node names as the consistency tests spell them: `10.0.x.y:8080`.
fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:8080", i / 250, i % 250 + 1))
        .collect()
}

fn weighted(names: &[String]) -> Vec<(&str, u32)> {
    names.iter().map(|name| (name.as_str(), 1)).collect()
}

/// `KEYS` keys like `user-48213`, spread by a fixed mix so every run has the same ones.
fn keys() -> Vec<String> {
    (0..KEYS as u64)
        .map(|i| {
            let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("user-{}", (x ^ (x >> 31)) % 1_000_000)
        })
        .collect()
}

fn hashed(keys: &[String]) -> Vec<u64> {
    keys.iter().map(|k| key_hash(k.as_bytes())).collect()
}

/// Runs `lookup` once per iteration on the next key, cycling.
fn cycle<T, O>(bencher: Bencher<'_, '_>, keys: &[T], mut lookup: impl FnMut(&T) -> O) {
    let mut next = 0;
    bencher.bench_local(move || {
        let key = &keys[next];
        next = (next + 1) & (KEYS - 1);
        lookup(black_box(key))
    });
}

fn pingora_buckets(names: &[String]) -> Vec<pingora_ketama::Bucket> {
    names
        .iter()
        .map(|name| pingora_ketama::Bucket::new(name.parse::<SocketAddr>().unwrap(), 1))
        .collect()
}

fn hashring_of(n: usize) -> hashring::HashRing<(u32, u32)> {
    let mut ring = hashring::HashRing::new();
    ring.batch_add(
        (0..n as u32)
            .flat_map(|node| (0..DEFAULT_POINTS_PER_WEIGHT).map(move |replica| (node, replica)))
            .collect(),
    );
    ring
}

fn maglev_crate_of(names: &[String]) -> maglev::Maglev<&str> {
    maglev::Maglev::with_capacity(names.iter().map(String::as_str), DEFAULT_TABLE_SIZE)
}

/// Lookup of one string key, hashing included.
#[divan::bench_group(sample_count = SAMPLES, sample_size = KEYS as u32)]
mod lookup {
    use super::*;

    #[divan::bench(args = [10, 100, 1000])]
    fn ours_ring(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        let ring = Ring::new(&weighted(&names), DEFAULT_POINTS_PER_WEIGHT);
        cycle(bencher, &keys(), |k| ring.lookup(key_hash(k.as_bytes())));
    }

    #[divan::bench(args = [10, 100, 1000])]
    fn ours_maglev(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        let table = Maglev::new(&weighted(&names), DEFAULT_TABLE_SIZE);
        cycle(bencher, &keys(), |k| table.lookup(key_hash(k.as_bytes())));
    }

    #[divan::bench(args = [10, 100])]
    fn ours_rendezvous(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        let table = Rendezvous::new(&weighted(&names));
        cycle(bencher, &keys(), |k| table.lookup(key_hash(k.as_bytes())));
    }

    #[divan::bench(args = [10, 100, 1000])]
    fn pingora_ketama(bencher: Bencher<'_, '_>, n: usize) {
        let ring = pingora_ketama::Continuum::new(&pingora_buckets(&names(n)));
        cycle(bencher, &keys(), |k| ring.node(k.as_bytes()));
    }

    #[divan::bench(args = [10, 100, 1000])]
    fn hashring(bencher: Bencher<'_, '_>, n: usize) {
        let ring = hashring_of(n);
        cycle(bencher, &keys(), |k| ring.get(k).copied());
    }

    #[divan::bench(args = [10, 100, 1000])]
    fn maglev_crate(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        let table = maglev_crate_of(&names);
        cycle(bencher, &keys(), |k| table.get(k.as_str()).copied());
    }

    /// Ours again, the key hashed beforehand: the table's own cost.
    #[divan::bench(args = [10, 100, 1000])]
    fn ours_ring_prehashed(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        let ring = Ring::new(&weighted(&names), DEFAULT_POINTS_PER_WEIGHT);
        cycle(bencher, &hashed(&keys()), |&k| ring.lookup(k));
    }

    #[divan::bench(args = [10, 100, 1000])]
    fn ours_maglev_prehashed(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        let table = Maglev::new(&weighted(&names), DEFAULT_TABLE_SIZE);
        cycle(bencher, &hashed(&keys()), |&k| table.lookup(k));
    }

    /// The key's hash alone (xxh3 of `user-NNNNN`).
    #[divan::bench]
    fn key_hash_only(bencher: Bencher<'_, '_>) {
        cycle(bencher, &keys(), |k| key_hash(k.as_bytes()));
    }
}

/// Past the home node: the key's second candidate (its home is down), and a bounded-load pick,
/// at 100 nodes, hashing included.
#[divan::bench_group(sample_count = SAMPLES, sample_size = KEYS as u32)]
mod failover {
    use super::*;

    const NODES: usize = 100;

    #[divan::bench]
    fn ours_ring_second_candidate(bencher: Bencher<'_, '_>) {
        let names = names(NODES);
        let ring = Ring::new(&weighted(&names), DEFAULT_POINTS_PER_WEIGHT);
        cycle(bencher, &keys(), |k| {
            ring.candidates(key_hash(k.as_bytes())).nth(1)
        });
    }

    #[divan::bench]
    fn ours_maglev_second_candidate(bencher: Bencher<'_, '_>) {
        let names = names(NODES);
        let table = Maglev::new(&weighted(&names), DEFAULT_TABLE_SIZE);
        cycle(bencher, &keys(), |k| {
            table.candidates(key_hash(k.as_bytes())).nth(1)
        });
    }

    #[divan::bench]
    fn ours_rendezvous_second_candidate(bencher: Bencher<'_, '_>) {
        let names = names(NODES);
        let table = Rendezvous::new(&weighted(&names));
        cycle(bencher, &keys(), |k| {
            table.candidates(key_hash(k.as_bytes())).nth(1)
        });
    }

    /// pingora-ketama's equivalent: the second point of the key's walk (it may be the same
    /// node; pingora leaves skipping repeats to the caller).
    #[divan::bench]
    fn pingora_ketama_second_point(bencher: Bencher<'_, '_>) {
        let ring = pingora_ketama::Continuum::new(&pingora_buckets(&names(NODES)));
        cycle(bencher, &keys(), |k| {
            ring.node_iter(k.as_bytes()).nth(1).copied()
        });
    }

    /// Loads 100 apiece, every tenth node 130: over the ε = 0.25 cap (⌈1.25 × 10 301 / 100⌉
    /// = 129), so about one key in ten walks on past its home.
    fn loads() -> (Vec<u64>, u64) {
        let loads: Vec<u64> = (0..NODES)
            .map(|i| if i % 10 == 0 { 130 } else { 100 })
            .collect();
        let total = loads.iter().sum();
        (loads, total)
    }

    #[divan::bench]
    fn ours_ring_bounded_load(bencher: Bencher<'_, '_>) {
        let names = names(NODES);
        let ring = Ring::new(&weighted(&names), DEFAULT_POINTS_PER_WEIGHT);
        let rule = BoundedLoad::new(0.25, &[1; NODES]);
        let (loads, total) = loads();
        cycle(bencher, &keys(), |k| {
            let candidates = ring.candidates(key_hash(k.as_bytes()));
            rule.pick(candidates, |i| loads[i], total, 1.0)
        });
    }

    #[divan::bench]
    fn ours_maglev_bounded_load(bencher: Bencher<'_, '_>) {
        let names = names(NODES);
        let table = Maglev::new(&weighted(&names), DEFAULT_TABLE_SIZE);
        let rule = BoundedLoad::new(0.25, &[1; NODES]);
        let (loads, total) = loads();
        cycle(bencher, &keys(), |k| {
            let candidates = table.candidates(key_hash(k.as_bytes()));
            rule.pick(candidates, |i| loads[i], total, 1.0)
        });
    }
}

/// Building a table from its node list (names already formatted).
#[divan::bench_group(sample_count = 20, sample_size = 1)]
mod build {
    use super::*;

    #[divan::bench(args = [100, 1000])]
    fn ours_ring(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        let nodes = weighted(&names);
        bencher.bench_local(|| Ring::new(black_box(&nodes), DEFAULT_POINTS_PER_WEIGHT));
    }

    #[divan::bench(args = [100, 1000])]
    fn ours_maglev(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        let nodes = weighted(&names);
        bencher.bench_local(|| Maglev::new(black_box(&nodes), DEFAULT_TABLE_SIZE));
    }

    #[divan::bench(args = [100, 1000])]
    fn pingora_ketama(bencher: Bencher<'_, '_>, n: usize) {
        let buckets = pingora_buckets(&names(n));
        bencher.bench_local(|| pingora_ketama::Continuum::new(black_box(&buckets)));
    }

    #[divan::bench(args = [100, 1000])]
    fn hashring(bencher: Bencher<'_, '_>, n: usize) {
        bencher.bench_local(|| hashring_of(black_box(n)));
    }

    /// The `maglev` crate keeps every node's whole permutation while it fills the table
    /// (nodes × 65 537 words: 512 MiB at 1000 nodes), so it gets fewer samples.
    #[divan::bench(args = [100, 1000], sample_count = 3)]
    fn maglev_crate(bencher: Bencher<'_, '_>, n: usize) {
        let names = names(n);
        bencher.bench_local(|| maglev_crate_of(black_box(&names)));
    }
}
