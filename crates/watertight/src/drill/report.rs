//! What a drill found: the probes of each phase summed up, the outage measured from them, and
//! the report printed as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::traffic::ProbeResult;

/// A stretch of the drill; a probe belongs to the phase it was sent in.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    /// `baseline`, `take_out` or `restore`.
    pub name: &'static str,
    /// When it began.
    pub start: Instant,
    /// When the next began, or probing stopped.
    pub end: Instant,
}

/// One phase in the report.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// `baseline`, `take_out` or `restore`.
    pub name: &'static str,
    /// How long it lasted.
    pub duration_ms: u64,
    /// Probes sent in it.
    pub sent: usize,
    /// Of those, how many failed.
    pub failed: usize,
    /// Its longest run of failed probes, first failure sent to next pass sent.
    pub longest_outage_ms: u64,
    /// Failed probes by what went wrong, e.g. `{"503 no-healthy-endpoint": 3}`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, usize>,
}

/// The drill's result: `watertight drill --json` prints it as one JSON object.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The cluster drilled.
    pub cluster: String,
    /// Where probes went.
    pub target: String,
    /// Probes sent per second.
    pub rate: u32,
    /// How endpoints were taken out: `disable` or `drain`.
    pub action: &'static str,
    /// The endpoints taken out (the healthy ones of the original priority group).
    pub endpoints: Vec<String>,
    /// The priority group traffic went to before the drill.
    pub original_priority: u32,
    /// The group traffic failed over to; `null` if none took over.
    pub standby_priority: Option<u32>,
    /// Requests (or TCP sessions) the standby group's endpoints counted during the take-out:
    /// evidence that the probes went through the cluster and the standby served them.
    pub standby_requests: Option<u64>,
    /// The cluster's failback mode: `auto` or `manual`.
    pub failback: String,
    /// Whether the drill asked for the failback (`POST /clusters/{c}/failback`), as a
    /// `manual` cluster needs.
    pub failback_requested: bool,
    /// Take-out → the admin API shows another active group.
    pub time_to_detect_ms: Option<u64>,
    /// Take-out → the first passing probe sent after detection with none failing after it.
    pub time_to_failover_ms: Option<u64>,
    /// Restore → the admin API shows the original group active again.
    pub time_to_failback_ms: Option<u64>,
    /// The longest run of failed probes over the whole drill.
    pub outage_ms: u64,
    /// The longest outage that passes (`--max-outage`).
    pub max_outage_ms: u64,
    /// Baseline, take-out and restore.
    pub phases: Vec<PhaseReport>,
    /// Failover and failback both happened, and traffic flowed on the standby.
    pub completed: bool,
    /// Completed, and the outage within `max_outage_ms`: the exit status is 0.
    pub passed: bool,
    /// Why it did not pass, one sentence each.
    pub problems: Vec<String>,
    /// What looks wrong without failing the drill.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The probes sent in `[start, end)`, by the time they were sent.
pub fn sent_between(log: &[ProbeResult], start: Instant, end: Instant) -> Vec<&ProbeResult> {
    let mut probes: Vec<&ProbeResult> = log
        .iter()
        .filter(|p| p.sent >= start && p.sent < end)
        .collect();
    probes.sort_by_key(|p| p.sent);
    probes
}

/// When traffic flowed again: the first passing probe sent at or after `after` that no
/// failed probe follows. `probes` are in the order they were sent.
pub fn flowing_since(probes: &[&ProbeResult], after: Instant) -> Option<Instant> {
    let last_failure = probes.iter().rev().find(|p| !p.passed()).map(|p| p.sent);
    probes
        .iter()
        .find(|p| p.passed() && p.sent >= after && last_failure.is_none_or(|f| p.sent > f))
        .map(|p| p.sent)
}

/// The longest run of failed probes: from the first failure's sending to the next passing
/// probe's, or to `end` when none passed after it. `probes` are in the order they were sent.
pub fn longest_outage(probes: &[&ProbeResult], end: Instant) -> Duration {
    let mut longest = Duration::ZERO;
    let mut down_since: Option<Instant> = None;
    for probe in probes {
        match (probe.passed(), down_since) {
            (false, None) => down_since = Some(probe.sent),
            (true, Some(since)) => {
                longest = longest.max(probe.sent - since);
                down_since = None;
            }
            _ => {}
        }
    }
    if let Some(since) = down_since {
        longest = longest.max(end.saturating_duration_since(since));
    }
    longest
}

/// Sums up one phase's probes.
pub fn summarize(phase: Phase, log: &[ProbeResult]) -> PhaseReport {
    let probes = sent_between(log, phase.start, phase.end);
    let mut failures = BTreeMap::new();
    for probe in &probes {
        if let Err(why) = &probe.outcome {
            *failures.entry(why.clone()).or_insert(0) += 1;
        }
    }
    PhaseReport {
        name: phase.name,
        duration_ms: millis(phase.end - phase.start),
        sent: probes.len(),
        failed: failures.values().sum(),
        longest_outage_ms: millis(longest_outage(&probes, phase.end)),
        failures,
    }
}

/// Whole milliseconds, rounded to nearest.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from((duration.as_micros() + 500) / 1000).unwrap_or(u64::MAX)
}

impl Report {
    /// The report for people: phases as a table, then the times and the verdict.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
        let _ = writeln!(
            out,
            "drill of cluster {:?} through {} ({} probes/s)",
            self.cluster, self.target, self.rate
        );
        let _ = writeln!(
            out,
            "  took out ({}): {} (priority {})",
            self.action,
            self.endpoints.join(", "),
            self.original_priority
        );
        let standby = self
            .standby_priority
            .map_or_else(|| "none took over".to_owned(), |p| format!("priority {p}"));
        let served = self.standby_requests.map_or_else(String::new, |n| {
            format!(", {n} requests served during the take-out")
        });
        let _ = writeln!(out, "  standby: {standby}{served}");
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<10} {:>10} {:>6} {:>7} {:>15}",
            "phase", "duration", "sent", "failed", "longest outage"
        );
        for phase in &self.phases {
            let _ = writeln!(
                out,
                "  {:<10} {:>7} ms {:>6} {:>7} {:>12} ms",
                phase.name, phase.duration_ms, phase.sent, phase.failed, phase.longest_outage_ms
            );
            for (why, count) in &phase.failures {
                let _ = writeln!(out, "  {:<10} {count:>5} × {why}", "");
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "  time to detect     {}", ms(self.time_to_detect_ms));
        let _ = writeln!(out, "  time to fail over  {}", ms(self.time_to_failover_ms));
        let how = if self.failback_requested {
            "failback: manual, requested by the drill"
        } else {
            "failback: auto"
        };
        let _ = writeln!(
            out,
            "  time to fail back  {} ({how})",
            ms(self.time_to_failback_ms)
        );
        let _ = writeln!(
            out,
            "  outage             {} ms (at most {} ms passes)",
            self.outage_ms, self.max_outage_ms
        );
        for warning in &self.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
        let _ = writeln!(out);
        if self.passed {
            let _ = writeln!(out, "passed");
        } else {
            let _ = writeln!(out, "FAILED");
            for problem in &self.problems {
                let _ = writeln!(out, "  - {problem}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(start: Instant, pattern: &str) -> Vec<ProbeResult> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| ProbeResult {
                sent: start + Duration::from_millis(20 * i as u64),
                outcome: if c == '+' {
                    Ok(())
                } else {
                    Err("503 no-healthy-endpoint".to_owned())
                },
            })
            .collect()
    }

    #[test]
    fn the_longest_run_of_failures_is_the_outage() {
        let start = Instant::now();
        let log = probes(start, "++-+---++");
        let sorted = sent_between(&log, start, start + Duration::from_secs(1));
        // Failures sent at 80, 100, 120 ms; the next pass at 140 ms.
        assert_eq!(
            longest_outage(&sorted, start + Duration::from_secs(1)),
            Duration::from_millis(60)
        );
    }

    #[test]
    fn failures_up_to_the_end_count_until_the_end() {
        let start = Instant::now();
        let log = probes(start, "+--");
        let sorted = sent_between(&log, start, start + Duration::from_secs(1));
        assert_eq!(
            longest_outage(&sorted, start + Duration::from_millis(100)),
            Duration::from_millis(80)
        );
    }

    #[test]
    fn traffic_flows_from_the_first_pass_after_detection_that_no_failure_follows() {
        let start = Instant::now();
        let log = probes(start, "+--+-++++");
        let sorted = sent_between(&log, start, start + Duration::from_secs(1));
        // The last failure was sent at 80 ms; the pass at 100 ms starts the flow.
        assert_eq!(
            flowing_since(&sorted, start),
            Some(start + Duration::from_millis(100))
        );
        // Detected later: the first pass sent after detection counts.
        assert_eq!(
            flowing_since(&sorted, start + Duration::from_millis(130)),
            Some(start + Duration::from_millis(140))
        );
        let log = probes(start, "++--");
        let sorted = sent_between(&log, start, start + Duration::from_secs(1));
        assert_eq!(flowing_since(&sorted, start), None);
    }

    #[test]
    fn a_phase_counts_only_the_probes_sent_in_it() {
        let start = Instant::now();
        let log = probes(start, "++-+-");
        let phase = Phase {
            name: "take_out",
            start: start + Duration::from_millis(40),
            end: start + Duration::from_millis(80),
        };
        let report = summarize(phase, &log);
        assert_eq!((report.sent, report.failed), (2, 1));
        assert_eq!(report.failures["503 no-healthy-endpoint"], 1);
        assert_eq!(report.longest_outage_ms, 20);
    }
}
