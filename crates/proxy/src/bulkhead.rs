//! The route's bulkhead as a layer: admit the request (or refuse it at once with
//! `bulkhead-full`, or after its queue wait with `queue-timeout`), and hold the slot until the
//! response body ends, so a slow stream counts as busy for as long as it is.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http::header::HeaderName;
use watertight_resilience::{Bulkhead, BulkheadPermit, Priority, Rejected};
use watertight_telemetry::trace::RequestTrace;

use crate::body::{Observed, Observer, ProxyBody, boxed};
use crate::edge::Arrival;
use crate::error::{ErrorKind, ProxyError};
use crate::stack::{self, Layer, RouteFuture, RouteService};

/// Admits requests to `inner` through `bulkhead`.
#[derive(Clone)]
pub struct Bulkheaded {
    inner: RouteService,
    bulkhead: Arc<Bulkhead>,
    priority_header: Option<HeaderName>,
}

impl Bulkheaded {
    /// `inner` behind `bulkhead`; requests name their priority class in `priority_header`.
    pub fn new(
        inner: RouteService,
        bulkhead: Arc<Bulkhead>,
        priority_header: Option<HeaderName>,
    ) -> Self {
        Self {
            inner,
            bulkhead,
            priority_header,
        }
    }
}

/// A request's priority class, from the header the bulkhead names (default without one).
pub(crate) fn priority_of(headers: &http::HeaderMap, header: Option<&HeaderName>) -> Priority {
    header
        .and_then(|name| headers.get(name))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| Priority::parse(value.trim()))
        .unwrap_or_default()
}

/// Why a bulkhead refused, as the proxy answers it: busy, not broken, so worth trying again
/// shortly.
pub(crate) fn refusal(rejected: Rejected) -> ProxyError {
    ProxyError::new(match rejected {
        Rejected::Full => ErrorKind::BulkheadFull,
        Rejected::QueueTimeout => ErrorKind::QueueTimeout,
    })
    .retry_after(Duration::from_secs(1))
}

/// The bulkhead slot riding on the response body.
struct Slot(#[allow(dead_code)] BulkheadPermit);

impl Observer for Slot {}

impl Layer for Bulkheaded {
    fn handle(&self, request: Request<ProxyBody>, arrival: Arrival) -> RouteFuture {
        let inner = self.inner.clone();
        let bulkhead = self.bulkhead.clone();
        let priority = priority_of(request.headers(), self.priority_header.as_ref());
        Box::pin(async move {
            let (permit, queued) = bulkhead.admit(priority).await.map_err(refusal)?;
            if queued && let Some(trace) = request.extensions().get::<Arc<RequestTrace>>() {
                trace.event("bulkhead.queued", Vec::new());
            }
            let response = stack::call(inner, request, arrival).await?;
            Ok(response.map(|body| boxed(Observed::new(body, Slot(permit)))))
        })
    }
}
