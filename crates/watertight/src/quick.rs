//! Quick mode: `watertight proxy --listen ADDR --to URL…` without a config file.

use watertight_config::{self as config, Loaded};

/// Builds the config quick mode runs with: one listener, one catch-all route, one cluster.
pub fn config(
    listen: &str,
    to: &[String],
    admin: &str,
    access_log: &str,
    cache: Caching<'_>,
) -> Result<Loaded, String> {
    let endpoints = to
        .iter()
        .map(|url| endpoint_of(url).map(config::Endpoint::new))
        .collect::<Result<Vec<_>, _>>()?;
    let route = config::Route {
        name: "default".into(),
        matches: config::RouteMatch::default(),
        cluster: "upstream".into(),
        timeout: None,
        retry: None,
        bulkhead: None,
        fallback: None,
        cache: (cache != Caching::Off).then(config::RouteCache::default),
    };
    let mut config = config::Config::new(
        vec![config::Listener::http("main", listen, vec![route])],
        vec![config::Cluster::with_endpoints("upstream", endpoints)],
    );
    config.admin.address = admin.to_owned();
    if let Caching::Disk(path) = cache {
        config.cache = Some(config::CacheStore {
            disk: Some(config::DiskTier {
                path: path.to_owned(),
                max_bytes: 4 * 1024 * 1024 * 1024,
            }),
            ..config::CacheStore::default()
        });
    }
    config.access_log = access_log.to_owned();
    Loaded::from_config(config).map_err(|problems| problems.to_string())
}

/// Quick mode's caching: `--cache`, `--cache-dir DIR`, or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching<'a> {
    /// No caching.
    Off,
    /// The memory tier.
    Memory,
    /// The memory tier and a disk tier in this directory.
    Disk(&'a str),
}

impl<'a> Caching<'a> {
    /// From the `--cache` and `--cache-dir` flags (a directory implies caching).
    pub fn from_flags(cache: bool, dir: Option<&'a str>) -> Self {
        match (cache, dir) {
            (_, Some(dir)) => Caching::Disk(dir),
            (true, None) => Caching::Memory,
            (false, None) => Caching::Off,
        }
    }
}

/// `http://host:port` → `host:port` (port 80 when omitted).
fn endpoint_of(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--to {url:?}: only http:// upstream URLs are supported"))?;
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Err(format!(
            "--to {url:?}: give scheme, host and port only, without a path"
        ));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    config::parse_endpoint_address(&with_port).map_err(|e| format!("--to {url:?}: {e}"))?;
    Ok(with_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_endpoints() {
        assert_eq!(
            endpoint_of("http://127.0.0.1:8000"),
            Ok("127.0.0.1:8000".into())
        );
        assert_eq!(endpoint_of("http://backend/"), Ok("backend:80".into()));
        assert_eq!(endpoint_of("http://[::1]"), Ok("[::1]:80".into()));
        assert!(endpoint_of("https://x:1").is_err());
        assert!(endpoint_of("http://x:1/path").is_err());
    }

    #[test]
    fn quick_config_routes_everything_to_the_upstreams() {
        let to = vec![
            "http://127.0.0.1:8000".to_owned(),
            "http://127.0.0.1:8001".to_owned(),
        ];
        let loaded = config("127.0.0.1:8002", &to, "127.0.0.1:9901", "off", Caching::Off).unwrap();
        assert_eq!(loaded.config.clusters[0].endpoints.len(), 2);
        assert_eq!(loaded.config.listeners[0].routes[0].cluster, "upstream");
    }

    #[test]
    fn cache_turns_on_caching_for_the_route_with_defaults() {
        let to = vec!["http://127.0.0.1:8000".to_owned()];
        let plain = config("127.0.0.1:8002", &to, "127.0.0.1:9901", "off", Caching::Off).unwrap();
        assert_eq!(plain.config.listeners[0].routes[0].cache, None);
        let cached = config(
            "127.0.0.1:8002",
            &to,
            "127.0.0.1:9901",
            "off",
            Caching::Memory,
        )
        .unwrap();
        assert_eq!(
            cached.config.listeners[0].routes[0].cache,
            Some(config::RouteCache::default())
        );
        let on_disk = config(
            "127.0.0.1:8002",
            &to,
            "127.0.0.1:9901",
            "off",
            Caching::Disk("/var/cache/wt"),
        )
        .unwrap();
        assert!(on_disk.config.listeners[0].routes[0].cache.is_some());
        assert_eq!(
            on_disk.config.cache.unwrap().disk.unwrap().path,
            "/var/cache/wt"
        );
        assert_eq!(Caching::from_flags(false, Some("/d")), Caching::Disk("/d"));
        assert_eq!(Caching::from_flags(true, None), Caching::Memory);
    }

    #[test]
    fn bad_listen_address_is_reported() {
        let to = vec!["http://127.0.0.1:8000".to_owned()];
        assert!(config("nonsense", &to, "127.0.0.1:9901", "off", Caching::Off).is_err());
    }
}
