//! One HTTP/1.1 exchange on a pooled connection, driven by the request's own task: write the
//! head (and body), read the response head, then hand back a body that reads the rest from
//! the socket and returns the connection to the pool at its end.
//!
//! A reused connection the upstream closed just before the request reached it fails with
//! nothing received; such a request is sent once more on a fresh connection when that cannot
//! duplicate it: no body, and an idempotent method (RFC 9110 §9.2.2).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::AsyncRead;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use super::head::{self, RequestFraming, ResponseFraming};
use super::pool::{Connection, Held, Pool, READ_BUFFER};
use super::{Deadlines, Unanswered};
use crate::body::{self, ProxyBody};
use crate::chunked::{self, Decoder};
use crate::error::{BoxError, ErrorKind, ProxyError};
use crate::framed::{Framed, Left};
use crate::timer::Timer;

/// After a 101 answer: the upstream connection, with what the upstream already sent past the
/// head in its buffer (to be delivered first). It still counts as open to the endpoint while
/// the tunnel holds it. Taken once, by the tunnel.
#[derive(Clone, Debug)]
pub struct Upgraded(Arc<Mutex<Option<Connection>>>);

impl Upgraded {
    /// The connection, if not taken yet.
    pub fn take(&self) -> Option<Connection> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// How an attempt failed.
enum Failure {
    /// Nothing came back from a connection that may have been closed under us.
    Stale(ProxyError),
    /// The deadline for the response head passed.
    Expired,
    /// Anything else.
    Failed(ProxyError),
}

/// Sends `request` to the pool's endpoint and returns the response with its body streaming,
/// or [`Unanswered::Expired`] if its head is not in by `deadlines.head`; the body fails with
/// a `TimedOut` error if it is not all in by `deadlines.whole`.
pub async fn send(
    pool: &Arc<Pool>,
    request: Request<ProxyBody>,
    deadlines: Deadlines,
) -> Result<Response<ResponseBody>, Unanswered> {
    let (mut parts, body) = request.into_parts();
    let framing = head::frame_request(
        &mut parts.headers,
        body.is_end_stream(),
        body.size_hint().exact(),
    );
    let method = parts.method.clone();
    let mut head = Vec::with_capacity(512);
    head::encode_request(&parts, pool.target(), &mut head);
    drop(parts);
    let body = (framing != RequestFraming::Empty).then_some(body);
    let may_resend = body.is_none() && method.is_idempotent();

    if let Some(mut connection) = pool.take_idle() {
        connection.timer.set(deadlines.head);
        match attempt(connection, &head, body, framing, &method, pool, deadlines).await {
            Ok(response) => return Ok(response),
            Err(Failure::Stale(_)) if may_resend => {
                tracing::debug!("idle upstream connection was closed; sending again on a new one");
            }
            Err(failure) => return Err(failure.into()),
        }
        let connection = connect(pool, deadlines.head).await?;
        return attempt(connection, &head, None, framing, &method, pool, deadlines)
            .await
            .map_err(Into::into);
    }
    let connection = connect(pool, deadlines.head).await?;
    attempt(connection, &head, body, framing, &method, pool, deadlines)
        .await
        .map_err(Into::into)
}

impl From<Failure> for Unanswered {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Expired => Unanswered::Expired,
            Failure::Stale(error) | Failure::Failed(error) => Unanswered::Failed(error),
        }
    }
}

/// A new connection, dialed by `by`, its timer set to it. Time running out while the
/// endpoint has not accepted is its connect timing out (not a slow client, whose body has not
/// begun to go).
async fn connect(pool: &Arc<Pool>, by: Option<Instant>) -> Result<Connection, Unanswered> {
    let dialed = match by {
        Some(at) => tokio::time::timeout_at(at, pool.connect())
            .await
            .map_err(|_| {
                let error = io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request's deadline passed while connecting",
                );
                Unanswered::Failed(ProxyError::with_source(ErrorKind::ConnectTimeout, error))
            })?,
        None => pool.connect().await,
    };
    let mut connection = dialed.map_err(Unanswered::Failed)?;
    connection.timer.set(by);
    Ok(connection)
}

/// One try on `connection`, whose timer is set to the deadline for the response head.
async fn attempt(
    mut connection: Connection,
    head: &[u8],
    body: Option<ProxyBody>,
    framing: RequestFraming,
    method: &Method,
    pool: &Arc<Pool>,
    deadlines: Deadlines,
) -> Result<Response<ResponseBody>, Failure> {
    let Some(body) = body else {
        let Connection {
            stream,
            read,
            timer,
            ..
        } = &mut connection;
        let exchanged = async {
            if let Err(error) = stream.write_all(head).await {
                return Err(Failure::Stale(upstream_io(error)));
            }
            read_head(stream, read, method).await
        };
        let parsed = timer.run(exchanged).await.ok_or(Failure::Expired)??;
        return Ok(respond(Source::Pooled(connection), parsed, pool, deadlines));
    };

    // The upstream may answer before the whole body is sent: read the head while sending.
    let (stream, mut held) = connection.into_parts();
    let (mut reader, writer) = stream.into_split();
    let mut sending = Box::pin(send_body(writer, head.to_vec(), body, framing));
    let mut sent = None;
    let mut send_error = None;
    let parsed = {
        let Held { read, timer, .. } = &mut held;
        let receiving = read_head(&mut reader, read, method);
        tokio::pin!(receiving);
        loop {
            tokio::select! {
                biased;
                parsed = &mut receiving => match parsed {
                    Ok(parsed) => break parsed,
                    // A failed send says more than what reading then saw.
                    Err(failure) => return Err(send_error.map_or(failure, Failure::Failed)),
                },
                result = &mut sending, if sent.is_none() && send_error.is_none() => match result {
                    Ok(writer) => sent = Some(writer),
                    Err(SendError::Client(error)) => return Err(Failure::Failed(error)),
                    // The upstream may have answered and closed: see what it said.
                    Err(SendError::Upstream(error)) => send_error = Some(error),
                },
                () = timer.expired() => return Err(Failure::Expired),
            }
        }
    };
    if let Some(writer) = sent {
        let stream = reader
            .reunite(writer)
            .map_err(|e| Failure::Failed(upstream_io(io::Error::other(e))))?;
        return Ok(respond(
            Source::Pooled(Connection::from_parts(stream, held)),
            parsed,
            pool,
            deadlines,
        ));
    }
    let (response, framing, _) = parsed;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let error = io::Error::other("101 before the request body was sent");
        return Err(Failure::Failed(ProxyError::with_source(
            ErrorKind::UpstreamProtocol,
            error,
        )));
    }
    // Answered mid-body. An upstream that streams its answer may still read the rest (a
    // duplex handler): keep sending it alongside, until the answer ends. The connection is
    // not reused.
    let sender = (send_error.is_none()).then(|| AbortOnDrop(tokio::spawn(sending).abort_handle()));
    let detached = Source::Detached {
        reader,
        held,
        _sender: sender,
    };
    Ok(respond(
        detached,
        (response, framing, false),
        pool,
        deadlines,
    ))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The response with its body reading from `source`, by `deadlines.whole`.
fn respond(
    mut source: Source,
    (response, framing, keep_alive): Head,
    pool: &Arc<Pool>,
    deadlines: Deadlines,
) -> Response<ResponseBody> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Source::Pooled(connection) = source
    {
        let upgraded = Upgraded(Arc::new(Mutex::new(Some(connection))));
        let mut response = response.map(|()| ResponseBody::empty());
        response.extensions_mut().insert(upgraded);
        return response;
    }
    let state = match framing {
        ResponseFraming::Empty | ResponseFraming::Length(0) => {
            if keep_alive && let Source::Pooled(connection) = source {
                pool.put_back(connection);
            }
            return response.map(|()| ResponseBody::empty());
        }
        ResponseFraming::Length(length) => Framed::Length(length),
        ResponseFraming::Chunked => Framed::Chunked(Decoder::default()),
        ResponseFraming::UntilClose => Framed::UntilClose,
    };
    source.parts().2.set(deadlines.whole);
    response.map(|()| ResponseBody {
        source: Some(source),
        framing: state,
        keep_alive,
        pool: Some(pool.clone()),
    })
}

type Head = (Response<()>, ResponseFraming, bool);

/// Reads until a whole response head is in `buf`, and parses it.
async fn read_head(
    reader: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Head, Failure> {
    let mut received = false;
    loop {
        if !buf.is_empty() {
            received = true;
            match head::parse_response(buf, method) {
                Ok(Some(head)) => return Ok((head.response, head.framing, head.keep_alive)),
                Ok(None) => {}
                Err(error) => {
                    return Err(Failure::Failed(ProxyError::with_source(
                        ErrorKind::UpstreamProtocol,
                        error,
                    )));
                }
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_BUFFER);
        }
        match reader.read_buf(buf).await {
            Ok(0) => {
                let error = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upstream closed the connection before a complete response head",
                );
                let error = upstream_io(error);
                return Err(if received {
                    Failure::Failed(error)
                } else {
                    Failure::Stale(error)
                });
            }
            Ok(_) => {}
            Err(error) if !received => return Err(Failure::Stale(upstream_io(error))),
            Err(error) => return Err(Failure::Failed(upstream_io(error))),
        }
    }
}

enum SendError {
    /// The client's body failed: the client is to blame.
    Client(ProxyError),
    /// Writing to the upstream failed.
    Upstream(ProxyError),
}

/// Writes the head and the body in `framing`, coalescing whatever the body has ready into one
/// write (the head with a small body, the last chunk with the terminator).
async fn send_body(
    mut writer: OwnedWriteHalf,
    head: Vec<u8>,
    mut body: ProxyBody,
    framing: RequestFraming,
) -> Result<OwnedWriteHalf, SendError> {
    const COALESCE: usize = 16 * 1024;
    let chunked = framing == RequestFraming::Chunked;
    let declared = match framing {
        RequestFraming::Length(length) => length,
        _ => u64::MAX,
    };
    let mut sent = 0u64;
    let mut out = head;
    let mut trailers = None;
    loop {
        let next = match body.frame().now_or_never() {
            Some(next) => next,
            None => {
                // Nothing ready: send what is pending before waiting on the client.
                write(&mut writer, &out).await?;
                out.clear();
                body.frame().await
            }
        };
        let frame = match next {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                return Err(SendError::Client(ProxyError::with_source(
                    ErrorKind::ClientAborted,
                    error,
                )));
            }
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if sent > declared {
            let error = io::Error::other("request body longer than its Content-Length");
            return Err(SendError::Client(ProxyError::with_source(
                ErrorKind::BadRequest,
                error,
            )));
        }
        if chunked {
            out.extend(chunked::chunk_head(data.len()));
        }
        if data.len() > COALESCE {
            write(&mut writer, &out).await?;
            out.clear();
            write(&mut writer, &data).await?;
        } else {
            out.extend_from_slice(&data);
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() > COALESCE {
            write(&mut writer, &out).await?;
            out.clear();
        }
    }
    if chunked {
        out.extend(chunked::last_chunk(trailers.as_ref()));
    } else if sent < declared {
        let error = io::Error::other("request body shorter than its Content-Length");
        return Err(SendError::Client(ProxyError::with_source(
            ErrorKind::ClientAborted,
            error,
        )));
    }
    write(&mut writer, &out).await?;
    Ok(writer)
}

async fn write(writer: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), SendError> {
    if bytes.is_empty() {
        return Ok(());
    }
    writer
        .write_all(bytes)
        .await
        .map_err(|e| SendError::Upstream(upstream_io(e)))
}

fn upstream_io(error: io::Error) -> ProxyError {
    let kind = match error.kind() {
        io::ErrorKind::TimedOut => ErrorKind::UpstreamTimeout,
        _ => ErrorKind::UpstreamReset,
    };
    ProxyError::with_source(kind, error)
}

/// Where a response body is read from.
enum Source {
    /// A whole connection, which may go back to the pool at the body's end.
    Pooled(Connection),
    /// The read side of a connection whose request body is still being sent (by `_sender`);
    /// closed at the body's end.
    Detached {
        reader: OwnedReadHalf,
        held: Held,
        _sender: Option<AbortOnDrop>,
    },
}

impl Source {
    /// The socket to read from, the buffer to read into, and the deadline timer.
    fn parts(
        &mut self,
    ) -> (
        &mut (dyn AsyncRead + Unpin + Send),
        &mut BytesMut,
        &mut Timer,
    ) {
        match self {
            Source::Pooled(connection) => (
                &mut connection.stream,
                &mut connection.read,
                &mut connection.timer,
            ),
            Source::Detached { reader, held, .. } => (reader, &mut held.read, &mut held.timer),
        }
    }
}

/// A response body read straight from the upstream connection.
pub struct ResponseBody {
    /// Where the body comes from; `None` once it has ended (or failed).
    source: Option<Source>,
    framing: Framed,
    keep_alive: bool,
    pool: Option<Arc<Pool>>,
}

impl ResponseBody {
    fn empty() -> Self {
        Self {
            source: None,
            framing: Framed::Length(0),
            keep_alive: false,
            pool: None,
        }
    }

    /// The body is complete: the connection goes back to the pool if it may.
    fn finish(&mut self) {
        if let (Some(Source::Pooled(connection)), Some(pool)) =
            (self.source.take(), self.pool.take())
            && self.keep_alive
        {
            pool.put_back(connection);
        }
    }
}

const CUT_SHORT: &str = "upstream closed the connection before the end of the response body";

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(source) = this.source.as_mut() else {
            return Poll::Ready(None);
        };
        let (reader, buf, timer) = source.parts();
        let Poll::Ready((frame, left)) = this.framing.poll_frame(reader, buf, cx, CUT_SHORT) else {
            ready!(timer.poll_expired(cx));
            // Cut short: the connection is out of step and is not reused.
            this.source = None;
            return Poll::Ready(Some(Err(body::timed_out())));
        };
        match left {
            Left::More => {}
            Left::Nothing => this.finish(),
            Left::Broken => this.source = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.source.is_none() || self.framing.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        if self.source.is_none() {
            return SizeHint::with_exact(0);
        }
        self.framing.size_hint()
    }
}
