//! The innermost service of every route: send the request to one endpoint of the cluster and
//! stream the response back.
//!
//! It picks the endpoint, points the request at it, applies the whole-exchange deadline (to the
//! response head here, and to the body through [`Deadline`]), classifies failures, and tunnels
//! protocol upgrades (WebSocket and friends) once the upstream answers 101.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use tokio::io::AsyncWriteExt;

use watertight_config::UpstreamProtocol;
use watertight_telemetry::trace::{RequestTrace, Value};

use crate::body::{Observed, Observer, ProxyBody, Upload, boxed, empty};
use crate::bulkhead;
use crate::clock;
use crate::cluster::{Cluster, InFlight, Unavailable};
use crate::downstream::ClientUpgrade;
use crate::drain::Drain;
use crate::edge::Arrival;
use crate::error::{ErrorKind, ProxyError};
use crate::headers;
use crate::retry::AttemptPlan;
use crate::upstream::{Deadlines, Unanswered, Upgraded};

/// The endpoint that answered, put in the response's extensions when the request's
/// [`Arrival`] asks for it (for the access log and for retries).
#[derive(Clone, Debug)]
pub struct ServedBy(pub Arc<str>);

/// Sends requests to a cluster's endpoints.
#[derive(Clone)]
pub struct Forward {
    cluster: Arc<Cluster>,
    timeout: Option<Duration>,
    tunnels: Drain,
}

impl Forward {
    /// Forwards to `cluster`, failing exchanges that take longer than `timeout`.
    pub fn new(cluster: Arc<Cluster>, timeout: Option<Duration>, tunnels: Drain) -> Self {
        Self {
            cluster,
            timeout,
            tunnels,
        }
    }
}

impl Forward {
    /// Sends `request` to an endpoint and returns its answer, the body still streaming.
    pub(crate) async fn forward(
        &self,
        mut request: Request<ProxyBody>,
        arrival: Arrival,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // Sent by the retry layer: endpoints to avoid and the deadlines of this attempt.
        let plan = request.extensions_mut().remove::<AttemptPlan>();
        // The exchange's deadline, from the request's arrival or the retry layer's plan.
        let whole = match &plan {
            Some(plan) => plan.deadline,
            None => self.timeout.and_then(|t| arrival.at.checked_add(t)),
        };
        let now = clock::now();
        if whole.is_some_and(|at| at <= now) {
            // Spent waiting (in a bulkhead queue, on earlier tries): do not start an attempt
            // that cannot finish.
            return Err(ProxyError::new(ErrorKind::DeadlineExceeded));
        }
        // The cluster's bulkhead, shared by every route that sends here.
        let mut waited = false;
        let cluster_slot = match self.cluster.bulkhead() {
            Some((bulkhead, header)) => {
                let priority = bulkhead::priority_of(request.headers(), header.as_ref());
                let (permit, queued) = bulkhead.admit(priority).await.map_err(bulkhead::refusal)?;
                if queued && let Some(trace) = request.extensions().get::<Arc<RequestTrace>>() {
                    trace.event("bulkhead.queued", Vec::new());
                }
                waited = queued;
                Some(permit)
            }
            None => None,
        };
        let tried = plan.as_ref().map_or(&[][..], |p| &p.tried[..]);
        let mut slot = self
            .cluster
            .pick_queued(
                tried,
                self.cluster.hash_key(&request, arrival.client.ip()),
                whole,
                // The attempt starts now, unless it queued for the cluster's bulkhead.
                (!waited).then_some(now),
            )
            .await
            .map_err(|refused| match refused {
                Unavailable::NoEndpoint => ProxyError::new(ErrorKind::NoEndpoint),
                Unavailable::NoHealthy => ProxyError::new(ErrorKind::NoHealthyEndpoint)
                    .retry_after(Duration::from_secs(1)),
                Unavailable::EndpointsFull => {
                    ProxyError::new(ErrorKind::BulkheadFull).retry_after(Duration::from_secs(1))
                }
                Unavailable::EndpointQueueTimeout => {
                    ProxyError::new(ErrorKind::QueueTimeout).retry_after(Duration::from_secs(1))
                }
                Unavailable::Shed => {
                    ProxyError::new(ErrorKind::Shed).retry_after(Duration::from_secs(1))
                }
                Unavailable::BreakerOpen { retry_after } => {
                    if let Some(trace) = request.extensions().get::<Arc<RequestTrace>>() {
                        trace.event("breaker.rejected", Vec::new());
                    }
                    ProxyError::new(ErrorKind::BreakerOpen).retry_after(retry_after)
                }
            })?;
        slot.hold(cluster_slot);
        // The endpoint is read through the slot, which holds it (no count of its own).
        let priority = slot.endpoint().priority;
        if priority > 0
            && let Some(trace) = request.extensions().get::<Arc<RequestTrace>>()
        {
            // Served by a standby group: the primary group had nothing available.
            trace.event(
                "failover.standby",
                vec![("watertight.priority", Value::Int(i64::from(priority)))],
            );
        }
        // A failed attempt: counted against the endpoint (and its breaker) when it says
        // something about the endpoint.
        let fail = |slot: &mut InFlight, error: ProxyError| {
            if error.blames_upstream() {
                slot.endpoint().record_failure();
            }
            slot.failed(error.kind());
            error.at_endpoint(&slot.endpoint().address)
        };

        // Offered by the client connection for an upgrade request only (no field lookups
        // for the others); the fields still have to ask for it.
        let downstream_upgrade = request
            .extensions_mut()
            .remove::<ClientUpgrade>()
            .filter(|_| headers::is_upgrade_request(request.headers()));
        self.aim(&mut request, &slot)?;
        if let Some(trace) = request.extensions().get::<Arc<RequestTrace>>().cloned()
            && let Some(attempt) = trace.begin_attempt(request.headers_mut())
        {
            slot.traced(trace, attempt, request.method().clone());
        }
        // How much of its body the client has sent, and whether all of it: the attempt's
        // bytes out, and at the deadline, a slow client told apart from a slow upstream.
        let upload = (!request.body().is_end_stream()).then(|| {
            let upload = Upload::default();
            let body = std::mem::replace(request.body_mut(), empty());
            *request.body_mut() = boxed(Observed::new(body, upload.clone()));
            slot.uploading(upload.bytes.clone());
            upload
        });

        // The exchange's deadline bounds the wait for the head, then the body; a per-try
        // timeout may end the wait for the head sooner.
        let deadlines = Deadlines {
            head: match plan.as_ref().and_then(|p| p.head_deadline) {
                Some(head) => Some(whole.map_or(head, |w| w.min(head))),
                None => whole,
            },
            whole,
        };
        // The request's extensions ride on to the response (where the edge and the layers
        // read what they put there): one map per exchange, not two.
        let carried = std::mem::take(request.extensions_mut());
        let sent = slot.endpoint().upstream().send(request, deadlines).await;
        let mut response = match sent {
            Ok(response) => response,
            Err(Unanswered::Expired) => {
                // Still sending the client's body when time ran out: the client was slow.
                let kind = if upload.is_some_and(|u| !u.done.load(Ordering::Relaxed)) {
                    ErrorKind::ClientTimeout
                } else {
                    ErrorKind::UpstreamTimeout
                };
                return Err(fail(&mut slot, ProxyError::new(kind)));
            }
            Err(Unanswered::Failed(error)) => return Err(fail(&mut slot, error)),
        };
        let from_upstream = std::mem::replace(response.extensions_mut(), carried);
        response.extensions_mut().extend(from_upstream);

        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching && downstream_upgrade.is_none() {
            // A 101 nobody asked for would leave the client waiting for a final answer.
            return Err(fail(
                &mut slot,
                ProxyError::new(ErrorKind::UpstreamProtocol),
            ));
        }
        if switching
            && let Some(downstream) = downstream_upgrade
            && let Some(upstream) = response.extensions_mut().remove::<Upgraded>()
        {
            tokio::spawn(tunnel(downstream, upstream, self.tunnels.clone()));
        }
        let version = response.version();
        headers::remove_hop_by_hop(response.headers_mut(), switching);
        headers::append_via(response.headers_mut(), version);
        if arrival.note_endpoint {
            response
                .extensions_mut()
                .insert(ServedBy(slot.endpoint().address.clone()));
        }
        slot.answered(response.status().as_u16());

        Ok(response.map(|body| boxed(Observed::new(body, slot))))
    }

    /// Points the request at the chosen endpoint, in the cluster's HTTP version.
    ///
    /// HTTP/1.1: the request line carries only the URI's path, and `Host` says which site
    /// (the endpoint's connection writes its own `host:port` if there is none): the URI is
    /// left as it is. HTTP/2: the URI's authority becomes `:authority`, so it carries the site
    /// (the rewrite, or the client's host) and `Host` is dropped; the endpoint's connector
    /// dials the endpoint whatever the URI says.
    fn aim(&self, request: &mut Request<ProxyBody>, slot: &InFlight) -> Result<(), ProxyError> {
        if let Some(host) = self.cluster.host_rewrite() {
            request.headers_mut().insert(HOST, host.clone());
        }
        if self.cluster.protocol() == UpstreamProtocol::Http1 {
            if request.version() == Version::HTTP_2 {
                headers::join_cookies(request.headers_mut());
            }
            *request.version_mut() = Version::HTTP_11;
            return Ok(());
        }
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let authority = request
            .headers_mut()
            .remove(HOST)
            .and_then(|host| Authority::try_from(host.as_bytes()).ok())
            .unwrap_or_else(|| slot.endpoint().authority.clone());
        *request.uri_mut() = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|e| ProxyError::with_source(ErrorKind::BadRequest, e))?;
        *request.version_mut() = Version::HTTP_2;
        Ok(())
    }
}

/// Copies bytes both ways between the client and the upstream after a 101 answer, until
/// either side closes or the proxy starts draining (an upgraded connection has no request
/// boundary to finish at, and would otherwise hold the drain for its whole timeout).
async fn tunnel(downstream: ClientUpgrade, upstream: Upgraded, drain: Drain) {
    let _open = drain.track();
    let Some(mut upstream) = upstream.take() else {
        return;
    };
    let upstream_early = std::mem::take(&mut upstream.read).freeze();
    let upstream = &mut upstream.stream;
    let Some((mut downstream, downstream_early)) = downstream.take().await else {
        tracing::debug!("upgrade did not complete: the client connection was not handed over");
        return;
    };
    let copied = async {
        // What either side sent right after the handshake goes first.
        downstream.write_all(&upstream_early).await?;
        upstream.write_all(&downstream_early).await?;
        tokio::io::copy_bidirectional(&mut downstream, upstream).await
    };
    tokio::select! {
        copied = copied => {
            if let Err(error) = copied {
                tracing::debug!(%error, "upgraded connection ended with an error");
            }
        }
        () = drain.begun() => tracing::debug!("closing an upgraded connection: draining"),
    }
}

/// The endpoint's in-flight slot rides on the response body, counts its bytes, and is
/// released when it drops.
impl Observer for InFlight {
    fn data(&mut self, data: &bytes::Bytes) {
        self.received(data.len());
    }
}
