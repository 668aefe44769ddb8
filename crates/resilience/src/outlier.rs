//! Outlier detection (passive health), as Envoy does it: an endpoint whose calls fail
//! `consecutive_failures` times in a row is ejected from its cluster for `base_ejection_time`
//! × the number of times it has been ejected (at most `max_ejection_time`), but never so that
//! more than `max_ejection_percent` of the cluster is out at once. A success after it is back
//! clears its record.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Failures in a row that eject an endpoint.
    pub consecutive_failures: u32,
    /// The first ejection's length; each further one is this times the ejection count.
    pub base_ejection_time: Duration,
    /// The longest ejection.
    pub max_ejection_time: Duration,
    /// Most of the cluster (in percent, rounded down) that may be ejected at once.
    pub max_ejection_percent: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct Host {
    consecutive: u32,
    ejected_until: Option<Instant>,
    times_ejected: u32,
}

/// Outlier detection for one cluster's endpoints.
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    hosts: Mutex<Vec<Host>>,
}

impl OutlierDetector {
    /// For a cluster of `endpoints`.
    pub fn new(config: OutlierConfig, endpoints: usize) -> Self {
        Self {
            config,
            hosts: Mutex::new(vec![Host::default(); endpoints]),
        }
    }

    /// Records a call to endpoint `i`; returns until when it is now ejected, if this ejected it.
    pub fn record(&self, i: usize, failed: bool, now: Instant) -> Option<Instant> {
        let mut hosts = self.lock();
        let ejected_now = hosts.iter().filter(|h| is_out(h, now)).count();
        let allowed = hosts.len() * self.config.max_ejection_percent.min(100) as usize / 100;
        let host = hosts.get_mut(i)?;
        if !failed {
            host.consecutive = 0;
            if !is_out(host, now) && host.ejected_until.is_some() {
                // Back and answering: its history is forgiven.
                host.ejected_until = None;
                host.times_ejected = 0;
            }
            return None;
        }
        host.consecutive += 1;
        if host.consecutive < self.config.consecutive_failures
            || is_out(host, now)
            || ejected_now >= allowed
        {
            return None;
        }
        host.times_ejected = host.times_ejected.saturating_add(1);
        host.consecutive = 0;
        let length = self
            .config
            .base_ejection_time
            .saturating_mul(host.times_ejected)
            .min(self.config.max_ejection_time);
        let until = now + length;
        host.ejected_until = Some(until);
        Some(until)
    }

    /// Whether endpoint `i` is ejected now.
    pub fn is_ejected(&self, i: usize, now: Instant) -> bool {
        self.lock().get(i).is_some_and(|h| is_out(h, now))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Host>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_out(host: &Host, now: Instant) -> bool {
    host.ejected_until.is_some_and(|until| now < until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(percent: u32) -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: 3,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(25),
            max_ejection_percent: percent,
        }
    }

    #[test]
    fn consecutive_failures_eject_for_longer_each_time() {
        let detector = OutlierDetector::new(config(50), 4);
        let mut now = Instant::now();
        for (round, expected) in [10, 20, 25].into_iter().enumerate() {
            assert_eq!(detector.record(0, true, now), None);
            assert_eq!(detector.record(0, true, now), None);
            let until = detector.record(0, true, now).expect("third failure ejects");
            assert_eq!(
                until - now,
                Duration::from_secs(expected),
                "ejection {round}"
            );
            assert!(detector.is_ejected(0, now));
            now = until;
            assert!(!detector.is_ejected(0, now), "back when the time is up");
        }
    }

    #[test]
    fn a_success_breaks_the_run_and_forgives_after_return() {
        let detector = OutlierDetector::new(config(50), 2);
        let now = Instant::now();
        detector.record(0, true, now);
        detector.record(0, true, now);
        detector.record(0, false, now);
        assert_eq!(detector.record(0, true, now), None, "the run starts over");
        // Ejected once, back, answers: the next ejection is the base length again.
        detector.record(0, true, now);
        let until = detector.record(0, true, now).unwrap();
        detector.record(0, false, until);
        for _ in 0..2 {
            detector.record(0, true, until);
        }
        let again = detector.record(0, true, until).unwrap();
        assert_eq!(again - until, Duration::from_secs(10));
    }

    #[test]
    fn never_ejects_more_than_the_percentage() {
        let detector = OutlierDetector::new(config(50), 4);
        let now = Instant::now();
        for endpoint in 0..4 {
            for _ in 0..3 {
                detector.record(endpoint, true, now);
            }
        }
        let out = (0..4).filter(|&i| detector.is_ejected(i, now)).count();
        assert_eq!(out, 2, "half of four");
        // A single-endpoint cluster at 50 % never ejects its only endpoint.
        let single = OutlierDetector::new(config(50), 1);
        for _ in 0..10 {
            assert_eq!(single.record(0, true, now), None);
        }
    }
}
