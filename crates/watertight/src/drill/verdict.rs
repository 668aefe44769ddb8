//! The verdict: from what the phases saw and the probe log, the times, the outage, whether
//! the drill completed and passed, and why not.

use super::admin::ClusterView;
use super::exercise::{Drill, Failback, Failover, PhaseEnd};
use super::plan;
use super::report::{
    Phase, Report, flowing_since, longest_outage, millis, sent_between, summarize,
};

impl Drill {
    /// The report of a drill that ran its phases.
    pub(super) fn report(
        &self,
        phases: &[Phase; 3],
        before: Option<ClusterView>,
        failover: &Failover,
        failback: &Failback,
        restore_problems: Vec<String>,
    ) -> Report {
        let [baseline, take_out, restore] = phases;
        let (t0, restore_at, end) = (take_out.start, restore.start, restore.end);
        let all = sent_between(&self.log, baseline.start, end);
        let outage = longest_outage(&all, end);
        let take_out_probes = sent_between(&self.log, t0, restore_at);
        let restore_probes = sent_between(&self.log, restore_at, end);
        let flowed = failover
            .detected
            .and_then(|(at, _)| flowing_since(&take_out_probes, at));
        let flowed_back = failback
            .returned
            .and_then(|at| flowing_since(&restore_probes, at));
        let original = self.plan.original_priority;
        let timeout = self.args.phase_timeout.as_millis();

        let mut problems = Vec::new();
        // Cut short, the phases say nothing about how traffic would have settled.
        let interrupted =
            failover.end == PhaseEnd::Interrupted || failback.end == PhaseEnd::Interrupted;
        if interrupted {
            problems.push("the drill was interrupted".to_owned());
        }
        match failover.detected {
            None => problems.push(format!(
                "no other priority group took over within {timeout} ms (--phase-timeout): {}",
                state_of(failover.last.as_ref())
            )),
            Some((at, active)) if flowed.is_none() && !interrupted => problems.push(format!(
                "traffic failed over to priority {active} after {} ms, but probes through {} did \
                 not pass steadily before the phase ended",
                millis(at - t0),
                self.target
            )),
            Some(_) => {}
        }
        match failback.returned {
            None => problems.push(format!(
                "traffic did not return to priority {original} within {timeout} ms of putting \
                 the endpoints back: {}",
                state_of(failback.last.as_ref())
            )),
            Some(_) if flowed_back.is_none() && !interrupted => problems.push(format!(
                "traffic returned to priority {original}, but probes through {} did not pass \
                 steadily afterwards",
                self.target
            )),
            Some(_) => {}
        }
        problems.extend(restore_problems);
        let completed = problems.is_empty();
        if outage > self.args.max_outage {
            problems.push(format!(
                "the outage of {} ms is longer than --max-outage {} ms",
                millis(outage),
                millis(self.args.max_outage)
            ));
        }

        let standby_priority = failover.detected.map(|(_, p)| p);
        let standby_requests = match (&before, &failover.last, standby_priority) {
            (Some(before), Some(after), Some(standby)) => {
                Some(requests_of(after, standby).saturating_sub(requests_of(before, standby)))
            }
            _ => None,
        };
        let mut warnings = Vec::new();
        if standby_requests == Some(0) && take_out_probes.iter().any(|p| p.passed()) {
            warnings.push(format!(
                "probes passed during the take-out, but the standby endpoints of {:?} counted \
                 no requests: does {} route to this cluster, or answer from a cache?",
                self.plan.cluster, self.target
            ));
        }

        Report {
            cluster: self.plan.cluster.clone(),
            target: self.target.to_string(),
            rate: self.args.rate,
            action: self.args.action.name(),
            endpoints: self.plan.endpoints.clone(),
            original_priority: original,
            standby_priority,
            standby_requests,
            failback: self.plan.failback.clone(),
            failback_requested: failback.requested,
            time_to_detect_ms: failover.detected.map(|(at, _)| millis(at - t0)),
            time_to_failover_ms: flowed.map(|at| millis(at - t0)),
            time_to_failback_ms: failback.returned.map(|at| millis(at - restore_at)),
            outage_ms: millis(outage),
            max_outage_ms: millis(self.args.max_outage),
            phases: phases.iter().map(|p| summarize(*p, &self.log)).collect(),
            completed,
            passed: problems.is_empty(),
            problems,
            warnings,
        }
    }
}

/// Requests the endpoints of group `priority` have counted.
fn requests_of(cluster: &ClusterView, priority: u32) -> u64 {
    cluster
        .endpoints
        .iter()
        .filter(|e| e.priority == priority)
        .map(|e| e.requests)
        .sum()
}

/// `active_priority …; endpoints: …` for a problem sentence.
fn state_of(cluster: Option<&ClusterView>) -> String {
    match cluster {
        Some(c) => format!(
            "active_priority is {}; endpoints: {}",
            c.active_priority
                .map_or_else(|| "null".to_owned(), |p| p.to_string()),
            plan::describe(&c.endpoints)
        ),
        None => "the admin API did not answer".to_owned(),
    }
}
