//! Invalidation after unsafe requests (RFC 9111 §4.4), with the URI-reference resolution
//! (RFC 3986 §5.2) it needs for `Location` and `Content-Location`.

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode, Uri};

use super::parse;

/// Whether a method is unsafe for invalidation (RFC 9110 §9.2.1; RFC 9111 §4.4 counts
/// "methods whose safety is unknown" as unsafe): anything but GET, HEAD, OPTIONS, TRACE.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// §4.4: after a non-error response (2xx/3xx) to an unsafe method, the target URI (MUST)
/// and the `Location` / `Content-Location` URIs (MAY; we do) that have the SAME ORIGIN
/// (scheme, host, port — default ports made explicit, host case-insensitive; RFC 9110
/// §4.3.1) as the target are invalidated.
///
/// `target` should be absolute (`scheme://authority/path?query`). URIs are returned in the
/// cache-key form `scheme://authority/path?query`: scheme and authority are the target's
/// own (lowercased), since a same-origin URI differs from it only in path and query;
/// relative references are resolved against the target (RFC 3986 §5.2, dot segments
/// removed, fragments dropped); an empty path is `/`. Order: the target, then `Location`,
/// then `Content-Location`; duplicates dropped. References that are not valid URI
/// references (whitespace, non-ASCII) are ignored. With a target lacking scheme or
/// authority, only the target itself (as given) is returned.
pub fn invalidated_uris(
    method: &Method,
    target: &Uri,
    status: StatusCode,
    response_headers: &HeaderMap,
) -> Vec<String> {
    if !is_unsafe(method) || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let (Some(scheme), Some(authority)) = (target.scheme_str(), target.authority()) else {
        return vec![target.to_string()];
    };
    let base = Reference {
        scheme: Some(scheme.to_ascii_lowercase()),
        authority: Some(strip_userinfo(authority.as_str()).to_ascii_lowercase()),
        path: target.path().to_owned(),
        query: target.query().map(str::to_owned),
    };
    let origin = base.origin();
    let mut out = vec![base.key()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        for uri in references(response_headers, &name) {
            let Some(reference) = Reference::parse(&uri) else {
                continue;
            };
            let resolved = reference.resolve(&base);
            if resolved.origin().is_some() && resolved.origin() == origin {
                let key = Reference {
                    scheme: base.scheme.clone(),
                    authority: base.authority.clone(),
                    ..resolved
                }
                .key();
                if !out.contains(&key) {
                    out.push(key);
                }
            }
        }
    }
    out
}

/// The values of a URI-valued singleton field (one per line).
fn references(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|s| parse::trim_ows(s).to_owned())
        .collect()
}

/// A URI reference's components (RFC 3986 Appendix B), fragment dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    scheme: Option<String>,
    authority: Option<String>,
    path: String,
    query: Option<String>,
}

impl Reference {
    /// Splits a URI reference; `None` if it has characters no URI may hold (RFC 3986 §2)
    /// or a malformed scheme.
    fn parse(s: &str) -> Option<Reference> {
        if s.bytes()
            .any(|b| !b.is_ascii_graphic() || b"<>\"{}|\\^`".contains(&b))
        {
            return None;
        }
        let s = s.split_once('#').map_or(s, |(before, _)| before);
        let (scheme, rest) = match s.find([':', '/', '?']) {
            Some(i) if s.as_bytes()[i] == b':' => {
                let scheme = &s[..i];
                let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
                if !valid {
                    return None;
                }
                (Some(scheme.to_ascii_lowercase()), &s[i + 1..])
            }
            _ => (None, s),
        };
        let (authority, rest) = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find(['/', '?']).unwrap_or(after.len());
                (Some(after[..end].to_owned()), &after[end..])
            }
            None => (None, rest),
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (rest.to_owned(), None),
        };
        Some(Reference {
            scheme,
            authority,
            path,
            query,
        })
    }

    /// Resolves this reference against `base` (RFC 3986 §5.2.2, strict).
    fn resolve(self, base: &Reference) -> Reference {
        if self.scheme.is_some() {
            return Reference {
                path: remove_dot_segments(&self.path),
                ..self
            };
        }
        if self.authority.is_some() {
            return Reference {
                scheme: base.scheme.clone(),
                path: remove_dot_segments(&self.path),
                ..self
            };
        }
        let (path, query) = if self.path.is_empty() {
            (base.path.clone(), self.query.or_else(|| base.query.clone()))
        } else if self.path.starts_with('/') {
            (remove_dot_segments(&self.path), self.query)
        } else {
            (remove_dot_segments(&merge(base, &self.path)), self.query)
        };
        Reference {
            scheme: base.scheme.clone(),
            authority: base.authority.clone(),
            path,
            query,
        }
    }

    /// The origin (RFC 9110 §4.3.1) of an http or https URI: scheme, lowercase host,
    /// port with the default made explicit.
    fn origin(&self) -> Option<(String, String, u16)> {
        let scheme = self.scheme.as_deref()?;
        let default = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let hostport = strip_userinfo(self.authority.as_deref()?);
        let (host, port) = match hostport.rfind(':') {
            Some(i) if !hostport[i..].contains(']') => (&hostport[..i], &hostport[i + 1..]),
            _ => (hostport, ""),
        };
        if host.is_empty() {
            return None;
        }
        let port = if port.is_empty() {
            default
        } else {
            port.parse().ok()?
        };
        Some((scheme.to_owned(), host.to_ascii_lowercase(), port))
    }

    /// `scheme://authority/path?query`, an empty path as `/`.
    fn key(&self) -> String {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        let mut out = format!(
            "{}://{}{}",
            self.scheme.as_deref().unwrap_or_default(),
            self.authority.as_deref().unwrap_or_default(),
            path
        );
        if let Some(query) = &self.query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

/// An authority without its `userinfo@`.
fn strip_userinfo(authority: &str) -> &str {
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// RFC 3986 §5.2.3: a relative path merged with the base's.
fn merge(base: &Reference, path: &str) -> String {
    if base.authority.is_some() && base.path.is_empty() {
        return format!("/{path}");
    }
    match base.path.rfind('/') {
        Some(i) => format!("{}{path}", &base.path[..=i]),
        None => path.to_owned(),
    }
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/" } else { &input[3..] };
            let cut = output.rfind('/').unwrap_or(0);
            output.truncate(cut);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::parse::test_util::headers;

    fn uris(method: Method, target: &str, status: u16, res: &[(&str, &str)]) -> Vec<String> {
        invalidated_uris(
            &method,
            &target.parse().unwrap(),
            StatusCode::from_u16(status).unwrap(),
            &headers(res),
        )
    }

    #[test]
    fn rfc9110_s9_2_1_safe_methods() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!is_unsafe(&m), "{m}");
        }
        for m in ["POST", "PUT", "DELETE", "PATCH", "PURGE", "FROB"] {
            assert!(is_unsafe(&Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
        }
    }

    #[test]
    fn s4_4_unsafe_method_invalidates_the_target() {
        assert_eq!(
            uris(Method::POST, "http://example.com/a?b=1", 200, &[]),
            ["http://example.com/a?b=1"]
        );
        assert_eq!(
            uris(Method::DELETE, "http://Example.COM", 204, &[]),
            ["http://example.com/"]
        );
    }

    #[test]
    fn s4_4_only_non_error_responses_invalidate() {
        assert_eq!(uris(Method::PUT, "http://example.com/a", 301, &[]).len(), 1);
        assert!(uris(Method::PUT, "http://example.com/a", 404, &[]).is_empty());
        assert!(uris(Method::PUT, "http://example.com/a", 500, &[]).is_empty());
        assert!(uris(Method::PUT, "http://example.com/a", 100, &[]).is_empty());
    }

    #[test]
    fn s4_4_safe_methods_invalidate_nothing() {
        assert!(
            uris(
                Method::GET,
                "http://example.com/a",
                200,
                &[("location", "/b")]
            )
            .is_empty()
        );
    }

    #[test]
    fn s4_4_location_with_the_same_origin_is_invalidated() {
        let got = uris(
            Method::POST,
            "http://example.com/items",
            201,
            &[("location", "http://EXAMPLE.com:80/items/7")],
        );
        assert_eq!(
            got,
            ["http://example.com/items", "http://example.com/items/7"]
        );
    }

    #[test]
    fn s4_4_location_with_another_origin_is_not() {
        for other in [
            "http://other.example/items/7",
            "https://example.com/items/7",
            "http://example.com:8080/items/7",
            "//evil.example/x",
            "mailto:a@example.com",
        ] {
            let got = uris(
                Method::POST,
                "http://example.com/items",
                201,
                &[("location", other)],
            );
            assert_eq!(got, ["http://example.com/items"], "{other}");
        }
    }

    #[test]
    fn s4_4_relative_content_location_is_resolved_against_the_target() {
        let got = uris(
            Method::PUT,
            "http://example.com/a/b/c?x",
            200,
            &[("content-location", "../d?y#frag"), ("location", "e")],
        );
        // The target, then Location, then Content-Location.
        assert_eq!(
            got,
            [
                "http://example.com/a/b/c?x",
                "http://example.com/a/b/e",
                "http://example.com/a/d?y"
            ]
        );
    }

    #[test]
    fn s4_4_duplicates_and_invalid_references_are_dropped() {
        let got = uris(
            Method::PATCH,
            "https://example.com:443/a",
            200,
            &[
                ("location", "/a"),
                ("content-location", "/has space"),
                ("content-location", "https://example.com/a"),
            ],
        );
        assert_eq!(got, ["https://example.com:443/a"]);
    }

    #[test]
    fn s4_4_target_without_authority_is_returned_alone() {
        assert_eq!(uris(Method::POST, "/a", 200, &[("location", "/b")]), ["/a"]);
    }

    #[test]
    fn rfc3986_s5_4_reference_resolution_examples() {
        let base = Reference::parse("http://a/b/c/d;p?q").unwrap();
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("g;x=1/../y", "http://a/b/c/y"),
        ];
        for (reference, want) in cases {
            let got = Reference::parse(reference).unwrap().resolve(&base).key();
            assert_eq!(got, want, "{reference}");
        }
    }
}
