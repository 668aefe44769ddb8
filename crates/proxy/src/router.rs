//! Routing: the first route, in declared order, whose conditions all hold takes the request.

use http::header::{HeaderName, HeaderValue};
use http::{Method, Request};

use watertight_config as config;

/// A host condition: an exact name or a `*.suffix` wildcard (which needs at least one label
/// before the suffix: `*.example.com` matches `a.example.com`, not `example.com`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// The suffix including its leading dot, lower-cased.
    Suffix(String),
}

impl HostPattern {
    fn parse(pattern: &str) -> Self {
        let lower = pattern.to_ascii_lowercase();
        match lower.strip_prefix('*') {
            Some(suffix) => HostPattern::Suffix(suffix.to_owned()),
            None => HostPattern::Exact(lower),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// The compiled conditions of one route.
#[derive(Clone, Debug)]
pub struct RouteMatcher {
    hosts: Vec<HostPattern>,
    path: Option<String>,
    prefix: Option<String>,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl RouteMatcher {
    /// Compiles a route's `match` block. Invalid names were rejected by config validation;
    /// any that slip through make the condition unmatchable rather than match-all.
    pub fn compile(m: &config::RouteMatch) -> Self {
        Self {
            hosts: m.hosts.iter().map(|h| HostPattern::parse(h)).collect(),
            path: m.path.clone(),
            prefix: m.prefix.clone(),
            methods: m
                .methods
                .iter()
                .map(|name| Method::from_bytes(name.as_bytes()).unwrap_or(Method::CONNECT))
                .collect(),
            headers: m
                .headers
                .iter()
                .map(|h| {
                    let name = HeaderName::from_bytes(h.name.as_bytes())
                        .unwrap_or(HeaderName::from_static("x-watertight-invalid-header-name"));
                    let value = h
                        .exact
                        .as_deref()
                        .and_then(|v| HeaderValue::from_str(v).ok());
                    (name, value)
                })
                .collect(),
        }
    }

    /// Whether `request`, whose host (without port) is `host`, meets every condition.
    pub fn matches<B>(&self, request: &Request<B>, host: &str) -> bool {
        if !self.hosts.is_empty() && !self.hosts.iter().any(|p| p.matches(host)) {
            return false;
        }
        let path = request.uri().path();
        if self.path.as_deref().is_some_and(|exact| exact != path) {
            return false;
        }
        if self
            .prefix
            .as_deref()
            .is_some_and(|prefix| !path.starts_with(prefix))
        {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.contains(request.method()) {
            return false;
        }
        self.headers.iter().all(|(name, want)| {
            let mut values = request.headers().get_all(name).iter();
            match want {
                None => values.next().is_some(),
                Some(want) => values.any(|v| v == want),
            }
        })
    }
}

/// Routes of one listener, in order, each carrying what the caller attached to it.
pub struct Router<R> {
    routes: Vec<(RouteMatcher, R)>,
}

impl<R> Router<R> {
    /// A router over `routes`, tried in the given order.
    pub fn new(routes: Vec<(RouteMatcher, R)>) -> Self {
        Self { routes }
    }

    /// The first route whose conditions hold for `request`.
    pub fn route<B>(&self, request: &Request<B>) -> Option<&R> {
        let host = request_host(request);
        let host = strip_port(host.unwrap_or(""));
        self.routes
            .iter()
            .find(|(matcher, _)| matcher.matches(request, host))
            .map(|(_, route)| route)
    }

    /// Every route's attachment, in order.
    pub fn routes(&self) -> impl Iterator<Item = &R> {
        self.routes.iter().map(|(_, r)| r)
    }
}

/// The host a request is for: the `Host` header (HTTP/1.1) or the URI authority (HTTP/2).
pub fn request_host<B>(request: &Request<B>) -> Option<&str> {
    request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(yaml_like: config::RouteMatch) -> RouteMatcher {
        RouteMatcher::compile(&yaml_like)
    }

    fn request(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn router() -> Router<&'static str> {
        Router::new(vec![
            (
                matcher(config::RouteMatch {
                    path: Some("/exact".into()),
                    ..Default::default()
                }),
                "exact",
            ),
            (
                matcher(config::RouteMatch {
                    hosts: vec!["api.example.com".into()],
                    prefix: Some("/v1/".into()),
                    methods: vec!["POST".into()],
                    ..Default::default()
                }),
                "api-post",
            ),
            (
                matcher(config::RouteMatch {
                    headers: vec![config::HeaderMatch {
                        name: "x-canary".into(),
                        exact: Some("1".into()),
                    }],
                    ..Default::default()
                }),
                "canary",
            ),
            (
                matcher(config::RouteMatch {
                    hosts: vec!["*.example.com".into()],
                    ..Default::default()
                }),
                "wildcard",
            ),
            (
                matcher(config::RouteMatch {
                    prefix: Some("/static".into()),
                    headers: vec![config::HeaderMatch {
                        name: "x-present".into(),
                        exact: None,
                    }],
                    ..Default::default()
                }),
                "present",
            ),
        ])
    }

    #[test]
    fn first_matching_route_wins_in_declared_order() {
        let r = router();
        // Matches both "exact" and "wildcard": the earlier one wins.
        assert_eq!(
            r.route(&request("GET", "a.example.com", "/exact", &[])),
            Some(&"exact")
        );
        assert_eq!(
            r.route(&request("GET", "a.example.com", "/other", &[])),
            Some(&"wildcard")
        );
    }

    #[test]
    fn every_condition_must_hold() {
        let r = router();
        let post = request("POST", "api.example.com:443", "/v1/items", &[]);
        assert_eq!(r.route(&post), Some(&"api-post"));
        // Wrong method: falls through to the wildcard host route.
        let get = request("GET", "api.example.com", "/v1/items", &[]);
        assert_eq!(r.route(&get), Some(&"wildcard"));
        // Wrong prefix boundary.
        let other = request("POST", "api.example.com", "/v2/items", &[]);
        assert_eq!(r.route(&other), Some(&"wildcard"));
    }

    #[test]
    fn wildcard_needs_a_label_before_the_suffix() {
        let r = router();
        assert_eq!(r.route(&request("GET", "example.com", "/x", &[])), None);
        assert_eq!(
            r.route(&request("GET", "a.b.EXAMPLE.com", "/x", &[])),
            Some(&"wildcard")
        );
    }

    #[test]
    fn header_conditions_check_value_or_presence() {
        let r = router();
        assert_eq!(
            r.route(&request("GET", "h", "/x", &[("x-canary", "1")])),
            Some(&"canary")
        );
        assert_eq!(
            r.route(&request("GET", "h", "/x", &[("x-canary", "2")])),
            None
        );
        assert_eq!(
            r.route(&request("GET", "h", "/static/a.css", &[("x-present", "")])),
            Some(&"present")
        );
        assert_eq!(r.route(&request("GET", "h", "/static/a.css", &[])), None);
    }

    #[test]
    fn exact_path_ignores_the_query_string() {
        let r = router();
        assert_eq!(
            r.route(&request("GET", "h", "/exact?x=1", &[])),
            Some(&"exact")
        );
        assert_eq!(r.route(&request("GET", "h", "/exact/", &[])), None);
    }

    #[test]
    fn host_comes_from_the_authority_when_there_is_no_host_header() {
        let req = Request::builder()
            .uri("http://api.example.com/v1/x")
            .method("POST")
            .body(())
            .unwrap();
        assert_eq!(router().route(&req), Some(&"api-post"));
    }

    #[test]
    fn strip_port_handles_ipv6() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("example.com:80"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
