//! Per-connection activity, for closing client connections that sit idle.
//!
//! A connection is idle when no request is in flight on it (a request counts until its
//! response body has been sent) and nothing has happened for the listener's idle timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Activity counters shared by a connection's requests and its idle watchdog.
#[derive(Debug)]
pub struct Activity {
    since: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `since` of the last request start or end.
    last_ms: AtomicU64,
}

impl Activity {
    /// A fresh connection, active now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            since: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Marks a request as started; it counts as in flight until the guard drops.
    pub fn start_request(self: &Arc<Self>) -> RequestActivity {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        RequestActivity(self.clone())
    }

    /// How long until the connection would become idle, or `None` if it is idle now.
    pub fn idle_in(&self, timeout: Duration) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(timeout);
        }
        let last = self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        let idle_at = last + timeout;
        let now = Instant::now();
        (idle_at > now).then(|| idle_at - now)
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub struct RequestActivity(Arc<Activity>);

impl Drop for RequestActivity {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once `activity` has been idle for `timeout`.
pub async fn idle(activity: &Activity, timeout: Duration) {
    while let Some(wait) = activity.idle_in(timeout) {
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_after_timeout_without_requests() {
        let activity = Activity::new();
        let started = Instant::now();
        idle(&activity, Duration::from_secs(30)).await;
        assert!(started.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_busy() {
        let activity = Activity::new();
        let request = activity.start_request();
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(activity.idle_in(Duration::from_secs(30)).is_some());
        drop(request);
        // The clock restarts at the end of the request.
        assert_eq!(
            activity.idle_in(Duration::from_secs(30)),
            Some(Duration::from_secs(30))
        );
    }
}
