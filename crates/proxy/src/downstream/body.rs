//! A client's request body, read from its connection as the route consumes it.
//!
//! The body takes the connection's read side and buffer while it streams, and hands both
//! back when it has read its last byte, so the connection can read the next request. A body
//! dropped before its end hands them back with what is left of it: the connection skips the
//! rest if it is already buffered, and otherwise closes after the answer, since the rest of
//! the body would be read as the next request.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;

use super::head::BodyFraming;
use crate::chunked::Decoder;
use crate::error::BoxError;
use crate::framed::{Framed, Left, Step};
use crate::watched_io::Watched;

/// The connection's read side and its buffer.
pub type Reader = (Watched<OwnedReadHalf>, BytesMut);

/// Where a body leaves the read side for the connection when it is done with it.
pub type Handback = Arc<Mutex<Option<Returned>>>;

/// The read side as a request body gives it back.
pub enum Returned {
    /// The body was read to its end.
    Finished(Reader),
    /// The body was dropped before its end; this much of it is still to come.
    Unfinished(Reader, Remaining),
}

/// What is left of a body dropped before its end.
pub struct Remaining(Framed);

impl Remaining {
    /// Skips the rest of the body if it is all in `buf` already; true if it was.
    pub fn skip_buffered(mut self, buf: &mut BytesMut) -> bool {
        loop {
            match self.0.next(buf) {
                Ok(Step::Frame(_)) => {}
                Ok(Step::End) => return true,
                Ok(Step::NeedMore) | Err(_) => return false,
            }
        }
    }
}

const CUT_SHORT: &str = "client closed the connection before the end of the request body";

/// A request body streaming from the client.
pub struct RequestBody {
    reader: Option<Reader>,
    framing: Framed,
    handback: Handback,
    /// Told once, at the first read, when the client waits for `100 Continue`.
    go_ahead: Option<Arc<Notify>>,
}

impl RequestBody {
    /// The body framed by `framing` (not empty), read from `reader`; `go_ahead` is notified
    /// at the first read if the client expects `100 Continue`.
    pub fn new(
        reader: Reader,
        framing: BodyFraming,
        handback: Handback,
        go_ahead: Option<Arc<Notify>>,
    ) -> Self {
        let framing = match framing {
            BodyFraming::Length(length) => Framed::Length(length),
            BodyFraming::Chunked => Framed::Chunked(Decoder::default()),
            BodyFraming::Empty => Framed::Length(0),
        };
        Self {
            reader: Some(reader),
            framing,
            handback,
            go_ahead,
        }
    }

    fn finish(&mut self) {
        if let Some(reader) = self.reader.take() {
            *self.handback.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Returned::Finished(reader));
        }
    }
}

impl Drop for RequestBody {
    /// Dropped before its end (the route answered without reading it all): the read side goes
    /// back with what is left, so the connection can skip the rest if it is already here.
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            let framing = std::mem::replace(&mut self.framing, Framed::Length(0));
            *self.handback.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Returned::Unfinished(reader, Remaining(framing)));
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(go_ahead) = this.go_ahead.take() {
            go_ahead.notify_one();
        }
        let Some((reader, buf)) = this.reader.as_mut() else {
            return Poll::Ready(None);
        };
        let (frame, left) = ready!(this.framing.poll_frame(reader, buf, cx, CUT_SHORT));
        match left {
            Left::More => {}
            Left::Nothing => this.finish(),
            Left::Broken => this.reader = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_none() || self.framing.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.framing.size_hint()
    }
}
