//! Client connections: HTTP/1.x served by our own loop, HTTP/2 (prior knowledge) by hyper.
//!
//! The HTTP/1 loop reads a request head, hands the request to the edge, and writes the
//! answer, on the connection's own task, with no channel in between. Between requests a
//! connection holds no read buffer (and at most a head's worth of write buffer): it waits
//! for the socket to turn readable, so ten thousand idle keep-alive clients cost little more
//! than their sockets.

mod body;
mod head;

pub(crate) use head::valid_host;

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Notify, oneshot};

use crate::body::{ProxyBody, boxed, empty};
use crate::chunked;
use crate::closing::Closing;
use crate::edge::{self, Connection};
use crate::exchange::ExchangeBody;
use crate::headers;
use crate::watched_io::Watched;
use body::{Handback, Reader, RequestBody, Returned};
use head::{BodyFraming, ResponseFraming};

/// What every HTTP/2 client sends first (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Read buffer for a request head; it grows for larger ones. 1 KiB, as nginx's
/// `client_header_buffer_size`: most heads fit, and an allocation this small comes from the
/// allocator's per-thread cache (glibc's tcache stops at 1032 bytes).
const HEAD_BUFFER: usize = 1024;
/// Body frames up to this size are copied next to their framing into one write.
const COALESCE: usize = 16 * 1024;

/// The client side of an upgraded connection (after a 101 answer): the socket and what the
/// client already sent past its request head. Taken once, by the tunnel.
#[derive(Clone, Debug)]
pub struct ClientUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

/// An upgraded client connection and the bytes the client sent past its request head.
type Upgraded = (TcpStream, Bytes);

impl ClientUpgrade {
    /// The offer of a client connection, handed over through `receiver` once its 101 is
    /// written.
    pub(crate) fn new(receiver: oneshot::Receiver<Upgraded>) -> Self {
        Self(Arc::new(Mutex::new(Some(receiver))))
    }

    /// Waits for the connection to be handed over (after the 101 is written).
    pub async fn take(&self) -> Option<Upgraded> {
        let receiver = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        receiver.await.ok()
    }
}

/// Serves one client connection until it ends, or until `closing` is raised and the request
/// in flight (if any) has been answered.
pub async fn serve(stream: TcpStream, connection: Arc<Connection>, closing: Closing) {
    let activity = connection.activity.clone();
    let (reader, writer) = stream.into_split();
    let mut reader = Watched::new(reader, activity.clone());
    // The first bytes tell HTTP/2's preface from an HTTP/1 request line.
    let mut first = BytesMut::new();
    while first.len() < PREFACE.len() && PREFACE.starts_with(&first) {
        if !first_bytes(&mut reader, &mut first, &closing).await {
            return;
        }
    }
    if first.starts_with(PREFACE) {
        let Ok(stream) = reader.into_inner().reunite(writer) else {
            return;
        };
        // Boxed: a connection's task keeps the largest state it may need for its whole life.
        Box::pin(serve_h2(stream, first.freeze(), connection, closing)).await;
    } else {
        let writer = Watched::new(writer, activity);
        Http1 {
            connection,
            reader: Some((reader, first)),
            writer,
            closing,
            out: Vec::new(),
        }
        .run()
        .await;
    }
}

/// Waits for bytes from the client without holding a buffer, then reads what has come
/// into `buf`. False when the client is gone or `closing` is raised first.
async fn first_bytes(
    reader: &mut Watched<OwnedReadHalf>,
    buf: &mut BytesMut,
    closing: &Closing,
) -> bool {
    loop {
        // Readiness first: a connection with a request waiting does not register with
        // `closing` only to unregister (`read_head` looked at it before this wait). The
        // socket's own reader slot takes the waker (as a read does), not tokio's list of
        // `readable()` waiters, which is locked to join, to wake and to leave.
        let socket: &TcpStream = reader.get_ref().as_ref();
        tokio::select! {
            biased;
            ready = std::future::poll_fn(|cx| socket.poll_read_ready(cx)) => {
                if ready.is_err() {
                    return false;
                }
            }
            () = closing.raised() => return false,
        }
        // Readiness can be stale: a read that would block gives the buffer back. (One poll
        // of the read, not `try_read`: a short read then clears the readiness, so the next
        // wait does not begin with a read that finds nothing.)
        let before = buf.len();
        buf.reserve(HEAD_BUFFER);
        match reader.read_buf(buf).now_or_never() {
            None => {
                if before == 0 {
                    *buf = BytesMut::new();
                }
            }
            Some(Ok(0) | Err(_)) => return false,
            Some(Ok(_)) => return true,
        }
    }
}

/// HTTP/2 with prior knowledge, by hyper; a raised `closing` sends GOAWAY and lets the
/// streams in flight finish.
async fn serve_h2(
    stream: TcpStream,
    preface: Bytes,
    connection: Arc<Connection>,
    closing: Closing,
) {
    let activity = connection.activity.clone();
    let io = TokioIo::new(Watched::new(Rewind::new(preface, stream), activity));
    let service = service_fn(move |request| edge::handle(&connection, request));
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP/2 client connection ended with an error");
            }
            return;
        }
        () = closing.raised() => {}
    }
    served.as_mut().graceful_shutdown();
    if let Err(error) = served.await {
        tracing::debug!(%error, "HTTP/2 client connection ended with an error");
    }
}

/// An HTTP/1.x client connection.
struct Http1 {
    connection: Arc<Connection>,
    /// The read side and its buffer; lent to a request body while it streams.
    reader: Option<Reader>,
    writer: Watched<tokio::net::tcp::OwnedWriteHalf>,
    closing: Closing,
    /// Response heads (and small body frames, coalesced) are encoded here.
    out: Vec<u8>,
}

/// What became of one exchange.
enum Next {
    /// Read the next request.
    Continue,
    /// Close the connection.
    Close,
    /// A 101 was written: the connection goes to the tunnel.
    Upgrade(oneshot::Sender<Upgraded>),
}

impl Http1 {
    async fn run(mut self) {
        while let Some(head) = self.read_head().await {
            // Boxed, so that an idle connection's task does not carry an exchange's state.
            match Box::pin(self.exchange(head)).await {
                Next::Continue => {}
                Next::Close => break,
                Next::Upgrade(sender) => {
                    // The socket, and whatever the client sent past its head, go to the
                    // tunnel.
                    if let Some((reader, buf)) = self.reader
                        && let Ok(stream) = reader.into_inner().reunite(self.writer.into_inner())
                    {
                        let _ = sender.send((stream, buf.freeze()));
                    }
                    return;
                }
            }
        }
        let _ = self.writer.shutdown().await;
    }

    /// Reads the next request head; `None` when the connection should close (client gone,
    /// closing, or a refused head that has been answered).
    async fn read_head(&mut self) -> Option<head::RequestHead> {
        let (reader, buf) = self.reader.as_mut()?;
        loop {
            if !buf.is_empty() {
                match head::parse_request(buf) {
                    Ok(Some(head)) => return Some(head),
                    // Part of a head: the header-read clock runs while the rest is awaited
                    // (it may have come pipelined, during the request before). Blank lines
                    // between requests, skipped, are no head.
                    Ok(None) if !buf.is_empty() => self.connection.activity.head_begun(),
                    Ok(None) => {}
                    Err(refusal) => {
                        tracing::debug!(?refusal, client = %self.connection.client, "request head refused");
                        // Never routed, so never logged as an exchange: counted here.
                        let runtime = self.connection.runtime.load();
                        if let (Some(metrics), Some(listener)) = (
                            &runtime.metrics,
                            runtime.listeners.get(&self.connection.listener),
                        ) {
                            metrics.proxy_error(listener.name(), "", "", refusal.reason());
                        }
                        let answer = head::refusal_response(refusal, &http_date());
                        let _ = self.writer.write_all(&answer).await;
                        return None;
                    }
                }
            } else {
                if self.closing.is_raised() {
                    return None;
                }
                // Idle: hold no read buffer while waiting for the next request, and no more
                // write buffer than a head takes (a coalesced body may have grown it to 32 KiB).
                *buf = BytesMut::new();
                if self.out.capacity() > HEAD_BUFFER {
                    self.out = Vec::new();
                }
                if !first_bytes(reader, buf, &self.closing).await {
                    return None;
                }
                continue;
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(HEAD_BUFFER.max(buf.len()));
            }
            match reader.read_buf(buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Hands one request to the edge and writes its answer.
    async fn exchange(&mut self, head: head::RequestHead) -> Next {
        let head::RequestHead {
            request,
            framing,
            keep_alive,
            expects_continue,
            takes_trailers,
        } = head;
        let method = request.method().clone();
        let version = request.version();
        // Where a request body returns the read side (only requests with a body lend it).
        let mut handback: Option<Handback> = None;
        let mut go_ahead =
            (expects_continue && framing != BodyFraming::Empty).then(|| Arc::new(Notify::new()));
        let mut request = match framing {
            BodyFraming::Empty => request.map(|()| empty()),
            _ => {
                let Some(reader) = self.reader.take() else {
                    return Next::Close;
                };
                let returned = handback.insert(Arc::new(Mutex::new(None))).clone();
                let body = RequestBody::new(reader, framing, returned, go_ahead.clone());
                request.map(|()| boxed(body))
            }
        };
        let mut upgrade = headers::is_upgrade_request(request.headers()).then(|| {
            let (sender, receiver) = oneshot::channel();
            request
                .extensions_mut()
                .insert(ClientUpgrade::new(receiver));
            sender
        });

        // Its own future, so that its state and the body writer's share the space.
        let Some(response) = self.answer(request, &mut go_ahead).await else {
            return Next::Close;
        };

        let (mut parts, body) = response.into_parts();
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS && upgrade.is_some();
        let framing = if switching {
            ResponseFraming::None
        } else {
            head::frame_response(
                &mut parts.headers,
                parts.status,
                &method,
                version,
                body.size_hint().exact(),
            )
        };
        // A body the route dropped unread: the connection stays open only if the rest of it
        // is already here to skip. (One still being read is decided after the answer.)
        let body_unread = self.take_back(handback.as_ref()) == Lent::Unread;
        let keep_alive = keep_alive
            && !body_unread
            && !self.closing.is_raised()
            && framing != ResponseFraming::Close;
        let connection = if switching {
            None
        } else if !keep_alive {
            Some("close")
        } else if version == Version::HTTP_10 {
            Some("keep-alive")
        } else {
            None
        };
        self.out.clear();
        head::encode_response(
            parts.status,
            &parts.headers,
            connection,
            http_date,
            &mut self.out,
        );
        if !self.write_body(body, framing, takes_trailers).await {
            return Next::Close;
        }
        if switching && let Some(sender) = upgrade.take() {
            return Next::Upgrade(sender);
        }
        // The body lent the read side: it is back if the body was read to its end, or dropped
        // with its rest already here.
        self.take_back(handback.as_ref());
        if keep_alive && self.reader.is_some() {
            Next::Continue
        } else {
            Next::Close
        }
    }

    /// Runs the request through the edge until its answer, meanwhile sending `100 Continue`
    /// when the route first reads the body and noticing a client that leaves (`None`: close).
    async fn answer(
        &mut self,
        request: Request<ProxyBody>,
        go_ahead: &mut Option<Arc<Notify>>,
    ) -> Option<Response<ExchangeBody>> {
        // Pinned where it is made.
        let mut handling = std::pin::pin!(edge::handle(&self.connection, request));
        loop {
            let continued = async {
                match go_ahead.as_ref() {
                    Some(go_ahead) => go_ahead.notified().await,
                    None => std::future::pending().await,
                }
            };
            // While the route works, the connection still reads (when the request has not
            // lent it to its body): a client that leaves cancels its request, as with nginx,
            // instead of holding an upstream connection and slots until the answer; bytes
            // of a pipelined request are kept.
            let watching = async {
                match self.reader.as_mut() {
                    Some((reader, buf)) if buf.len() < head::MAX_HEAD => {
                        if buf.capacity() - buf.len() < 1024 {
                            buf.reserve(HEAD_BUFFER);
                        }
                        reader.read_buf(buf).await
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                answered = &mut handling => match answered {
                    Ok(response) => return Some(response),
                    Err(never) => match never {},
                },
                () = continued => {
                    // The route reads the body: the client may send it.
                    *go_ahead = None;
                    if self.writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                        return None;
                    }
                }
                read = watching => match read {
                    Ok(0) | Err(_) => {
                        tracing::debug!(client = %self.connection.client, "client left before its answer");
                        return None;
                    }
                    Ok(_) => {}
                },
            }
        }
    }

    /// Takes the read side back from a request body that is done with it: finished, or
    /// dropped with the rest of it already buffered (skipped). A body dropped with more to
    /// come takes the read side with it (the connection closes: the rest must not be read as
    /// a request).
    fn take_back(&mut self, handback: Option<&Handback>) -> Lent {
        let Some(handback) = handback else {
            return Lent::Back;
        };
        if self.reader.is_some() {
            return Lent::Back;
        }
        match handback.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(Returned::Finished(reader)) => {
                self.reader = Some(reader);
                Lent::Back
            }
            Some(Returned::Unfinished((reader, mut buf), rest)) => {
                if rest.skip_buffered(&mut buf) {
                    self.reader = Some((reader, buf));
                    Lent::Back
                } else {
                    Lent::Unread
                }
            }
            None => Lent::InUse,
        }
    }

    /// Writes the head encoded in `self.out`, then the body in `framing`, coalescing what the
    /// body has ready into as few writes as possible; false if the connection broke (or the
    /// body did, which leaves the client a truncated message it can tell from a whole one).
    async fn write_body(
        &mut self,
        mut body: ExchangeBody,
        framing: ResponseFraming,
        takes_trailers: bool,
    ) -> bool {
        let chunked = framing == ResponseFraming::Chunked;
        let expected = match framing {
            ResponseFraming::Length(length) => Some(length),
            _ => None,
        };
        let mut sent = 0u64;
        let mut trailers = None;
        while framing != ResponseFraming::None && !body.is_end_stream() {
            let next = match body.frame().now_or_never() {
                Some(next) => next,
                None => {
                    // Nothing ready: send what is pending while the body works.
                    if !self.flush_out().await {
                        return false;
                    }
                    body.frame().await
                }
            };
            let frame = match next {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(error)) => {
                    tracing::debug!(%error, "response body failed mid-stream; closing the client connection");
                    let _ = self.flush_out().await;
                    return false;
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    trailers = frame.into_trailers().ok().filter(|_| takes_trailers);
                    continue;
                }
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            if expected.is_some_and(|e| sent > e) {
                tracing::debug!("response body longer than its Content-Length; closing");
                return false;
            }
            if chunked {
                self.out.extend(chunked::chunk_head(data.len()));
            }
            if data.len() > COALESCE {
                if !self.flush_out().await || self.writer.write_all(&data).await.is_err() {
                    return false;
                }
            } else {
                self.out.extend_from_slice(&data);
            }
            if chunked {
                self.out.extend_from_slice(b"\r\n");
            }
            if self.out.len() > COALESCE && !self.flush_out().await {
                return false;
            }
        }
        // The exchange is recorded (log, metrics, trace) before the client can see its end.
        drop(body);
        if chunked {
            self.out.extend(chunked::last_chunk(trailers.as_ref()));
        } else if expected.is_some_and(|e| sent < e) {
            tracing::debug!("response body shorter than its Content-Length; closing");
            let _ = self.flush_out().await;
            return false;
        }
        self.flush_out().await
    }

    async fn flush_out(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let written = self.writer.write_all(&self.out).await.is_ok();
        self.out.clear();
        written
    }
}

/// The `Date` field value for now, formatted once a second.
fn http_date() -> [u8; 29] {
    thread_local! {
        static CACHED: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            if let Ok(bytes) = <[u8; 29]>::try_from(text.as_bytes()) {
                *cached = (second, bytes);
            }
        }
        cached.1
    })
}

pin_project_lite::pin_project! {
    /// A stream that first yields bytes already read from it.
    struct Rewind {
        prefix: Bytes,
        #[pin]
        inner: TcpStream,
    }
}

impl Rewind {
    fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use arc_swap::ArcSwap;

    /// Ten thousand idle keep-alive clients cost ten thousand of these: the state a
    /// connection's task keeps for its whole life must stay small (exchanges and HTTP/2 are
    /// boxed when they happen).
    #[tokio::test]
    async fn an_idle_connection_keeps_little_state() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let yaml = format!(
            "listeners:\n  - name: m\n    address: {address}\n    routes: [{{ name: r, cluster: c }}]\n\
             clusters:\n  - name: c\n    endpoints: [{{ address: \"{address}\" }}]\n"
        );
        let loaded = watertight_config::load_str(&yaml, "t.yaml").unwrap();
        let drain = crate::drain::Drain::new();
        let metrics = Arc::new(watertight_telemetry::Metrics::new());
        let runtime = crate::runtime::Runtime::compile(loaded, None, &drain, &metrics)
            .await
            .unwrap();
        let connection = Arc::new(crate::edge::Connection::new(
            Arc::new(ArcSwap::from_pointee(runtime)),
            address,
            address,
            crate::activity::Activity::new(Duration::from_secs(1), Duration::from_secs(1)),
        ));
        let (_close, closing) = crate::closing::channel();
        let served = super::serve(stream, connection, closing);
        let size = std::mem::size_of_val(&served);
        assert!(
            size <= 2048,
            "a client connection's task keeps {size} bytes"
        );
    }
}

/// Where a request's read side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lent {
    /// With the connection (never lent, or given back).
    Back,
    /// Its body was dropped with more to come.
    Unread,
    /// Its body is still being read.
    InUse,
}
