//! Semantic checks serde cannot make: references, addresses, duplicates, HTTP syntax, and
//! routes that can never match.
//!
//! Checks produce [`Finding`]s placed by [`Path`](crate::path::Path); `load_str` pins them to
//! lines and columns with the source map, [`validate`] (for configs built in code) names the
//! path in the message instead.
//!
//! Every finding is an error: a `Diagnostic` has no severity, and the proxy refuses a config
//! with any. That includes a route shadowed by an earlier one, which is dead configuration and
//! almost always an ordering mistake.

mod access_log;
mod cache;
mod clusters;
mod failover;
mod finding;
mod hashing;
mod http_syntax;
mod listeners;
mod names;
mod resilience;
mod routes;
mod shadowing;
mod tracing;

pub(crate) use finding::Finding;
pub(crate) use resilience::FALLBACK_REASONS;

use crate::{Config, Diagnostic};

/// Semantic checks that serde cannot make, on a config built in code or loaded from a file.
///
/// Diagnostics returned here carry no file position (line and column 0); each message starts
/// with the path of the offending value, e.g. `listeners[0].routes[1].cluster: …`.
pub fn validate(config: &Config) -> Vec<Diagnostic> {
    findings(config)
        .into_iter()
        .map(Finding::unlocated)
        .collect()
}

/// Every semantic problem in `config`, in the order of the config's sections.
pub(crate) fn findings(config: &Config) -> Vec<Finding> {
    let mut found = Vec::new();
    access_log::check(&config.access_log, &mut found);
    names::check(config, &mut found);
    listeners::check(config, &mut found);
    clusters::check(config, &mut found);
    cache::check(config, &mut found);
    if let Some(tracing) = &config.tracing {
        tracing::check(tracing, &mut found);
    }
    found
}
