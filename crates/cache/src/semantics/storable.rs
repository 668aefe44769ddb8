//! Whether a shared cache may store a response (RFC 9111 §3), and which fields it must
//! leave out when it does (§3.1).

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

use super::directives::{FieldNames, ResponseDirectives, request_directives, response_directives};
use super::freshness::heuristically_cacheable;
use super::parse;

/// §3 (+ §3.5 Authorization, §5.2.2 no-store/private for a SHARED cache, §4 methods): may
/// a shared cache store this response to this request?
///
/// Checked in order, `Err` carrying a short reason for logs / `Cache-Status` detail:
///
/// 1. `"method"`: the method is understood and cacheable — only GET here. (HEAD
///    responses are cacheable too, RFC 9110 §9.3.2, but a bodiless entry under a GET key
///    would answer later GETs; serve HEAD from stored GET responses instead. POST
///    responses are cacheable only with explicit freshness and `Content-Location`, which
///    we do not implement.)
/// 2. `"no-store"`: the request's `no-store` (§5.2.1.5).
/// 3. `"status"`: the status is final and a valid code (RFC 9110 §15: 100–599), and not
///    one we do not understand the caching of: 206 (we do not store partial content) and
///    304 (a 304 only ever updates a stored response, §4.3.4).
/// 4. `"must-understand"`: with `must-understand`, the status must be one whose caching
///    requirements we implement ([`understood_status`]); then the response's `no-store`
///    is ignored (§5.2.2.3).
/// 5. `"no-store"`: the response's `no-store` (§5.2.2.5).
/// 6. `"private"`: unqualified `private` (§5.2.2.7). Qualified `private` may be stored
///    without the listed fields: see [`fields_to_strip`].
/// 7. `"authorization"`: a request with `Authorization` only with `must-revalidate`,
///    `public` or `s-maxage` in the response (§3.5).
/// 8. `"no-freshness"`: the response has `public`, `Expires`, `max-age` or `s-maxage`
///    (even invalid ones: they make it stale, not unstorable), or a heuristically
///    cacheable status (RFC 9110 §15.1). We know no cache extension that allows storing.
///
/// Not checked here: `Vary: *` responses are storable but never match a request (see
/// `vary`); `Set-Cookie` does not inhibit storing (RFC 9111 §7.3 leaves it to origins).
pub fn storable(
    method: &Method,
    request_headers: &HeaderMap,
    status: StatusCode,
    response_headers: &HeaderMap,
) -> Result<(), &'static str> {
    if method != Method::GET {
        return Err("method");
    }
    if request_directives(request_headers).no_store {
        return Err("no-store");
    }
    let code = status.as_u16();
    if !(200..=599).contains(&code) || code == 206 || code == 304 {
        return Err("status");
    }
    let d = response_directives(response_headers);
    if d.must_understand {
        if !understood_status(status) {
            return Err("must-understand");
        }
    } else if d.no_store {
        return Err("no-store");
    }
    if d.private == Some(FieldNames::Unqualified) {
        return Err("private");
    }
    if request_headers.contains_key(header::AUTHORIZATION)
        && !(d.must_revalidate || d.public || d.s_maxage.is_some())
    {
        return Err("authorization");
    }
    let explicit = d.public
        || d.max_age.is_some()
        || d.s_maxage.is_some()
        || response_headers.contains_key(header::EXPIRES);
    if !(explicit || heuristically_cacheable(status)) {
        return Err("no-freshness");
    }
    Ok(())
}

/// Final status codes whose caching requirements this cache implements, for
/// `must-understand` (RFC 9111 §5.2.2.3): the final codes RFC 9110 §15 defines, less 206
/// (partial content is not stored) and 304 (never stored as a new entry).
pub fn understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// The fields to leave out of a stored copy because of qualified directives:
///
/// - qualified `private` (§5.2.2.7): "a shared cache MUST NOT store the listed header
///   fields";
/// - qualified `no-cache` (§5.2.2.4): the response may be reused "if the listed header
///   fields are excluded from the subsequent response"; leaving them out of storage does
///   that for every reuse, so such a stored response needs no revalidation on their
///   account.
///
/// Deduplicated; unqualified directives contribute nothing (they are handled by
/// [`storable`] and by reuse).
pub fn fields_to_strip(directives: &ResponseDirectives) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = Vec::new();
    for names in [&directives.private, &directives.no_cache] {
        if let Some(FieldNames::Names(names)) = names {
            for name in names {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
        }
    }
    out
}

/// Header fields that are never stored (RFC 9111 §3.1): hop-by-hop fields (RFC 9110
/// §7.6.1: `Connection`, `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`,
/// `Upgrade`) and the proxy-specific `Proxy-Authenticate`, `Proxy-Authentication-Info`,
/// `Proxy-Authorization`. Fields listed in `Connection` are excluded as well; see
/// [`not_stored_fields`].
pub const NEVER_STORED: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
];

/// Every field of `headers` that §3.1 keeps out of storage: [`NEVER_STORED`], the fields
/// `Connection` names, and [`fields_to_strip`] of its own directives.
pub fn not_stored_fields(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = NEVER_STORED
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect();
    for member in parse::list_members(headers, &header::CONNECTION) {
        if let Ok(name) = HeaderName::from_bytes(member.as_bytes())
            && !out.contains(&name)
        {
            out.push(name);
        }
    }
    for name in fields_to_strip(&response_directives(headers)) {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Removes from a response's headers what §3.1 keeps out of storage
/// ([`not_stored_fields`]); call on the copy being stored, not on the one forwarded.
pub fn strip_for_storage(headers: &mut HeaderMap) {
    for name in not_stored_fields(headers) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::parse::test_util::headers;

    fn check(
        method: Method,
        req: &[(&str, &str)],
        status: u16,
        res: &[(&str, &str)],
    ) -> Result<(), &'static str> {
        storable(
            &method,
            &headers(req),
            StatusCode::from_u16(status).unwrap(),
            &headers(res),
        )
    }

    fn get(status: u16, res: &[(&str, &str)]) -> Result<(), &'static str> {
        check(Method::GET, &[], status, res)
    }

    #[test]
    fn s3_plain_200_is_storable_by_its_status() {
        assert_eq!(get(200, &[]), Ok(()));
        assert_eq!(get(404, &[]), Ok(()));
    }

    #[test]
    fn s3_only_get_is_stored() {
        let res = [("cache-control", "max-age=60")];
        for method in [Method::HEAD, Method::POST, Method::PUT, Method::OPTIONS] {
            assert_eq!(
                check(method.clone(), &[], 200, &res),
                Err("method"),
                "{method}"
            );
        }
    }

    #[test]
    fn s5_2_1_5_request_no_store() {
        assert_eq!(
            check(Method::GET, &[("cache-control", "No-Store")], 200, &[]),
            Err("no-store")
        );
    }

    #[test]
    fn s5_2_2_5_response_no_store() {
        assert_eq!(
            get(200, &[("cache-control", "max-age=60, no-store")]),
            Err("no-store")
        );
    }

    #[test]
    fn s5_2_2_3_must_understand_overrides_no_store_for_understood_statuses() {
        assert_eq!(
            get(
                200,
                &[("cache-control", "must-understand, no-store, max-age=60")]
            ),
            Ok(())
        );
        assert_eq!(
            get(
                299,
                &[("cache-control", "must-understand, no-store, max-age=60")]
            ),
            Err("must-understand")
        );
        assert_eq!(
            get(299, &[("cache-control", "must-understand, max-age=60")]),
            Err("must-understand")
        );
    }

    #[test]
    fn s5_2_2_7_unqualified_private_is_not_storable_by_a_shared_cache() {
        assert_eq!(
            get(200, &[("cache-control", "private, max-age=60")]),
            Err("private")
        );
        assert_eq!(
            get(200, &[("cache-control", "public, private")]),
            Err("private")
        );
    }

    #[test]
    fn s5_2_2_7_qualified_private_is_storable_without_its_fields() {
        let res = [("cache-control", r#"private="Set-Cookie", max-age=60"#)];
        assert_eq!(get(200, &res), Ok(()));
        let d = response_directives(&headers(&res));
        assert_eq!(fields_to_strip(&d), vec![header::SET_COOKIE]);
    }

    #[test]
    fn s5_2_2_4_qualified_no_cache_fields_are_stripped_too() {
        let d = response_directives(&headers(&[(
            "cache-control",
            r#"no-cache="x-a", private="X-A, x-b", no-cache"#,
        )]));
        // Unqualified no-cache contributes nothing; the private list still does.
        assert_eq!(
            fields_to_strip(&d),
            vec![
                HeaderName::from_static("x-a"),
                HeaderName::from_static("x-b")
            ]
        );
    }

    #[test]
    fn s3_5_authorization_needs_public_must_revalidate_or_s_maxage() {
        let auth = [("authorization", "Bearer x")];
        assert_eq!(
            check(Method::GET, &auth, 200, &[("cache-control", "max-age=60")]),
            Err("authorization")
        );
        assert_eq!(
            check(
                Method::GET,
                &auth,
                200,
                &[("cache-control", "proxy-revalidate, max-age=60")]
            ),
            Err("authorization")
        );
        for ok in ["public", "must-revalidate, max-age=60", "s-maxage=60"] {
            assert_eq!(
                check(Method::GET, &auth, 200, &[("cache-control", ok)]),
                Ok(()),
                "{ok}"
            );
        }
    }

    #[test]
    fn s3_status_must_be_final_and_understood_when_206_or_304() {
        assert_eq!(get(100, &[("cache-control", "max-age=60")]), Err("status"));
        assert_eq!(get(206, &[("cache-control", "max-age=60")]), Err("status"));
        assert_eq!(get(304, &[("cache-control", "max-age=60")]), Err("status"));
        assert_eq!(get(600, &[("cache-control", "max-age=60")]), Err("status"));
    }

    #[test]
    fn s3_other_statuses_need_explicit_freshness_or_public() {
        assert_eq!(get(302, &[]), Err("no-freshness"));
        assert_eq!(
            get(500, &[("cache-control", "no-cache")]),
            Err("no-freshness")
        );
        assert_eq!(get(302, &[("cache-control", "max-age=60")]), Ok(()));
        assert_eq!(get(302, &[("cache-control", "s-maxage=60")]), Ok(()));
        assert_eq!(get(302, &[("expires", "0")]), Ok(()));
        assert_eq!(get(503, &[("cache-control", "public")]), Ok(()));
        // An unrecognised code with explicit freshness is storable (RFC 9110 §15 no
        // longer forbids it; must-understand exists for that).
        assert_eq!(get(299, &[("cache-control", "max-age=60")]), Ok(()));
    }

    #[test]
    fn s3_1_hop_by_hop_connection_listed_and_proxy_fields_are_not_stored() {
        let mut h = headers(&[
            ("connection", "close, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("cache-control", r#"private="x-user""#),
            ("x-user", "alice"),
            ("content-type", "text/plain"),
        ]);
        strip_for_storage(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["cache-control", "content-type"]);
    }
}
