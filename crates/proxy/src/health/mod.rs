//! Endpoint health: what active checks concluded, what an operator decided (drain, disable),
//! and the signal that tells open TCP sessions to an endpoint to close.
//!
//! An endpoint takes new traffic when its operator state is `active` and its checked state is
//! `healthy`. Reads are two atomic loads, so the request path can ask on every pick; the
//! reason, the time of the last change and recent check results sit behind a mutex that only
//! changes and the admin API take.

pub mod checker;
mod probe;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

/// An endpoint's state as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Active checks have not concluded yet; it takes no traffic.
    Unknown,
    /// It takes traffic.
    Healthy,
    /// Active checks fail (or outlier detection ejected it); it takes no traffic.
    Unhealthy,
    /// An operator drains it: no new requests or sessions, open ones finish.
    Draining,
    /// An operator disabled it: no new traffic, and open TCP sessions are closed when the
    /// cluster closes sessions on endpoint down.
    Disabled,
}

impl State {
    /// Every state, in the order metrics list them.
    pub const ALL: [State; 5] = [
        State::Unknown,
        State::Healthy,
        State::Unhealthy,
        State::Draining,
        State::Disabled,
    ];

    /// The word used in the admin API, logs and the metrics' `state` label.
    pub fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Healthy => "healthy",
            State::Unhealthy => "unhealthy",
            State::Draining => "draining",
            State::Disabled => "disabled",
        }
    }
}

/// What an operator decided about an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// Traffic as health allows.
    Active = 0,
    /// No new traffic; open exchanges and sessions finish.
    Draining = 1,
    /// No new traffic; open sessions may be closed.
    Disabled = 2,
}

const CHECK_UNKNOWN: u8 = 0;
const CHECK_UP: u8 = 1;
const CHECK_DOWN: u8 = 2;

/// Check results kept per endpoint for the admin API.
const HISTORY: usize = 10;

/// One active check's result, as the admin API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CheckRecord {
    /// When it finished (RFC 3339).
    pub at: String,
    /// Whether it passed.
    pub passed: bool,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// What it saw (`HTTP 200`, `primary`, `connect refused`, …).
    pub detail: String,
}

/// An endpoint's health, shared by its checker, its cluster's picks and the admin API.
#[derive(Debug)]
pub struct EndpointHealth {
    checked: AtomicU8,
    operator: AtomicU8,
    /// Bumped whenever open sessions to the endpoint must close.
    sever: watch::Sender<u64>,
    log: Mutex<Log>,
}

#[derive(Debug)]
struct Log {
    reason: String,
    since: SystemTime,
    checks: VecDeque<CheckRecord>,
}

/// A view of an endpoint's health for the admin API.
#[derive(Clone, Debug, Serialize)]
pub struct HealthView {
    /// Why it is in its state.
    pub reason: String,
    /// When its state last changed (RFC 3339).
    pub since: String,
    /// The latest check results, newest last.
    pub checks: Vec<CheckRecord>,
}

impl EndpointHealth {
    /// Health of an endpoint: `unknown` until checked when `checked` is true, otherwise
    /// healthy from the start.
    pub fn new(checked: bool) -> Self {
        let (state, reason) = if checked {
            (CHECK_UNKNOWN, "waiting for the first health check")
        } else {
            (CHECK_UP, "no active health check")
        };
        Self {
            checked: AtomicU8::new(state),
            operator: AtomicU8::new(Operator::Active as u8),
            sever: watch::channel(0).0,
            log: Mutex::new(Log {
                reason: reason.to_owned(),
                since: SystemTime::now(),
                checks: VecDeque::new(),
            }),
        }
    }

    /// Whether it may take new traffic now.
    pub fn available(&self) -> bool {
        self.operator.load(Ordering::Acquire) == Operator::Active as u8
            && self.checked.load(Ordering::Acquire) == CHECK_UP
    }

    /// Its state, operator decisions first.
    pub fn state(&self) -> State {
        match self.operator.load(Ordering::Acquire) {
            o if o == Operator::Disabled as u8 => State::Disabled,
            o if o == Operator::Draining as u8 => State::Draining,
            _ => match self.checked.load(Ordering::Acquire) {
                CHECK_UP => State::Healthy,
                CHECK_DOWN => State::Unhealthy,
                _ => State::Unknown,
            },
        }
    }

    /// What active checks concluded: `Some(true)` healthy, `Some(false)` unhealthy, `None`
    /// not yet.
    pub fn checked(&self) -> Option<bool> {
        match self.checked.load(Ordering::Acquire) {
            CHECK_UP => Some(true),
            CHECK_DOWN => Some(false),
            _ => None,
        }
    }

    /// Records what active checks concluded; true if that changed it. Going down severs open
    /// sessions.
    pub fn set_checked(&self, healthy: bool, reason: &str) -> bool {
        let value = if healthy { CHECK_UP } else { CHECK_DOWN };
        if self.checked.swap(value, Ordering::AcqRel) == value {
            return false;
        }
        self.note_change(reason);
        if !healthy {
            self.sever_sessions();
        }
        true
    }

    /// Records an operator decision; true if that changed it. Disabling severs open sessions.
    pub fn set_operator(&self, operator: Operator, reason: &str) -> bool {
        if self.operator.swap(operator as u8, Ordering::AcqRel) == operator as u8 {
            return false;
        }
        self.note_change(reason);
        if operator == Operator::Disabled {
            self.sever_sessions();
        }
        true
    }

    /// Carries checked and operator state over from the same endpoint in a cluster a reload
    /// replaced, so a reload neither forgets a drain nor sends traffic before a check.
    pub fn inherit(&self, previous: &EndpointHealth, checks_unchanged: bool) {
        if checks_unchanged {
            self.checked
                .store(previous.checked.load(Ordering::Acquire), Ordering::Release);
        }
        self.operator
            .store(previous.operator.load(Ordering::Acquire), Ordering::Release);
        let previous = lock(&previous.log);
        let mut log = lock(&self.log);
        log.checks = previous.checks.clone();
        if checks_unchanged || self.operator.load(Ordering::Acquire) != Operator::Active as u8 {
            log.reason = previous.reason.clone();
            log.since = previous.since;
        }
    }

    /// Tells open sessions to the endpoint to close.
    pub fn sever_sessions(&self) {
        self.sever.send_modify(|generation| *generation += 1);
    }

    /// A receiver that changes when open sessions must close.
    pub fn severed(&self) -> watch::Receiver<u64> {
        self.sever.subscribe()
    }

    /// Keeps a check result for the admin API.
    pub fn record_check(&self, passed: bool, elapsed: Duration, detail: String) {
        let mut log = lock(&self.log);
        if log.checks.len() == HISTORY {
            log.checks.pop_front();
        }
        log.checks.push_back(CheckRecord {
            at: rfc3339(SystemTime::now()),
            passed,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            detail,
        });
    }

    /// Reason, time of the last change and recent checks.
    pub fn view(&self) -> HealthView {
        let log = lock(&self.log);
        HealthView {
            reason: log.reason.clone(),
            since: rfc3339(log.since),
            checks: log.checks.iter().cloned().collect(),
        }
    }

    fn note_change(&self, reason: &str) {
        let mut log = lock(&self.log);
        log.reason = reason.to_owned();
        log.since = SystemTime::now();
    }
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchecked_endpoints_start_healthy_and_checked_ones_unknown() {
        assert_eq!(EndpointHealth::new(false).state(), State::Healthy);
        let checked = EndpointHealth::new(true);
        assert_eq!(checked.state(), State::Unknown);
        assert!(!checked.available());
        assert!(checked.set_checked(true, "passed"));
        assert!(checked.available());
    }

    #[test]
    fn operator_states_win_over_checks_and_enable_restores() {
        let health = EndpointHealth::new(false);
        assert!(health.set_operator(Operator::Draining, "drained by operator"));
        assert_eq!(health.state(), State::Draining);
        assert!(!health.available());
        assert!(!health.set_operator(Operator::Draining, "again"));
        health.set_checked(false, "failed");
        assert_eq!(health.state(), State::Draining);
        health.set_operator(Operator::Active, "enabled");
        assert_eq!(health.state(), State::Unhealthy);
        health.set_checked(true, "passed");
        assert_eq!(health.state(), State::Healthy);
        assert_eq!(health.view().reason, "passed");
    }

    #[test]
    fn going_down_or_disabled_severs_sessions_but_draining_does_not() {
        let health = EndpointHealth::new(false);
        let mut severed = health.severed();
        health.set_operator(Operator::Draining, "drain");
        assert!(!severed.has_changed().unwrap());
        health.set_operator(Operator::Disabled, "disable");
        assert!(severed.has_changed().unwrap());
        severed.mark_unchanged();
        health.set_operator(Operator::Active, "enable");
        health.set_checked(false, "check failed");
        assert!(severed.has_changed().unwrap());
    }

    #[test]
    fn history_keeps_the_latest_checks() {
        let health = EndpointHealth::new(true);
        for i in 0..(HISTORY + 3) {
            health.record_check(i % 2 == 0, Duration::from_millis(5), format!("check {i}"));
        }
        let checks = health.view().checks;
        assert_eq!(checks.len(), HISTORY);
        assert_eq!(
            checks.last().unwrap().detail,
            format!("check {}", HISTORY + 2)
        );
    }

    #[test]
    fn a_reload_inherits_operator_state_and_unchanged_check_results() {
        let old = EndpointHealth::new(true);
        old.set_checked(true, "passed");
        old.set_operator(Operator::Draining, "drain");
        let same_checks = EndpointHealth::new(true);
        same_checks.inherit(&old, true);
        assert_eq!(same_checks.state(), State::Draining);
        assert_eq!(same_checks.checked(), Some(true));
        let new_checks = EndpointHealth::new(true);
        new_checks.inherit(&old, false);
        assert_eq!(new_checks.checked(), None);
    }
}
