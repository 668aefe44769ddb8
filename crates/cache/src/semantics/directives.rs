//! `Cache-Control` (RFC 9111 §5.2) and `Pragma` (§5.4), read as a shared cache must.
//!
//! Parsing rules (§5.2, §4.2.1):
//! - every `Cache-Control` line is one list; directive names are case-insensitive;
//! - arguments may be tokens or quoted strings whatever form the directive's definition
//!   asks senders to generate (`max-age="60"` is 60);
//! - unknown directives are ignored (§5.2.3);
//! - a freshness directive (`max-age`, `s-maxage`) that is invalid (not delta-seconds,
//!   missing, malformed quoting) or repeated with different values makes the response
//!   stale: it reads as `Some(Duration::ZERO)` and sets `invalid_freshness` (§4.2.1:
//!   "either the first occurrence should be used or the response should be considered
//!   stale"; "caches are encouraged to consider responses that have invalid freshness
//!   information ... to be stale");
//! - a stale-extension (`stale-while-revalidate`, `stale-if-error`) that is invalid or
//!   repeated with different values grants nothing (the most restrictive reading);
//! - for `no-cache` / `private`, the unqualified form wins over any qualified one, several
//!   qualified ones are united, and a field-name list we cannot read in full (an invalid
//!   name, an empty list, broken quoting) counts as unqualified.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};

use super::parse::{self, secs};

/// Field-name lists of qualified no-cache / private; `Unqualified` when given without
/// names (RFC 9111 §5.2.2.4, §5.2.2.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldNames {
    /// The directive applies to the whole response.
    Unqualified,
    /// The directive applies only to these fields (lowercase, deduplicated).
    Names(Vec<HeaderName>),
}

/// The response directives a shared cache acts on (RFC 9111 §5.2.2, RFC 5861, RFC 8246).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseDirectives {
    /// `max-age` (§5.2.2.1). `Some(ZERO)` when invalid or conflicting.
    pub max_age: Option<Duration>,
    /// `s-maxage` (§5.2.2.10). `Some(ZERO)` when invalid or conflicting. Its presence
    /// also means `proxy-revalidate` for a shared cache.
    pub s_maxage: Option<Duration>,
    /// `no-store` (§5.2.2.5).
    pub no_store: bool,
    /// `no-cache` (§5.2.2.4), unqualified or with field names.
    pub no_cache: Option<FieldNames>,
    /// `private` (§5.2.2.7), unqualified or with field names.
    pub private: Option<FieldNames>,
    /// `must-revalidate` (§5.2.2.2).
    pub must_revalidate: bool,
    /// `proxy-revalidate` (§5.2.2.8).
    pub proxy_revalidate: bool,
    /// `public` (§5.2.2.9).
    pub public: bool,
    /// `immutable` (RFC 8246 §2).
    pub immutable: bool,
    /// `no-transform` (§5.2.2.6).
    pub no_transform: bool,
    /// `must-understand` (§5.2.2.3).
    pub must_understand: bool,
    /// `stale-while-revalidate` (RFC 5861 §3). `None` when absent, invalid or conflicting.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error` (RFC 5861 §4). `None` when absent, invalid or conflicting.
    pub stale_if_error: Option<Duration>,
    /// A freshness directive was present but unusable (invalid or conflicting): treat as
    /// stale (§4.2.1, §5.2.2.1).
    pub invalid_freshness: bool,
}

/// The response's `Cache-Control` directives (RFC 9111 §5.2.2, RFC 5861 §3–4,
/// RFC 8246 §2), read as the module documentation describes. `Pragma` is not consulted:
/// its meaning in responses was never specified (§5.4).
pub fn response_directives(headers: &HeaderMap) -> ResponseDirectives {
    let mut d = ResponseDirectives::default();
    let mut max_age = Seen::default();
    let mut s_maxage = Seen::default();
    let mut swr = Seen::default();
    let mut sie = Seen::default();
    for (name, arg) in cache_control(headers) {
        match name.as_str() {
            "max-age" => max_age.add(&arg),
            "s-maxage" => s_maxage.add(&arg),
            "stale-while-revalidate" => swr.add(&arg),
            "stale-if-error" => sie.add(&arg),
            "no-store" => d.no_store = true,
            "no-cache" => add_field_names(&mut d.no_cache, &arg),
            "private" => add_field_names(&mut d.private, &arg),
            "must-revalidate" => d.must_revalidate = true,
            "proxy-revalidate" => d.proxy_revalidate = true,
            "public" => d.public = true,
            "immutable" => d.immutable = true,
            "no-transform" => d.no_transform = true,
            "must-understand" => d.must_understand = true,
            _ => {}
        }
    }
    d.invalid_freshness = max_age == Seen::Invalid || s_maxage == Seen::Invalid;
    d.max_age = max_age.freshness();
    d.s_maxage = s_maxage.freshness();
    d.stale_while_revalidate = swr.extension();
    d.stale_if_error = sie.extension();
    d
}

/// The request directives a shared cache acts on (RFC 9111 §5.2.1, RFC 5861 §4).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestDirectives {
    /// `max-age` (§5.2.1.1): the client wants a response no older than this.
    pub max_age: Option<Duration>,
    /// `max-stale` (§5.2.1.2). `Some(None)`: max-stale without a value (any staleness).
    pub max_stale: Option<Option<Duration>>,
    /// `min-fresh` (§5.2.1.3): the client wants a response fresh for at least this long.
    pub min_fresh: Option<Duration>,
    /// `no-cache` (§5.2.1.4), or `Pragma: no-cache` without `Cache-Control` (§5.4).
    pub no_cache: bool,
    /// `no-store` (§5.2.1.5).
    pub no_store: bool,
    /// `only-if-cached` (§5.2.1.7).
    pub only_if_cached: bool,
    /// `stale-if-error` as a request directive (RFC 5861 §4).
    pub stale_if_error: Option<Duration>,
}

/// The request's `Cache-Control` directives (RFC 9111 §5.2.1). Includes `Pragma:
/// no-cache` as no-cache when the request has no Cache-Control (§5.4).
///
/// A directive whose argument is invalid is ignored (a request directive is a client's
/// preference, and §5.2.1 gives no rule for invalid ones). A repeated directive keeps its
/// most restrictive value: the smallest `max-age`, `max-stale` and `stale-if-error`, the
/// largest `min-fresh` (§4.2.1's "the most restrictive directive should be honored").
pub fn request_directives(headers: &HeaderMap) -> RequestDirectives {
    let mut d = RequestDirectives::default();
    for (name, arg) in cache_control(headers) {
        let value = arg.seconds().map(secs);
        match name.as_str() {
            "max-age" => d.max_age = min_some(d.max_age, value),
            "min-fresh" => {
                if let Some(v) = value {
                    d.min_fresh = Some(d.min_fresh.map_or(v, |old| old.max(v)));
                }
            }
            "max-stale" => match (arg, d.max_stale) {
                (Arg::Missing, None) => d.max_stale = Some(None),
                (Arg::Missing, Some(_)) => {}
                (_, old) => {
                    if let Some(v) = value {
                        d.max_stale = Some(Some(old.flatten().map_or(v, |o| o.min(v))));
                    }
                }
            },
            "stale-if-error" => d.stale_if_error = min_some(d.stale_if_error, value),
            "no-cache" => d.no_cache = true,
            "no-store" => d.no_store = true,
            "only-if-cached" => d.only_if_cached = true,
            _ => {}
        }
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        d.no_cache = parse::list_members(headers, &header::PRAGMA)
            .iter()
            .any(|m| {
                parse::trim_ows(m.split('=').next().unwrap_or("")).eq_ignore_ascii_case("no-cache")
            });
    }
    d
}

/// A directive's argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    /// No `=`.
    Missing,
    /// The argument, unquoted.
    Value(String),
    /// An `=` followed by a broken quoted string.
    Malformed,
}

impl Arg {
    /// The argument as delta-seconds, if it is one.
    fn seconds(&self) -> Option<u64> {
        match self {
            Arg::Value(v) => parse::delta_seconds(v),
            _ => None,
        }
    }
}

/// The `(lowercase name, argument)` pairs of every `Cache-Control` line, in order.
fn cache_control(headers: &HeaderMap) -> Vec<(String, Arg)> {
    parse::list_members(headers, &header::CACHE_CONTROL)
        .iter()
        .map(|member| match member.split_once('=') {
            None => (member.to_ascii_lowercase(), Arg::Missing),
            Some((name, arg)) => (
                parse::trim_ows(name).to_ascii_lowercase(),
                parse::unquote(arg).map_or(Arg::Malformed, Arg::Value),
            ),
        })
        .collect()
}

/// What was seen of a duration-valued response directive across its occurrences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Seen {
    #[default]
    Absent,
    Value(u64),
    /// Invalid, or repeated with different values.
    Invalid,
}

impl Seen {
    fn add(&mut self, arg: &Arg) {
        *self = match (*self, arg.seconds()) {
            (Seen::Absent, Some(v)) => Seen::Value(v),
            (Seen::Value(a), Some(b)) if a == b => Seen::Value(a),
            _ => Seen::Invalid,
        };
    }

    /// As a freshness directive: invalid reads as zero (stale).
    fn freshness(self) -> Option<Duration> {
        match self {
            Seen::Absent => None,
            Seen::Value(v) => Some(secs(v)),
            Seen::Invalid => Some(Duration::ZERO),
        }
    }

    /// As a stale extension: invalid grants nothing.
    fn extension(self) -> Option<Duration> {
        match self {
            Seen::Value(v) => Some(secs(v)),
            _ => None,
        }
    }
}

/// Adds one occurrence of `no-cache` / `private` to what was seen of it.
fn add_field_names(slot: &mut Option<FieldNames>, arg: &Arg) {
    let new = match arg {
        Arg::Value(list) => {
            let members = parse::split_list(list);
            let names: Option<Vec<HeaderName>> = members
                .iter()
                .map(|m| HeaderName::from_bytes(m.as_bytes()).ok())
                .collect();
            match names {
                Some(names) if !names.is_empty() => FieldNames::Names(names),
                _ => FieldNames::Unqualified,
            }
        }
        Arg::Missing | Arg::Malformed => FieldNames::Unqualified,
    };
    *slot = Some(match (slot.take(), new) {
        (None, new) => new,
        (Some(FieldNames::Names(mut old)), FieldNames::Names(more)) => {
            old.extend(more);
            FieldNames::Names(old)
        }
        _ => FieldNames::Unqualified,
    });
    if let Some(FieldNames::Names(names)) = slot {
        let mut seen = Vec::with_capacity(names.len());
        names.retain(|n| {
            let fresh = !seen.contains(n);
            if fresh {
                seen.push(n.clone());
            }
            fresh
        });
    }
}

/// The smaller of a previous value and a new one, either possibly absent.
fn min_some(old: Option<Duration>, new: Option<Duration>) -> Option<Duration> {
    match (old, new) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::parse::test_util::headers;

    fn res(values: &[&str]) -> ResponseDirectives {
        let pairs: Vec<_> = values.iter().map(|v| ("cache-control", *v)).collect();
        response_directives(&headers(&pairs))
    }

    fn req(pairs: &[(&str, &str)]) -> RequestDirectives {
        request_directives(&headers(pairs))
    }

    fn names(list: &[&str]) -> Option<FieldNames> {
        Some(FieldNames::Names(
            list.iter()
                .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
                .collect(),
        ))
    }

    #[test]
    fn s5_2_directive_names_are_case_insensitive_and_whitespace_tolerant() {
        let d = res(&["  Public ,MAX-AGE=60 ,\tMust-Revalidate  "]);
        assert!(d.public && d.must_revalidate);
        assert_eq!(d.max_age, Some(secs(60)));
        assert!(!d.invalid_freshness);
    }

    #[test]
    fn s5_2_quoted_arguments_are_accepted_for_token_form_directives() {
        let d = res(&[r#"max-age="60", s-maxage="120""#]);
        assert_eq!(d.max_age, Some(secs(60)));
        assert_eq!(d.s_maxage, Some(secs(120)));
        assert!(!d.invalid_freshness);
    }

    #[test]
    fn s5_2_directives_combine_across_lines() {
        let d = res(&["public", "max-age=30", "stale-while-revalidate=10"]);
        assert!(d.public);
        assert_eq!(d.max_age, Some(secs(30)));
        assert_eq!(d.stale_while_revalidate, Some(secs(10)));
    }

    #[test]
    fn s5_2_3_unknown_directives_are_ignored() {
        let d = res(&["community=\"UCI\", max-age=5, x-foo"]);
        assert_eq!(
            d,
            ResponseDirectives {
                max_age: Some(secs(5)),
                ..Default::default()
            }
        );
    }

    #[test]
    fn s5_2_2_1_invalid_max_age_is_stale() {
        for bad in [
            "max-age=abc",
            "max-age=-1",
            "max-age",
            "max-age=1.5",
            "max-age=\"6",
            "max-age=",
        ] {
            let d = res(&[bad]);
            assert!(d.invalid_freshness, "{bad}");
            assert_eq!(d.max_age, Some(Duration::ZERO), "{bad}");
        }
    }

    #[test]
    fn s4_2_1_duplicate_max_age_with_equal_values_is_fine() {
        let d = res(&["max-age=60", "max-age=60"]);
        assert_eq!(d.max_age, Some(secs(60)));
        assert!(!d.invalid_freshness);
    }

    #[test]
    fn s4_2_1_conflicting_duplicate_max_age_is_stale() {
        let d = res(&["max-age=60, max-age=3600"]);
        assert!(d.invalid_freshness);
        assert_eq!(d.max_age, Some(Duration::ZERO));
    }

    #[test]
    fn s4_2_1_invalid_s_maxage_is_stale_too() {
        let d = res(&["max-age=60, s-maxage=soon"]);
        assert!(d.invalid_freshness);
        assert_eq!(d.s_maxage, Some(Duration::ZERO));
        assert_eq!(d.max_age, Some(secs(60)));
    }

    #[test]
    fn s1_2_2_huge_max_age_is_capped_at_2_pow_31() {
        let d = res(&["max-age=999999999999999999999999"]);
        assert_eq!(d.max_age, Some(secs(parse::DELTA_SECONDS_MAX)));
        assert!(!d.invalid_freshness);
    }

    #[test]
    fn s5_2_2_4_qualified_no_cache_lists_field_names() {
        let d = res(&[r#"no-cache="Set-Cookie, X-Debug", max-age=60"#]);
        assert_eq!(d.no_cache, names(&["set-cookie", "x-debug"]));
        assert_eq!(d.max_age, Some(secs(60)));
    }

    #[test]
    fn s5_2_2_4_unqualified_no_cache_wins_over_qualified() {
        assert_eq!(
            res(&["no-cache=\"a\", no-cache"]).no_cache,
            Some(FieldNames::Unqualified)
        );
        assert_eq!(
            res(&["no-cache", "no-cache=\"a\""]).no_cache,
            Some(FieldNames::Unqualified)
        );
    }

    #[test]
    fn s5_2_2_7_qualified_private_lists_are_united_and_deduplicated() {
        let d = res(&[r#"private="A, b""#, "private=B, private=\"c\""]);
        assert_eq!(d.private, names(&["a", "b", "c"]));
    }

    #[test]
    fn s5_2_2_7_unreadable_private_field_list_is_unqualified() {
        assert_eq!(
            res(&[r#"private="""#]).private,
            Some(FieldNames::Unqualified)
        );
        assert_eq!(
            res(&[r#"private="bad name""#]).private,
            Some(FieldNames::Unqualified)
        );
        assert_eq!(
            res(&[r#"private="open"#]).private,
            Some(FieldNames::Unqualified)
        );
    }

    #[test]
    fn rfc5861_invalid_or_conflicting_stale_extensions_grant_nothing() {
        let d = res(&["stale-while-revalidate=abc, stale-if-error=10, stale-if-error=20"]);
        assert_eq!(d.stale_while_revalidate, None);
        assert_eq!(d.stale_if_error, None);
        assert!(!d.invalid_freshness);
        let d = res(&["stale-while-revalidate=\"30\", stale-if-error=86400"]);
        assert_eq!(d.stale_while_revalidate, Some(secs(30)));
        assert_eq!(d.stale_if_error, Some(secs(86400)));
    }

    #[test]
    fn s5_2_2_flags() {
        let d = res(&["no-store, proxy-revalidate, immutable, no-transform, must-understand"]);
        assert!(
            d.no_store && d.proxy_revalidate && d.immutable && d.no_transform && d.must_understand
        );
        assert!(!d.public && !d.must_revalidate);
    }

    #[test]
    fn s5_2_1_request_directives() {
        let d = req(&[(
            "cache-control",
            "max-age=0, min-fresh=\"5\", only-if-cached, no-store",
        )]);
        assert_eq!(d.max_age, Some(Duration::ZERO));
        assert_eq!(d.min_fresh, Some(secs(5)));
        assert!(d.only_if_cached && d.no_store && !d.no_cache);
    }

    #[test]
    fn s5_2_1_2_max_stale_with_and_without_value() {
        assert_eq!(req(&[("cache-control", "max-stale")]).max_stale, Some(None));
        assert_eq!(
            req(&[("cache-control", "max-stale=30")]).max_stale,
            Some(Some(secs(30)))
        );
        assert_eq!(
            req(&[("cache-control", "max-stale, max-stale=30")]).max_stale,
            Some(Some(secs(30)))
        );
        assert_eq!(req(&[("cache-control", "max-stale=soon")]).max_stale, None);
    }

    #[test]
    fn s5_2_1_repeated_request_directives_keep_the_most_restrictive() {
        let d = req(&[
            ("cache-control", "max-age=60, min-fresh=5"),
            ("cache-control", "max-age=10, min-fresh=20, max-age=bad"),
        ]);
        assert_eq!(d.max_age, Some(secs(10)));
        assert_eq!(d.min_fresh, Some(secs(20)));
    }

    #[test]
    fn s5_4_pragma_no_cache_counts_only_without_cache_control() {
        assert!(req(&[("pragma", "No-Cache")]).no_cache);
        assert!(req(&[("pragma", "x-foo, no-cache")]).no_cache);
        assert!(!req(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]).no_cache);
        assert!(!req(&[("pragma", "x-no-cache")]).no_cache);
    }

    #[test]
    fn rfc5861_s4_stale_if_error_as_a_request_directive() {
        assert_eq!(
            req(&[("cache-control", "stale-if-error=60")]).stale_if_error,
            Some(secs(60))
        );
    }
}
