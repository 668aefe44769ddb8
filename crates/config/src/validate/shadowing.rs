//! Whether an earlier route catches every request a later one would: the later route is dead.
//!
//! Routes are tried in order and the first match wins, so route B can never be taken when an
//! earlier route A matches a superset of B's requests. The check is conservative: it only
//! claims A covers B when that holds for every possible request, comparing conditions
//! literally (host wildcards are not expanded), so it never flags a route that can match.

use crate::{HeaderMatch, RouteMatch};

/// True when every request that satisfies `later` also satisfies `earlier`.
pub(super) fn covers(earlier: &RouteMatch, later: &RouteMatch) -> bool {
    hosts_cover(&earlier.hosts, &later.hosts)
        && path_covers(earlier, later)
        && methods_cover(&earlier.methods, &later.methods)
        && earlier
            .headers
            .iter()
            .all(|needed| later.headers.iter().any(|h| header_implies(h, needed)))
}

fn hosts_cover(earlier: &[String], later: &[String]) -> bool {
    earlier.is_empty()
        || (!later.is_empty()
            && later
                .iter()
                .all(|host| earlier.iter().any(|e| e.eq_ignore_ascii_case(host))))
}

fn methods_cover(earlier: &[String], later: &[String]) -> bool {
    earlier.is_empty() || (!later.is_empty() && later.iter().all(|m| earlier.contains(m)))
}

/// Whether every path `later` accepts is accepted by `earlier`'s path and prefix conditions.
fn path_covers(earlier: &RouteMatch, later: &RouteMatch) -> bool {
    // The later route's paths all start with this (an exact path starts with itself).
    let later_paths_start_with: Vec<&str> = [later.path.as_deref(), later.prefix.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let exact_ok = match (&earlier.path, &later.path) {
        (None, _) => true,
        (Some(e), Some(l)) => e == l,
        (Some(_), None) => false,
    };
    let prefix_ok = match &earlier.prefix {
        None => true,
        Some(p) => later_paths_start_with
            .iter()
            .any(|l| l.starts_with(p.as_str())),
    };
    exact_ok && prefix_ok
}

/// Whether a request meeting `have` always meets `needed` (same header, compatible value).
fn header_implies(have: &HeaderMatch, needed: &HeaderMatch) -> bool {
    have.name.eq_ignore_ascii_case(&needed.name)
        && match &needed.exact {
            None => true,
            Some(value) => have.exact.as_ref() == Some(value),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> RouteMatch {
        RouteMatch {
            prefix: Some(p.into()),
            ..RouteMatch::default()
        }
    }

    #[test]
    fn an_empty_match_covers_everything() {
        assert!(covers(&RouteMatch::default(), &prefix("/api")));
        assert!(covers(&RouteMatch::default(), &RouteMatch::default()));
    }

    #[test]
    fn a_shorter_prefix_covers_a_longer_one_and_exact_paths_under_it() {
        assert!(covers(&prefix("/api"), &prefix("/api/v1")));
        let exact = RouteMatch {
            path: Some("/api/health".into()),
            ..RouteMatch::default()
        };
        assert!(covers(&prefix("/api"), &exact));
        assert!(!covers(&prefix("/api/v1"), &prefix("/api")));
        assert!(!covers(&exact, &prefix("/api")));
    }

    #[test]
    fn narrower_conditions_on_the_earlier_route_do_not_cover() {
        let get_only = RouteMatch {
            methods: vec!["GET".into()],
            ..RouteMatch::default()
        };
        assert!(!covers(&get_only, &RouteMatch::default()));
        let on_host = RouteMatch {
            hosts: vec!["a.example.com".into()],
            ..RouteMatch::default()
        };
        assert!(!covers(&on_host, &prefix("/")));
        let with_header = RouteMatch {
            headers: vec![HeaderMatch {
                name: "x-canary".into(),
                exact: None,
            }],
            ..RouteMatch::default()
        };
        assert!(!covers(&with_header, &RouteMatch::default()));
    }

    #[test]
    fn header_presence_is_implied_by_an_exact_value() {
        let present = RouteMatch {
            headers: vec![HeaderMatch {
                name: "X-Canary".into(),
                exact: None,
            }],
            ..RouteMatch::default()
        };
        let exact = RouteMatch {
            headers: vec![HeaderMatch {
                name: "x-canary".into(),
                exact: Some("1".into()),
            }],
            ..RouteMatch::default()
        };
        assert!(covers(&present, &exact));
        assert!(!covers(&exact, &present));
    }
}
