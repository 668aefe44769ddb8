//! Active health checking: one task per endpoint runs its probe every interval (faster while
//! a change is being confirmed), counts passes and failures in a row against `rise` and
//! `fall`, and tells the endpoint and its cluster when the verdict changes.
//!
//! A checker holds only a weak reference to its cluster: when a reload replaces the cluster
//! and the last request on it ends, the checker stops at its next wake-up.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use watertight_config as config;

use super::probe::Probe;
use crate::cluster::Cluster;

/// Starts a checker for every endpoint of `cluster`, if it has a health check.
pub fn spawn(cluster: &Arc<Cluster>) {
    let Some(check) = cluster.config().health_check.clone() else {
        return;
    };
    let check = Arc::new(check);
    for (index, endpoint) in cluster.endpoints().iter().enumerate() {
        let (host, port) = endpoint.check_target(&check);
        let probe = Probe::new(&check, &host, port);
        tokio::spawn(run(Arc::downgrade(cluster), index, check.clone(), probe));
    }
}

async fn run(
    cluster: Weak<Cluster>,
    index: usize,
    check: Arc<config::HealthCheck>,
    mut probe: Probe,
) {
    let mut streak = Streak::default();
    loop {
        let started = Instant::now();
        let result = match tokio::time::timeout(check.timeout.get(), probe.run()).await {
            Ok(Ok(detail)) => Outcome::Passed(detail),
            Ok(Err(why)) => Outcome::Failed(why),
            Err(_) => Outcome::TimedOut(format!("no answer within {}", check.timeout)),
        };
        let elapsed = started.elapsed();
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let endpoint = &cluster.endpoints()[index];
        let passed = matches!(result, Outcome::Passed(_));
        endpoint.checked(result.name(), elapsed);
        let detail = result.into_detail();
        let current = endpoint.health.checked();
        if let Some(healthy) = streak.observe(passed, current, check.rise, check.fall) {
            let reason = if healthy {
                format!("health check passed: {detail}")
            } else {
                format!("health check failed: {detail}")
            };
            if endpoint.health.set_checked(healthy, &reason) {
                tracing::info!(cluster = cluster.name(), endpoint = %endpoint.address, healthy, %detail, "endpoint health changed");
                cluster.health_changed();
            }
        }
        endpoint.health.record_check(passed, elapsed, detail);
        let wait = if streak.transitioning(endpoint.health.checked()) {
            check.transition_interval()
        } else {
            check.interval.get()
        };
        drop(cluster);
        tokio::time::sleep(jittered(wait, check.jitter)).await;
    }
}

/// How one check went.
enum Outcome {
    Passed(String),
    Failed(String),
    TimedOut(String),
}

impl Outcome {
    /// The `outcome` label of the check metrics.
    fn name(&self) -> &'static str {
        match self {
            Outcome::Passed(_) => "success",
            Outcome::Failed(_) => "failure",
            Outcome::TimedOut(_) => "timeout",
        }
    }

    fn into_detail(self) -> String {
        match self {
            Outcome::Passed(d) | Outcome::Failed(d) | Outcome::TimedOut(d) => d,
        }
    }
}

/// Checks in a row that agree, against the rise and fall thresholds.
#[derive(Debug, Default)]
struct Streak {
    passes: u32,
    fails: u32,
}

impl Streak {
    /// Counts a result; returns the new verdict when it changes (`current` is the verdict so
    /// far, `None` before the first check, which decides at once).
    fn observe(
        &mut self,
        passed: bool,
        current: Option<bool>,
        rise: u32,
        fall: u32,
    ) -> Option<bool> {
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.fails = 0;
        } else {
            self.fails = self.fails.saturating_add(1);
            self.passes = 0;
        }
        match current {
            None => Some(passed),
            Some(true) if self.fails >= fall => Some(false),
            Some(false) if self.passes >= rise => Some(true),
            _ => None,
        }
    }

    /// Whether recent checks disagree with the verdict (a change is being confirmed).
    fn transitioning(&self, current: Option<bool>) -> bool {
        match current {
            Some(true) => self.fails > 0,
            Some(false) => self.passes > 0,
            None => true,
        }
    }
}

/// `wait` plus up to `jitter` × `wait` at random.
fn jittered(wait: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return wait;
    }
    wait.mul_f64(1.0 + jitter * rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_result_decides_then_rise_and_fall_apply() {
        let mut streak = Streak::default();
        assert_eq!(streak.observe(false, None, 2, 3), Some(false));
        assert_eq!(streak.observe(true, Some(false), 2, 3), None);
        assert!(streak.transitioning(Some(false)));
        assert_eq!(streak.observe(true, Some(false), 2, 3), Some(true));
        assert_eq!(streak.observe(false, Some(true), 2, 3), None);
        assert_eq!(streak.observe(false, Some(true), 2, 3), None);
        assert_eq!(streak.observe(false, Some(true), 2, 3), Some(false));
    }

    #[test]
    fn a_pass_between_failures_restarts_the_count() {
        let mut streak = Streak::default();
        streak.observe(true, None, 1, 2);
        assert_eq!(streak.observe(false, Some(true), 1, 2), None);
        assert_eq!(streak.observe(true, Some(true), 1, 2), None);
        assert!(!streak.transitioning(Some(true)));
        assert_eq!(streak.observe(false, Some(true), 1, 2), None);
        assert_eq!(streak.observe(false, Some(true), 1, 2), Some(false));
    }

    #[test]
    fn jitter_only_lengthens_and_stays_within_its_share() {
        let base = Duration::from_millis(100);
        assert_eq!(jittered(base, 0.0), base);
        for _ in 0..100 {
            let wait = jittered(base, 0.5);
            assert!(
                wait >= base && wait <= Duration::from_millis(150),
                "{wait:?}"
            );
        }
    }
}
