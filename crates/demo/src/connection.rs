//! Serving one accepted TCP connection (HTTP/1.1 or HTTP/2 prior knowledge, detected from
//! the first bytes) until it ends or the run stops.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::lifecycle::{RunToken, WeakRunToken};
use crate::replica::Replica;
use crate::router;

pub(crate) type ConnectionBuilder = auto::Builder<TokioExecutor>;

/// What request handlers on one connection share.
pub(crate) struct ConnectionContext {
    pub(crate) replica: Arc<Replica>,
    /// For handlers that hand the socket to a task of their own (upgrades).
    pub(crate) upgrades: WeakRunToken,
    reset_on_close: AtomicBool,
}

impl ConnectionContext {
    /// Makes the connection end with a TCP reset instead of an orderly close.
    pub(crate) fn reset_on_close(&self) {
        self.reset_on_close.store(true, Ordering::Relaxed);
    }
}

pub(crate) async fn serve(
    stream: TcpStream,
    builder: Arc<ConnectionBuilder>,
    replica: Arc<Replica>,
    mut token: RunToken,
) {
    let context = Arc::new(ConnectionContext {
        replica,
        upgrades: token.downgrade(),
        reset_on_close: AtomicBool::new(false),
    });
    let io = TokioIo::new(ResettableStream {
        stream,
        context: context.clone(),
    });
    let service = service_fn(move |request| router::handle(context.clone(), request));
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "sample service connection ended with an error");
            }
        }
        // Dropping the connection closes the socket: clients see the server go away.
        () = token.stop_requested() => {}
    }
}

/// A TCP stream that is reset (RST, via `SO_LINGER` 0) rather than closed when dropped, if a
/// handler asked for it: the `reset_rate` fault.
struct ResettableStream {
    stream: TcpStream,
    context: Arc<ConnectionContext>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.context.reset_on_close.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
