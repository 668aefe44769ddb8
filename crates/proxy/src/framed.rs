//! Reading a message body out of a buffer by its framing (RFC 9112 §6): a length, the
//! chunked coding, or (responses only) the end of the connection. Both sides use it: request
//! bodies from clients (`downstream/body.rs`) and response bodies from upstreams
//! (`upstream/exchange.rs`); each does its own reading into the buffer.

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use crate::chunked::{ChunkError, Decoded, Decoder};

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
