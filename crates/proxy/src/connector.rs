//! Connecting to one endpoint, whatever the request URI names.
//!
//! Each endpoint gets its own pooled client whose connector always dials that endpoint. The
//! request URI is then free to carry the authority the upstream should see: for HTTP/2 that
//! becomes `:authority` (the client's host, or the cluster's `host_rewrite`), which must agree
//! with what a `Host` header would say (RFC 9113 §8.3.1), instead of the endpoint's address.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use crate::error::BoxError;

/// A connector bound to one endpoint.
#[derive(Clone, Debug)]
pub struct EndpointConnector {
    inner: HttpConnector,
    target: Uri,
}

impl EndpointConnector {
    /// Dials `target` (an `http://host:port` URI) through `inner`.
    pub fn new(inner: HttpConnector, target: Uri) -> Self {
        Self { inner, target }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<Uri> for EndpointConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, _requested: Uri) -> Connecting {
        let connecting = self.inner.call(self.target.clone());
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}
