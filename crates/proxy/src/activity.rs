//! Per-connection activity, for closing client connections that sit idle, send their request
//! heads too slowly, or stop reading their responses.
//!
//! - **Idle**: no request in flight (a request counts until its response body has been sent)
//!   and none started or ended for the listener's idle timeout.
//! - **Header read**: the clock starts when bytes of a new HTTP/1 request arrive while no
//!   request is in flight and stops when the head has been parsed; a keep-alive connection
//!   waiting quietly for its next request is governed by the idle timeout alone, a client
//!   trickling a head (slowloris) by the header-read timeout, whichever is configured lower.
//! - **Write stall**: a response the client does not read for the idle timeout (the socket
//!   stays full, nginx's `send_timeout`). Without this a client that stops reading would hold
//!   its exchange, the endpoint's in-flight slot and an upstream connection forever, since the
//!   request deadline is only checked when the body is polled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock;

/// Activity counters shared by a connection's requests, its socket and its watchdog.
///
/// Times are milliseconds after `since`; for the "started at" fields, plus one, so that zero
/// can mean "not happening".
#[derive(Debug)]
pub struct Activity {
    since: Instant,
    in_flight: AtomicUsize,
    /// The last request start or end.
    last_ms: AtomicU64,
    /// When bytes of a request head started arriving with no request in flight.
    head_started: AtomicU64,
    /// When a write to the client started waiting for socket space.
    write_blocked: AtomicU64,
    /// HTTP/2 connections carry frames between requests (pings, settings), which are not a
    /// request head: the header-read clock does not apply to them.
    http2: AtomicBool,
    /// When the watchdog will next look (`u64::MAX`: not yet known). A new deadline only
    /// wakes it when it falls before that.
    watchdog_wakes: AtomicU64,
    wake: Notify,
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
    /// The client has not read from its socket for the idle timeout.
    WriteStalled,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Activity {
    /// A fresh connection, active now, with the listener's timeouts.
    pub fn new(idle_timeout: Duration, header_read_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            since: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            watchdog_wakes: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
            idle_timeout,
            header_read_timeout,
        })
    }

    fn now_ms(&self) -> u64 {
        millis(clock::now().saturating_duration_since(self.since))
    }

    fn touch(&self) {
        self.touch_at(clock::now());
    }

    /// Notes activity at `at` (a time the caller has already read). A load and a store, not
    /// a read-modify-write (twice per request): two HTTP/2 streams ending at once may leave
    /// the earlier of their two times, a few microseconds off the idle clock.
    fn touch_at(&self, at: Instant) {
        let ms = millis(at.saturating_duration_since(self.since));
        if ms > self.last_ms.load(Ordering::Relaxed) {
            self.last_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Wakes the watchdog if `deadline` comes before its next look.
    fn deadline_at(&self, deadline: u64) {
        if deadline < self.watchdog_wakes.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Marks a request as started (its head is parsed) `at`; it counts as in flight until
    /// the guard drops.
    pub fn start_request(self: &Arc<Self>, at: Instant) -> RequestActivity {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        self.touch_at(at);
        RequestActivity {
            activity: self.clone(),
            ended: None,
        }
    }

    /// Gives a connection that has just been asked to close a full idle period to do so
    /// before the watchdog closes it outright.
    pub fn restart_idle_clock(&self) {
        self.touch();
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
        self.head_begun();
    }

    /// Notes that a request head has begun and is not whole yet: starts the header-read
    /// clock unless it runs or a request is in flight. Bytes of a pipelined head that came
    /// while the request before it was in flight start it here, once that request has ended
    /// and the rest of the head is still awaited.
    pub fn head_begun(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            let now = self.now_ms();
            self.head_started.store(now + 1, Ordering::Relaxed);
            self.deadline_at(now.saturating_add(millis(self.header_read_timeout)));
        }
    }

    /// Notes a write to the client that has to wait for socket space.
    pub fn write_blocked(&self) {
        if self.write_blocked.load(Ordering::Relaxed) == 0 {
            let now = self.now_ms();
            self.write_blocked.store(now + 1, Ordering::Relaxed);
            self.deadline_at(now.saturating_add(millis(self.idle_timeout)));
        }
    }

    /// Notes a write to the client that went through.
    pub fn write_progressed(&self) {
        if self.write_blocked.load(Ordering::Relaxed) != 0 {
            self.write_blocked.store(0, Ordering::Relaxed);
        }
    }

    /// How long until the connection expires, or why it has.
    pub fn expires_in(&self) -> Result<Duration, Expiry> {
        let now = self.now_ms();
        let until = |started_plus_one: u64, timeout: Duration, expiry: Expiry| {
            let deadline = (started_plus_one - 1).saturating_add(millis(timeout));
            deadline.checked_sub(now).filter(|&w| w > 0).ok_or(expiry)
        };
        // Look at least every min(idle, header-read) period: then a head starting (due a
        // header-read period later) or a write blocking (due an idle period later) never falls
        // before the next look, and the hot path never has to wake the watchdog. A deadline
        // that does fall earlier wakes it (`deadline_at`).
        let mut wait = millis(self.idle_timeout.min(self.header_read_timeout));
        let blocked = self.write_blocked.load(Ordering::Relaxed);
        if blocked > 0 {
            wait = wait.min(until(blocked, self.idle_timeout, Expiry::WriteStalled)?);
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Ok(Duration::from_millis(wait));
        }
        let head_started = self.head_started.load(Ordering::Relaxed);
        if head_started > 0 && !self.http2.load(Ordering::Relaxed) {
            // A head is arriving: its own clock governs, not idleness.
            wait = wait.min(until(
                head_started,
                self.header_read_timeout,
                Expiry::HeaderRead,
            )?);
        } else {
            let last = self.last_ms.load(Ordering::Relaxed) + 1;
            wait = wait.min(until(last, self.idle_timeout, Expiry::Idle)?);
        }
        Ok(Duration::from_millis(wait))
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub struct RequestActivity {
    activity: Arc<Activity>,
    /// When it ended, if the exchange has read the clock for it already.
    ended: Option<Instant>,
}

impl RequestActivity {
    /// Notes that the request ended `at` (it stops counting when this drops).
    pub fn ended(&mut self, at: Instant) {
        self.ended = Some(at);
    }
}

impl Drop for RequestActivity {
    fn drop(&mut self) {
        match self.ended {
            Some(at) => self.activity.touch_at(at),
            None => self.activity.touch(),
        }
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves when the connection has expired (see the module docs), with the reason.
pub async fn expired(activity: &Activity) -> Expiry {
    loop {
        match activity.expires_in() {
            Ok(wait) => {
                let wakes = activity.now_ms().saturating_add(millis(wait));
                activity.watchdog_wakes.store(wakes, Ordering::Relaxed);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = activity.wake.notified() => {}
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
        let request = activity.start_request(Instant::now());
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(activity.expires_in().is_ok());
        drop(request);
        // The idle clock restarts at the end of the request.
        let started = Instant::now();
        assert_eq!(expired(&activity).await, Expiry::Idle);
        assert!(started.elapsed() >= IDLE);
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
    async fn a_head_arriving_is_timed_by_the_header_clock_even_past_a_shorter_idle_timeout() {
        let activity = Activity::new(Duration::from_secs(1), Duration::from_secs(3));
        activity.bytes_read(b"G");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            activity.expires_in().is_ok(),
            "not idle: a head is arriving"
        );
        assert_eq!(expired(&activity).await, Expiry::HeaderRead);
    }

    #[tokio::test(start_paused = true)]
    async fn a_parsed_head_stops_the_header_read_clock() {
        let activity = Activity::new(IDLE, HEAD);
        activity.bytes_read(b"GET / HTTP/1.1\r\n\r\n");
        let request = activity.start_request(Instant::now());
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

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_stalls_out_even_with_a_request_in_flight() {
        let activity = Activity::new(IDLE, HEAD);
        let _request = activity.start_request(Instant::now());
        activity.write_blocked();
        let started = Instant::now();
        assert_eq!(expired(&activity).await, Expiry::WriteStalled);
        assert!(started.elapsed() >= IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn write_progress_resets_the_stall_clock() {
        let activity = Activity::new(IDLE, HEAD);
        let _request = activity.start_request(Instant::now());
        activity.write_blocked();
        tokio::time::advance(IDLE - Duration::from_secs(1)).await;
        activity.write_progressed();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(activity.expires_in().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_head_wakes_a_watchdog_sleeping_longer() {
        let activity = Activity::new(IDLE, HEAD);
        let watchdog = tokio::spawn({
            let activity = activity.clone();
            async move { expired(&activity).await }
        });
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.bytes_read(b"GET");
        tokio::time::advance(HEAD).await;
        assert_eq!(watchdog.await.unwrap(), Expiry::HeaderRead);
    }
}
