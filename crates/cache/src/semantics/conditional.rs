//! Validators and conditional requests (RFC 9110 §8.8, §13; RFC 9111 §4.3).

use std::fmt;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::directives::response_directives;
use super::parse::{self, DateField};
use super::storable::{NEVER_STORED, fields_to_strip};

/// An entity tag (RFC 9110 §8.8.3): `W/"opaque"` when weak, `"opaque"` when strong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityTag {
    /// Whether it is weak (`W/` prefix).
    pub weak: bool,
    /// The opaque-tag without its quotes.
    pub opaque: String,
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let weak = if self.weak { "W/" } else { "" };
        write!(f, "{weak}\"{}\"", self.opaque)
    }
}

/// Parses one entity-tag (RFC 9110 §8.8.3): `[ "W/" ] DQUOTE *etagc DQUOTE`, surrounding
/// whitespace allowed. The `W/` prefix is case-sensitive (`%s"W/"`); unquoted values are
/// not entity tags.
pub fn parse_etag(value: &str) -> Option<EntityTag> {
    let (tag, rest) = parse_one(parse::trim_ows(value))?;
    rest.is_empty().then_some(tag)
}

/// Parses an entity-tag at the start of `s`, returning it and what follows.
fn parse_one(s: &str) -> Option<(EntityTag, &str)> {
    let (weak, s) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let s = s.strip_prefix('"')?;
    let end = s.find('"')?;
    let opaque = &s[..end];
    // etagc = %x21 / %x23-7E / obs-text: no controls, space or DEL.
    if opaque.chars().any(|c| c <= ' ' || c == '\u{7f}') {
        return None;
    }
    let tag = EntityTag {
        weak,
        opaque: opaque.to_owned(),
    };
    Some((tag, &s[end + 1..]))
}

/// Parses a list of entity-tags (RFC 9110 §5.6.1, §13.1.2): commas may occur inside
/// opaque tags, so the list is read tag by tag. `None` if any part is not an entity-tag.
fn parse_etag_list(s: &str) -> Option<Vec<EntityTag>> {
    let mut tags = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c| parse::is_ows(c) || c == ',');
        if rest.is_empty() {
            return Some(tags);
        }
        let (tag, after) = parse_one(rest)?;
        tags.push(tag);
        rest = parse::trim_ows(after);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return None;
        }
    }
}

/// Strong comparison (RFC 9110 §8.8.3.2): both strong and the opaque tags equal.
pub fn strong_match(a: &EntityTag, b: &EntityTag) -> bool {
    !a.weak && !b.weak && a.opaque == b.opaque
}

/// Weak comparison (RFC 9110 §8.8.3.2): the opaque tags equal, either or both weak.
pub fn weak_match(a: &EntityTag, b: &EntityTag) -> bool {
    a.opaque == b.opaque
}

/// The response's entity tag (RFC 9110 §8.8.3), if it has exactly one valid one (lines
/// that disagree count as none).
pub fn etag(headers: &HeaderMap) -> Option<EntityTag> {
    parse_etag(&parse::text(parse::single_value(headers, &header::ETAG)?))
}

/// What an `If-None-Match` asks (RFC 9110 §13.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfNoneMatch {
    /// `*`: any current representation.
    Any,
    /// These entity tags.
    Tags(Vec<EntityTag>),
    /// Neither `*` nor a list of entity tags (or `*` mixed with tags, or an empty list).
    Invalid,
}

/// The request's `If-None-Match` (RFC 9110 §13.1.2), all lines combined; `None` when
/// absent.
pub fn if_none_match(headers: &HeaderMap) -> Option<IfNoneMatch> {
    let lines: Vec<_> = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .map(|v| parse::text(v).into_owned())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let joined = lines.join(", ");
    if parse::trim_ows(&joined) == "*" {
        return Some(IfNoneMatch::Any);
    }
    Some(match parse_etag_list(&joined) {
        Some(tags) if !tags.is_empty() => IfNoneMatch::Tags(tags),
        _ => IfNoneMatch::Invalid,
    })
}

/// RFC 9110 §13.1.2/§13.1.3 evaluated against a STORED response (for answering a client's
/// conditional GET/HEAD from cache, RFC 9111 §4.3.2): true when the cache should answer
/// 304.
///
/// - `If-None-Match` takes precedence: `*` matches any stored response; otherwise any
///   listed tag that weakly matches the stored `ETag`. An invalid `If-None-Match` never
///   yields 304 (a full response is always a correct answer), and `If-Modified-Since` is
///   then ignored as well (§13.1.3: ignored whenever `If-None-Match` is present).
/// - Else `If-Modified-Since`, when it is a single valid HTTP-date (§13.1.3: otherwise
///   ignored): 304 when the stored `Last-Modified` (or, without a valid one, the stored
///   `Date`, RFC 9111 §4.3.2) is not later than it.
///
/// This assumes the caller already decided the request may be answered from this stored
/// response, that the method is GET or HEAD and that the stored status is 2xx; prefer
/// [`answer_not_modified_for`], which checks the last two.
pub fn answer_not_modified(request_headers: &HeaderMap, stored_headers: &HeaderMap) -> bool {
    if let Some(inm) = if_none_match(request_headers) {
        return match inm {
            IfNoneMatch::Any => true,
            IfNoneMatch::Tags(tags) => etag(stored_headers)
                .is_some_and(|stored| tags.iter().any(|t| weak_match(t, &stored))),
            IfNoneMatch::Invalid => false,
        };
    }
    let mut lines = request_headers.get_all(header::IF_MODIFIED_SINCE).iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return false;
    };
    let Some(since) = parse::parse_date(&parse::text(line)) else {
        return false;
    };
    let modified = parse::date_field(stored_headers, &header::LAST_MODIFIED)
        .valid()
        .or_else(|| parse::date_field(stored_headers, &header::DATE).valid());
    modified.is_some_and(|modified| modified <= since)
}

/// [`answer_not_modified`] with the checks it leaves to the caller: the method is GET or
/// HEAD (§13.1.2/§13.1.3 answer 304 only to those) and the stored status is 2xx (RFC 9110
/// §13.2.1: preconditions are ignored when the response without them would not be 2xx
/// or 412; a stored 404 or 301 is sent as it is).
pub fn answer_not_modified_for(
    method: &Method,
    stored_status: StatusCode,
    request_headers: &HeaderMap,
    stored_headers: &HeaderMap,
) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && stored_status.is_success()
        && answer_not_modified(request_headers, stored_headers)
}

/// Whether a request carries preconditions that only the origin server may evaluate:
/// `If-Match`, `If-Unmodified-Since` (RFC 9111 §4.3.2: a cache MUST NOT evaluate
/// conditionals that apply only to an origin server) or `If-Range` (we store no partial
/// content). Such a request should be forwarded with them rather than answered from
/// the cache, which could only answer by ignoring them.
pub fn has_origin_preconditions(request_headers: &HeaderMap) -> bool {
    [
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ]
    .iter()
    .any(|name| request_headers.contains_key(name))
}

/// The validators to send upstream to revalidate a stored response (§4.3.1):
/// `If-None-Match` with its ETag (MUST), and `If-Modified-Since` with its `Last-Modified`
/// (SHOULD), each only if the stored one is valid; empty if it has neither. The values
/// are sent exactly as stored, since some origins compare them as strings.
pub fn revalidation_headers(stored_headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(value) = parse::single_value(stored_headers, &header::ETAG)
        && parse_etag(&parse::text(value)).is_some()
    {
        out.insert(header::IF_NONE_MATCH, trimmed(value));
    }
    if let Some(value) = parse::single_value(stored_headers, &header::LAST_MODIFIED)
        && parse::parse_date(&parse::text(value)).is_some()
    {
        out.insert(header::IF_MODIFIED_SINCE, trimmed(value));
    }
    out
}

/// `value` without surrounding whitespace.
fn trimmed(value: &HeaderValue) -> HeaderValue {
    let bytes = value.as_bytes();
    let start = bytes
        .iter()
        .position(|b| !b" \t".contains(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b" \t".contains(b))
        .map_or(start, |e| e + 1);
    HeaderValue::from_bytes(&bytes[start..end]).unwrap_or_else(|_| value.clone())
}

/// Whether a 304 selects this stored response for update (RFC 9111 §4.3.4), for a cache
/// holding one stored response per key and variant:
///
/// - the 304 has a strong ETag: the stored response has a strongly matching one;
/// - the 304 has a weak ETag: the stored ETag weakly matches it;
/// - the 304 has no ETag but a `Last-Modified`: the stored one is the same date (weak or
///   strong, a single matching stored response is the one to update);
/// - the 304 has no validator: only a stored response without validators is selected
///   (so a 304 that omits the `Last-Modified` a stored response has selects nothing, as
///   §4.3.4 is written; the caller then fetches unconditionally).
pub fn freshens(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    if not_modified.contains_key(header::ETAG) {
        let Some(new) = etag(not_modified) else {
            return false;
        };
        return etag(stored).is_some_and(|old| {
            if new.weak {
                weak_match(&new, &old)
            } else {
                strong_match(&new, &old)
            }
        });
    }
    match parse::date_field(not_modified, &header::LAST_MODIFIED) {
        DateField::Valid(new) => {
            parse::date_field(stored, &header::LAST_MODIFIED) == DateField::Valid(new)
        }
        DateField::Invalid => false,
        DateField::Absent => {
            !stored.contains_key(header::ETAG) && !stored.contains_key(header::LAST_MODIFIED)
        }
    }
}

/// Fields a 304 never updates in a stored response (RFC 9111 §3.2): `Content-Length`
/// (MUST NOT), `Content-Encoding` (the stored content is coded as the stored field says;
/// §3.2 lets a cache keep fields "necessary to assure integrity"), and `Content-Range`
/// (automatically processed, §3.2 MAY).
pub const NOT_UPDATED: [&str; 3] = ["content-length", "content-encoding", "content-range"];

/// §3.2 / §4.3.4: update a stored response's headers with a 304's. Each field of the 304
/// replaces all lines of that field in `stored`, except:
///
/// - [`NOT_UPDATED`] (`Content-Length`, `Content-Encoding`, `Content-Range`);
/// - fields never stored (§3.1: hop-by-hop, those `Connection` lists, proxy
///   authentication; see `storable::NEVER_STORED`);
///
/// and then the fields the merged response's own qualified `private` / `no-cache` name
/// are removed (§3.1, as at storage).
///
/// `Date` and `Age` describe a message, not the representation: they are replaced by the
/// 304's, and removed when it has none. Record the 304's request and response times as the
/// stored response's, call `ensure_date` with that response time (RFC 9110 §6.6.1), and
/// recompute `initial_age` from the merged headers.
pub fn merge_not_modified(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    let connection: Vec<String> = parse::list_members(not_modified, &header::CONNECTION)
        .into_iter()
        .map(|m| m.to_ascii_lowercase())
        .collect();
    let skip = |name: &HeaderName| {
        let n = name.as_str();
        NOT_UPDATED.contains(&n) || NEVER_STORED.contains(&n) || connection.iter().any(|c| c == n)
    };
    for name in [header::DATE, header::AGE] {
        stored.remove(name);
    }
    for name in not_modified.keys() {
        if skip(name) {
            continue;
        }
        stored.remove(name);
        for value in not_modified.get_all(name) {
            stored.append(name.clone(), value.clone());
        }
    }
    for name in fields_to_strip(&response_directives(stored)) {
        stored.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::parse::test_util::{date, headers};

    fn tag(s: &str) -> EntityTag {
        parse_etag(s).unwrap()
    }

    #[test]
    fn s8_8_3_entity_tags_parse_strictly() {
        assert_eq!(
            tag(r#""xyzzy""#),
            EntityTag {
                weak: false,
                opaque: "xyzzy".into()
            }
        );
        assert_eq!(
            tag(r#" W/"xyzzy" "#),
            EntityTag {
                weak: true,
                opaque: "xyzzy".into()
            }
        );
        assert_eq!(tag(r#""""#).opaque, "");
        assert_eq!(tag(r#""a,b""#).opaque, "a,b");
        for bad in [
            "xyzzy",
            r#"w/"x""#,
            r#""x"#,
            r#""x" y"#,
            r#""a b""#,
            r#"W/ "x""#,
            "",
        ] {
            assert_eq!(parse_etag(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn s8_8_3_display_round_trips() {
        for s in [r#"W/"1""#, r#""abc""#] {
            assert_eq!(tag(s).to_string(), s);
        }
    }

    #[test]
    fn s8_8_3_2_weak_and_strong_comparison_table() {
        // ETag 1, ETag 2, strong comparison, weak comparison (RFC 9110 §8.8.3.2).
        let table = [
            (r#"W/"1""#, r#"W/"1""#, false, true),
            (r#"W/"1""#, r#"W/"2""#, false, false),
            (r#"W/"1""#, r#""1""#, false, true),
            (r#""1""#, r#""1""#, true, true),
        ];
        for (a, b, strong, weak) in table {
            assert_eq!(strong_match(&tag(a), &tag(b)), strong, "{a} {b}");
            assert_eq!(weak_match(&tag(a), &tag(b)), weak, "{a} {b}");
            assert_eq!(strong_match(&tag(b), &tag(a)), strong, "{b} {a}");
        }
    }

    #[test]
    fn s13_1_2_if_none_match_lists_across_lines_and_with_commas_inside_tags() {
        let h = headers(&[
            ("if-none-match", r#""a,b", W/"c""#),
            ("if-none-match", r#""d""#),
        ]);
        let Some(IfNoneMatch::Tags(tags)) = if_none_match(&h) else {
            panic!()
        };
        let opaque: Vec<_> = tags.iter().map(|t| t.opaque.as_str()).collect();
        assert_eq!(opaque, ["a,b", "c", "d"]);
        assert_eq!(
            if_none_match(&headers(&[("if-none-match", "*, \"a\"")])),
            Some(IfNoneMatch::Invalid)
        );
        assert_eq!(
            if_none_match(&headers(&[("if-none-match", "")])),
            Some(IfNoneMatch::Invalid)
        );
    }

    #[test]
    fn s4_3_2_if_none_match_uses_weak_comparison() {
        let stored = headers(&[("etag", r#""v1""#)]);
        assert!(answer_not_modified(
            &headers(&[("if-none-match", r#"W/"v1""#)]),
            &stored
        ));
        assert!(answer_not_modified(
            &headers(&[("if-none-match", r#""v0", "v1""#)]),
            &stored
        ));
        assert!(!answer_not_modified(
            &headers(&[("if-none-match", r#""v2""#)]),
            &stored
        ));
        let weak_stored = headers(&[("etag", r#"W/"v1""#)]);
        assert!(answer_not_modified(
            &headers(&[("if-none-match", r#""v1""#)]),
            &weak_stored
        ));
    }

    #[test]
    fn s13_1_2_if_none_match_star_matches_any_stored_response() {
        assert!(answer_not_modified(
            &headers(&[("if-none-match", " * ")]),
            &headers(&[])
        ));
    }

    #[test]
    fn s13_1_2_no_stored_etag_means_no_match() {
        assert!(!answer_not_modified(
            &headers(&[("if-none-match", r#""v1""#)]),
            &headers(&[])
        ));
    }

    #[test]
    fn s13_1_3_if_none_match_takes_precedence_over_if_modified_since() {
        let stored = headers(&[("etag", r#""v1""#), ("last-modified", &date(0))]);
        let req = headers(&[
            ("if-none-match", r#""v2""#),
            ("if-modified-since", &date(100)),
        ]);
        assert!(!answer_not_modified(&req, &stored));
        let invalid = headers(&[("if-none-match", "v1"), ("if-modified-since", &date(100))]);
        assert!(!answer_not_modified(&invalid, &stored));
    }

    #[test]
    fn s13_1_3_if_modified_since_against_last_modified() {
        let stored = headers(&[("last-modified", &date(100)), ("date", &date(500))]);
        assert!(answer_not_modified(
            &headers(&[("if-modified-since", &date(100))]),
            &stored
        ));
        assert!(answer_not_modified(
            &headers(&[("if-modified-since", &date(200))]),
            &stored
        ));
        assert!(!answer_not_modified(
            &headers(&[("if-modified-since", &date(99))]),
            &stored
        ));
    }

    #[test]
    fn s4_3_2_if_modified_since_falls_back_to_the_stored_date() {
        let stored = headers(&[("date", &date(500))]);
        assert!(answer_not_modified(
            &headers(&[("if-modified-since", &date(500))]),
            &stored
        ));
        assert!(!answer_not_modified(
            &headers(&[("if-modified-since", &date(499))]),
            &stored
        ));
        assert!(!answer_not_modified(
            &headers(&[("if-modified-since", &date(499))]),
            &headers(&[])
        ));
    }

    #[test]
    fn s13_1_3_invalid_or_repeated_if_modified_since_is_ignored() {
        let stored = headers(&[("last-modified", &date(100))]);
        assert!(!answer_not_modified(
            &headers(&[("if-modified-since", "yesterday")]),
            &stored
        ));
        let twice = headers(&[
            ("if-modified-since", &date(200)),
            ("if-modified-since", &date(200)),
        ]);
        assert!(!answer_not_modified(&twice, &stored));
    }

    #[test]
    fn rfc9110_s13_2_1_only_2xx_stored_responses_answer_304() {
        let stored = headers(&[("etag", r#""v1""#)]);
        let req = headers(&[("if-none-match", r#""v1""#)]);
        assert!(answer_not_modified_for(
            &Method::GET,
            StatusCode::OK,
            &req,
            &stored
        ));
        assert!(answer_not_modified_for(
            &Method::HEAD,
            StatusCode::OK,
            &req,
            &stored
        ));
        assert!(!answer_not_modified_for(
            &Method::GET,
            StatusCode::NOT_FOUND,
            &req,
            &stored
        ));
        assert!(!answer_not_modified_for(
            &Method::GET,
            StatusCode::MOVED_PERMANENTLY,
            &req,
            &stored
        ));
        assert!(!answer_not_modified_for(
            &Method::POST,
            StatusCode::OK,
            &req,
            &stored
        ));
    }

    #[test]
    fn s4_3_2_origin_only_preconditions_are_detected() {
        assert!(has_origin_preconditions(&headers(&[("if-match", "*")])));
        assert!(has_origin_preconditions(&headers(&[(
            "if-unmodified-since",
            &date(0)
        )])));
        assert!(!has_origin_preconditions(&headers(&[(
            "if-none-match",
            "*"
        )])));
    }

    #[test]
    fn s4_3_1_revalidation_sends_etag_and_last_modified_verbatim() {
        let stored = headers(&[
            ("etag", r#" W/"v1" "#),
            ("last-modified", "Sunday, 06-Nov-94 08:49:37 GMT"),
        ]);
        let out = revalidation_headers(&stored);
        assert_eq!(out[header::IF_NONE_MATCH], r#"W/"v1""#);
        assert_eq!(
            out[header::IF_MODIFIED_SINCE],
            "Sunday, 06-Nov-94 08:49:37 GMT"
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn s4_3_1_revalidation_without_validators_is_empty() {
        assert!(revalidation_headers(&headers(&[("date", &date(0))])).is_empty());
        let invalid = headers(&[("etag", "unquoted"), ("last-modified", "0")]);
        assert!(revalidation_headers(&invalid).is_empty());
    }

    #[test]
    fn s4_3_4_strong_etag_selects_only_a_strong_match() {
        let stored = headers(&[("etag", r#""v1""#)]);
        assert!(freshens(&stored, &headers(&[("etag", r#""v1""#)])));
        assert!(!freshens(&stored, &headers(&[("etag", r#""v2""#)])));
        assert!(!freshens(
            &headers(&[("etag", r#"W/"v1""#)]),
            &headers(&[("etag", r#""v1""#)])
        ));
        assert!(!freshens(&headers(&[]), &headers(&[("etag", r#""v1""#)])));
    }

    #[test]
    fn s4_3_4_weak_etag_selects_a_weak_match() {
        let stored = headers(&[("etag", r#""v1""#)]);
        assert!(freshens(&stored, &headers(&[("etag", r#"W/"v1""#)])));
        assert!(!freshens(&stored, &headers(&[("etag", r#"W/"v2""#)])));
    }

    #[test]
    fn s4_3_4_last_modified_selects_an_equal_date() {
        let stored = headers(&[("last-modified", &date(100))]);
        assert!(freshens(
            &stored,
            &headers(&[("last-modified", &date(100))])
        ));
        assert!(!freshens(
            &stored,
            &headers(&[("last-modified", &date(101))])
        ));
    }

    #[test]
    fn s4_3_4_no_validators_selects_only_a_stored_response_without_any() {
        assert!(freshens(&headers(&[]), &headers(&[("date", &date(0))])));
        assert!(!freshens(&headers(&[("etag", r#""v1""#)]), &headers(&[])));
        assert!(!freshens(
            &headers(&[("last-modified", &date(0))]),
            &headers(&[])
        ));
    }

    #[test]
    fn s3_2_304_merge_replaces_fields_but_not_content_length() {
        let mut stored = headers(&[
            ("content-length", "1234"),
            ("content-type", "text/html"),
            ("cache-control", "max-age=60"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("x-kept", "k"),
            ("etag", r#""v1""#),
        ]);
        let not_modified = headers(&[
            ("content-length", "0"),
            ("cache-control", "max-age=600"),
            ("x-multi", "c"),
            ("etag", r#""v1""#),
        ]);
        merge_not_modified(&mut stored, &not_modified);
        assert_eq!(stored[header::CONTENT_LENGTH], "1234");
        assert_eq!(stored[header::CACHE_CONTROL], "max-age=600");
        let multi: Vec<_> = stored.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["c"]);
        assert_eq!(stored["x-kept"], "k");
        assert_eq!(stored[header::CONTENT_TYPE], "text/html");
    }

    #[test]
    fn s3_2_304_merge_skips_integrity_and_hop_by_hop_fields() {
        let mut stored = headers(&[("content-encoding", "gzip")]);
        let not_modified = headers(&[
            ("content-encoding", "br"),
            ("content-range", "bytes 0-1/2"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
        ]);
        merge_not_modified(&mut stored, &not_modified);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[header::CONTENT_ENCODING], "gzip");
    }

    #[test]
    fn s3_2_304_merge_replaces_date_and_age_per_message() {
        let mut stored = headers(&[("date", &date(0)), ("age", "50")]);
        merge_not_modified(&mut stored, &headers(&[("cache-control", "max-age=5")]));
        assert!(!stored.contains_key(header::DATE) && !stored.contains_key(header::AGE));
        let mut stored = headers(&[("date", &date(0)), ("age", "50")]);
        merge_not_modified(&mut stored, &headers(&[("date", &date(9))]));
        assert_eq!(stored[header::DATE], date(9).as_str());
        assert!(!stored.contains_key(header::AGE));
    }

    #[test]
    fn s3_1_304_merge_honours_the_new_qualified_private() {
        let mut stored = headers(&[("x-user", "alice")]);
        let not_modified = headers(&[("cache-control", r#"private="x-user""#), ("x-user", "bob")]);
        merge_not_modified(&mut stored, &not_modified);
        assert!(!stored.contains_key("x-user"));
    }
}
