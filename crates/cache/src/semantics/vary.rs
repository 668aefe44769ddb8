//! `Vary` and secondary cache keys (RFC 9111 §4.1, RFC 9110 §12.5.5).

use http::header::{self, HeaderMap, HeaderName};

use super::parse;

/// A response's `Vary` (RFC 9110 §12.5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// No `Vary` (or only empty ones): the response matches any request for its URI.
    None,
    /// `*` among the members: the response never matches a later request (§4.1).
    Star,
    /// The request fields that select it: lowercase, deduplicated, in first-seen order.
    Fields(Vec<HeaderName>),
}

/// The response's `Vary`: every line combined, names case-insensitive and deduplicated; a
/// `*` anywhere makes it [`Vary::Star`]. Members that are not valid field names are
/// skipped (no request can carry such a field, so it is absent from every request alike).
pub fn vary(response_headers: &HeaderMap) -> Vary {
    let mut fields: Vec<HeaderName> = Vec::new();
    for member in parse::list_members(response_headers, &header::VARY) {
        if member == "*" {
            return Vary::Star;
        }
        if let Ok(name) = HeaderName::from_bytes(member.as_bytes())
            && !fields.contains(&name)
        {
            fields.push(name);
        }
    }
    if fields.is_empty() {
        Vary::None
    } else {
        Vary::Fields(fields)
    }
}

/// The request's values for the varied fields, normalised as §4.1 allows ("transformed
/// ... by applying any of" whitespace changes where the syntax allows them, combining
/// lines, and normalisations known to have identical semantics). Absent header = `None`.
///
/// Exactly:
/// - each line is trimmed of surrounding whitespace; bytes that are not visible ASCII are
///   kept as ISO-8859-1 characters (distinct values stay distinct);
/// - `Cookie` lines are joined with `"; "` (how HTTP/2 and HTTP/3 split one cookie
///   header, RFC 9113 §8.2.3); other fields' lines are joined with `", "` (RFC 9110 §5.3);
/// - `Accept`, `Accept-Charset`, `Accept-Encoding`, `Accept-Language` (list-based, RFC
///   9110 §12.5) are then split into members outside quoted strings, empty members and
///   empty parameters dropped, whitespace around `,` and `;` removed, and members
///   rejoined with `", "` and parameters with `";"`;
/// - `Accept-Charset`, `Accept-Encoding`, `Accept-Language` are lowercased (charsets,
///   codings, language ranges and the `q` parameter are case-insensitive; `Accept` is
///   not, as media-type parameter values may be case-sensitive);
/// - `Accept-Encoding` members are sorted (preference is by q-value only, RFC 9110
///   §12.5.3). `Accept-Language` keeps its order: some recipients read order as priority
///   for equal weights (RFC 9110 §12.5.4).
///
/// Everything else is compared as sent (after the trimming and joining above).
pub fn secondary_key(fields: &[HeaderName], request_headers: &HeaderMap) -> Vec<Option<String>> {
    fields
        .iter()
        .map(|name| normalised(name, request_headers))
        .collect()
}

/// One varied field's normalised value.
fn normalised(name: &HeaderName, headers: &HeaderMap) -> Option<String> {
    let lines: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| parse::trim_ows(&parse::text(v)).to_owned())
        .collect();
    if lines.is_empty() {
        return None;
    }
    if name == header::COOKIE {
        return Some(lines.join("; "));
    }
    let joined = lines.join(", ");
    Some(match name.as_str() {
        "accept" => list(&joined, false).join(", "),
        "accept-charset" | "accept-language" => list(&joined, true).join(", "),
        "accept-encoding" => {
            let mut members = list(&joined, true);
            members.sort();
            members.join(", ")
        }
        _ => joined,
    })
}

/// The members of a list-based field with their parameters, whitespace removed around
/// `,` and `;`, optionally lowercased.
fn list(value: &str, lowercase: bool) -> Vec<String> {
    parse::split_list(value)
        .into_iter()
        .map(|member| {
            let member = parse::split_outside_quotes(member, ';').join(";");
            if lowercase {
                member.to_ascii_lowercase()
            } else {
                member
            }
        })
        .collect()
}

/// Whether a stored variant (its Vary and the secondary key stored with it) matches a new
/// request (§4.1); `Vary: *` never matches.
pub fn variant_matches(
    vary: &Vary,
    stored_key: &[Option<String>],
    request_headers: &HeaderMap,
) -> bool {
    match vary {
        Vary::None => true,
        Vary::Star => false,
        Vary::Fields(fields) => {
            fields.len() == stored_key.len() && secondary_key(fields, request_headers) == stored_key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::parse::test_util::headers;

    fn names(list: &[&str]) -> Vec<HeaderName> {
        list.iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
            .collect()
    }

    fn key(field: &str, pairs: &[(&str, &str)]) -> Option<String> {
        secondary_key(&names(&[field]), &headers(pairs)).remove(0)
    }

    #[test]
    fn s4_1_vary_with_two_lines_and_whitespace() {
        let h = headers(&[
            ("vary", " Accept-Encoding ,User-Agent"),
            ("vary", "accept-encoding,  Accept-Language "),
        ]);
        assert_eq!(
            vary(&h),
            Vary::Fields(names(&["accept-encoding", "user-agent", "accept-language"]))
        );
    }

    #[test]
    fn s4_1_vary_star_anywhere() {
        assert_eq!(
            vary(&headers(&[("vary", "accept"), ("vary", "*")])),
            Vary::Star
        );
        assert_eq!(vary(&headers(&[("vary", "accept, *")])), Vary::Star);
    }

    #[test]
    fn s4_1_no_or_empty_vary_is_none() {
        assert_eq!(vary(&headers(&[])), Vary::None);
        assert_eq!(vary(&headers(&[("vary", " , ")])), Vary::None);
    }

    #[test]
    fn s4_1_vary_star_never_matches() {
        assert!(!variant_matches(&Vary::Star, &[], &headers(&[])));
    }

    #[test]
    fn s4_1_no_vary_always_matches() {
        assert!(variant_matches(
            &Vary::None,
            &[],
            &headers(&[("accept", "x")])
        ));
    }

    #[test]
    fn s4_1_absent_matches_only_absent() {
        assert_eq!(key("accept-encoding", &[]), None);
        let vary = Vary::Fields(names(&["accept-encoding"]));
        assert!(variant_matches(&vary, &[None], &headers(&[])));
        assert!(!variant_matches(
            &vary,
            &[None],
            &headers(&[("accept-encoding", "")])
        ));
        assert!(!variant_matches(
            &vary,
            &[Some("gzip".into())],
            &headers(&[])
        ));
    }

    #[test]
    fn s4_1_combining_lines_and_whitespace_around_commas() {
        let a = key(
            "accept-language",
            &[("accept-language", "en-GB ,  fr;q=0.5")],
        );
        let b = key(
            "accept-language",
            &[
                ("accept-language", "en-gb"),
                ("accept-language", "fr ; q=0.5"),
            ],
        );
        assert_eq!(a.as_deref(), Some("en-gb, fr;q=0.5"));
        assert_eq!(a, b);
    }

    #[test]
    fn s4_1_accept_language_order_is_kept() {
        assert_ne!(
            key("accept-language", &[("accept-language", "en, fr")]),
            key("accept-language", &[("accept-language", "fr, en")])
        );
    }

    #[test]
    fn s4_1_accept_encoding_is_lowercased_and_sorted() {
        let a = key(
            "accept-encoding",
            &[("accept-encoding", "GZIP, br;Q=1 ,, deflate")],
        );
        assert_eq!(a.as_deref(), Some("br;q=1, deflate, gzip"));
        assert_eq!(
            a,
            key(
                "accept-encoding",
                &[
                    ("accept-encoding", "deflate,gzip"),
                    ("accept-encoding", "br; q=1")
                ]
            )
        );
    }

    #[test]
    fn s4_1_accept_keeps_case_but_normalises_whitespace() {
        let a = key("accept", &[("accept", r#"text/html; level="A, B" , */*"#)]);
        assert_eq!(a.as_deref(), Some(r#"text/html;level="A, B", */*"#));
        assert_ne!(
            a,
            key("accept", &[("accept", r#"text/html;level="a, b", */*"#)])
        );
    }

    #[test]
    fn s4_1_other_fields_are_compared_as_sent() {
        assert_eq!(
            key(
                "user-agent",
                &[("user-agent", "  Mozilla/5.0 (X11, Linux) ")]
            )
            .as_deref(),
            Some("Mozilla/5.0 (X11, Linux)")
        );
        assert_ne!(
            key("user-agent", &[("user-agent", "A (X11, Linux)")]),
            key("user-agent", &[("user-agent", "A (X11,Linux)")])
        );
        assert_ne!(key("x-ab", &[("x-ab", "A")]), key("x-ab", &[("x-ab", "a")]));
    }

    #[test]
    fn rfc9113_s8_2_3_split_cookie_lines_join_with_semicolons() {
        assert_eq!(
            key("cookie", &[("cookie", "a=1"), ("cookie", "b=2")]),
            key("cookie", &[("cookie", "a=1; b=2")])
        );
    }

    #[test]
    fn s4_1_variant_matches_the_stored_secondary_key() {
        let fields = names(&["accept-encoding", "x-device"]);
        let stored = secondary_key(
            &fields,
            &headers(&[("accept-encoding", "gzip, br"), ("x-device", "mobile")]),
        );
        let vary = Vary::Fields(fields);
        assert!(variant_matches(
            &vary,
            &stored,
            &headers(&[("Accept-Encoding", "br,gzip"), ("x-device", "mobile")])
        ));
        assert!(!variant_matches(
            &vary,
            &stored,
            &headers(&[("accept-encoding", "br,gzip"), ("x-device", "desktop")])
        ));
        assert!(!variant_matches(
            &vary,
            &stored[..1],
            &headers(&[("accept-encoding", "br,gzip"), ("x-device", "mobile")])
        ));
    }
}
