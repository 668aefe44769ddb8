//! One error type for everything the proxy itself answers instead of the upstream.
//!
//! Every failure is classified into a [`ErrorKind`] once, where it happens. The kind decides the
//! status code the client sees, the short reason in `x-watertight-reason` (also the access log's
//! `reason` and, later, the metric label), and whether a retry could help.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// Boxed error used for bodies and sources.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// What went wrong, as far as the client and the operator need to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No route matched the request.
    NoRoute,
    /// The route's cluster has no endpoint to send to.
    NoEndpoint,
    /// The TCP connection to the upstream was refused.
    ConnectRefused,
    /// The TCP connection to the upstream did not complete within the connect timeout (or
    /// before the request's deadline).
    ConnectTimeout,
    /// The TCP connection failed for another reason (unreachable, name not resolved, ...).
    ConnectFailed,
    /// The upstream closed or reset the connection before a complete response.
    UpstreamReset,
    /// The exchange did not complete within the request timeout.
    UpstreamTimeout,
    /// The upstream sent something that is not valid HTTP.
    UpstreamProtocol,
    /// The client's request could not be forwarded (bad URI, body error from the client).
    BadRequest,
    /// The proxy is shutting down and takes no new requests.
    Draining,
    /// The client went away (or broke its request body) before the exchange completed; the
    /// upstream is not to blame.
    ClientAborted,
    /// The client was still sending its request body when the request timeout passed.
    ClientTimeout,
    /// The route's bulkhead is at its limit and its queue is full.
    BulkheadFull,
    /// The request waited in the bulkhead's queue for its whole queue timeout.
    QueueTimeout,
    /// Every endpoint the request could go to has its circuit breaker open.
    BreakerOpen,
    /// The route's deadline passed before an attempt could start (spent queueing or on
    /// earlier tries).
    DeadlineExceeded,
    /// The cluster's adaptive concurrency limit refused it: shed to keep latency down.
    Shed,
    /// No endpoint of the cluster is healthy (active checks failing, drained or disabled), in
    /// any priority group.
    NoHealthyEndpoint,
}

impl ErrorKind {
    /// The status code the client receives.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ErrorKind::NoEndpoint
            | ErrorKind::Draining
            | ErrorKind::BulkheadFull
            | ErrorKind::QueueTimeout
            | ErrorKind::BreakerOpen
            | ErrorKind::Shed
            | ErrorKind::NoHealthyEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::ConnectTimeout
            | ErrorKind::UpstreamTimeout
            | ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::ConnectRefused
            | ErrorKind::ConnectFailed
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            // nginx's "client closed request": rarely seen by the client, familiar in logs.
            ErrorKind::ClientAborted => {
                StatusCode::from_u16(499).expect("499 is within the valid status range")
            }
        }
    }

    /// The short word put in `x-watertight-reason` and the access log.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::NoRoute => "no-route",
            ErrorKind::NoEndpoint => "no-endpoint",
            ErrorKind::ConnectRefused => "connect-refused",
            ErrorKind::ConnectTimeout => "connect-timeout",
            ErrorKind::ConnectFailed => "connect-failed",
            ErrorKind::UpstreamReset => "upstream-reset",
            ErrorKind::UpstreamTimeout => "upstream-timeout",
            ErrorKind::UpstreamProtocol => "upstream-protocol",
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::Draining => "draining",
            ErrorKind::ClientAborted => "client-aborted",
            ErrorKind::ClientTimeout => "client-timeout",
            ErrorKind::BulkheadFull => "bulkhead-full",
            ErrorKind::QueueTimeout => "queue-timeout",
            ErrorKind::BreakerOpen => "breaker-open",
            ErrorKind::DeadlineExceeded => "deadline-exceeded",
            ErrorKind::Shed => "shed",
            ErrorKind::NoHealthyEndpoint => "no-healthy-endpoint",
        }
    }

    /// Whether the request provably never reached the upstream, so even a non-idempotent
    /// request may be sent again.
    pub fn never_reached_upstream(self) -> bool {
        matches!(
            self,
            ErrorKind::NoEndpoint
                | ErrorKind::NoHealthyEndpoint
                | ErrorKind::ConnectRefused
                | ErrorKind::ConnectTimeout
                | ErrorKind::ConnectFailed
        )
    }

    /// Whether another attempt (on another endpoint) could succeed.
    pub fn retryable(self) -> bool {
        // Nothing healthy now will not be healthy a backoff later.
        (self.never_reached_upstream() && self != ErrorKind::NoHealthyEndpoint)
            || matches!(self, ErrorKind::UpstreamReset | ErrorKind::UpstreamTimeout)
    }
}

/// A failure the proxy answers itself, with its cause kept for logs.
#[derive(Debug)]
pub struct ProxyError {
    kind: ErrorKind,
    source: Option<BoxError>,
    endpoint: Option<Arc<str>>,
    retry_after: Option<Duration>,
}

impl ProxyError {
    /// An error of `kind` with no further cause.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            source: None,
            endpoint: None,
            retry_after: None,
        }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
            endpoint: None,
            retry_after: None,
        }
    }

    /// Tells the client when trying again could succeed (sent as `Retry-After`).
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The wait to suggest to the client, if any.
    pub fn suggested_wait(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Notes the endpoint the failed attempt went to.
    pub fn at_endpoint(mut self, endpoint: &Arc<str>) -> Self {
        self.endpoint = Some(endpoint.clone());
        self
    }

    /// The endpoint the failed attempt went to, if one was picked.
    pub fn endpoint(&self) -> Option<&Arc<str>> {
        self.endpoint.as_ref()
    }

    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the failure says something about the upstream endpoint (and so should count
    /// against it), rather than about the client or the proxy.
    pub fn blames_upstream(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::ClientAborted
                | ErrorKind::ClientTimeout
                | ErrorKind::NoRoute
                | ErrorKind::BadRequest
                | ErrorKind::Draining
                | ErrorKind::BulkheadFull
                | ErrorKind::QueueTimeout
                | ErrorKind::BreakerOpen
                | ErrorKind::DeadlineExceeded
                | ErrorKind::Shed
        )
    }

    /// Classifies an error from the upstream client by walking its cause chain.
    pub fn from_upstream(error: hyper_util::client::legacy::Error) -> Self {
        let kind = if find::<ClientBodyError>(&error).is_some() {
            ErrorKind::ClientAborted
        } else if error.is_connect() {
            match find_io_kind(&error) {
                Some(io::ErrorKind::ConnectionRefused) => ErrorKind::ConnectRefused,
                Some(io::ErrorKind::TimedOut) => ErrorKind::ConnectTimeout,
                _ => ErrorKind::ConnectFailed,
            }
        } else {
            classify_exchange_error(&error)
        };
        Self::with_source(kind, error)
    }
}

/// Classifies a failure after the connection was made (while sending or receiving).
pub(crate) fn classify_exchange_error(error: &(dyn StdError + 'static)) -> ErrorKind {
    if let Some(kind) = find_io_kind(error) {
        return match kind {
            io::ErrorKind::TimedOut => ErrorKind::UpstreamTimeout,
            _ => ErrorKind::UpstreamReset,
        };
    }
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() || h.is_parse_too_large() {
                return ErrorKind::UpstreamProtocol;
            }
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return ErrorKind::UpstreamReset;
            }
        }
        cause = e.source();
    }
    ErrorKind::UpstreamReset
}

fn find_io_kind(error: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    find::<io::Error>(error).map(io::Error::kind)
}

/// The first error of type `E` in the cause chain.
fn find<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut cause: Option<&'a (dyn StdError + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

/// An error reading the client's request body, marked so that a failure it causes upstream
/// is not blamed on the upstream.
#[derive(Debug)]
pub struct ClientBodyError(pub BoxError);

impl fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client request body: {}", self.0)
    }
}

impl StdError for ClientBodyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.0.as_ref())
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.reason())?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
            let mut cause = source.source();
            while let Some(e) = cause {
                write!(f, ": {e}")?;
                cause = e.source();
            }
        }
        Ok(())
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<ErrorKind> for ProxyError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_504_and_connection_failures_502() {
        assert_eq!(
            ErrorKind::UpstreamTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ErrorKind::ConnectTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(ErrorKind::ConnectRefused.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(ErrorKind::UpstreamReset.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn io_errors_in_the_chain_decide_the_kind() {
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(classify_exchange_error(&reset), ErrorKind::UpstreamReset);
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "slow");
        assert_eq!(
            classify_exchange_error(&timed_out),
            ErrorKind::UpstreamTimeout
        );
    }

    #[test]
    fn only_connect_failures_prove_the_upstream_saw_nothing() {
        assert!(ErrorKind::ConnectRefused.never_reached_upstream());
        assert!(!ErrorKind::UpstreamReset.never_reached_upstream());
        assert!(!ErrorKind::UpstreamTimeout.never_reached_upstream());
    }

    #[test]
    fn a_broken_client_body_is_not_the_upstreams_fault() {
        let aborted = ProxyError::new(ErrorKind::ClientAborted);
        assert!(!aborted.blames_upstream());
        assert_eq!(aborted.kind().status().as_u16(), 499);
        assert!(ProxyError::new(ErrorKind::UpstreamReset).blames_upstream());
        let wrapped = ClientBodyError(Box::new(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "gone",
        )));
        assert!(find::<ClientBodyError>(&wrapped).is_some());
        // The io error inside would otherwise read as an upstream reset.
        assert_eq!(find_io_kind(&wrapped), Some(io::ErrorKind::ConnectionReset));
    }

    #[test]
    fn display_names_reason_and_cause() {
        let e = ProxyError::with_source(
            ErrorKind::ConnectRefused,
            io::Error::new(io::ErrorKind::ConnectionRefused, "refused"),
        );
        assert_eq!(e.to_string(), "connect-refused: refused");
    }
}
