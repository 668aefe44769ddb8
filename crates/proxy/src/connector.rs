//! Connecting to one endpoint, whatever the request URI names.
//!
//! Each endpoint gets its own pooled client whose connector always dials that endpoint. The
//! request URI is then free to carry the authority the upstream should see: for HTTP/2 that
//! becomes `:authority` (the client's host, or the cluster's `host_rewrite`), which must agree
//! with what a `Host` header would say (RFC 9113 §8.3.1), instead of the endpoint's address.
//!
//! The connector also counts the endpoint's open connections (for the pool gauges): each
//! connection it makes carries a guard that uncounts it when the pool drops the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use crate::error::BoxError;

/// A connector bound to one endpoint.
#[derive(Clone, Debug)]
pub struct EndpointConnector {
    inner: HttpConnector,
    target: Uri,
    open: Arc<AtomicUsize>,
}

impl EndpointConnector {
    /// Dials `target` (an `http://host:port` URI) through `inner`, counting the connections
    /// open in `open`.
    pub fn new(inner: HttpConnector, target: Uri, open: Arc<AtomicUsize>) -> Self {
        Self {
            inner,
            target,
            open,
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<Counted, BoxError>> + Send>>;

impl Service<Uri> for EndpointConnector {
    type Response = Counted;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, _requested: Uri) -> Connecting {
        let connecting = self.inner.call(self.target.clone());
        let open = self.open.clone();
        Box::pin(async move {
            let io = connecting.await?;
            open.fetch_add(1, Ordering::Relaxed);
            Ok(Counted {
                io,
                _open: OpenGuard(open),
            })
        })
    }
}

/// Uncounts a connection when dropped.
#[derive(Debug)]
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// An upstream connection that counts as open while it lives.
    #[derive(Debug)]
    pub struct Counted {
        #[pin]
        io: TokioIo<TcpStream>,
        _open: OpenGuard,
    }
}

impl Connection for Counted {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl Read for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl Write for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
}
