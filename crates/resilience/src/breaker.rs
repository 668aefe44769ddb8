//! A circuit breaker with Resilience4j's semantics.
//!
//! **Closed**: calls pass; their outcomes fill a sliding window (the last N calls, or the
//! calls of the last N seconds). Once the window holds `minimum_calls`, the breaker opens when
//! the share of failed calls reaches `failure_rate` or the share of slow calls (at least
//! `slow_call_duration`) reaches `slow_call_rate`.
//! **Open**: calls are refused until the open period ends. The period grows exponentially
//! with each consecutive trip (`open_duration` × `backoff_multiplier`ⁿ⁻¹, capped at
//! `max_open_duration`), with jitter so a fleet of proxies does not probe in step.
//! **Half-open**: `half_open_calls` trial calls pass; when all have reported, the breaker
//! closes if their failure and slow shares are under the thresholds, else opens again for a
//! longer period.
//!
//! Outcomes of calls admitted before the last transition are ignored, so a burst of late
//! failures cannot re-open a breaker that has just closed. Time and randomness are passed in.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A breaker's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// How the window is measured.
    pub window: Window,
    /// Calls the window must hold before the rates are judged.
    pub minimum_calls: u32,
    /// Share of failed calls (0–1) that opens the breaker.
    pub failure_rate: f64,
    /// Share of slow calls (0–1) that opens the breaker.
    pub slow_call_rate: f64,
    /// A call at least this long is slow.
    pub slow_call_duration: Duration,
    /// How long the first trip keeps the breaker open.
    pub open_duration: Duration,
    /// Each consecutive trip multiplies the open period by this.
    pub backoff_multiplier: f64,
    /// Longest open period.
    pub max_open_duration: Duration,
    /// Up to this share of the open period is added at random (0–1).
    pub jitter: f64,
    /// Trial calls let through when half-open.
    pub half_open_calls: u32,
}

/// The sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `n` seconds.
    Time(u32),
}

/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Calls pass and are judged.
    Closed,
    /// Calls are refused.
    Open,
    /// A few trial calls pass.
    HalfOpen,
}

impl State {
    /// Lower-case name, for metrics and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// How one call went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded, taking this long.
    Success(Duration),
    /// It failed, taking this long.
    Failure(Duration),
    /// It says nothing about the callee (the caller gave up): not counted.
    Ignored,
}

/// A call was refused: the breaker is open (or half-open with its trials taken).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// When a call may be let through again (as a trial), at the earliest.
    pub retry_after: Duration,
}

/// A state change, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
}

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Tally {
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Bumped on every transition; tickets from an older generation are ignored.
    generation: u64,
    /// Count window: the outcomes, oldest first, as (failed, slow).
    recent: VecDeque<(bool, bool)>,
    /// Time window: one tally per second, by second since `origin`.
    seconds: VecDeque<(u64, Tally)>,
    origin: Option<Instant>,
    open_until: Option<Instant>,
    /// Consecutive trips without a successful close.
    trips: u32,
    trials_admitted: u32,
    trials: Tally,
}

/// A circuit breaker for one callee.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Admission of one call; report how it went with [`Ticket::record`]. Dropped unreported, it
/// counts as [`Outcome::Ignored`] (giving back a half-open trial slot).
#[derive(Debug)]
pub struct Ticket {
    breaker: Arc<CircuitBreaker>,
    generation: u64,
    trial: bool,
    reported: bool,
    entered: Option<Transition>,
}

impl Ticket {
    /// The transition admitting this call caused (open to half-open), for logs and metrics.
    pub fn entered(&self) -> Option<Transition> {
        self.entered
    }

    /// Reports the call's outcome; `random` in `[0, 1)` draws the jitter if this trips the
    /// breaker. Returns the transition it caused, if any.
    pub fn record(mut self, outcome: Outcome, now: Instant, random: f64) -> Option<Transition> {
        self.reported = true;
        self.breaker
            .record(self.generation, self.trial, outcome, now, random)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(
                self.generation,
                self.trial,
                Outcome::Ignored,
                Instant::now(),
                0.0,
            );
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            inner: Mutex::new(Inner {
                state: State::Closed,
                generation: 0,
                recent: VecDeque::new(),
                seconds: VecDeque::new(),
                origin: None,
                open_until: None,
                trips: 0,
                trials_admitted: 0,
                trials: Tally::default(),
            }),
        })
    }

    /// Admits a call now, or refuses it.
    pub fn try_acquire(self: &Arc<Self>, now: Instant) -> Result<Ticket, Refused> {
        let mut inner = self.lock();
        let mut entered = None;
        if inner.state == State::Open {
            let until = inner.open_until.unwrap_or(now);
            if now < until {
                return Err(Refused {
                    retry_after: until - now,
                });
            }
            entered = Some(Self::transition(&mut inner, State::HalfOpen));
        }
        let trial = inner.state == State::HalfOpen;
        if trial {
            if inner.trials_admitted >= self.config.half_open_calls {
                return Err(Refused {
                    retry_after: Duration::ZERO,
                });
            }
            inner.trials_admitted += 1;
        }
        Ok(Ticket {
            breaker: self.clone(),
            generation: inner.generation,
            trial,
            reported: false,
            entered,
        })
    }

    /// The state now (an open breaker whose period has ended reports half-open).
    pub fn state(&self, now: Instant) -> State {
        let inner = self.lock();
        match inner.state {
            State::Open if inner.open_until.is_some_and(|until| now >= until) => State::HalfOpen,
            state => state,
        }
    }

    /// Consecutive trips without a successful close.
    pub fn trips(&self) -> u32 {
        self.lock().trips
    }

    fn record(
        &self,
        generation: u64,
        trial: bool,
        outcome: Outcome,
        now: Instant,
        random: f64,
    ) -> Option<Transition> {
        let mut inner = self.lock();
        if generation != inner.generation {
            return None;
        }
        let (failed, elapsed) = match outcome {
            Outcome::Success(elapsed) => (false, elapsed),
            Outcome::Failure(elapsed) => (true, elapsed),
            Outcome::Ignored => {
                if trial {
                    inner.trials_admitted = inner.trials_admitted.saturating_sub(1);
                }
                return None;
            }
        };
        let slow = elapsed >= self.config.slow_call_duration;
        match inner.state {
            State::Closed => {
                let tally = self.window_add(&mut inner, failed, slow, now);
                (tally.calls >= self.config.minimum_calls && self.exceeds(tally))
                    .then(|| self.trip(&mut inner, now, random))
            }
            State::HalfOpen => {
                inner.trials.add(failed, slow);
                if inner.trials.calls < self.config.half_open_calls {
                    return None;
                }
                let trials = inner.trials;
                Some(if self.exceeds(trials) {
                    self.trip(&mut inner, now, random)
                } else {
                    inner.trips = 0;
                    Self::transition(&mut inner, State::Closed)
                })
            }
            State::Open => None,
        }
    }

    fn exceeds(&self, tally: Tally) -> bool {
        let calls = f64::from(tally.calls.max(1));
        f64::from(tally.failures) / calls >= self.config.failure_rate
            || f64::from(tally.slow) / calls >= self.config.slow_call_rate
    }

    fn trip(&self, inner: &mut Inner, now: Instant, random: f64) -> Transition {
        inner.trips = inner.trips.saturating_add(1);
        // In float seconds, capped before it becomes a Duration: a long outage must not
        // overflow the multiplication.
        let exponent = i32::try_from(inner.trips - 1)
            .unwrap_or(i32::MAX)
            .min(1_000);
        let seconds = self.config.open_duration.as_secs_f64()
            * self.config.backoff_multiplier.max(1.0).powi(exponent);
        let cap = self.config.max_open_duration;
        let base = Duration::try_from_secs_f64(seconds.min(cap.as_secs_f64())).unwrap_or(cap);
        let jitter = base.mul_f64(self.config.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0));
        inner.open_until = Some(now + base + jitter);
        Self::transition(inner, State::Open)
    }

    fn transition(inner: &mut Inner, to: State) -> Transition {
        let transition = Transition {
            from: inner.state,
            to,
        };
        inner.state = to;
        inner.generation += 1;
        inner.recent.clear();
        inner.seconds.clear();
        inner.trials_admitted = 0;
        inner.trials = Tally::default();
        transition
    }

    /// Adds an outcome to the closed-state window and returns the window's tally.
    fn window_add(&self, inner: &mut Inner, failed: bool, slow: bool, now: Instant) -> Tally {
        match self.config.window {
            Window::Count(size) => {
                inner.recent.push_back((failed, slow));
                while inner.recent.len() > size.max(1) as usize {
                    inner.recent.pop_front();
                }
                let mut tally = Tally::default();
                for &(failed, slow) in &inner.recent {
                    tally.add(failed, slow);
                }
                tally
            }
            Window::Time(seconds) => {
                let origin = *inner.origin.get_or_insert(now);
                let second = now.saturating_duration_since(origin).as_secs();
                match inner.seconds.back_mut() {
                    Some((at, tally)) if *at == second => tally.add(failed, slow),
                    _ => {
                        let mut tally = Tally::default();
                        tally.add(failed, slow);
                        inner.seconds.push_back((second, tally));
                    }
                }
                let oldest = second.saturating_sub(u64::from(seconds.max(1)) - 1);
                while inner.seconds.front().is_some_and(|(at, _)| *at < oldest) {
                    inner.seconds.pop_front();
                }
                inner
                    .seconds
                    .iter()
                    .fold(Tally::default(), |mut sum, (_, t)| {
                        sum.calls += t.calls;
                        sum.failures += t.failures;
                        sum.slow += t.slow;
                        sum
                    })
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: Window::Count(10),
            minimum_calls: 5,
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_duration: Duration::from_secs(2),
            open_duration: Duration::from_secs(10),
            backoff_multiplier: 2.0,
            max_open_duration: Duration::from_secs(60),
            jitter: 0.0,
            half_open_calls: 2,
        }
    }

    const FAST: Duration = Duration::from_millis(10);

    fn call(breaker: &Arc<CircuitBreaker>, now: Instant, outcome: Outcome) -> Option<Transition> {
        breaker.try_acquire(now).unwrap().record(outcome, now, 0.5)
    }

    #[test]
    fn opens_at_the_failure_rate_once_the_minimum_calls_are_in() {
        let breaker = CircuitBreaker::new(config());
        let now = Instant::now();
        // Four failures: below the minimum of five calls, so no verdict yet.
        for _ in 0..4 {
            assert_eq!(call(&breaker, now, Outcome::Failure(FAST)), None);
        }
        let opened = call(&breaker, now, Outcome::Failure(FAST)).unwrap();
        assert_eq!((opened.from, opened.to), (State::Closed, State::Open));
        let refused = breaker
            .try_acquire(now + Duration::from_secs(3))
            .unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(7));
    }

    #[test]
    fn stays_closed_below_the_rate() {
        let breaker = CircuitBreaker::new(config());
        let now = Instant::now();
        for i in 0..100 {
            let outcome = if i % 3 == 0 {
                Outcome::Failure(FAST)
            } else {
                Outcome::Success(FAST)
            };
            assert_eq!(call(&breaker, now, outcome), None, "call {i}");
        }
        assert_eq!(breaker.state(now), State::Closed);
    }

    #[test]
    fn slow_calls_open_it_too() {
        let breaker = CircuitBreaker::new(BreakerConfig {
            slow_call_rate: 0.6,
            ..config()
        });
        let now = Instant::now();
        let slow = Outcome::Success(Duration::from_secs(3));
        for _ in 0..4 {
            call(&breaker, now, slow);
        }
        let opened = call(&breaker, now, Outcome::Success(FAST)).unwrap();
        assert_eq!(opened.to, State::Open);
    }

    #[test]
    fn half_open_lets_a_few_trials_through_and_closes_when_they_pass() {
        let breaker = CircuitBreaker::new(config());
        let start = Instant::now();
        for _ in 0..5 {
            call(&breaker, start, Outcome::Failure(FAST));
        }
        let later = start + Duration::from_secs(10);
        assert_eq!(breaker.state(later), State::HalfOpen);
        let first = breaker.try_acquire(later).unwrap();
        let second = breaker.try_acquire(later).unwrap();
        assert!(breaker.try_acquire(later).is_err(), "only two trials");
        assert_eq!(first.record(Outcome::Success(FAST), later, 0.5), None);
        let closed = second.record(Outcome::Success(FAST), later, 0.5).unwrap();
        assert_eq!((closed.from, closed.to), (State::HalfOpen, State::Closed));
        assert_eq!(breaker.trips(), 0);
    }

    #[test]
    fn a_failed_trial_reopens_for_longer_each_time() {
        let breaker = CircuitBreaker::new(config());
        let mut now = Instant::now();
        for _ in 0..5 {
            call(&breaker, now, Outcome::Failure(FAST));
        }
        for expected in [20, 40, 60, 60] {
            now += breaker.try_acquire(now).unwrap_err().retry_after;
            call(&breaker, now, Outcome::Failure(FAST));
            let reopened = call(&breaker, now, Outcome::Success(FAST)).unwrap();
            assert_eq!(reopened.to, State::Open, "one of two trials failed: 50%");
            let refused = breaker.try_acquire(now).unwrap_err();
            assert_eq!(refused.retry_after, Duration::from_secs(expected));
        }
    }

    #[test]
    fn a_long_outage_stays_at_the_cap_without_overflowing() {
        let breaker = CircuitBreaker::new(config());
        let mut now = Instant::now();
        for _ in 0..5 {
            call(&breaker, now, Outcome::Failure(FAST));
        }
        // Hundreds of failed probes: every period stays at the 60 s cap.
        for _ in 0..300 {
            now += breaker.try_acquire(now).unwrap_err().retry_after;
            call(&breaker, now, Outcome::Failure(FAST));
            call(&breaker, now, Outcome::Failure(FAST));
            let wait = breaker.try_acquire(now).unwrap_err().retry_after;
            assert!(wait <= Duration::from_secs(60), "{wait:?}");
        }
        assert_eq!(
            breaker.try_acquire(now).unwrap_err().retry_after,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn jitter_stretches_the_open_period_by_up_to_its_share() {
        let breaker = CircuitBreaker::new(BreakerConfig {
            jitter: 0.5,
            ..config()
        });
        let now = Instant::now();
        for _ in 0..4 {
            call(&breaker, now, Outcome::Failure(FAST));
        }
        breaker
            .try_acquire(now)
            .unwrap()
            .record(Outcome::Failure(FAST), now, 1.0);
        assert_eq!(
            breaker.try_acquire(now).unwrap_err().retry_after,
            Duration::from_secs(15)
        );
    }

    #[test]
    fn an_abandoned_trial_gives_its_slot_back_and_late_outcomes_are_ignored() {
        let breaker = CircuitBreaker::new(config());
        let now = Instant::now();
        // A call admitted while closed finishes after the breaker opened: ignored.
        let late = breaker.try_acquire(now).unwrap();
        for _ in 0..5 {
            call(&breaker, now, Outcome::Failure(FAST));
        }
        let later = now + Duration::from_secs(10);
        assert_eq!(late.record(Outcome::Failure(FAST), later, 0.5), None);
        let trial = breaker.try_acquire(later).unwrap();
        let _other = breaker.try_acquire(later).unwrap();
        drop(trial);
        assert!(
            breaker.try_acquire(later).is_ok(),
            "the dropped trial's slot is free"
        );
    }

    #[test]
    fn the_time_window_forgets_old_calls() {
        let breaker = CircuitBreaker::new(BreakerConfig {
            window: Window::Time(10),
            ..config()
        });
        let start = Instant::now();
        for _ in 0..4 {
            call(&breaker, start, Outcome::Failure(FAST));
        }
        // Eleven seconds on, those failures have left the window: five more calls, one
        // failed, do not open it.
        let later = start + Duration::from_secs(11);
        for i in 0..5 {
            let outcome = if i == 0 {
                Outcome::Failure(FAST)
            } else {
                Outcome::Success(FAST)
            };
            assert_eq!(call(&breaker, later, outcome), None);
        }
        assert_eq!(breaker.state(later), State::Closed);
    }
}
