//! Reading a message body out of a buffer by its framing (RFC 9112 §6): a length, the
//! chunked coding, or (responses only) the end of the connection. Both sides use it: request
//! bodies from clients (`downstream/body.rs`) and response bodies from upstreams
//! (`upstream/exchange.rs`); each does its own reading into the buffer.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::chunked::{ChunkError, Decoded, Decoder};
use crate::error::BoxError;

/// Read buffer reserved when a read finds too little room.
const READ_BUFFER: usize = 16 * 1024;

/// How much of a body is left, by its framing.
#[derive(Debug)]
pub enum Framed {
    /// This many bytes.
    Length(u64),
    /// Chunked coding, decoded as it comes.
    Chunked(Decoder),
    /// Everything until the connection ends.
    UntilClose,
}

/// What the buffer gave.
#[derive(Debug)]
pub enum Step {
    /// A frame of the body (data, or the trailers that end a chunked body).
    Frame(Frame<Bytes>),
    /// The body is complete.
    End,
    /// Read more into the buffer.
    NeedMore,
}

/// Where a body stands after a poll, for whoever holds its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    /// More is to come.
    More,
    /// The body is all read (the frame given, if any, was its last): the connection may
    /// serve the next message.
    Nothing,
    /// The body failed: the connection is of no further use.
    Broken,
}

/// A body's poll as `http_body` returns it.
pub type BodyPoll = Option<Result<Frame<Bytes>, BoxError>>;

impl Framed {
    /// Takes the next frame of the body from the front of `buf`.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        Ok(match self {
            Framed::Length(0) => Step::End,
            Framed::Length(left) if !buf.is_empty() => {
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                Step::Frame(Frame::data(buf.split_to(n).freeze()))
            }
            Framed::UntilClose if !buf.is_empty() => Step::Frame(Frame::data(buf.split().freeze())),
            Framed::Length(_) | Framed::UntilClose => Step::NeedMore,
            Framed::Chunked(decoder) => match decoder.decode(buf)? {
                Decoded::Data(data) => Step::Frame(Frame::data(data)),
                Decoded::Trailers(trailers) => Step::Frame(Frame::trailers(trailers)),
                Decoded::Done => Step::End,
                Decoded::NeedMore => Step::NeedMore,
            },
        })
    }

    /// The next frame of the body, and where the body then stands: from `buf`, reading more
    /// into it from `reader` as needed. A connection that ends mid-body fails with
    /// `cut_short` (or ends a body that runs until the close).
    pub fn poll_frame(
        &mut self,
        reader: &mut (impl AsyncRead + Unpin + ?Sized),
        buf: &mut BytesMut,
        cx: &mut Context<'_>,
        cut_short: &'static str,
    ) -> Poll<(BodyPoll, Left)> {
        loop {
            match self.next(buf) {
                Ok(Step::Frame(frame)) => {
                    let left = if self.is_done() {
                        Left::Nothing
                    } else {
                        Left::More
                    };
                    return Poll::Ready((Some(Ok(frame)), left));
                }
                Ok(Step::End) => return Poll::Ready((None, Left::Nothing)),
                Ok(Step::NeedMore) => {}
                Err(error) => return Poll::Ready((Some(Err(Box::new(error))), Left::Broken)),
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_BUFFER);
            }
            match ready!(pin!(reader.read_buf(buf)).poll(cx)) {
                Ok(0) if matches!(self, Framed::UntilClose) => {
                    return Poll::Ready((None, Left::Nothing));
                }
                Ok(0) => {
                    let error = io::Error::new(io::ErrorKind::UnexpectedEof, cut_short);
                    return Poll::Ready((Some(Err(Box::new(error))), Left::Broken));
                }
                Ok(_) => {}
                Err(error) => return Poll::Ready((Some(Err(Box::new(error))), Left::Broken)),
            }
        }
    }

    /// Whether the whole body has been taken (the frame just returned was its last).
    pub fn is_done(&self) -> bool {
        match self {
            Framed::Length(left) => *left == 0,
            Framed::Chunked(decoder) => decoder.is_done(),
            Framed::UntilClose => false,
        }
    }

    /// What is known of the length still to come.
    pub fn size_hint(&self) -> SizeHint {
        match self {
            Framed::Length(left) => SizeHint::with_exact(*left),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(framed: &mut Framed, buf: &mut BytesMut) -> (Vec<u8>, bool) {
        let mut body = Vec::new();
        loop {
            match framed.next(buf).unwrap() {
                Step::Frame(frame) => {
                    if let Some(data) = frame.data_ref() {
                        body.extend_from_slice(data);
                    }
                }
                Step::End => return (body, true),
                Step::NeedMore => return (body, false),
            }
        }
    }

    #[test]
    fn a_length_takes_no_more_than_its_bytes() {
        let mut buf = BytesMut::from(&b"helloGET /"[..]);
        let mut framed = Framed::Length(5);
        assert_eq!(drain(&mut framed, &mut buf), (b"hello".to_vec(), true));
        assert!(framed.is_done());
        assert_eq!(&buf[..], b"GET /");
    }

    #[test]
    fn chunked_ends_at_its_last_chunk() {
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\nnext"[..]);
        let mut framed = Framed::Chunked(Decoder::default());
        assert_eq!(drain(&mut framed, &mut buf), (b"abc".to_vec(), true));
        assert!(framed.is_done());
        assert_eq!(&buf[..], b"next");
    }

    #[test]
    fn until_close_takes_everything_and_never_ends_by_itself() {
        let mut buf = BytesMut::from(&b"all of it"[..]);
        let mut framed = Framed::UntilClose;
        assert_eq!(drain(&mut framed, &mut buf), (b"all of it".to_vec(), false));
        assert!(!framed.is_done());
    }
}
