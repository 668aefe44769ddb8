//! A listener's routes: each points to a defined cluster, has well-formed match conditions,
//! and can be reached (no earlier route in the same listener catches all its requests).

use crate::path::Path;
use crate::suggest;
use crate::{Config, Listener, RouteMatch};

use super::{Finding, http_syntax, resilience, shadowing};

pub(super) fn check(
    config: &Config,
    listener: &Listener,
    listener_path: &Path,
    found: &mut Vec<Finding>,
) {
    let mut clusters: Vec<&str> = Vec::new();
    for cluster in &config.clusters {
        if !clusters.contains(&cluster.name.as_str()) {
            clusters.push(&cluster.name);
        }
    }
    let routes_path = listener_path.key("routes");
    for (j, route) in listener.routes.iter().enumerate() {
        let path = routes_path.index(j);
        let subject = format!("route {:?}", route.name);
        if !clusters.contains(&route.cluster.as_str()) {
            let hint = if clusters.is_empty() {
                "no clusters are defined; add one under \"clusters:\"".to_owned()
            } else {
                suggest::hint(&route.cluster, "defined clusters", &clusters)
            };
            found.push(
                Finding::new(
                    path.key("cluster"),
                    format!(
                        "{subject} points to cluster {:?}, which is not defined",
                        route.cluster
                    ),
                )
                .hint(hint),
            );
        }
        conditions(&route.matches, &path.key("match"), &subject, found);
        resilience::check(route, &path, found);
        if let Some(fallback) = &route.fallback {
            resilience::check_fallback(fallback, &clusters, &path.key("fallback"), found);
        }
        let earlier = listener.routes[..j]
            .iter()
            .enumerate()
            .find(|(_, e)| shadowing::covers(&e.matches, &route.matches));
        if let Some((i, earlier)) = earlier {
            found.push(
                Finding::new(
                    path.clone(),
                    format!(
                        "{subject} can never match: route {:?} before it matches every request it would",
                        earlier.name
                    ),
                )
                .hint(format!(
                    "routes are tried in order; move {subject} above route {:?}, or narrow route {:?}",
                    earlier.name, earlier.name
                ))
                .related("defined", routes_path.index(i)),
            );
        }
    }
}

fn conditions(matches: &RouteMatch, path: &Path, subject: &str, found: &mut Vec<Finding>) {
    if matches.path.is_some() && matches.prefix.is_some() {
        found.push(
            Finding::new(
                path.key("prefix"),
                format!("{subject} has both match.path and match.prefix"),
            )
            .hint("keep one: \"path\" matches one exact path, \"prefix\" every path under it"),
        );
    }
    for (field, value) in [("path", &matches.path), ("prefix", &matches.prefix)] {
        if let Some(value) = value
            && let Err(advice) = http_syntax::path(&format!("match.{field}"), value)
        {
            found.push(Finding::advice(path.key(field), subject, advice));
        }
    }
    for (k, host) in matches.hosts.iter().enumerate() {
        if let Err(advice) = http_syntax::host_pattern(host) {
            found.push(Finding::advice(path.key("hosts").index(k), subject, advice));
        }
    }
    for (k, method) in matches.methods.iter().enumerate() {
        if let Err(advice) = http_syntax::method(method) {
            found.push(Finding::advice(
                path.key("methods").index(k),
                subject,
                advice,
            ));
        }
    }
    for (k, header) in matches.headers.iter().enumerate() {
        let header_path = path.key("headers").index(k);
        if let Err(advice) = http_syntax::header_name(&header.name) {
            found.push(Finding::advice(header_path.key("name"), subject, advice));
        }
        if let Some(exact) = &header.exact
            && let Err(advice) = http_syntax::header_value(exact)
        {
            found.push(Finding::advice(header_path.key("exact"), subject, advice));
        }
    }
}
