//! Failover sections: a cluster's `health_check` (one kind, timings that let a check finish,
//! thresholds that can be met, statuses that parse), `tcp` listeners (a defined cluster, no
//! routes) and the PROXY protocol only where a TCP listener sends it.

use crate::path::Path;
use crate::suggest;
use crate::{Cluster, Config, HealthCheck, Listener, ListenerProtocol, PostgresRole};

use super::{Finding, http_syntax, resilience};

pub(super) fn check_health(check: &HealthCheck, path: &Path, found: &mut Vec<Finding>) {
    let kinds = check.kinds();
    if kinds.len() != 1 {
        let given = if kinds.is_empty() {
            "none is given".to_owned()
        } else {
            format!("{} are given", kinds.join(" and "))
        };
        found.push(
            Finding::new(
                path.clone(),
                format!("a health check needs exactly one of http, tcp or postgres; {given}"),
            )
            .hint(
                "e.g. \"http: { path: /healthz }\", \"tcp: {}\" or \"postgres: { role: primary }\"",
            ),
        );
    }
    for (field, value) in [
        ("interval", Some(check.interval)),
        ("timeout", Some(check.timeout)),
        ("transition_interval", check.transition_interval),
    ] {
        if value.is_some_and(|v| v.get().is_zero()) {
            found.push(
                Finding::new(path.key(field), format!("{field} is 0s"))
                    .hint("use a positive duration, e.g. \"1s\""),
            );
        }
    }
    for (field, value) in [("rise", check.rise), ("fall", check.fall)] {
        if value == 0 {
            found.push(
                Finding::new(path.key(field), format!("{field} is 0"))
                    .hint("count checks in a row: 1 acts on the first result"),
            );
        }
    }
    if !(0.0..1.0).contains(&check.jitter) {
        found.push(
            Finding::new(
                path.key("jitter"),
                format!("jitter {} is not between 0 and 1", check.jitter),
            )
            .hint("0.1 adds up to 10% of the interval to each wait"),
        );
    }
    if let Some(http) = &check.http {
        let path = path.key("http");
        if let Err(advice) = http_syntax::method(&http.method) {
            found.push(Finding::advice(
                path.key("method"),
                "http check method",
                advice,
            ));
        }
        let target = http
            .path
            .split_once('?')
            .map_or(http.path.as_str(), |(p, _)| p);
        if let Err(advice) = http_syntax::path("path", target) {
            found.push(Finding::advice(path.key("path"), "http check", advice));
        }
        if let Some(host) = &http.host
            && let Err(advice) = http_syntax::authority(host)
        {
            found.push(Finding::advice(path.key("host"), "http check host", advice));
        }
        if http.expect_status.is_empty() {
            found.push(
                Finding::new(
                    path.key("expect_status"),
                    "expect_status is empty, so no check could pass",
                )
                .hint("e.g. [\"200\"] or [\"2xx\", \"304\"]"),
            );
        }
        for (k, status) in http.expect_status.iter().enumerate() {
            if crate::parse_status_range(status).is_none() {
                found.push(
                    Finding::new(
                        path.key("expect_status").index(k),
                        format!("{status:?} is not a status, a class or a range"),
                    )
                    .hint(
                        "write a code (200), a class (2xx) or a range (200-299) of codes 100-599",
                    ),
                );
            }
        }
    }
    if let Some(pg) = &check.postgres {
        if pg.max_lag.is_some() && pg.role != PostgresRole::Replica {
            found.push(
                Finding::new(
                    path.key("postgres").key("max_lag"),
                    "max_lag applies to replicas only",
                )
                .hint("use role: replica, or leave max_lag out"),
            );
        }
        if pg.password.is_some() && pg.password_file.is_some() {
            found.push(
                Finding::new(
                    path.key("postgres").key("password_file"),
                    "both password and password_file are given",
                )
                .hint("keep one; password_file keeps the secret out of the config"),
            );
        }
    }
    if check.port() == Some(0) {
        found.push(Finding::new(
            path.clone(),
            "a health check port of 0 cannot be connected to",
        ));
    }
}

/// A `tcp` listener forwards to a defined cluster and has no routes; an `http` listener has
/// no `cluster` or `bulkhead` of its own.
pub(super) fn check_listener(
    config: &Config,
    listener: &Listener,
    path: &Path,
    found: &mut Vec<Finding>,
) {
    let who = format!("listener {:?}", listener.name);
    match listener.protocol {
        ListenerProtocol::Tcp => {
            match &listener.cluster {
                None => found.push(
                    Finding::new(
                        path.key("protocol"),
                        format!("{who} is a tcp listener without a cluster to forward to"),
                    )
                    .hint("add \"cluster: NAME\" naming one of the clusters"),
                ),
                Some(name) if !config.clusters.iter().any(|c| c.name == *name) => {
                    let names: Vec<&str> =
                        config.clusters.iter().map(|c| c.name.as_str()).collect();
                    found.push(
                        Finding::new(
                            path.key("cluster"),
                            format!("{who} forwards to cluster {name:?}, which is not defined"),
                        )
                        .hint(suggest::hint(
                            name,
                            "defined clusters",
                            &names,
                        )),
                    );
                }
                Some(_) => {}
            }
            if !listener.routes.is_empty() {
                found.push(
                    Finding::new(
                        path.key("routes"),
                        format!("{who} is a tcp listener: it has no HTTP requests to route"),
                    )
                    .hint("remove the routes, or make it an http listener"),
                );
            }
            if let Some(bulkhead) = &listener.bulkhead {
                resilience::check_bulkhead(bulkhead, &path.key("bulkhead"), found);
                if bulkhead.priority_header.is_some() {
                    found.push(Finding::new(
                        path.key("bulkhead").key("priority_header"),
                        format!("{who}: a tcp listener has no headers to read a priority from"),
                    ));
                }
            }
        }
        ListenerProtocol::Http => {
            for (field, given) in [
                ("cluster", listener.cluster.is_some()),
                ("bulkhead", listener.bulkhead.is_some()),
            ] {
                if given {
                    found.push(
                        Finding::new(
                            path.key(field),
                            format!("{who}: {field} applies to tcp listeners only"),
                        )
                        .hint("HTTP listeners send each route to its own cluster; set protocol: tcp, or put it on a route"),
                    );
                }
            }
        }
    }
}

/// The PROXY protocol is sent by TCP listeners only, so a cluster that asks for it must not
/// serve HTTP routes.
pub(super) fn check_proxy_protocol(
    config: &Config,
    cluster: &Cluster,
    path: &Path,
    found: &mut Vec<Finding>,
) {
    if cluster.proxy_protocol.is_none() {
        return;
    }
    let http_route = config.listeners.iter().flat_map(|l| &l.routes).find(|r| {
        r.cluster == cluster.name
            || r.fallback
                .as_ref()
                .and_then(|f| f.cluster.as_deref())
                .is_some_and(|c| c == cluster.name)
    });
    if let Some(route) = http_route {
        found.push(
            Finding::new(
                path.key("proxy_protocol"),
                format!(
                    "cluster {:?} sends the PROXY protocol, which only tcp listeners do, but route {:?} sends HTTP to it",
                    cluster.name, route.name
                ),
            )
            .hint("use a separate cluster for the HTTP routes"),
        );
    }
}
