//! Consistent hashing as a cluster's balancer (`balancer: hash`): the request's key (a
//! header, a cookie, a query parameter, the path or the client's address) is hashed, and the
//! group's table orders its endpoints for that key. The cluster takes the first available
//! one, so an endpoint that is down moves only its own keys; with a load bound, endpoints over
//! it go to the back of the order, so a hot key spills to the next endpoints instead of
//! melting its own.

use std::net::IpAddr;

use http::Request;
use http::header::COOKIE;

use watertight_balance::hashing::{BoundedLoad, HashTable, Maglev, Rendezvous, Ring, key_hash};
use watertight_config::{HashAlgorithm, HashKey, HashPolicy};

/// One priority group's table, and its load bound.
pub(crate) struct HashBalancer {
    table: Table,
    bounded: Option<BoundedLoad>,
}

enum Table {
    Ring(Ring),
    Maglev(Maglev),
    Rendezvous(Rendezvous),
}

impl HashBalancer {
    /// The table `policy` asks for over `members` (`(address, weight)`, in group order).
    pub(crate) fn new(policy: &HashPolicy, members: &[(&str, u32)]) -> Self {
        let table = match policy.algorithm {
            HashAlgorithm::Ring => Table::Ring(Ring::new(members, policy.points_per_weight)),
            HashAlgorithm::Maglev => Table::Maglev(Maglev::new(members, policy.table_size)),
            HashAlgorithm::Rendezvous => Table::Rendezvous(Rendezvous::new(members)),
        };
        let weights: Vec<u32> = members.iter().map(|&(_, w)| w).collect();
        Self {
            table,
            bounded: policy
                .bounded_load
                .map(|factor| BoundedLoad::new(factor - 1.0, &weights)),
        }
    }

    /// The group's members (local indices) for `key`, in order of preference, walked lazily:
    /// a pick usually needs only the first.
    pub(crate) fn walk(&self, key: u64) -> Box<dyn Iterator<Item = usize> + '_> {
        match &self.table {
            Table::Ring(t) => Box::new(t.candidates(key)),
            Table::Maglev(t) => Box::new(t.candidates(key)),
            Table::Rendezvous(t) => Box::new(t.candidates(key)),
        }
    }

    /// The load bound now, if there is one: the loads (`in_flight`) of the `available`
    /// members and the share of the weight they hold, so [`Caps::over`] can tell who is at
    /// or over its cap.
    pub(crate) fn caps(
        &self,
        in_flight: impl Fn(usize) -> u32,
        available: impl Fn(usize) -> bool,
        weights: &[u32],
    ) -> Option<Caps<'_>> {
        let bounded = self.bounded.as_ref()?;
        let (mut total, mut live_weight, mut all) = (0u64, 0u64, 0u64);
        for (i, &weight) in weights.iter().enumerate() {
            all += u64::from(weight);
            if available(i) {
                total += u64::from(in_flight(i));
                live_weight += u64::from(weight);
            }
        }
        Some(Caps {
            bounded,
            total,
            live_share: if all == 0 {
                0.0
            } else {
                live_weight as f64 / all as f64
            },
        })
    }
}

/// A load bound evaluated for one pick.
pub(crate) struct Caps<'a> {
    bounded: &'a BoundedLoad,
    total: u64,
    live_share: f64,
}

impl Caps<'_> {
    /// Whether member `i` (local index), carrying `load`, is at or over its cap.
    pub(crate) fn over(&self, i: usize, load: u32) -> bool {
        u64::from(load) >= self.bounded.cap(i, self.total, self.live_share)
    }
}

/// The hash of `request`'s key, or `None` when the request has none.
pub(crate) fn request_key<B>(
    key: &HashKey,
    request: &Request<B>,
    client: Option<IpAddr>,
) -> Option<u64> {
    match key {
        HashKey::Header(name) => request
            .headers()
            .get(name.as_str())
            .map(|v| key_hash(v.as_bytes())),
        HashKey::Cookie(name) => request
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (n, value) = pair.trim().split_once('=')?;
                (n == name).then(|| key_hash(value.trim_matches('"').as_bytes()))
            }),
        HashKey::Query(name) => request.uri().query().and_then(|query| {
            query.split('&').find_map(|pair| {
                let (n, value) = pair.split_once('=').unwrap_or((pair, ""));
                (n == name).then(|| key_hash(value.as_bytes()))
            })
        }),
        HashKey::Path => Some(key_hash(request.uri().path().as_bytes())),
        HashKey::Url => {
            let host = request
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| {
                    request
                        .headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                })
                .unwrap_or_default()
                .to_ascii_lowercase();
            let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
            Some(key_hash(format!("{host}{target}").as_bytes()))
        }
        HashKey::ClientAddress => client.map(client_key),
    }
}

/// The key of a client address: its IP (the port changes with every connection).
pub(crate) fn client_key(ip: IpAddr) -> u64 {
    key_hash(ip.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn keys_come_from_where_the_policy_says() {
        let r = request(
            "/cart/1?user=ann&x=1",
            &[("x-user", "ann"), ("cookie", "a=1; session=s3cr3t; b=2")],
        );
        let ann = Some(key_hash(b"ann"));
        assert_eq!(
            request_key(&HashKey::Header("x-user".into()), &r, None),
            ann
        );
        assert_eq!(request_key(&HashKey::Query("user".into()), &r, None), ann);
        assert_eq!(
            request_key(&HashKey::Cookie("session".into()), &r, None),
            Some(key_hash(b"s3cr3t"))
        );
        assert_eq!(
            request_key(&HashKey::Path, &r, None),
            Some(key_hash(b"/cart/1"))
        );
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            request_key(&HashKey::ClientAddress, &r, Some(ip)),
            Some(client_key(ip))
        );
    }

    #[test]
    fn a_request_without_the_key_has_none() {
        let r = request("/?other=1", &[("cookie", "sessionx=1")]);
        assert_eq!(
            request_key(&HashKey::Header("x-user".into()), &r, None),
            None
        );
        assert_eq!(request_key(&HashKey::Query("user".into()), &r, None), None);
        assert_eq!(
            request_key(&HashKey::Cookie("session".into()), &r, None),
            None
        );
        assert_eq!(request_key(&HashKey::ClientAddress, &r, None), None);
    }

    #[test]
    fn the_load_bound_tells_who_is_over_its_cap() {
        let policy = HashPolicy {
            key: HashKey::Path,
            algorithm: HashAlgorithm::Rendezvous,
            points_per_weight: 160,
            table_size: 65_537,
            bounded_load: Some(1.25),
            no_key: Default::default(),
        };
        let balancer = HashBalancer::new(&policy, &[("a", 1), ("b", 1), ("c", 1)]);
        let order: Vec<usize> = balancer.walk(key_hash(b"/hot")).collect();
        let home = order[0];
        let idle = balancer.caps(|_| 0, |_| true, &[1, 1, 1]).unwrap();
        assert!(!idle.over(home, 0));
        // The home carries 10 of 10 in flight: cap ⌈1.25 × 11/3⌉ = 5, so it is over; the
        // others are not.
        let load = |i: usize| if i == home { 10 } else { 0 };
        let busy = balancer.caps(load, |_| true, &[1, 1, 1]).unwrap();
        assert!(busy.over(home, 10));
        assert!(order[1..].iter().all(|&i| !busy.over(i, 0)));
    }
}
