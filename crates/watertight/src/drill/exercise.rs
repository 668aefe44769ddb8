//! The drill's phases against a running proxy: baseline, take-out and restore, each waiting
//! on the admin API and the probe results until what it waits for has happened and traffic
//! has settled, or until its time is up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::admin::{AdminApi, ClusterView};
use super::plan::Plan;
use super::report::{Phase, Report, flowing_since, millis, sent_between};
use super::traffic::{PROBE_TIMEOUT, ProbeResult, Target, Traffic};
use super::{DrillArgs, note};

/// How often the drill reads `GET /clusters` while waiting for a change.
const POLL: Duration = Duration::from_millis(50);
/// How often a manual failback is asked for again while traffic has not returned.
const FAILBACK_REPEAT: Duration = Duration::from_millis(500);
/// After an interrupt, how long the drill still waits to see the failback.
const INTERRUPTED_FAILBACK_WAIT: Duration = Duration::from_secs(2);
/// Attempts at putting one endpoint back before the drill says how to do it by hand.
const RESTORE_ATTEMPTS: u32 = 3;

/// A drill that ended without a report, and its exit status.
pub(super) struct Abort {
    /// What happened, for stderr.
    pub(super) message: String,
    /// The exit status.
    pub(super) code: u8,
}

/// How a waiting phase ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PhaseEnd {
    /// What it waited for happened, and traffic flowed for `--settle`.
    Settled,
    /// `--phase-timeout` passed first.
    TimedOut,
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// What the take-out phase saw.
pub(super) struct Failover {
    /// When the admin API first showed another group active, and which.
    pub(super) detected: Option<(Instant, u32)>,
    /// The cluster as last read, for counters and for saying what went wrong.
    pub(super) last: Option<ClusterView>,
    /// How the phase ended.
    pub(super) end: PhaseEnd,
}

/// What the restore phase saw.
pub(super) struct Failback {
    /// When the admin API showed the original group active again.
    pub(super) returned: Option<Instant>,
    /// Whether the drill asked for it (`failback: manual`).
    pub(super) requested: bool,
    /// The cluster as last read.
    pub(super) last: Option<ClusterView>,
    /// How the phase ended.
    pub(super) end: PhaseEnd,
}

/// One drill in progress: what it works on and the probe results so far.
pub(super) struct Drill {
    pub(super) admin: AdminApi,
    pub(super) plan: Plan,
    pub(super) target: Target,
    pub(super) args: DrillArgs,
    /// Every probe result in so far.
    pub(super) log: Vec<ProbeResult>,
    /// Set by SIGINT or SIGTERM.
    pub(super) interrupted: Arc<AtomicBool>,
}

impl Drill {
    /// Runs the phases and reports; `Err` when the drill could not be carried out.
    pub(super) async fn run(mut self) -> Result<Report, Abort> {
        let mut traffic = Traffic::start(self.target.clone(), self.args.rate);
        let started = Instant::now();
        note(&format!(
            "baseline: {} probes/s through {} for {} ms",
            self.args.rate,
            self.target,
            self.args.settle.as_millis()
        ));
        self.baseline(&mut traffic, started).await;
        if let Err(abort) = self.check_baseline(started) {
            traffic.stop(&mut self.log).await;
            return Err(abort);
        }
        let before = self.admin.cluster(&self.plan.cluster).await.ok().flatten();

        let t0 = Instant::now();
        note(&format!(
            "take-out: {} {}",
            self.args.action.name(),
            self.plan.endpoints.join(", ")
        ));
        let (taken, take_out_error) = self.take_out().await;
        let failover = match &take_out_error {
            None => self.await_failover(&mut traffic, t0).await,
            Some(_) => Failover {
                detected: None,
                last: None,
                end: PhaseEnd::TimedOut,
            },
        };

        // From here on, whatever happened, what was taken out goes back.
        let restore_at = Instant::now();
        note(&format!("restore: enable {}", taken.join(", ")));
        let restore_problems = self.restore(&taken).await;
        let failback = self.await_failback(&mut traffic, restore_at).await;
        let end = Instant::now();
        traffic.stop(&mut self.log).await;

        if let Some(error) = take_out_error {
            let mut message = error;
            for problem in restore_problems {
                message.push_str(&format!("\n  {problem}"));
            }
            return Err(Abort { message, code: 2 });
        }
        let phases = [
            Phase {
                name: "baseline",
                start: started,
                end: t0,
            },
            Phase {
                name: "take_out",
                start: t0,
                end: restore_at,
            },
            Phase {
                name: "restore",
                start: restore_at,
                end,
            },
        ];
        Ok(self.report(&phases, before, &failover, &failback, restore_problems))
    }

    /// Probes for `--settle`, and until the first result is in.
    async fn baseline(&mut self, traffic: &mut Traffic, started: Instant) {
        let deadline = started + self.args.settle;
        let latest = deadline + PROBE_TIMEOUT * 2;
        loop {
            traffic.collect(&mut self.log);
            let now = Instant::now();
            if self.interrupted() || now >= latest || (now >= deadline && !self.log.is_empty()) {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A target that no probe gets through before the drill measures nothing: refuse to go on.
    fn check_baseline(&self, started: Instant) -> Result<(), Abort> {
        if self.interrupted() {
            return Err(Abort {
                message: "interrupted during the baseline; nothing was taken out".to_owned(),
                code: 1,
            });
        }
        let probes = sent_between(&self.log, started, Instant::now());
        if probes.iter().any(|p| p.passed()) {
            return Ok(());
        }
        let why = probes
            .iter()
            .find_map(|p| p.outcome.as_ref().err().cloned())
            .unwrap_or_else(|| "no probe finished".to_owned());
        Err(Abort {
            message: format!(
                "no probe through {} passed during the baseline ({why}), so the drill would \
                 measure nothing; nothing was taken out. Check --target: it must reach cluster \
                 {:?} through the proxy",
                self.target, self.plan.cluster
            ),
            code: 2,
        })
    }

    /// Takes the planned endpoints out, in order; those taken out, and the error that
    /// stopped it, if one did.
    async fn take_out(&self) -> (Vec<String>, Option<String>) {
        let action = self.args.action.name();
        let mut taken = Vec::new();
        for address in &self.plan.endpoints {
            match self
                .admin
                .set_endpoint(&self.plan.cluster, address, action)
                .await
            {
                Ok(()) => taken.push(address.clone()),
                Err(error) => {
                    let error = format!(
                        "could not {action} {address} in cluster {:?} through {}: {error}",
                        self.plan.cluster,
                        self.admin.base()
                    );
                    return (taken, Some(error));
                }
            }
        }
        (taken, None)
    }

    /// Waits until another group is active and probes pass on it for `--settle`.
    async fn await_failover(&mut self, traffic: &mut Traffic, t0: Instant) -> Failover {
        let deadline = t0 + self.args.phase_timeout;
        let mut failover = Failover {
            detected: None,
            last: None,
            end: PhaseEnd::TimedOut,
        };
        loop {
            traffic.collect(&mut self.log);
            if let Ok(Some(view)) = self.admin.cluster(&self.plan.cluster).await {
                if failover.detected.is_none()
                    && let Some(active) = view.active_priority
                    && active != self.plan.original_priority
                {
                    failover.detected = Some((Instant::now(), active));
                    note(&format!(
                        "failed over to priority {active} after {} ms",
                        millis(t0.elapsed())
                    ));
                }
                failover.last = Some(view);
            }
            let now = Instant::now();
            if let Some((at, _)) = failover.detected
                && self.flowing_for(t0, at, now)
            {
                failover.end = PhaseEnd::Settled;
                return failover;
            }
            if self.interrupted() {
                failover.end = PhaseEnd::Interrupted;
                return failover;
            }
            if now >= deadline {
                return failover;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Enables every endpoint taken out (retrying a few times); a sentence for each that
    /// could not be, with the command that does it.
    async fn restore(&self, taken: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        for address in taken {
            let mut result = Ok(());
            for attempt in 0..RESTORE_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                result = self
                    .admin
                    .set_endpoint(&self.plan.cluster, address, "enable")
                    .await;
                if result.is_ok() {
                    break;
                }
            }
            if let Err(error) = result {
                let problem = format!(
                    "could not put {address} back ({error}); run: {}",
                    self.admin.curl_post(&self.plan.cluster, address, "enable")
                );
                eprintln!("watertight drill: {problem}");
                problems.push(problem);
            }
        }
        problems
    }

    /// Waits until the original group is active again (asking for it if the cluster fails
    /// back only when asked) and probes pass on it for `--settle`.
    async fn await_failback(&mut self, traffic: &mut Traffic, restore_at: Instant) -> Failback {
        let deadline = restore_at + self.args.phase_timeout;
        let mut failback = Failback {
            returned: None,
            requested: false,
            last: None,
            end: PhaseEnd::TimedOut,
        };
        let mut asked: Option<Instant> = None;
        let mut interrupted_at: Option<Instant> = None;
        loop {
            traffic.collect(&mut self.log);
            if failback.returned.is_none()
                && self.plan.manual_failback()
                && asked.is_none_or(|at| at.elapsed() >= FAILBACK_REPEAT)
            {
                if asked.is_none() {
                    note("failback: manual, asking for it");
                }
                asked = Some(Instant::now());
                failback.requested = true;
                let _ = self.admin.fail_back(&self.plan.cluster).await;
            }
            if let Ok(Some(view)) = self.admin.cluster(&self.plan.cluster).await {
                if failback.returned.is_none()
                    && view.active_priority == Some(self.plan.original_priority)
                {
                    failback.returned = Some(Instant::now());
                    note(&format!(
                        "failed back to priority {} after {} ms",
                        self.plan.original_priority,
                        millis(restore_at.elapsed())
                    ));
                }
                failback.last = Some(view);
            }
            let now = Instant::now();
            if let Some(at) = failback.returned
                && self.flowing_for(restore_at, at, now)
            {
                failback.end = PhaseEnd::Settled;
                return failback;
            }
            // Interrupted: confirm the failback, but do not wait for traffic to settle.
            if self.interrupted() {
                let since = *interrupted_at.get_or_insert(now);
                if failback.returned.is_some() || now - since >= INTERRUPTED_FAILBACK_WAIT {
                    failback.end = PhaseEnd::Interrupted;
                    return failback;
                }
            }
            if now >= deadline {
                return failback;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether probes of the phase that began at `start` have passed, with none failing,
    /// since a moment after `after`, for long enough: `--settle`, and at least the probe
    /// timeout so that no earlier probe can still fail.
    fn flowing_for(&self, start: Instant, after: Instant, now: Instant) -> bool {
        let window = self.args.settle.max(PROBE_TIMEOUT);
        let probes = sent_between(&self.log, start, now);
        flowing_since(&probes, after).is_some_and(|since| now - since >= window)
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Acquire)
    }
}
