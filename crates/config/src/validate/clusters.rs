//! Clusters: endpoints that exist, can be addressed and can be picked; timeouts and pool
//! sizes that make sense; a `Host` rewrite that is a valid authority.

use crate::path::Path;
use crate::{Config, parse_endpoint_address};

use super::{Finding, http_syntax};

/// Idle connections per endpoint beyond which the number is surely a typo: each one holds a
/// socket and a file descriptor, and a few hundred already serve heavy traffic.
const MAX_IDLE_PER_ENDPOINT: usize = 10_000;

pub(super) fn check(config: &Config, found: &mut Vec<Finding>) {
    for (i, cluster) in config.clusters.iter().enumerate() {
        let path = Path::root().key("clusters").index(i);
        if cluster
            .endpoint_bulkhead
            .as_ref()
            .is_some_and(|b| b.max_concurrent == 0)
        {
            found.push(
                Finding::new(
                    path.key("endpoint_bulkhead").key("max_concurrent"),
                    "max_concurrent is 0: no endpoint could take a request",
                )
                .hint("leave endpoint_bulkhead out for no limit"),
            );
        }
        if let Some(bulkhead) = &cluster.bulkhead {
            super::resilience::check_bulkhead(bulkhead, &path.key("bulkhead"), found);
        }
        if let Some(adaptive) = &cluster.adaptive_concurrency {
            super::resilience::check_adaptive(adaptive, &path.key("adaptive_concurrency"), found);
        }
        if let Some(outlier) = &cluster.outlier_detection {
            super::resilience::check_outlier(outlier, &path.key("outlier_detection"), found);
        }
        if let Some(breaker) = &cluster.circuit_breaker {
            super::resilience::check_breaker(breaker, &path.key("circuit_breaker"), found);
        }
        if let Some(check) = &cluster.health_check {
            super::failover::check_health(check, &path.key("health_check"), found);
        }
        super::failover::check_proxy_protocol(config, cluster, &path, found);
        super::hashing::check(cluster, &path, found);
        let subject = format!("cluster {:?}", cluster.name);
        if cluster.endpoints.is_empty() {
            found.push(
                Finding::new(
                    path.key("endpoints"),
                    format!("{subject} has no endpoints, so every request routed to it would fail"),
                )
                .hint("add at least one endpoint, e.g. \"- address: 10.0.0.5:8080\""),
            );
        }
        for (k, endpoint) in cluster.endpoints.iter().enumerate() {
            let endpoint_path = path.key("endpoints").index(k);
            if let Err(e) = parse_endpoint_address(&endpoint.address) {
                found.push(Finding::parse_error(
                    endpoint_path.key("address"),
                    &subject,
                    &e,
                ));
            }
            if endpoint.weight == 0 {
                found.push(
                    Finding::new(
                        endpoint_path.key("weight"),
                        format!(
                            "{subject}: endpoint {:?} has weight 0, so it would never be picked",
                            endpoint.address
                        ),
                    )
                    .hint("use a weight of 1 or more, or remove the endpoint"),
                );
            }
        }
        if cluster.connect_timeout.get().is_zero() {
            found.push(
                Finding::new(
                    path.key("connect_timeout"),
                    format!("{subject}: connect_timeout is 0s, so every connection attempt would fail at once"),
                )
                .hint("use a positive duration, e.g. \"2s\" (the default); only request_timeout accepts 0s, meaning no limit"),
            );
        }
        if let Some(host) = &cluster.host_rewrite
            && let Err(advice) = http_syntax::authority(host)
        {
            found.push(Finding::advice(
                path.key("host_rewrite"),
                &format!("{subject}: host_rewrite"),
                advice,
            ));
        }
        let max_idle = cluster.pool.max_idle_per_endpoint;
        if max_idle > MAX_IDLE_PER_ENDPOINT {
            found.push(
                Finding::new(
                    path.key("pool").key("max_idle_per_endpoint"),
                    format!("{subject}: pool.max_idle_per_endpoint is {max_idle}, more idle connections per endpoint than a proxy can sensibly hold"),
                )
                .hint(format!("use at most {MAX_IDLE_PER_ENDPOINT} (the default is 64)")),
            );
        }
    }
}
