//! Freshness lifetime and age (RFC 9111 §4.2), for a shared cache.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};

use super::directives::ResponseDirectives;
use super::parse::{self, DELTA_SECONDS_MAX, DateField};

/// Status codes "heuristically cacheable" by default (RFC 9110 §15.1): 200, 203, 204,
/// 206, 300, 301, 308, 404, 405, 410, 414, 501.
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The fraction of the time since `Last-Modified` used as a heuristic lifetime: 10%, the
/// "typical setting" of RFC 9111 §4.2.2.
pub const HEURISTIC_FRACTION_PERCENT: u32 = 10;

/// The cap on a heuristic lifetime: 24 hours. RFC 9111 §4.2.2 imposes none, but RFC 7234
/// required a warning past 24 h (Warning 113), which is where caches traditionally cap.
pub const HEURISTIC_CAP: Duration = Duration::from_secs(24 * 60 * 60);

/// Where a freshness lifetime came from (RFC 9111 §4.2.1's rules, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeSource {
    /// `s-maxage` (a shared cache uses it first).
    SMaxAge,
    /// `max-age`.
    MaxAge,
    /// `Expires` − `Date`.
    Expires,
    /// A heuristic (§4.2.2): a fraction of the time since `Last-Modified`.
    Heuristic,
}

/// A freshness lifetime and its source (RFC 9111 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// How long the response is fresh, counted from its generation (compare with its
    /// current age).
    pub duration: Duration,
    /// Which rule gave it.
    pub source: LifetimeSource,
}

/// RFC 9111 §4.2.1 for a shared cache, with its source: the first of
///
/// 1. `s-maxage`;
/// 2. `max-age`;
/// 3. `Expires` − `Date` (Date missing or invalid: `response_time`, as RFC 9110 §6.6.1
///    has a recipient add one); an invalid `Expires` (e.g. `0`) or lines that disagree
///    mean "already expired" (§5.3), and an `Expires` before `Date` is zero;
/// 4. the heuristic of §4.2.2, only for heuristically cacheable statuses or `public`
///    responses: [`HEURISTIC_FRACTION_PERCENT`] of `Date` − `Last-Modified`, capped at
///    [`HEURISTIC_CAP`];
///
/// else `None`. Invalid or conflicting freshness directives (`invalid_freshness`) give
/// zero: the response is stale (§4.2.1).
pub fn lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    directives: &ResponseDirectives,
    response_time: SystemTime,
) -> Option<Lifetime> {
    let explicit = |duration, source| Some(Lifetime { duration, source });
    if directives.invalid_freshness {
        let source = if directives.s_maxage.is_some() {
            LifetimeSource::SMaxAge
        } else {
            LifetimeSource::MaxAge
        };
        return explicit(Duration::ZERO, source);
    }
    if let Some(s_maxage) = directives.s_maxage {
        return explicit(s_maxage, LifetimeSource::SMaxAge);
    }
    if let Some(max_age) = directives.max_age {
        return explicit(max_age, LifetimeSource::MaxAge);
    }
    let date = || {
        parse::date_field(headers, &header::DATE)
            .valid()
            .unwrap_or(response_time)
    };
    match parse::date_field(headers, &header::EXPIRES) {
        DateField::Absent => {}
        DateField::Invalid => return explicit(Duration::ZERO, LifetimeSource::Expires),
        DateField::Valid(expires) => {
            let duration = expires.duration_since(date()).unwrap_or(Duration::ZERO);
            return explicit(duration, LifetimeSource::Expires);
        }
    }
    if !(heuristically_cacheable(status) || directives.public) {
        return None;
    }
    let last_modified = parse::date_field(headers, &header::LAST_MODIFIED).valid()?;
    let since = date().duration_since(last_modified).ok()?;
    let seconds = since
        .as_secs()
        .saturating_mul(u64::from(HEURISTIC_FRACTION_PERCENT))
        / 100;
    Some(Lifetime {
        duration: Duration::from_secs(seconds).min(HEURISTIC_CAP),
        source: LifetimeSource::Heuristic,
    })
}

/// §4.2.1 for a shared cache: s-maxage, then max-age, then Expires − Date (Date missing:
/// use response_time), else the §4.2.2 heuristic (see [`lifetime`] for the exact rules
/// and cap), else `None`. Returns `Duration::ZERO` when `invalid_freshness`.
pub fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    directives: &ResponseDirectives,
    response_time: SystemTime,
) -> Option<Duration> {
    lifetime(status, headers, directives, response_time).map(|l| l.duration)
}

/// Whether the lifetime [`freshness_lifetime`] gives came from the §4.2.2 heuristic.
/// (RFC 9111 dropped the Warning header, so nothing is added to the response; this is for
/// reporting.)
pub fn is_heuristic(
    status: StatusCode,
    headers: &HeaderMap,
    directives: &ResponseDirectives,
    response_time: SystemTime,
) -> bool {
    lifetime(status, headers, directives, response_time)
        .is_some_and(|l| l.source == LifetimeSource::Heuristic)
}

/// The `Age` field value (RFC 9111 §5.1), if usable: the first member of the first line
/// (a list-based value "SHOULD use the first member"), delta-seconds capped at 2^31;
/// anything else is ignored.
pub fn age_value(headers: &HeaderMap) -> Option<Duration> {
    let first = parse::list_members(headers, &header::AGE)
        .into_iter()
        .next()?;
    parse::delta_seconds(&first).map(Duration::from_secs)
}

/// §4.2.3 corrected_initial_age from the Age and Date headers and the request/response
/// times:
///
/// ```text
/// apparent_age          = max(0, response_time - date_value)   (0 without a valid Date)
/// response_delay        = response_time - request_time
/// corrected_age_value   = age_value + response_delay            (age_value 0 if unusable)
/// corrected_initial_age = max(apparent_age, corrected_age_value)
/// ```
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent_age = parse::date_field(headers, &header::DATE)
        .valid()
        .and_then(|date| response_time.duration_since(date).ok())
        .unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let corrected_age_value = age_value(headers)
        .unwrap_or(Duration::ZERO)
        .saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// current_age = initial_age + (now − response_time) (§4.2.3; a clock that went back
/// counts as no resident time).
pub fn current_age(initial_age: Duration, response_time: SystemTime, now: SystemTime) -> Duration {
    let resident_time = now.duration_since(response_time).unwrap_or(Duration::ZERO);
    initial_age.saturating_add(resident_time)
}

/// Whether a response is fresh: `freshness_lifetime > current_age` (§4.2). No lifetime
/// means stale.
pub fn is_fresh(freshness_lifetime: Option<Duration>, current_age: Duration) -> bool {
    freshness_lifetime.is_some_and(|l| l > current_age)
}

/// The `Age` header value a cache sends with a stored response (§5.1, §4.2.3): whole
/// seconds of its current age, at most 2147483648.
pub fn age_header_value(current_age: Duration) -> HeaderValue {
    HeaderValue::from(current_age.as_secs().min(DELTA_SECONDS_MAX))
}

/// Gives a response a `Date` if it has none, or replaces an invalid one, with the time
/// it was received (RFC 9110 §6.6.1: a recipient with a clock MUST add one to a response
/// it caches; MAY replace an invalid one). Lines that disagree count as invalid.
pub fn ensure_date(headers: &mut HeaderMap, response_time: SystemTime) {
    if parse::date_field(headers, &header::DATE).valid().is_some() {
        return;
    }
    let value = HeaderValue::from_str(&httpdate::fmt_http_date(response_time))
        .expect("an IMF-fixdate is a valid header value");
    headers.insert(header::DATE, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::directives::response_directives;
    use crate::semantics::parse::test_util::{at, date, headers};

    const OK: StatusCode = StatusCode::OK;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn life(
        status: StatusCode,
        pairs: &[(&str, &str)],
        response_time: SystemTime,
    ) -> Option<Lifetime> {
        let h = headers(pairs);
        lifetime(status, &h, &response_directives(&h), response_time)
    }

    fn duration(pairs: &[(&str, &str)]) -> Option<Duration> {
        life(OK, pairs, at(1000)).map(|l| l.duration)
    }

    #[test]
    fn s4_2_1_s_maxage_wins_over_max_age_for_shared_caches() {
        let l = life(OK, &[("cache-control", "max-age=600, s-maxage=60")], at(0)).unwrap();
        assert_eq!(
            l,
            Lifetime {
                duration: secs(60),
                source: LifetimeSource::SMaxAge
            }
        );
    }

    #[test]
    fn s4_2_1_max_age_wins_over_expires() {
        let expires = date(5000);
        let pairs = [
            ("cache-control", "max-age=60"),
            ("date", &*date(1000)),
            ("expires", &*expires),
        ];
        assert_eq!(duration(&pairs), Some(secs(60)));
    }

    #[test]
    fn s4_2_1_expires_minus_date() {
        let (d, e) = (date(1000), date(1300));
        assert_eq!(duration(&[("date", &d), ("expires", &e)]), Some(secs(300)));
    }

    #[test]
    fn s4_2_1_expires_without_date_counts_from_response_time() {
        let e = date(1300);
        let l = life(OK, &[("expires", &e)], at(1100)).unwrap();
        assert_eq!(
            l,
            Lifetime {
                duration: secs(200),
                source: LifetimeSource::Expires
            }
        );
    }

    #[test]
    fn s4_2_1_invalid_date_counts_from_response_time() {
        let e = date(1300);
        assert_eq!(
            life(OK, &[("date", "yesterday"), ("expires", &e)], at(1200))
                .unwrap()
                .duration,
            secs(100)
        );
    }

    #[test]
    fn s5_3_expires_zero_is_already_expired() {
        let l = life(OK, &[("expires", "0")], at(0)).unwrap();
        assert_eq!(
            l,
            Lifetime {
                duration: Duration::ZERO,
                source: LifetimeSource::Expires
            }
        );
    }

    #[test]
    fn s5_3_expires_in_the_past_is_stale_and_beats_the_heuristic() {
        let (d, e, lm) = (date(1000), date(10), date(0));
        let pairs = [("date", &*d), ("expires", &*e), ("last-modified", &*lm)];
        assert_eq!(duration(&pairs), Some(Duration::ZERO));
    }

    #[test]
    fn s4_2_1_conflicting_expires_lines_are_stale() {
        let (d, e1, e2) = (date(1000), date(2000), date(3000));
        assert_eq!(
            duration(&[("date", &d), ("expires", &e1), ("expires", &e2)]),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn s4_2_1_invalid_freshness_is_zero_even_with_valid_expires() {
        let (d, e) = (date(1000), date(5000));
        let pairs = [
            ("cache-control", "max-age=oops"),
            ("date", &*d),
            ("expires", &*e),
        ];
        assert_eq!(duration(&pairs), Some(Duration::ZERO));
    }

    #[test]
    fn s4_2_2_heuristic_is_ten_percent_of_date_minus_last_modified() {
        let (d, lm) = (date(1000), date(0));
        let l = life(OK, &[("date", &d), ("last-modified", &lm)], at(1000)).unwrap();
        assert_eq!(
            l,
            Lifetime {
                duration: secs(100),
                source: LifetimeSource::Heuristic
            }
        );
        let h = headers(&[("date", &d), ("last-modified", &lm)]);
        assert!(is_heuristic(OK, &h, &response_directives(&h), at(1000)));
    }

    #[test]
    fn s4_2_2_heuristic_is_capped_at_a_day() {
        let (d, lm) = (date(100 * 86_400), date(0));
        assert_eq!(
            duration(&[("date", &d), ("last-modified", &lm)]),
            Some(HEURISTIC_CAP)
        );
    }

    #[test]
    fn s4_2_2_heuristic_survives_absurd_clocks() {
        let lm = date(0);
        let far = std::time::UNIX_EPOCH + secs(4_000_000_000_000_000_000);
        assert_eq!(
            life(OK, &[("last-modified", &lm)], far).unwrap().duration,
            HEURISTIC_CAP
        );
    }

    #[test]
    fn s4_2_2_no_heuristic_for_statuses_not_heuristically_cacheable() {
        let (d, lm) = (date(1000), date(0));
        let pairs = [("date", &*d), ("last-modified", &*lm)];
        assert_eq!(life(StatusCode::FOUND, &pairs, at(1000)), None);
        assert_eq!(
            life(StatusCode::INTERNAL_SERVER_ERROR, &pairs, at(1000)),
            None
        );
    }

    #[test]
    fn s4_2_2_public_allows_the_heuristic_for_other_statuses() {
        let (d, lm) = (date(1000), date(0));
        let pairs = [
            ("cache-control", "public"),
            ("date", &*d),
            ("last-modified", &*lm),
        ];
        assert_eq!(
            life(StatusCode::FOUND, &pairs, at(1000)).unwrap().duration,
            secs(100)
        );
    }

    #[test]
    fn s4_2_2_no_last_modified_means_no_lifetime() {
        assert_eq!(duration(&[("date", &date(1000))]), None);
        let lm_in_future = date(2000);
        assert_eq!(
            duration(&[("date", &date(1000)), ("last-modified", &lm_in_future)]),
            None
        );
    }

    #[test]
    fn rfc9110_s15_1_heuristically_cacheable_statuses() {
        let yes = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];
        for code in 100..600 {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                heuristically_cacheable(status),
                yes.contains(&code),
                "{code}"
            );
        }
    }

    #[test]
    fn s4_2_3_initial_age_is_the_larger_of_apparent_and_corrected_age() {
        // Date 100 s before receipt: apparent age 100 beats Age 10 + 2 s delay.
        let h = headers(&[("date", &date(900)), ("age", "10")]);
        assert_eq!(initial_age(&h, at(998), at(1000)), secs(100));
        // Age 50 + 2 s delay beats a Date 5 s old.
        let h = headers(&[("date", &date(995)), ("age", "50")]);
        assert_eq!(initial_age(&h, at(998), at(1000)), secs(52));
    }

    #[test]
    fn s4_2_3_date_in_the_future_gives_no_apparent_age() {
        let h = headers(&[("date", &date(2000))]);
        assert_eq!(initial_age(&h, at(999), at(1000)), secs(1));
    }

    #[test]
    fn s5_1_age_with_garbage_is_ignored() {
        for bad in ["abc", "-5", "1.5", "", "\"10\""] {
            let h = headers(&[("age", bad)]);
            assert_eq!(age_value(&h), None, "{bad:?}");
            assert_eq!(
                initial_age(&h, at(1000), at(1000)),
                Duration::ZERO,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn s5_1_list_based_age_uses_the_first_member() {
        assert_eq!(age_value(&headers(&[("age", "30, 40")])), Some(secs(30)));
        assert_eq!(
            age_value(&headers(&[("age", "30"), ("age", "40")])),
            Some(secs(30))
        );
        assert_eq!(
            age_value(&headers(&[("age", "99999999999999999999")])),
            Some(secs(DELTA_SECONDS_MAX))
        );
    }

    #[test]
    fn s4_2_3_current_age_adds_resident_time() {
        assert_eq!(current_age(secs(10), at(1000), at(1060)), secs(70));
        assert_eq!(current_age(secs(10), at(1000), at(900)), secs(10));
    }

    #[test]
    fn s4_2_fresh_means_lifetime_greater_than_age() {
        assert!(is_fresh(Some(secs(61)), secs(60)));
        assert!(!is_fresh(Some(secs(60)), secs(60)));
        assert!(!is_fresh(None, Duration::ZERO));
    }

    #[test]
    fn s5_1_age_header_value_is_whole_seconds_capped() {
        assert_eq!(age_header_value(Duration::from_millis(61_900)), "61");
        assert_eq!(age_header_value(secs(u64::MAX / 2)), "2147483648");
    }

    #[test]
    fn rfc9110_s6_6_1_ensure_date_adds_or_replaces_invalid() {
        let mut h = headers(&[]);
        ensure_date(&mut h, at(5));
        assert_eq!(h[header::DATE], date(5).as_str());
        let mut h = headers(&[("date", "garbage")]);
        ensure_date(&mut h, at(5));
        assert_eq!(h[header::DATE], date(5).as_str());
        let mut h = headers(&[("date", &date(1))]);
        ensure_date(&mut h, at(5));
        assert_eq!(h[header::DATE], date(1).as_str());
    }
}
