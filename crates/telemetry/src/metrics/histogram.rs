//! A latency histogram that many cores can record into at once without taking a lock.
//!
//! prometheus-client's own histogram takes a mutex on every observation, so two cores serving
//! the same route would queue on it. Here each bucket is its own counter and the sum is kept
//! in whole nanoseconds, each kept per thread (`per_thread.rs`), so an observation is two
//! plain additions to this thread's slots, no atomic read-modify-write. The last
//! traced observation of each bucket is kept as an exemplar (trace id and value); storing one
//! only ever *tries* a lock and skips on contention, so a traced request never waits either.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::per_thread::PerThread;

/// Upper bounds, in seconds, from a tenth of a millisecond (a proxy hop on loopback) to a
/// minute (a long download or a stuck upstream).
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Buckets plus the implicit `+Inf` one.
const SLOTS: usize = LATENCY_BUCKETS.len() + 1;

/// A traced observation shown next to its bucket (OpenMetrics exemplar).
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// The trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The observed value in seconds.
    pub value: f64,
    /// When it was observed.
    pub at: SystemTime,
}

impl Exemplar {
    /// The OpenMetrics annotation for a bucket line: ` # {trace_id="…"} value timestamp`.
    pub fn annotation(&self) -> String {
        let mut text = String::with_capacity(80);
        let at = self
            .at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let _ = write!(
            text,
            " # {{trace_id=\"{}\"}} {} {at:.3}",
            self.trace_id, self.value
        );
        text
    }
}

#[derive(Debug)]
struct Core {
    counts: [PerThread; SLOTS],
    sum_nanos: PerThread,
    exemplars: [Mutex<Option<Exemplar>>; SLOTS],
}

/// A lock-free latency histogram; clones share the same counts.
#[derive(Clone, Debug)]
pub struct LatencyHistogram(Arc<Core>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self(Arc::new(Core {
            counts: std::array::from_fn(|_| PerThread::default()),
            sum_nanos: PerThread::default(),
            exemplars: std::array::from_fn(|_| Mutex::new(None)),
        }))
    }
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        self.record(elapsed);
    }

    /// Records one observation of a traced request and keeps it as its bucket's exemplar.
    pub fn observe_traced(&self, elapsed: Duration, trace_id: String) {
        let slot = self.record(elapsed);
        // Never wait: if a scrape or another traced request holds it, this one is skipped.
        if let Ok(mut exemplar) = self.0.exemplars[slot].try_lock() {
            *exemplar = Some(Exemplar {
                trace_id,
                value: elapsed.as_secs_f64(),
                at: SystemTime::now(),
            });
        }
    }

    fn record(&self, elapsed: Duration) -> usize {
        let seconds = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.0.counts[slot].add(1);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.add(nanos);
        slot
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.counts.iter().map(PerThread::sum).sum()
    }

    /// Sum of all observations, in seconds.
    pub fn sum(&self) -> f64 {
        self.0.sum_nanos.sum() as f64 / 1e9
    }

    /// The exemplar of the bucket whose upper bound is `le` (`f64::INFINITY` for `+Inf`).
    pub fn exemplar(&self, le: f64) -> Option<Exemplar> {
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&bound| bound == le)
            .or_else(|| le.is_infinite().then_some(LATENCY_BUCKETS.len()))?;
        self.0.exemplars[slot]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// `(upper bound, count)` per bucket, `+Inf` last, and the total: the encoder makes the
    /// counts cumulative itself.
    fn buckets(&self) -> (Vec<(f64, u64)>, u64) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(SLOTS);
        for (slot, count) in self.0.counts.iter().enumerate() {
            let count = count.sum();
            total += count;
            let bound = LATENCY_BUCKETS.get(slot).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, count));
        }
        (buckets, total)
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (buckets, count) = self.buckets();
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(80)); // ≤ 0.1 ms
        h.observe(Duration::from_micros(100)); // exactly on a bound: that bucket
        h.observe(Duration::from_millis(3)); // ≤ 5 ms
        h.observe(Duration::from_secs(120)); // +Inf
        let (buckets, count) = h.buckets();
        assert_eq!(count, 4);
        assert_eq!(buckets[0], (0.0001, 2));
        let five_ms = buckets.iter().find(|(b, _)| *b == 0.005).unwrap();
        assert_eq!(five_ms.1, 1);
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 1));
        assert!((h.sum() - 120.00318).abs() < 1e-9, "sum {}", h.sum());
    }

    #[test]
    fn clones_share_counts_across_threads() {
        let h = LatencyHistogram::default();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        h.observe(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.count(), 40_000);
        assert!((h.sum() - 40.0).abs() < 1e-6);
    }

    #[test]
    fn a_traced_observation_becomes_its_buckets_exemplar() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_millis(2));
        assert_eq!(h.exemplar(0.0025), None);
        h.observe_traced(Duration::from_millis(2), "ab".repeat(16));
        let exemplar = h.exemplar(0.0025).unwrap();
        assert_eq!(exemplar.trace_id, "ab".repeat(16));
        assert_eq!(exemplar.value, 0.002);
        assert!(
            exemplar
                .annotation()
                .starts_with(" # {trace_id=\"abababababababababababababababab\"} 0.002 ")
        );
        assert_eq!(h.exemplar(0.005), None);
    }
}
