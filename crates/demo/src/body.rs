//! Bodies in and out: the one response body type (no boxing on the fast path) and a
//! chunk-by-chunk reader for request bodies that never holds a whole body.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::pattern::PatternBody;

/// Every response body a sample service sends.
pub(crate) enum ResponseBody {
    /// A body already in memory; `None` once sent.
    Full(Option<Bytes>),
    /// `GET /bytes`: generated chunk by chunk.
    Pattern(PatternBody),
}

impl ResponseBody {
    pub(crate) fn empty() -> ResponseBody {
        ResponseBody::Full(None)
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        ResponseBody::Full(Some(bytes).filter(|b| !b.is_empty()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Pattern(pattern) => Pin::new(pattern).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Pattern(pattern) => pattern.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Pattern(pattern) => pattern.size_hint(),
        }
    }
}

/// Reads a request body to its end, handing each data chunk to `chunk` and dropping it.
/// Returns the number of bytes read.
pub(crate) async fn drain(
    mut body: Incoming,
    mut chunk: impl FnMut(&[u8]),
) -> Result<u64, hyper::Error> {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            total += data.len() as u64;
            chunk(data);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_body_yields_its_bytes_once_with_exact_size() {
        let body = ResponseBody::from(Bytes::from_static(b"ok\n"));
        assert_eq!(body.size_hint().exact(), Some(3));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"ok\n");
    }

    #[test]
    fn empty_body_is_at_its_end() {
        assert!(ResponseBody::empty().is_end_stream());
        assert!(ResponseBody::from(Bytes::new()).is_end_stream());
        assert_eq!(ResponseBody::empty().size_hint().exact(), Some(0));
    }
}
