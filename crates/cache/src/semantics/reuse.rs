//! Whether a stored response may answer a request (RFC 9111 §4, §4.2.4, §5.2; RFC 5861).
//!
//! These assume the stored response already matched the request's URI, method and `Vary`
//! (§4, §4.1), and that the fields of qualified `no-cache` were left out of it at storage
//! (`fields_to_strip`), so only unqualified `no-cache` forces validation here.

use std::time::Duration;

use http::StatusCode;

use super::directives::{FieldNames, RequestDirectives, ResponseDirectives};

/// What a shared cache may do with a stored response for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh and acceptable to the request: answer from the cache (§4.2).
    Fresh,
    /// Stale within its `stale-while-revalidate` window: answer from the cache and
    /// revalidate in the background (RFC 5861 §3).
    StaleWhileRevalidate,
    /// Stale, but the request's `max-stale` accepts it (§5.2.1.2, §4.2.4).
    StaleAllowed,
    /// Validate with the origin first (§4.3); if that fails, see [`stale_if_error`].
    Revalidate,
}

/// Whether stale responses are forbidden by the stored response itself (§4.2.4): for a
/// shared cache `must-revalidate` (§5.2.2.2), `proxy-revalidate` (§5.2.2.8) and
/// `s-maxage` (§5.2.2.10, which "incorporates the semantics of proxy-revalidate"). Such
/// a response is never served stale — not by `max-stale`, `stale-while-revalidate` nor
/// `stale-if-error`.
pub fn stale_forbidden(response: &ResponseDirectives) -> bool {
    response.must_revalidate || response.proxy_revalidate || response.s_maxage.is_some()
}

/// Decides [`Reuse`] for a stored response with this `freshness_lifetime` (`None`: no
/// lifetime, always stale) at this `current_age`, under the request's directives:
///
/// 1. unqualified `no-cache` in the response (§5.2.2.4) or the request (§5.2.1.4):
///    revalidate;
/// 2. the request's `max-age` is exceeded (§5.2.1.1): revalidate;
/// 3. fresh (`lifetime > age`, §4.2) and, with `min-fresh`, fresh for at least that much
///    longer (§5.2.1.3): [`Reuse::Fresh`]; fresh but not enough: revalidate;
/// 4. stale: revalidate if [`stale_forbidden`], or if the request has `max-age` or
///    `min-fresh` without `max-stale` (§5.2.1.1: then "the client does not wish to
///    receive a stale response");
/// 5. stale by no more than `stale-while-revalidate`: [`Reuse::StaleWhileRevalidate`];
/// 6. stale by no more than the request's `max-stale` (any, without a value):
///    [`Reuse::StaleAllowed`];
/// 7. otherwise revalidate.
pub fn reuse(
    request: &RequestDirectives,
    response: &ResponseDirectives,
    freshness_lifetime: Option<Duration>,
    current_age: Duration,
) -> Reuse {
    if response.no_cache == Some(FieldNames::Unqualified) || request.no_cache {
        return Reuse::Revalidate;
    }
    if request.max_age.is_some_and(|max| current_age > max) {
        return Reuse::Revalidate;
    }
    let lifetime = freshness_lifetime.unwrap_or(Duration::ZERO);
    if lifetime > current_age {
        let left = lifetime - current_age;
        return if request.min_fresh.is_none_or(|min| left >= min) {
            Reuse::Fresh
        } else {
            Reuse::Revalidate
        };
    }
    let staleness = current_age - lifetime;
    let client_wants_fresh =
        (request.max_age.is_some() || request.min_fresh.is_some()) && request.max_stale.is_none();
    if stale_forbidden(response) || client_wants_fresh {
        return Reuse::Revalidate;
    }
    if response
        .stale_while_revalidate
        .is_some_and(|swr| staleness <= swr)
    {
        return Reuse::StaleWhileRevalidate;
    }
    match request.max_stale {
        Some(None) => Reuse::StaleAllowed,
        Some(Some(max)) if staleness <= max => Reuse::StaleAllowed,
        _ => Reuse::Revalidate,
    }
}

/// Whether an origin answer counts as an error for `stale-if-error` (RFC 5861 §4: "any
/// situation that would result in a 500, 502, 503, or 504"; a failure to connect or a
/// timeout is such a situation too — the caller decides those).
pub fn is_stale_if_error_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// Whether the stored response may answer when its validation (or refetch) failed with
/// an error (RFC 5861 §4), at this `current_age`:
///
/// - never when the response forbids stale use ([`stale_forbidden`]) or has unqualified
///   `no-cache` — RFC 9111 §4.2.4 puts those explicit directives above extensions
///   ("MUST NOT generate a stale response if it is prohibited by an explicit in-protocol
///   directive");
/// - yes while still fresh (validation was forced by the request, e.g. a reload);
/// - yes when stale by no more than the response's or the request's `stale-if-error`, or
///   the request's `max-stale`. The request's own `no-cache` / `max-age` do not prevent
///   it: RFC 5861 §4 applies "regardless of other freshness information", and the
///   alternative is an error.
///
/// Serving stale merely because the origin is unreachable, without any such directive
/// (§4.2.4 allows it to a disconnected cache), is a configuration choice left to the
/// caller.
pub fn stale_if_error(
    request: &RequestDirectives,
    response: &ResponseDirectives,
    freshness_lifetime: Option<Duration>,
    current_age: Duration,
) -> bool {
    if stale_forbidden(response) || response.no_cache == Some(FieldNames::Unqualified) {
        return false;
    }
    let lifetime = freshness_lifetime.unwrap_or(Duration::ZERO);
    if lifetime > current_age {
        return true;
    }
    let staleness = current_age - lifetime;
    let within = |window: Option<Duration>| window.is_some_and(|w| staleness <= w);
    within(response.stale_if_error)
        || within(request.stale_if_error)
        || match request.max_stale {
            Some(None) => true,
            Some(Some(max)) => staleness <= max,
            None => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::directives::{request_directives, response_directives};
    use crate::semantics::parse::test_util::headers;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn decide(req: &str, res: &str, lifetime: Option<u64>, age: u64) -> Reuse {
        let req = request_directives(&headers(&[("cache-control", req)]));
        let res = response_directives(&headers(&[("cache-control", res)]));
        reuse(&req, &res, lifetime.map(s), s(age))
    }

    fn on_error(req: &str, res: &str, lifetime: Option<u64>, age: u64) -> bool {
        let req = request_directives(&headers(&[("cache-control", req)]));
        let res = response_directives(&headers(&[("cache-control", res)]));
        stale_if_error(&req, &res, lifetime.map(s), s(age))
    }

    #[test]
    fn s4_2_fresh_is_reused_and_stale_is_revalidated() {
        assert_eq!(decide("", "max-age=60", Some(60), 59), Reuse::Fresh);
        assert_eq!(decide("", "max-age=60", Some(60), 60), Reuse::Revalidate);
        assert_eq!(decide("", "", None, 0), Reuse::Revalidate);
    }

    #[test]
    fn s5_2_2_4_response_no_cache_always_revalidates() {
        assert_eq!(
            decide("", "no-cache, max-age=60", Some(60), 1),
            Reuse::Revalidate
        );
        assert_eq!(
            decide("", "no-cache=\"set-cookie\", max-age=60", Some(60), 1),
            Reuse::Fresh
        );
    }

    #[test]
    fn s5_2_1_4_request_no_cache_revalidates() {
        assert_eq!(
            decide("no-cache", "max-age=60", Some(60), 1),
            Reuse::Revalidate
        );
    }

    #[test]
    fn s5_2_1_1_request_max_age_limits_age() {
        assert_eq!(
            decide("max-age=0", "max-age=60", Some(60), 1),
            Reuse::Revalidate
        );
        assert_eq!(
            decide("max-age=10", "max-age=60", Some(60), 10),
            Reuse::Fresh
        );
        // Stale, within swr, but max-age without max-stale: no stale response.
        assert_eq!(
            decide(
                "max-age=100",
                "max-age=60, stale-while-revalidate=60",
                Some(60),
                70
            ),
            Reuse::Revalidate
        );
    }

    #[test]
    fn s5_2_1_3_min_fresh_needs_remaining_freshness() {
        assert_eq!(
            decide("min-fresh=10", "max-age=60", Some(60), 50),
            Reuse::Fresh
        );
        assert_eq!(
            decide("min-fresh=11", "max-age=60", Some(60), 50),
            Reuse::Revalidate
        );
    }

    #[test]
    fn s5_2_1_2_max_stale_accepts_bounded_staleness() {
        assert_eq!(
            decide("max-stale=10", "max-age=60", Some(60), 70),
            Reuse::StaleAllowed
        );
        assert_eq!(
            decide("max-stale=10", "max-age=60", Some(60), 71),
            Reuse::Revalidate
        );
        assert_eq!(
            decide("max-stale", "max-age=60", Some(60), 100_000),
            Reuse::StaleAllowed
        );
    }

    #[test]
    fn s5_2_2_2_must_revalidate_beats_max_stale() {
        assert_eq!(
            decide("max-stale", "max-age=60, must-revalidate", Some(60), 61),
            Reuse::Revalidate
        );
        assert_eq!(
            decide("max-stale", "max-age=60, proxy-revalidate", Some(60), 61),
            Reuse::Revalidate
        );
    }

    #[test]
    fn rfc5861_s3_stale_while_revalidate_window() {
        let res = "max-age=60, stale-while-revalidate=30";
        assert_eq!(decide("", res, Some(60), 90), Reuse::StaleWhileRevalidate);
        assert_eq!(decide("", res, Some(60), 91), Reuse::Revalidate);
        assert_eq!(
            decide("max-stale", res, Some(60), 80),
            Reuse::StaleWhileRevalidate
        );
    }

    #[test]
    fn s5_2_2_10_s_maxage_forbids_stale_while_revalidate_and_stale_if_error() {
        let res = "s-maxage=60, stale-while-revalidate=30, stale-if-error=300";
        assert_eq!(decide("", res, Some(60), 70), Reuse::Revalidate);
        assert!(!on_error("", res, Some(60), 70));
    }

    #[test]
    fn rfc5861_s4_stale_if_error_window() {
        let res = "max-age=60, stale-if-error=300";
        assert!(on_error("", res, Some(60), 360));
        assert!(!on_error("", res, Some(60), 361));
        assert!(on_error("no-cache", res, Some(60), 100));
        assert!(on_error("", "max-age=60", Some(60), 30));
        assert!(!on_error("", "max-age=60", Some(60), 61));
    }

    #[test]
    fn rfc5861_s4_request_stale_if_error_and_max_stale_also_allow() {
        assert!(on_error("stale-if-error=100", "max-age=60", Some(60), 160));
        assert!(!on_error("stale-if-error=100", "max-age=60", Some(60), 161));
        assert!(on_error("max-stale", "max-age=60", Some(60), 10_000));
    }

    #[test]
    fn s4_2_4_must_revalidate_and_no_cache_forbid_stale_if_error() {
        assert!(!on_error(
            "",
            "max-age=60, must-revalidate, stale-if-error=300",
            Some(60),
            61
        ));
        assert!(!on_error("", "no-cache, stale-if-error=300", Some(60), 1));
    }

    #[test]
    fn rfc5861_s4_error_statuses() {
        for code in [500, 502, 503, 504] {
            assert!(is_stale_if_error_status(
                StatusCode::from_u16(code).unwrap()
            ));
        }
        for code in [200, 404, 501, 505] {
            assert!(!is_stale_if_error_status(
                StatusCode::from_u16(code).unwrap()
            ));
        }
    }
}
