//! Sending requests to one endpoint.
//!
//! HTTP/1.1 endpoints get our own keep-alive pool ([`pool`]) and exchange ([`exchange`]): the
//! request's task writes to and reads from the upstream socket itself, with no connection
//! task or channel in between. HTTP/2 endpoints use hyper's pooled client, which keeps one
//! multiplexed connection.

mod exchange;
mod head;
mod pool;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use watertight_config as config;

use crate::body::{Deadline, ProxyBody};
use crate::connector::EndpointConnector;
use crate::error::{BoxError, ProxyError};
use crate::timer::Timer;

pub use exchange::{ResponseBody, Upgraded};
use pool::Pool;

/// The way to one endpoint, in its cluster's HTTP version.
#[derive(Debug)]
pub enum Upstream {
    /// Our HTTP/1.1 pool.
    Http1(Arc<Pool>),
    /// hyper's HTTP/2 client.
    Http2(Box<Client<EndpointConnector, ProxyBody>>),
}

impl Upstream {
    /// The way to the endpoint at `authority`, counting its open connections in `open`.
    pub fn new(
        cluster: &config::Cluster,
        authority: &Authority,
        open: Arc<AtomicUsize>,
    ) -> Result<Self, String> {
        Ok(match cluster.protocol {
            config::UpstreamProtocol::Http1 => Upstream::Http1(Arc::new(Pool::new(
                authority.as_str().into(),
                cluster.connect_timeout.get(),
                cluster.pool.idle_timeout.get(),
                cluster.pool.max_idle_per_endpoint,
                open,
            ))),
            config::UpstreamProtocol::Http2 => {
                let target = Uri::builder()
                    .scheme(Scheme::HTTP)
                    .authority(authority.clone())
                    .path_and_query("/")
                    .build()
                    .map_err(|e| format!("endpoint {:?}: {e}", authority.as_str()))?;
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(cluster.connect_timeout.get()));
                connector.enforce_http(true);
                let mut builder = Client::builder(TokioExecutor::new());
                builder
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .pool_idle_timeout(cluster.pool.idle_timeout.get())
                    .pool_max_idle_per_host(cluster.pool.max_idle_per_endpoint)
                    .http2_only(true);
                Upstream::Http2(Box::new(
                    builder.build(EndpointConnector::new(connector, target, open)),
                ))
            }
        })
    }

    /// Sends `request` (its URI aimed at the endpoint) and returns the response as soon as
    /// its head is in, by `deadlines.head`; the body streams, and fails with a `TimedOut`
    /// error if it is not all in by `deadlines.whole`.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        deadlines: Deadlines,
    ) -> Result<Response<UpstreamBody>, Unanswered> {
        match self {
            Upstream::Http1(pool) => exchange::send(pool, request, deadlines)
                .await
                .map(|r| r.map(UpstreamBody::Http1)),
            Upstream::Http2(client) => {
                let mut timer = Timer::at(deadlines.head);
                let response = timer
                    .run(client.request(request))
                    .await
                    .ok_or(Unanswered::Expired)?
                    .map_err(|e| Unanswered::Failed(ProxyError::from_upstream(e)))?;
                timer.set(deadlines.whole);
                Ok(response.map(|body| UpstreamBody::Http2(Deadline::new(body, timer))))
            }
        }
    }
}

/// When an exchange has to be done by, if at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct Deadlines {
    /// The response head.
    pub head: Option<Instant>,
    /// The response body's last byte.
    pub whole: Option<Instant>,
}

/// Why [`Upstream::send`] returned no response.
#[derive(Debug)]
pub enum Unanswered {
    /// The deadline for the head passed first.
    Expired,
    /// The exchange failed.
    Failed(ProxyError),
}

/// A response body from either kind of upstream.
pub enum UpstreamBody {
    /// Read by our HTTP/1.1 exchange.
    Http1(ResponseBody),
    /// Read by hyper's HTTP/2 client.
    Http2(Deadline<Incoming>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Http1(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Http2(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Http1(body) => body.is_end_stream(),
            UpstreamBody::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Http1(body) => body.size_hint(),
            UpstreamBody::Http2(body) => body.size_hint(),
        }
    }
}
