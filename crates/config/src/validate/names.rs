//! Names must be non-empty and unique: clusters and listeners across the config, routes within
//! their listener. A duplicate is reported at the second use, with the line of the first.

use std::collections::HashMap;

use crate::Config;
use crate::path::Path;

use super::Finding;

pub(super) fn check(config: &Config, found: &mut Vec<Finding>) {
    let root = Path::root();
    let clusters = config
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), root.key("clusters").index(i).key("name")));
    unique("cluster", "", clusters, found);
    let listeners = config
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), root.key("listeners").index(i).key("name")));
    unique("listener", "", listeners, found);
    for (i, listener) in config.listeners.iter().enumerate() {
        let routes = root.key("listeners").index(i).key("routes");
        let names = listener
            .routes
            .iter()
            .enumerate()
            .map(|(j, r)| (r.name.as_str(), routes.index(j).key("name")));
        unique("route", " within a listener", names, found);
    }
}

fn unique<'a>(
    kind: &str,
    scope: &str,
    names: impl Iterator<Item = (&'a str, Path)>,
    found: &mut Vec<Finding>,
) {
    let mut seen: HashMap<&str, Path> = HashMap::new();
    for (name, path) in names {
        if name.trim().is_empty() {
            found.push(
                Finding::new(path, format!("{kind} name is empty")).hint(format!(
                    "give the {kind} a name; it appears in logs and metrics"
                )),
            );
            continue;
        }
        match seen.get(name) {
            Some(first) => found.push(
                Finding::new(path, format!("duplicate {kind} name {name:?}"))
                    .hint(format!(
                        "rename one of them: {kind} names must be unique{scope}"
                    ))
                    .related("first defined", first.clone()),
            ),
            None => {
                seen.insert(name, path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cluster, Endpoint, Listener, Route, RouteMatch};

    fn route(name: &str) -> Route {
        Route {
            name: name.into(),
            matches: RouteMatch::default(),
            cluster: "web".into(),
            timeout: None,
            retry: None,
            bulkhead: None,
            fallback: None,
            cache: None,
        }
    }

    #[test]
    fn same_route_name_in_two_listeners_is_fine_but_not_in_one() {
        let config = Config::new(
            vec![
                Listener::http("a", "127.0.0.1:1", vec![route("r")]),
                Listener::http("b", "127.0.0.1:2", vec![route("r"), route("r")]),
            ],
            vec![Cluster::with_endpoints(
                "web",
                vec![Endpoint::new("127.0.0.1:3")],
            )],
        );
        let mut found = Vec::new();
        check(&config, &mut found);
        let messages: Vec<String> = found.into_iter().map(|f| f.unlocated().message).collect();
        assert_eq!(
            messages,
            [
                "listeners[1].routes[1].name: duplicate route name \"r\" (first defined at listeners[1].routes[0].name)"
            ]
        );
    }
}
