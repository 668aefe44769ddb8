//! Field-value parsing shared by the semantics modules (RFC 9110 §5.5, §5.6).
//!
//! Everything here is tolerant in the ways the RFCs allow: values that are not visible
//! ASCII are read as ISO-8859-1 (RFC 9110 §5.5, obs-text), list members are split on
//! commas outside quoted strings, optional whitespace is trimmed and empty members are
//! dropped (RFC 9110 §5.6.1).

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The largest delta-seconds a cache must represent; larger values (and overflows) are
/// taken as this (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// A field value as text: as is when visible ASCII, else each byte read as ISO-8859-1, so
/// distinct values stay distinct (RFC 9110 §5.5).
pub(crate) fn text(value: &HeaderValue) -> Cow<'_, str> {
    match value.to_str() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(value.as_bytes().iter().map(|&b| char::from(b)).collect()),
    }
}

/// Optional whitespace (RFC 9110 §5.6.3).
pub(crate) fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Trims optional whitespace from both ends.
pub(crate) fn trim_ows(s: &str) -> &str {
    s.trim_matches(is_ows)
}

/// The members of a comma-separated list (RFC 9110 §5.6.1): split on commas outside
/// quoted strings, trimmed, empty members dropped.
pub(crate) fn split_list(s: &str) -> Vec<&str> {
    split_outside_quotes(s, ',')
}

/// Splits `s` on `separator` where it is outside a quoted string; trims each part and
/// drops empty ones.
pub(crate) fn split_outside_quotes(s: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(trim_ows)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The members of every line of `name`, in order (lines combined as RFC 9110 §5.3 says).
pub(crate) fn list_members(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| {
            split_list(&text(v))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A parameter or directive argument: a token as is, or a quoted-string with its
/// quoted-pairs resolved (RFC 9110 §5.6.4). `None` for an unterminated or otherwise
/// malformed quoted string.
pub(crate) fn unquote(s: &str) -> Option<String> {
    let s = trim_ows(s);
    let Some(inner) = s.strip_prefix('"') else {
        return (!s.contains('"')).then(|| s.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// delta-seconds (RFC 9111 §1.2.2): one or more digits, nothing else. Values past
/// [`DELTA_SECONDS_MAX`] become it.
pub(crate) fn delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX)),
    )
}

/// `seconds` as a duration.
pub(crate) fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// A date-valued field, as a cache must read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateField {
    /// No line of it.
    Absent,
    /// Present but not one valid HTTP-date (garbage, or lines that disagree).
    Invalid,
    /// One valid HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and
    /// asctime forms).
    Valid(SystemTime),
}

impl DateField {
    /// The date, if valid.
    pub(crate) fn valid(self) -> Option<SystemTime> {
        match self {
            DateField::Valid(t) => Some(t),
            _ => None,
        }
    }
}

/// Reads a singleton date field. Several lines count only if they all carry the same
/// date; otherwise the field is invalid (RFC 9111 §4.2.1: "the first occurrence should be
/// used or the response should be considered stale" — we take the conservative arm).
pub(crate) fn date_field(headers: &HeaderMap, name: &HeaderName) -> DateField {
    let mut found = DateField::Absent;
    for value in headers.get_all(name) {
        let parsed = parse_date(&text(value));
        found = match (found, parsed) {
            (DateField::Absent, Some(t)) => DateField::Valid(t),
            (DateField::Valid(a), Some(b)) if a == b => DateField::Valid(a),
            _ => return DateField::Invalid,
        };
    }
    found
}

/// Parses an HTTP-date, tolerating surrounding whitespace.
pub(crate) fn parse_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(trim_ows(s)).ok()
}

/// The single value of a singleton field: `None` when absent or when its lines disagree.
pub(crate) fn single_value<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

#[cfg(test)]
pub(crate) mod test_util {
    use http::header::{HeaderMap, HeaderName, HeaderValue};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// A header map from `(name, value)` pairs, appended in order.
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// A fixed instant, `secs` seconds after a base time (2021-01-01T00:00:00Z).
    pub(crate) fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_609_459_200 + secs)
    }

    /// The HTTP-date of [`at`]`(secs)`.
    pub(crate) fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9110_s5_6_1_lists_split_outside_quotes_and_drop_empty_members() {
        assert_eq!(
            split_list(r#" a ,, b="x, y" ,c=",\"," , "#),
            vec!["a", r#"b="x, y""#, r#"c=",\",""#]
        );
    }

    #[test]
    fn rfc9110_s5_6_4_quoted_strings_unescape_and_reject_unterminated() {
        assert_eq!(unquote(r#""a\"b""#).as_deref(), Some(r#"a"b"#));
        assert_eq!(unquote("token").as_deref(), Some("token"));
        assert_eq!(unquote(r#""open"#), None);
        assert_eq!(unquote(r#""a"b"#), None);
        assert_eq!(unquote(r#"to"ken"#), None);
    }

    #[test]
    fn rfc9111_s1_2_2_delta_seconds_are_digits_and_cap_at_2_pow_31() {
        assert_eq!(delta_seconds("60"), Some(60));
        assert_eq!(delta_seconds("007"), Some(7));
        assert_eq!(
            delta_seconds("99999999999999999999999"),
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(delta_seconds("4294967296"), Some(DELTA_SECONDS_MAX));
        for bad in ["", "-1", "+1", "1.5", "60s", " 60", "0x10"] {
            assert_eq!(delta_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc9110_s5_6_7_dates_in_all_three_formats() {
        let want = parse_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(want));
        assert_eq!(parse_date("Sun Nov  6 08:49:37 1994"), Some(want));
        assert_eq!(parse_date("  Sun, 06 Nov 1994 08:49:37 GMT "), Some(want));
        assert_eq!(parse_date("0"), None);
    }

    #[test]
    fn singleton_date_lines_that_disagree_are_invalid() {
        use test_util::{date, headers};
        let name = http::header::EXPIRES;
        let same = headers(&[("expires", &date(5)), ("expires", &date(5))]);
        assert!(matches!(date_field(&same, &name), DateField::Valid(_)));
        let differ = headers(&[("expires", &date(5)), ("expires", &date(6))]);
        assert_eq!(date_field(&differ, &name), DateField::Invalid);
        assert_eq!(date_field(&HeaderMap::new(), &name), DateField::Absent);
    }

    #[test]
    fn rfc9110_s5_5_obs_text_is_read_byte_for_byte() {
        let a = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        let b = HeaderValue::from_bytes(b"caf\xe8").unwrap();
        assert_ne!(text(&a), text(&b));
        assert_eq!(text(&a), "caf\u{e9}");
    }
}
