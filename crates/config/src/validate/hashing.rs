//! A cluster's `balancer: hash` and its `hash` section: both or neither, a key that can be
//! read from a request, a table that can be built, a load bound above 1.

use crate::path::Path;
use crate::{Balancer, Cluster, HashAlgorithm, HashKey};

use super::{Finding, http_syntax};

/// Most ring points per unit of weight (each costs 12 bytes per endpoint and weight).
const MAX_POINTS_PER_WEIGHT: u32 = 10_000;
/// The largest Maglev table (4 bytes a slot).
const MAX_TABLE_SIZE: usize = 10_000_019;

pub(super) fn check(cluster: &Cluster, path: &Path, found: &mut Vec<Finding>) {
    let subject = format!("cluster {:?}", cluster.name);
    let Some(hash) = &cluster.hash else {
        if cluster.balancer == Balancer::Hash {
            found.push(
                Finding::new(
                    path.key("balancer"),
                    format!("{subject}: balancer hash needs a hash section saying what the key is"),
                )
                .hint("add e.g. \"hash: { key: { header: x-user-id } }\""),
            );
        }
        return;
    };
    let path = path.key("hash");
    if cluster.balancer != Balancer::Hash {
        found.push(
            Finding::new(
                path.clone(),
                format!("{subject}: a hash section needs balancer: hash"),
            )
            .hint("set \"balancer: hash\", or remove the hash section"),
        );
    }
    match &hash.key {
        HashKey::Header(name) => {
            if let Err(advice) = http_syntax::header_name(name) {
                found.push(Finding::advice(
                    path.key("key").key("header"),
                    "hash key header",
                    advice,
                ));
            }
        }
        HashKey::Cookie(name) | HashKey::Query(name) if name.is_empty() => {
            found.push(Finding::new(
                path.key("key"),
                "the hash key names an empty cookie or query parameter",
            ));
        }
        _ => {}
    }
    if !(1..=MAX_POINTS_PER_WEIGHT).contains(&hash.points_per_weight) {
        found.push(
            Finding::new(
                path.key("points_per_weight"),
                format!(
                    "points_per_weight {} is not between 1 and {MAX_POINTS_PER_WEIGHT}",
                    hash.points_per_weight
                ),
            )
            .hint("160 (the default) keeps shares within a few percent"),
        );
    }
    if hash.algorithm == HashAlgorithm::Maglev {
        let size = hash.table_size;
        if !watertight_balance::hashing::is_prime(size)
            || size <= cluster.endpoints.len()
            || size > MAX_TABLE_SIZE
        {
            found.push(
                Finding::new(
                    path.key("table_size"),
                    format!("table_size {size} is not a prime above the endpoint count and at most {MAX_TABLE_SIZE}"),
                )
                .hint("use a prime around 100 × the endpoints or more, e.g. 65537 (the default) or 655373"),
            );
        }
    }
    if let Some(bound) = hash.bounded_load
        && !(bound > 1.0 && bound <= 10.0)
    {
        found.push(
            Finding::new(
                path.key("bounded_load"),
                format!("bounded_load {bound} is not above 1 and at most 10"),
            )
            .hint("1.25 lets an endpoint carry 25% more than its fair share before keys move on"),
        );
    }
}
