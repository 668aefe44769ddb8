//! The HTTP syntax that route matches and cluster settings must follow (RFC 9110), checked with
//! the `http` crate's parsers where it has one, so the config accepts what the proxy can use.

use std::net::Ipv6Addr;
use std::str::FromStr;

use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method};

use crate::address::is_dns_name;

/// What is wrong with a value and how to write it instead.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Advice {
    pub(super) problem: String,
    pub(super) hint: String,
}

fn advice(problem: String, hint: impl Into<String>) -> Advice {
    Advice {
        problem,
        hint: hint.into(),
    }
}

/// Methods as the proxy compares them: exact, case-sensitive tokens.
pub(super) fn method(text: &str) -> Result<(), Advice> {
    if Method::from_bytes(text.as_bytes()).is_err() {
        return Err(advice(
            format!("{text:?} is not a valid HTTP method"),
            "a method is a token such as GET, POST or PURGE (RFC 9110)",
        ));
    }
    let upper = text.to_ascii_uppercase();
    let standard = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    if upper != text && standard.contains(&upper.as_str()) {
        return Err(advice(
            format!("method {text:?} is not {upper:?}: methods are case-sensitive"),
            format!("write {upper:?}"),
        ));
    }
    Ok(())
}

/// A header field name: an RFC 9110 token (matched case-insensitively).
pub(super) fn header_name(text: &str) -> Result<(), Advice> {
    HeaderName::from_bytes(text.as_bytes())
        .map(drop)
        .map_err(|_| {
            advice(
                format!("{text:?} is not a valid header name"),
                "a header name is a token: letters, digits and !#$%&'*+-.^_`|~ (RFC 9110)",
            )
        })
}

/// A header value to compare exactly with what the client sent.
pub(super) fn header_value(text: &str) -> Result<(), Advice> {
    if HeaderValue::from_str(text).is_err() {
        return Err(advice(
            format!("{text:?} is not a valid header value"),
            "use visible ASCII characters, spaces and tabs only",
        ));
    }
    if text.trim_matches([' ', '\t']) != text {
        return Err(advice(
            format!(
                "{text:?} starts or ends with whitespace, which HTTP strips from header values, so it can never match"
            ),
            "remove the surrounding whitespace",
        ));
    }
    Ok(())
}

/// A host to match: an exact name, or `*.` followed by a name (any subdomain).
pub(super) fn host_pattern(text: &str) -> Result<(), Advice> {
    let example =
        "write an exact name such as \"api.example.com\" or a wildcard such as \"*.example.com\"";
    if text == "*" {
        return Err(advice(
            "host pattern \"*\" is not supported".to_owned(),
            "leave \"hosts\" out to match any host",
        ));
    }
    let name = text.strip_prefix("*.").unwrap_or(text);
    if let Some((without_port, _)) = text.rsplit_once(':')
        && is_dns_name(without_port.strip_prefix("*.").unwrap_or(without_port))
    {
        return Err(advice(
            format!("host pattern {text:?} includes a port"),
            format!("host patterns are names only; write {without_port:?}"),
        ));
    }
    if !is_dns_name(name) {
        let problem = if name.contains('*') {
            format!("host pattern {text:?} has a wildcard that is not a leading \"*.\"")
        } else {
            format!("host pattern {text:?} is not a valid host name")
        };
        return Err(advice(problem, example));
    }
    Ok(())
}

/// A `host[:port]` to send upstream as the `Host` header.
pub(super) fn authority(text: &str) -> Result<(), Advice> {
    let hint =
        "write a host name with an optional port, e.g. \"api.internal\" or \"api.internal:8443\"";
    if text.contains('@') {
        return Err(advice(
            format!("{text:?} contains user information (\"@\")"),
            hint,
        ));
    }
    let (host_ok, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, "")) => (ip.parse::<Ipv6Addr>().is_ok(), None),
            // `[ip]:port`; anything else after `]` fails the port check.
            Some((ip, after)) => (
                ip.parse::<Ipv6Addr>().is_ok(),
                Some(after.strip_prefix(':').unwrap_or(after)),
            ),
            None => (false, None),
        },
        None => match text.rsplit_once(':') {
            Some((host, port)) => (is_dns_name(host), Some(port)),
            None => (is_dns_name(text), None),
        },
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    if host_ok && port_ok && Authority::from_str(text).is_ok() {
        Ok(())
    } else {
        Err(advice(format!("{text:?} is not a valid host[:port]"), hint))
    }
}

/// An exact path or a path prefix, compared with the request path (query string excluded).
pub(super) fn path(field: &str, text: &str) -> Result<(), Advice> {
    if !text.starts_with('/') {
        let hint = if text.is_empty() {
            "write \"/\" to match every path, or leave it out".to_owned()
        } else {
            format!("write \"/{text}\"")
        };
        return Err(advice(
            format!("{field} {text:?} does not start with \"/\""),
            hint,
        ));
    }
    if let Some(c) = text.chars().find(|c| matches!(c, '?' | '#')) {
        return Err(advice(
            format!(
                "{field} {text:?} contains {c:?}, but the query string and fragment are not part of the matched path"
            ),
            format!("remove everything from {c:?} on"),
        ));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(advice(
            format!("{field} {text:?} contains whitespace or control characters"),
            "percent-encode them as the client sends them, e.g. \"%20\" for a space",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_tokens_and_case_sensitive() {
        assert!(method("GET").is_ok());
        assert!(method("PURGE").is_ok());
        assert!(
            method("G ET")
                .unwrap_err()
                .problem
                .contains("not a valid HTTP method")
        );
        assert_eq!(method("get").unwrap_err().hint, "write \"GET\"");
    }

    #[test]
    fn header_names_follow_token_rules() {
        assert!(header_name("X-Request-Id").is_ok());
        assert!(header_name("x request").is_err());
        assert!(header_name(":authority").is_err());
        assert!(header_name("").is_err());
    }

    #[test]
    fn header_values_cannot_carry_control_characters_or_outer_spaces() {
        assert!(header_value("a b").is_ok());
        assert!(header_value("a\nb").is_err());
        assert!(header_value(" a").is_err());
    }

    #[test]
    fn host_patterns_are_names_or_leading_wildcards() {
        assert!(host_pattern("api.example.com").is_ok());
        assert!(host_pattern("*.example.com").is_ok());
        assert!(host_pattern("*").is_err());
        assert!(
            host_pattern("api.*.com")
                .unwrap_err()
                .problem
                .contains("wildcard")
        );
        assert!(host_pattern("*example.com").is_err());
        assert_eq!(
            host_pattern("api.example.com:8080").unwrap_err().hint,
            "host patterns are names only; write \"api.example.com\""
        );
    }

    #[test]
    fn authorities_are_host_and_optional_port() {
        assert!(authority("api.internal").is_ok());
        assert!(authority("api.internal:8443").is_ok());
        assert!(authority("[::1]:80").is_ok());
        assert!(authority("[::1]x80").is_err());
        assert!(authority("user@api.internal").is_err());
        assert!(authority("api internal").is_err());
        assert!(authority("api.internal:99999").is_err());
        assert!(authority("").is_err());
    }

    #[test]
    fn paths_start_with_a_slash_and_exclude_the_query() {
        assert!(path("match.prefix", "/api/").is_ok());
        assert_eq!(
            path("match.prefix", "api").unwrap_err().hint,
            "write \"/api\""
        );
        assert!(path("match.path", "/a?b=1").is_err());
        assert!(path("match.path", "/a b").is_err());
    }
}
