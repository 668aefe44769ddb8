//! A route's `retry` and `bulkhead`: conditions that exist, counts that allow something, a
//! budget ratio that is a share.

use crate::path::Path;
use crate::{RetryCondition, Route};

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
        for (i, condition) in retry.retry_on.iter().enumerate() {
            if RetryCondition::parse(condition).is_none() {
                found.push(
                    Finding::new(
                        path.key("retry_on").index(i),
                        format!("retry_on {condition:?} is not a condition"),
                    )
                    .hint(format!(
                        "write one of {}, or a status code from 400 to 599 such as \"503\"",
                        RetryCondition::KEYWORDS.join(", ")
                    )),
                );
            }
        }
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
    if let Some(bulkhead) = &route.bulkhead
        && bulkhead.max_concurrent == 0
    {
        found.push(
            Finding::new(
                path.key("bulkhead").key("max_concurrent"),
                "max_concurrent is 0: the route could serve nothing",
            )
            .hint("leave bulkhead out for no limit"),
        );
    }
}
