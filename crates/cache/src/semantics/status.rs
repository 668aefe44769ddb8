//! The `Cache-Status` response header field (RFC 9211), one list member per cache,
//! serialised as a structured field (RFC 8941).

use std::fmt::Write as _;
use std::time::Duration;

use http::HeaderValue;

/// Why a request went forward to the next hop (RFC 9211 §2.2, the `fwd` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// `bypass`: the cache was configured not to handle this request.
    Bypass,
    /// `method`: the request method's semantics require forwarding.
    Method,
    /// `uri-miss`: nothing stored for the target URI.
    UriMiss,
    /// `vary-miss`: stored responses for the URI, none whose `Vary` matched.
    VaryMiss,
    /// `miss`: no stored response could be used (when the above cannot be told apart).
    Miss,
    /// `request`: the request's semantics asked for it (the client's `no-cache`, ...).
    Request,
    /// `stale`: the stored response was stale and needed revalidation.
    Stale,
    /// `partial`: only part of the response was stored.
    Partial,
}

impl Forward {
    /// Its token in `Cache-Status` (RFC 9211 §2.2).
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::Bypass => "bypass",
            Forward::Method => "method",
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Miss => "miss",
            Forward::Request => "request",
            Forward::Stale => "stale",
            Forward::Partial => "partial",
        }
    }
}

/// One cache's `Cache-Status` member (RFC 9211 §2). Parameters are written only when
/// set, in the order of the fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStatus<'a> {
    /// The cache's name (§2): a token if it is one, else a string.
    pub cache: &'a str,
    /// `hit` (§2.1): answered from the cache without going forward.
    pub hit: bool,
    /// `fwd` (§2.2): why it went forward.
    pub fwd: Option<Forward>,
    /// `fwd-status` (§2.3): the status the next hop answered.
    pub fwd_status: Option<u16>,
    /// `ttl` (§2.4): seconds of freshness left; negative when stale.
    pub ttl: Option<i64>,
    /// `stored` (§2.5): the response was stored.
    pub stored: bool,
    /// `collapsed` (§2.6): the request was collapsed into another's.
    pub collapsed: bool,
    /// `key` (§2.7): the cache key, as a string.
    pub key: Option<&'a str>,
    /// `detail` (§2.8): implementation detail, a token if it is one, else a string.
    pub detail: Option<&'a str>,
}

/// The largest magnitude of an sf-integer (RFC 8941 §3.3.1).
const SF_INTEGER_MAX: i64 = 999_999_999_999_999;

impl CacheStatus<'_> {
    /// The member as a header value, e.g. `watertight; hit; ttl=37` or
    /// `watertight; fwd=uri-miss; fwd-status=200; stored` (RFC 8941 serialisation: booleans
    /// true as bare keys, integers clamped to the sf-integer range, strings quoted with `"`
    /// and `\` escaped and characters outside printable ASCII replaced by `?`).
    pub fn to_header_value(&self) -> HeaderValue {
        let mut out = String::new();
        bare_item(&mut out, self.cache);
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            let _ = write!(out, "; fwd={}", fwd.as_str());
        }
        if let Some(status) = self.fwd_status {
            let _ = write!(out, "; fwd-status={status}");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(out, "; ttl={}", ttl.clamp(-SF_INTEGER_MAX, SF_INTEGER_MAX));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(key) = self.key {
            out.push_str("; key=");
            sf_string(&mut out, key);
        }
        if let Some(detail) = self.detail {
            out.push_str("; detail=");
            bare_item(&mut out, detail);
        }
        HeaderValue::from_str(&out).expect("structured-field serialisation is visible ASCII")
    }
}

/// The `ttl` for a response (RFC 9211 §2.4): its freshness lifetime minus its current
/// age, in whole seconds rounded down (so a response 0.5 s past fresh says -1). No
/// lifetime counts as zero.
pub fn ttl_seconds(freshness_lifetime: Option<Duration>, current_age: Duration) -> i64 {
    let lifetime = freshness_lifetime.unwrap_or_default().as_nanos() as i128;
    let age = current_age.as_nanos() as i128;
    let seconds = (lifetime - age).div_euclid(1_000_000_000);
    seconds.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Writes `s` as an sf-token when it is one (RFC 8941 §3.3.4), else as an sf-string.
fn bare_item(out: &mut String, s: &str) {
    let token = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '*')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c));
    if token {
        out.push_str(s);
    } else {
        sf_string(out, s);
    }
}

/// Writes `s` as an sf-string (RFC 8941 §3.3.3).
fn sf_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(status: CacheStatus<'_>) -> String {
        status.to_header_value().to_str().unwrap().to_owned()
    }

    #[test]
    fn rfc9211_s2_1_hit_with_ttl() {
        let s = CacheStatus {
            cache: "watertight",
            hit: true,
            ttl: Some(37),
            ..Default::default()
        };
        assert_eq!(value(s), "watertight; hit; ttl=37");
    }

    #[test]
    fn rfc9211_s2_2_forward_stored() {
        let s = CacheStatus {
            cache: "watertight",
            fwd: Some(Forward::UriMiss),
            fwd_status: Some(200),
            stored: true,
            ..Default::default()
        };
        assert_eq!(value(s), "watertight; fwd=uri-miss; fwd-status=200; stored");
    }

    #[test]
    fn rfc9211_s2_2_forward_tokens() {
        let all = [
            (Forward::Bypass, "bypass"),
            (Forward::Method, "method"),
            (Forward::UriMiss, "uri-miss"),
            (Forward::VaryMiss, "vary-miss"),
            (Forward::Miss, "miss"),
            (Forward::Request, "request"),
            (Forward::Stale, "stale"),
            (Forward::Partial, "partial"),
        ];
        for (fwd, token) in all {
            assert_eq!(fwd.as_str(), token);
        }
    }

    #[test]
    fn rfc9211_s2_4_negative_ttl_collapsed_key_and_detail() {
        let s = CacheStatus {
            cache: "edge cache",
            hit: true,
            ttl: Some(-12),
            collapsed: true,
            key: Some("http://a/\"q\""),
            detail: Some("stale-while-revalidate"),
            ..Default::default()
        };
        assert_eq!(
            value(s),
            r#""edge cache"; hit; ttl=-12; collapsed; key="http://a/\"q\""; detail=stale-while-revalidate"#
        );
    }

    #[test]
    fn rfc8941_detail_that_is_not_a_token_is_a_string_and_non_ascii_is_replaced() {
        let s = CacheStatus {
            cache: "c",
            detail: Some("no freshness é"),
            ..Default::default()
        };
        assert_eq!(value(s), r#"c; detail="no freshness ?""#);
        let s = CacheStatus {
            cache: "c",
            ttl: Some(i64::MIN),
            ..Default::default()
        };
        assert_eq!(value(s), "c; ttl=-999999999999999");
    }

    #[test]
    fn rfc9211_s2_4_ttl_is_lifetime_minus_age_rounded_down() {
        let s = Duration::from_secs;
        assert_eq!(ttl_seconds(Some(s(100)), s(63)), 37);
        assert_eq!(
            ttl_seconds(Some(s(100)), Duration::from_millis(100_500)),
            -1
        );
        assert_eq!(ttl_seconds(None, s(5)), -5);
    }
}
