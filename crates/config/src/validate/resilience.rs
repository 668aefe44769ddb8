//! A route's `retry` and `bulkhead`: conditions that exist, counts that allow something, a
//! budget ratio that is a share.

use crate::path::Path;
use crate::suggest;
use crate::{
    AdaptiveConcurrency, Bulkhead, CircuitBreaker, Fallback, OutlierDetection, RetryCondition,
    Route,
};

use super::Finding;

pub(super) fn check(route: &Route, path: &Path, found: &mut Vec<Finding>) {
    if let Some(retry) = &route.retry {
        let path = path.key("retry");
        if !(1..=10).contains(&retry.attempts) {
            found.push(
                Finding::new(
                    path.key("attempts"),
                    format!("attempts {} is not between 1 and 10", retry.attempts),
                )
                .hint("attempts counts every try, the first included: 2 means one retry"),
            );
        }
        conditions("retry_on", &retry.retry_on, &path, found);
        if !(0.0..=10.0).contains(&retry.budget.ratio) {
            found.push(
                Finding::new(
                    path.key("budget").key("ratio"),
                    format!(
                        "budget ratio {} is not between 0 and 10",
                        retry.budget.ratio
                    ),
                )
                .hint("0.2 lets retries add at most 20% to the route's requests"),
            );
        }
        if retry.backoff.base > retry.backoff.max {
            found.push(Finding::new(
                path.key("backoff").key("base"),
                format!(
                    "backoff base {} is above its max {}",
                    retry.backoff.base, retry.backoff.max
                ),
            ));
        }
        if let (Some(per_try), Some(timeout)) = (retry.per_try_timeout, route.timeout)
            && timeout.non_zero().is_some()
            && per_try > timeout
        {
            found.push(
                Finding::new(
                    path.key("per_try_timeout"),
                    format!("per_try_timeout {per_try} is longer than the route's timeout {timeout}"),
                )
                .hint("the route's timeout bounds every try together; make per_try_timeout a fraction of it"),
            );
        }
    }
    if let Some(bulkhead) = &route.bulkhead {
        check_bulkhead(bulkhead, &path.key("bulkhead"), found);
    }
}

/// A route's or a cluster's `bulkhead`: a limit that admits something, a valid header name.
pub(super) fn check_bulkhead(bulkhead: &Bulkhead, path: &Path, found: &mut Vec<Finding>) {
    if bulkhead.max_concurrent == 0 {
        found.push(
            Finding::new(
                path.key("max_concurrent"),
                "max_concurrent is 0: nothing could be served",
            )
            .hint("leave bulkhead out for no limit"),
        );
    }
    if let Some(header) = &bulkhead.priority_header
        && http::HeaderName::from_bytes(header.as_bytes()).is_err()
    {
        found.push(
            Finding::new(
                path.key("priority_header"),
                format!("priority_header {header:?} is not a valid header name"),
            )
            .hint("write e.g. \"x-priority\""),
        );
    }
}

/// Each entry of a `retry_on` / `failure_on` list must be a condition.
fn conditions(field: &str, list: &[String], path: &Path, found: &mut Vec<Finding>) {
    for (i, condition) in list.iter().enumerate() {
        if RetryCondition::parse(condition).is_none() {
            found.push(
                Finding::new(
                    path.key(field).index(i),
                    format!("{field} {condition:?} is not a condition"),
                )
                .hint(format!(
                    "write one of {}, or a status code from 400 to 599 such as \"503\"",
                    RetryCondition::KEYWORDS.join(", ")
                )),
            );
        }
    }
}

/// A cluster's `circuit_breaker`: one window, shares that are shares, counts that allow a call.
pub(super) fn check_breaker(breaker: &CircuitBreaker, path: &Path, found: &mut Vec<Finding>) {
    if breaker.window_calls.is_some() && breaker.window_seconds.is_some() {
        found.push(
            Finding::new(
                path.key("window_seconds"),
                "give window_calls or window_seconds, not both",
            )
            .hint("window_calls judges the last N calls; window_seconds the calls of the last N seconds"),
        );
    }
    for (field, value) in [
        ("window_calls", breaker.window_calls),
        ("window_seconds", breaker.window_seconds),
        ("minimum_calls", Some(breaker.minimum_calls)),
        ("half_open_calls", Some(breaker.half_open_calls)),
    ] {
        if value == Some(0) {
            found.push(Finding::new(path.key(field), format!("{field} is 0")));
        }
    }
    for (field, value) in [
        ("failure_rate", breaker.failure_rate),
        ("slow_call_rate", breaker.slow_call_rate),
    ] {
        if value.is_nan() || value <= 0.0 || value > 1.0 {
            found.push(
                Finding::new(
                    path.key(field),
                    format!("{field} {value} is not a share above 0 and at most 1"),
                )
                .hint("0.5 opens the breaker when half the calls in the window fail"),
            );
        }
    }
    if !(0.0..=1.0).contains(&breaker.jitter) {
        found.push(Finding::new(
            path.key("jitter"),
            format!("jitter {} is not between 0 and 1", breaker.jitter),
        ));
    }
    // Written so that NaN is refused too.
    if breaker.backoff_multiplier.is_nan() || breaker.backoff_multiplier < 1.0 {
        found.push(Finding::new(
            path.key("backoff_multiplier"),
            format!(
                "backoff_multiplier {} is below 1: open periods would shrink",
                breaker.backoff_multiplier
            ),
        ));
    }
    not_above(
        ("open_duration", breaker.open_duration),
        ("max_open_duration", breaker.max_open_duration),
        path,
        found,
    );
    conditions("failure_on", &breaker.failure_on, path, found);
}

/// The reasons a fallback can be walked for: the proxy's `x-watertight-reason` words for
/// failures to get an answer, and `5xx` for upstream answers with a 5xx status.
pub const FALLBACK_REASONS: [&str; 14] = [
    "breaker-open",
    "shed",
    "deadline-exceeded",
    "bulkhead-full",
    "queue-timeout",
    "no-endpoint",
    "no-healthy-endpoint",
    "upstream-timeout",
    "connect-refused",
    "connect-timeout",
    "connect-failed",
    "upstream-reset",
    "upstream-protocol",
    "5xx",
];

/// A route's `fallback`: known reasons, a defined cluster, a well-formed fixed answer.
pub(super) fn check_fallback(
    fallback: &Fallback,
    clusters: &[&str],
    path: &Path,
    found: &mut Vec<Finding>,
) {
    for (i, reason) in fallback.on.iter().enumerate() {
        if !FALLBACK_REASONS.contains(&reason.as_str()) {
            found.push(
                Finding::new(
                    path.key("on").index(i),
                    format!("fallback on {reason:?} is not a failure reason"),
                )
                .hint(suggest::hint(reason, "reasons", &FALLBACK_REASONS)),
            );
        }
    }
    if fallback.cluster.is_none() && fallback.response.is_none() {
        found.push(
            Finding::new(
                path.clone(),
                "a fallback needs a cluster, a response, or both",
            )
            .hint("add \"response: {status: 503, body: ...}\" for a fixed answer"),
        );
    }
    if let Some(cluster) = &fallback.cluster
        && !clusters.contains(&cluster.as_str())
    {
        found.push(
            Finding::new(
                path.key("cluster"),
                format!("fallback cluster {cluster:?} is not defined"),
            )
            .hint(suggest::hint(cluster, "defined clusters", clusters)),
        );
    }
    let Some(response) = &fallback.response else {
        return;
    };
    let path = path.key("response");
    if !(100..=599).contains(&response.status) {
        found.push(Finding::new(
            path.key("status"),
            format!("status {} is not between 100 and 599", response.status),
        ));
    }
    for (name, value) in &response.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            found.push(Finding::new(
                path.key("headers").key(name),
                format!("header {name:?}: {value:?} is not a valid HTTP header"),
            ));
        }
    }
    match (&response.body, &response.body_file) {
        (Some(_), Some(_)) => found.push(Finding::new(
            path.key("body_file"),
            "give body or body_file, not both",
        )),
        (None, Some(file)) => {
            if let Err(error) = std::fs::metadata(file) {
                found.push(Finding::new(
                    path.key("body_file"),
                    format!("body_file {file:?} cannot be read: {error}"),
                ));
            }
        }
        _ => {}
    }
}

/// A cluster's `outlier_detection`: a threshold that can be reached, a share that is a share.
pub(super) fn check_outlier(outlier: &OutlierDetection, path: &Path, found: &mut Vec<Finding>) {
    if outlier.consecutive_failures == 0 {
        found.push(Finding::new(
            path.key("consecutive_failures"),
            "consecutive_failures is 0: every endpoint would be ejected at once",
        ));
    }
    if outlier.max_ejection_percent > 100 {
        found.push(Finding::new(
            path.key("max_ejection_percent"),
            format!(
                "max_ejection_percent {} is above 100",
                outlier.max_ejection_percent
            ),
        ));
    }
    not_above(
        ("base_ejection_time", outlier.base_ejection_time),
        ("max_ejection_time", outlier.max_ejection_time),
        path,
        found,
    );
    conditions("failure_on", &outlier.failure_on, path, found);
}

/// A cluster's `adaptive_concurrency`: limits in order, a tolerance of at least 1.
pub(super) fn check_adaptive(
    adaptive: &AdaptiveConcurrency,
    path: &Path,
    found: &mut Vec<Finding>,
) {
    if adaptive.min_limit == 0 {
        found.push(Finding::new(path.key("min_limit"), "min_limit is 0"));
    }
    not_above(
        ("min_limit", adaptive.min_limit),
        ("max_limit", adaptive.max_limit),
        path,
        found,
    );
    if adaptive.tolerance.is_nan() || adaptive.tolerance < 1.0 {
        found.push(
            Finding::new(
                path.key("tolerance"),
                format!("tolerance {} is below 1", adaptive.tolerance),
            )
            .hint("1.5 lets answers get half again as slow as the best before the limit shrinks"),
        );
    }
    if adaptive.interval.non_zero().is_none() {
        found.push(Finding::new(path.key("interval"), "interval is 0s"));
    }
}

/// A lower bound must not exceed its upper bound: `(field, value)` pairs of one section.
fn not_above<T: PartialOrd + std::fmt::Display>(
    (low_field, low): (&str, T),
    (high_field, high): (&str, T),
    path: &Path,
    found: &mut Vec<Finding>,
) {
    if low > high {
        found.push(Finding::new(
            path.key(low_field),
            format!("{low_field} {low} is above {high_field} {high}"),
        ));
    }
}
