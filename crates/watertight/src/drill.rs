//! `watertight drill`: a failover exercise against a running proxy.
//!
//! The drill sends probe traffic through the proxy, takes the healthy endpoints of a cluster's
//! active priority group out through the admin API (disable or drain), and measures how long
//! the proxy takes to notice and to move traffic to the standby group, and how many probes
//! fail on the way. Then it puts the endpoints back and measures the failback. Whatever
//! happens after the take-out — an error, a timeout, Ctrl-C — it puts back what it took out.
//!
//! ```text
//! watertight drill --admin http://127.0.0.1:9901 --cluster checkout \
//!     --target http://127.0.0.1:8080/checkout --json
//! ```
//!
//! Phases, each probe counted in the phase it was sent in:
//! 1. `baseline` (`--settle`): traffic as usual; a target that fails throughout stops the
//!    drill before anything is touched.
//! 2. `take_out`: from the POSTs until traffic has flowed on the standby for `--settle`.
//! 3. `restore`: from the POSTs that enable the endpoints (and, for `failback: manual`, ask
//!    for the failback) until traffic has flowed on the original group for `--settle`.
//!
//! Exit status: 0 passed; 1 failover or failback did not complete within `--phase-timeout`,
//! the outage was longer than `--max-outage`, or the drill was interrupted; 2 the drill could
//! not start (admin API unreachable, unknown cluster, no standby group, failing target).

pub(crate) mod admin;
mod exercise;
mod plan;
mod report;
mod traffic;
mod verdict;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::serve;
use admin::AdminApi;
use exercise::{Abort, Drill};
use plan::Plan;
use traffic::Target;

/// Options of `watertight drill`.
#[derive(clap::Args, Debug)]
pub struct DrillArgs {
    /// The admin API of the proxy to drill.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    admin: String,
    /// The cluster to fail over; it needs a standby priority group.
    #[arg(long)]
    cluster: String,
    /// Where probes go through the proxy: http://HOST:PORT/PATH (a GET; any status below 500
    /// passes) or tcp://HOST:PORT (a connection the proxy keeps open passes).
    #[arg(long)]
    target: String,
    /// Probes per second.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rate: u32,
    /// How the primary endpoints are taken out.
    #[arg(long, value_enum, default_value_t = Action::Disable)]
    action: Action,
    /// The longest run of failed probes that still passes.
    #[arg(long, default_value = "5s", value_parser = duration)]
    max_outage: Duration,
    /// The baseline's length, and how long traffic must flow to count as failed over (or
    /// back); the latter is at least the 1 s probe timeout, so no earlier probe can still fail.
    #[arg(long, default_value = "1s", value_parser = duration)]
    settle: Duration,
    /// The longest wait for the failover, and again for the failback.
    #[arg(long, default_value = "20s", value_parser = duration)]
    phase_timeout: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// How the drill takes the primary endpoints out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// No new traffic, and open TCP sessions may be closed (a crash, as traffic sees it).
    Disable,
    /// No new traffic; open exchanges and sessions finish (a planned maintenance).
    Drain,
}

impl Action {
    /// The admin API's word for it.
    fn name(self) -> &'static str {
        match self {
            Action::Disable => "disable",
            Action::Drain => "drain",
        }
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    watertight_config::Duration::parse(text).map(|d| d.get())
}

/// Runs a drill; the exit status says how it went (see the module docs).
pub fn run(args: DrillArgs) -> ExitCode {
    let (admin, target) = match (AdminApi::new(&args.admin), Target::parse(&args.target)) {
        (Ok(admin), Ok(target)) => (admin, target),
        (Err(message), _) | (_, Err(message)) => return refuse(&message),
    };
    serve::block_on(async move {
        let clusters = match admin.clusters().await {
            Ok(clusters) => clusters,
            Err(error) => {
                return refuse(&format!(
                    "cannot read the clusters from the admin API at {}: {error}; is the proxy \
                     running, and is --admin its admin address?",
                    admin.base()
                ));
            }
        };
        let plan = match Plan::new(&clusters, &args.cluster, admin.base()) {
            Ok(plan) => plan,
            Err(message) => return refuse(&message),
        };
        let json = args.json;
        let drill = Drill {
            admin,
            plan,
            target,
            args,
            log: Vec::new(),
            interrupted: on_signal(),
        };
        match drill.run().await {
            Ok(report) => {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                } else {
                    print!("{}", report.text());
                }
                if report.passed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(Abort { message, code }) => {
                eprintln!("watertight drill: {message}");
                ExitCode::from(code)
            }
        }
    })
}

fn refuse(message: &str) -> ExitCode {
    eprintln!("watertight drill: {message}");
    ExitCode::from(2)
}
/// Progress on stderr, so stdout carries only the report.
fn note(message: &str) {
    eprintln!("watertight drill: {message}");
}

/// A flag set by SIGINT or SIGTERM: the drill then stops waiting, puts the endpoints back and
/// reports, rather than dying with them taken out.
fn on_signal() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return flag;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            if !set.swap(true, Ordering::AcqRel) {
                note("interrupted: putting the endpoints back");
            }
        }
    });
    flag
}
