//! The edge of the request path: what happens to every request on an HTTP listener before and
//! after its route's stack. Load the current snapshot, route, make the request a proper
//! proxied request (RFC 9110 intermediary rules), call the route, turn proxy errors into short
//! answers with `x-watertight-reason`, and wrap the response body to log the exchange when it
//! ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::header::{CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER};
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::access_log::{self, Entry};
use crate::activity::Activity;
use crate::body::{ByteCount, Observed, ProxyBody, boxed, empty, full};
use crate::clock;
use crate::downstream::{ClientUpgrade, valid_host};
use crate::error::{BoxError, ClientBodyError, ErrorKind, ProxyError};
use crate::exchange::{Exchange, ExchangeBody, Pending};
use crate::fallback::Degraded;
use crate::forward::ServedBy;
use crate::headers;
use crate::router::request_host;
use crate::runtime::Runtime;

/// The response header that says why the proxy answered itself.
pub const REASON_HEADER: &str = "x-watertight-reason";

/// When a request arrived, from where, and what its answer should say, handed to the route's
/// stack with the request. (An argument, not an extension: a request's extension map costs
/// it three allocations, and a plain request has no other extension.)
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// When it arrived: the route's deadline is counted from here.
    pub at: Instant,
    /// The client's address, which a hash balancer may key on.
    pub client: SocketAddr,
    /// Whether the answer should name the endpoint that served it ([`ServedBy`], for the
    /// access log and for retries, which avoid it next time).
    pub note_endpoint: bool,
}

/// What the edge knows about the client connection a request came on.
pub struct Connection {
    /// The current config snapshot.
    pub runtime: Arc<ArcSwap<Runtime>>,
    /// The listener's bound address (its key in the snapshot).
    pub listener: SocketAddr,
    /// The client's address.
    pub client: SocketAddr,
    /// Requests in flight on this connection, for the idle timeout.
    pub activity: Arc<Activity>,
    /// The client's IP address as an `X-Forwarded-For` entry, formatted once.
    pub forwarded_for: HeaderValue,
}

impl Connection {
    /// A client connection from `client` on the listener bound to `listener`.
    pub fn new(
        runtime: Arc<ArcSwap<Runtime>>,
        listener: SocketAddr,
        client: SocketAddr,
        activity: Arc<Activity>,
    ) -> Self {
        let forwarded_for = HeaderValue::from_str(&client.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self {
            runtime,
            listener,
            client,
            activity,
            forwarded_for,
        }
    }
}

/// Handles one request from a client connection. What needs the connection and the config
/// snapshot (routing, starting the route, the exchange's record) is done at the call; the
/// future owns what it needs for the rest, so it holds neither.
pub fn handle<B>(
    connection: &Connection,
    mut request: Request<B>,
) -> impl Future<Output = Result<Response<ExchangeBody>, Infallible>> + Send + use<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = clock::now();
    let client_version = request.version();
    let activity = connection.activity.start_request(started);
    // Borrowed for the call only: no reference count to take and give back.
    let runtime = connection.runtime.load();
    let mut trace = runtime.tracer.as_ref().map(|t| t.begin(request.headers()));
    let log_ids = trace
        .as_ref()
        .filter(|_| runtime.access_log.enabled())
        .map(|t| (t.trace_id(), t.span_id()));
    // A trace that records nothing only needs its context sent on: that is done here, once,
    // and the rest of the path never sees it.
    if let Some(unrecorded) = trace.take_if(|t| !t.recording()) {
        unrecorded.begin_attempt(request.headers_mut());
    }
    let trace = trace.map(Arc::new);
    // With the access log off and no spans being recorded, skip everything that only feeds
    // them.
    let logging = runtime.access_log.enabled() || trace.is_some();
    // Request bytes are counted for the log and metrics, unless there is no body to count.
    let bytes_in = (!request.body().is_end_stream() && (logging || runtime.metrics.is_some()))
        .then(|| Arc::new(AtomicU64::new(0)));
    let mut request = request.map(|body| {
        if body.is_end_stream() {
            // Nothing to read, count or fail: no wrapper.
            return empty();
        }
        let body = body.map_err(|e| ClientBodyError(e.into()));
        match &bytes_in {
            Some(counter) => boxed(Observed::new(body, ByteCount(counter.clone()))),
            None => boxed(body),
        }
    });
    let mut entry = logging.then(|| {
        Box::new(Entry {
            timestamp: access_log::timestamp(SystemTime::now()),
            client: connection.client.to_string(),
            method: request.method().as_str().to_owned(),
            authority: request_host(&request).unwrap_or("").to_owned(),
            path: request.uri().path().to_owned(),
            protocol: version_name(request.version()),
            trace_id: log_ids.as_ref().map(|(trace, _)| trace.clone()),
            span_id: log_ids.map(|(_, span)| span),
            ..Entry::default()
        })
    });
    if let Some(trace) = &trace {
        request.extensions_mut().insert(trace.clone());
    }

    // Route, and start the route's work (its future runs below).
    let mut metered = None;
    let call = match runtime.listeners.get(&connection.listener) {
        None => {
            metered = runtime.unlisted.clone();
            Err(ProxyError::new(ErrorKind::Draining))
        }
        Some(listener) => {
            if let Some(entry) = &mut entry {
                entry.listener = listener.name().clone();
            }
            let routed = if client_version == Version::HTTP_2 && !h2_host_agrees(&request) {
                Err(ErrorKind::BadRequest)
            } else {
                listener.router.route(&request).ok_or(ErrorKind::NoRoute)
            };
            match routed {
                Err(kind) => {
                    metered = listener.metered.clone();
                    Err(ProxyError::new(kind))
                }
                Ok(route) => {
                    if let Some(route_metered) = &route.metered {
                        if let Some(metrics) = &route_metered.route {
                            metrics.started();
                        }
                        metered = Some(route_metered.clone());
                    }
                    if let Some(entry) = &mut entry {
                        entry.route = Some(route.name().clone());
                        entry.cluster = Some(route.cluster().clone());
                    }
                    let request = prepare(request, &connection.forwarded_for);
                    // The route's deadline runs from here: queue waits and retries count.
                    let arrival = Arrival {
                        at: started,
                        client: connection.client,
                        note_endpoint: runtime.access_log.enabled(),
                    };
                    Ok(route.start(request, arrival))
                }
            }
        }
    };
    // From here on the exchange is logged whatever happens, even if the client leaves.
    let mut exchange = Pending::new(Exchange {
        entry,
        status: 0,
        reason: None,
        started,
        bytes_in,
        log: runtime
            .access_log
            .enabled()
            .then(|| runtime.access_log.clone()),
        metered,
        trace,
        degraded: false,
        activity,
    });
    async move {
        let outcome = match call {
            Ok(started) => started.answer().await,
            Err(error) => Err(error),
        };

        let mut response = match outcome {
            Ok(response) => {
                let pending = exchange.get();
                if let Some(entry) = &mut pending.entry {
                    entry.upstream = response.extensions().get::<ServedBy>().map(|s| s.0.clone());
                }
                if let Some(Degraded(reason)) = response.extensions().get::<Degraded>() {
                    // A fallback answer: log the failure it stands in for.
                    pending.reason = Some(reason);
                    pending.degraded = true;
                }
                response
            }
            Err(error) => {
                let pending = exchange.get();
                tracing::debug!(%error, "proxy answered itself");
                if let Some(entry) = &mut pending.entry {
                    entry.upstream = error.endpoint().cloned();
                }
                pending.reason = Some(error.kind().reason());
                error_response(error.kind(), error.suggested_wait())
            }
        };
        // Answer in the client's HTTP version, whatever the upstream spoke.
        *response.version_mut() = client_version;
        exchange.get().status = response.status().as_u16();
        Ok(response.map(|body| exchange.respond(body)))
    }
}

/// Whether an HTTP/2 request's `Host` fields, if any, agree with its `:authority` (RFC 9113
/// §8.3.1): one valid `host[:port]`, naming the same as `:authority` when there is one. A
/// request whose two names differ could be routed by one and served by the other.
fn h2_host_agrees<B>(request: &Request<B>) -> bool {
    let mut hosts = request.headers().get_all(HOST).iter();
    let Some(host) = hosts.next() else {
        return true;
    };
    hosts.next().is_none()
        && valid_host(host.as_bytes())
        && request.uri().authority().is_none_or(|authority| {
            authority
                .as_str()
                .eq_ignore_ascii_case(host.to_str().unwrap_or(""))
        })
}

/// Applies the intermediary rules to a request about to be forwarded.
fn prepare(mut request: Request<ProxyBody>, client: &HeaderValue) -> Request<ProxyBody> {
    // The client connection offers to hand itself over only for an upgrade request (HTTP/1);
    // the fields are read only then.
    let upgrade = request.extensions().get::<ClientUpgrade>().is_some()
        && headers::is_upgrade_request(request.headers());
    // The client's `Host` (shared, not copied), else its URI's authority (HTTP/2).
    let sent_host = request.headers().get(HOST);
    let had_host = sent_host.is_some();
    let host = match sent_host {
        Some(host) if host.to_str().is_ok() => Some(host.clone()),
        _ => request
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    let version = request.version();
    let fields = request.headers_mut();
    // `Connection` may have named `Host` itself.
    let named_others = headers::remove_hop_by_hop(fields, upgrade);
    headers::append_forwarded(fields, client, "http", host.as_ref());
    headers::append_via(fields, version);
    // HTTP/2 clients carry the host in :authority only; HTTP/1.1 upstreams need `Host`.
    if (!had_host || named_others)
        && !fields.contains_key(HOST)
        && let Some(host) = host
    {
        fields.insert(HOST, host);
    }
    request
}

/// The short answer the proxy gives when it cannot get one from upstream.
pub fn error_response(kind: ErrorKind, retry_after: Option<Duration>) -> Response<ProxyBody> {
    let status = kind.status();
    let text = format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        kind.reason()
    );
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(REASON_HEADER, HeaderValue::from_static(kind.reason()));
    if let Some(wait) = retry_after {
        // Whole seconds, rounded up, at least one.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use http::header::{CONNECTION, UPGRADE};

    use super::*;

    fn upgrade_request(offered: bool) -> Request<ProxyBody> {
        let mut request = Request::get("/ws")
            .header(HOST, "app")
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, "websocket")
            .body(empty())
            .unwrap();
        if offered {
            let (_sender, receiver) = tokio::sync::oneshot::channel();
            request
                .extensions_mut()
                .insert(ClientUpgrade::new(receiver));
        }
        request
    }

    #[test]
    fn upgrade_fields_go_on_only_when_the_client_connection_offers_itself() {
        let client = HeaderValue::from_static("127.0.0.1");
        let kept = prepare(upgrade_request(true), &client);
        assert_eq!(kept.headers().get(UPGRADE).unwrap(), "websocket");
        assert_eq!(kept.headers().get(CONNECTION).unwrap(), "upgrade");
        // Without a connection to hand over (HTTP/2, or a request made inside the proxy),
        // the upgrade is hop-by-hop like any other.
        let stripped = prepare(upgrade_request(false), &client);
        assert!(stripped.headers().get(UPGRADE).is_none());
        assert!(stripped.headers().get(CONNECTION).is_none());
        assert_eq!(stripped.headers().get(HOST).unwrap(), "app");
    }
}
