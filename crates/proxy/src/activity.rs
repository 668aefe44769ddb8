//! Per-connection activity, for closing client connections that sit idle or send their
//! request headers too slowly.
//!
//! A connection is idle when no request is in flight on it (a request counts until its
//! response body has been sent) and no request has started or ended for the listener's idle
//! timeout. The header-read clock starts when bytes of a new HTTP/1 request arrive while no
//! request is in flight, and stops when the request's head has been parsed; so a keep-alive
//! connection waiting quietly for its next request is governed by the idle timeout alone, and a
//! client trickling a request head (slowloris) by the header-read timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Activity counters shared by a connection's requests, its socket and its watchdog.
#[derive(Debug)]
pub struct Activity {
    since: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `since` of the last request start or end.
    last_ms: AtomicU64,
    /// Milliseconds after `since` (plus one, so zero means "not reading") at which bytes of
    /// a request head started arriving with no request in flight.
    head_started: AtomicU64,
    /// HTTP/2 connections carry frames between requests (pings, settings), which are not a
    /// request head: the header-read clock does not apply to them.
    http2: AtomicBool,
    /// Milliseconds after `since` at which the watchdog will next look (`u64::MAX`: not
    /// sleeping). A new request head only wakes it when its header-read deadline is earlier.
    watchdog_wakes: AtomicU64,
    /// Wakes the watchdog when a request head starts arriving before its next look.
    head_arriving: Notify,
    idle_timeout: Duration,
    header_read_timeout: Duration,
}

/// Why the watchdog closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing in flight for the idle timeout.
    Idle,
    /// A request head took longer than the header-read timeout.
    HeaderRead,
}

impl Activity {
    /// A fresh connection, active now, closed after `idle_timeout` without requests or when
    /// a request head takes longer than `header_read_timeout` to arrive.
    pub fn new(idle_timeout: Duration, header_read_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            since: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            watchdog_wakes: AtomicU64::new(u64::MAX),
            head_arriving: Notify::new(),
            idle_timeout,
            header_read_timeout,
        })
    }

    fn now_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// Marks a request as started (its head is parsed); it counts as in flight until the
    /// guard drops.
    pub fn start_request(self: &Arc<Self>) -> RequestActivity {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        self.touch();
        RequestActivity(self.clone())
    }

    /// Notes bytes read from the client: the first bytes of a new request head start the
    /// header-read clock; an HTTP/2 connection preface exempts the connection from it.
    pub fn bytes_read(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.last_ms.load(Ordering::Relaxed) == 0 && bytes.starts_with(b"PRI * HTTP/2") {
            self.http2.store(true, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started
                .store(self.now_ms() + 1, Ordering::Relaxed);
            self.head_arriving.notify_one();
        }
    }

    /// How long until the connection expires, or why it has.
    pub fn expires_in(&self) -> Result<Duration, Expiry> {
        let (idle, header_read) = (self.idle_timeout, self.header_read_timeout);
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Ok(idle.min(header_read));
        }
        let now = self.now_ms();
        let idle_at = self.last_ms.load(Ordering::Relaxed) + idle.as_millis() as u64;
        let mut wait = idle_at
            .checked_sub(now)
            .filter(|&w| w > 0)
            .ok_or(Expiry::Idle)?;
        let head_started = self.head_started.load(Ordering::Relaxed);
        if head_started > 0 && !self.http2.load(Ordering::Relaxed) {
            let read_by = head_started - 1 + header_read.as_millis() as u64;
            let head_wait = read_by
                .checked_sub(now)
                .filter(|&w| w > 0)
                .ok_or(Expiry::HeaderRead)?;
            wait = wait.min(head_wait);
        }
        Ok(Duration::from_millis(wait))
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

/// Resolves when the connection has been idle for its idle timeout, or has spent longer
/// than its header-read timeout receiving a request head.
pub async fn expired(activity: &Activity) -> Expiry {
    loop {
        match activity.expires_in() {
            Ok(wait) => {
                let wakes = activity.now_ms() + wait.as_millis() as u64;
                activity.watchdog_wakes.store(wakes, Ordering::Relaxed);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = activity.head_arriving.notified() => {}
                }
            }
            Err(expiry) => return expiry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(30);
    const HEAD: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn idle_after_timeout_without_requests() {
        let activity = Activity::new(IDLE, HEAD);
        let started = Instant::now();
        assert_eq!(expired(&activity).await, Expiry::Idle);
        assert!(started.elapsed() >= IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_busy() {
        let activity = Activity::new(IDLE, HEAD);
        let request = activity.start_request();
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(activity.expires_in().is_ok());
        drop(request);
        // The idle clock restarts at the end of the request.
        assert_eq!(activity.expires_in(), Ok(IDLE));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_request_head_expires_at_the_header_read_timeout() {
        let activity = Activity::new(IDLE, HEAD);
        activity.bytes_read(b"GET / HT");
        let started = Instant::now();
        assert_eq!(expired(&activity).await, Expiry::HeaderRead);
        assert!(started.elapsed() >= HEAD && started.elapsed() < IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_parsed_head_stops_the_header_read_clock() {
        let activity = Activity::new(IDLE, HEAD);
        activity.bytes_read(b"GET / HTTP/1.1\r\n\r\n");
        let request = activity.start_request();
        tokio::time::advance(Duration::from_secs(20)).await;
        drop(request);
        // Keep-alive wait for the next request: only the idle timeout applies.
        assert_eq!(expired(&activity).await, Expiry::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_are_not_a_slow_head() {
        let activity = Activity::new(IDLE, HEAD);
        activity.bytes_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(activity.expires_in().is_ok());
    }
}
