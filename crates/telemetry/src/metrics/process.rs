//! Process saturation, read from `/proc/self` at scrape time: CPU time, resident memory, open
//! file descriptors against their limit.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::scrape;

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ, 100 on every Linux port that
/// matters).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let e = &mut encoder;
        if let Some(cpu) = cpu_seconds() {
            scrape::counter(
                e,
                "process_cpu",
                "User and system CPU time spent",
                Some(Unit::Seconds),
                cpu,
            )?;
        }
        if let Some(rss) = resident_bytes() {
            scrape::gauge(
                e,
                "process_resident_memory",
                "Resident set size",
                Some(Unit::Bytes),
                rss,
            )?;
        }
        if let Some(open) = open_fds() {
            scrape::gauge(e, "process_open_fds", "Open file descriptors", None, open)?;
        }
        if let Some(max) = max_fds() {
            scrape::gauge(
                e,
                "process_max_fds",
                "Limit on open file descriptors",
                None,
                max,
            )?;
        }
        Ok(())
    }
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may itself hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

fn resident_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
