//! Body types of the proxy: one boxed streaming body, and small wrappers that count bytes and
//! enforce the exchange deadline while a body streams. Nothing here buffers a whole body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use crate::error::BoxError;
use crate::timer::Timer;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// The body type flowing through every layer, in both directions.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any body into a [`ProxyBody`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A complete body from a short text or byte string.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    boxed(http_body_util::Full::new(bytes.into()))
}

/// An empty body.
pub fn empty() -> ProxyBody {
    boxed(http_body_util::Empty::<Bytes>::new())
}

/// Something that watches a body stream by: its data frames, a failure, and its end.
pub trait Observer {
    /// A data frame passed.
    fn data(&mut self, _data: &Bytes) {}
    /// The body failed (an error frame passed); `end` follows if the stream then ends.
    fn failed(&mut self) {}
    /// The body ended (its last frame passed, or it reported end of stream).
    fn end(&mut self) {}
}

/// Adds every data frame's length to a shared counter.
pub struct ByteCount(pub Arc<AtomicU64>);

impl Observer for ByteCount {
    fn data(&mut self, data: &Bytes) {
        self.0.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
}

/// A request body on its way upstream: how many bytes have gone, and whether all have.
#[derive(Clone, Debug, Default)]
pub struct Upload {
    /// Bytes passed so far.
    pub bytes: Arc<AtomicU64>,
    /// Raised when the body ended.
    pub done: Arc<AtomicBool>,
}

impl Observer for Upload {
    fn data(&mut self, data: &Bytes) {
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    }

    fn end(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A body passed through unchanged, shown to an [`Observer`] on the way (which may also
    /// just be something to keep alive until the body is dropped).
    pub struct Observed<B, O> {
        #[pin]
        inner: B,
        observer: O,
    }
}

impl<B, O> Observed<B, O> {
    /// Wraps `inner`, showing it to `observer`.
    pub fn new(inner: B, observer: O) -> Self {
        Self { inner, observer }
    }
}

impl<B: Body<Data = Bytes>, O: Observer> Body for Observed<B, O> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.observer.data(data);
                }
            }
            Some(Err(_)) => this.observer.failed(),
            None => {}
        }
        // A reader may stop at `is_end_stream` without polling for the final `None`.
        if frame.is_none() || this.inner.is_end_stream() {
            this.observer.end();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// Fails the body with a `TimedOut` error when the exchange deadline passes mid-stream.
    /// Its timer is only looked at once the body has to wait.
    pub struct Deadline<B> {
        #[pin]
        inner: B,
        timer: Timer,
    }
}

impl<B> Deadline<B> {
    /// Wraps `inner` so it must finish before `timer` fires.
    pub(crate) fn new(inner: B, timer: Timer) -> Self {
        Self { inner, timer }
    }
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        ready!(this.timer.poll_expired(cx));
        Poll::Ready(Some(Err(timed_out())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a body ends with when the exchange deadline passes while it streams.
pub fn timed_out() -> BoxError {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "request timeout elapsed while the body was streaming",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::time::Instant;

    #[tokio::test]
    async fn counted_adds_every_data_frame() {
        let counter = Arc::new(AtomicU64::new(0));
        let body = Observed::new(
            http_body_util::Full::new(Bytes::from_static(b"hello")),
            ByteCount(counter.clone()),
        );
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 5);
        assert_eq!(counter.load(Ordering::Relaxed), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_fails_a_body_that_stalls_past_it() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stalled = StreamBody::new(tokio_stream_from(rx));
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let err = Deadline::new(stalled, Timer::at(Some(deadline)))
            .collect()
            .await
            .unwrap_err();
        drop(tx);
        let io = err.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_lets_a_timely_body_through() {
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let body = Deadline::new(
            http_body_util::Full::new(Bytes::from_static(b"ok")),
            Timer::at(Some(deadline)),
        );
        assert_eq!(
            body.collect().await.unwrap().to_bytes(),
            Bytes::from_static(b"ok")
        );
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
