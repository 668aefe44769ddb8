//! The chunked transfer coding (RFC 9112 §7.1): decoding a body as it arrives, and the chunk
//! framing for a body of unknown length. Both sides use it: request bodies from clients and
//! response bodies from upstreams are decoded, and either is encoded when its length is not
//! known up front.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// Longest chunk-size line (size and extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// What decoding produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The trailer section (only if it has fields); the body is complete.
    Trailers(HeaderMap),
    /// The body is complete.
    Done,
    /// More input is needed.
    NeedMore,
}

/// Why a chunked body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid chunked body: {0}")]
pub struct ChunkError(&'static str);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the chunk size line; `line` bytes of it seen so far.
    Size {
        size: u64,
        digits: u8,
        ext: Ext,
        line: usize,
    },
    /// The LF after the size line's CR.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data, with this much left.
    Data(u64),
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// After the last chunk: the trailer section, up to its empty line.
    Trailers,
    Done,
}

/// Where a chunk size line is after its digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// Still in the digits.
    No,
    /// Whitespace after the digits: a `;` or the CR must follow.
    Space,
    /// Inside the extensions (ignored) after a `;`.
    Inside,
}

/// The next state of a chunk size line after `byte`.
fn size_line(size: u64, digits: u8, ext: Ext, line: usize, byte: u8) -> Result<State, ChunkError> {
    let line = line + 1;
    Ok(match (ext, byte) {
        (_, b'\r') if digits > 0 => State::SizeLf { size },
        (_, b'\r' | b'\n') => return Err(ChunkError("chunk size expected")),
        (Ext::No, b) if b.is_ascii_hexdigit() => {
            if digits == 16 {
                return Err(ChunkError("chunk size too large"));
            }
            let digit = (b as char).to_digit(16).map_or(0, u64::from);
            State::Size {
                size: size << 4 | digit,
                digits: digits + 1,
                ext,
                line,
            }
        }
        (Ext::No | Ext::Space, b' ' | b'\t') if digits > 0 => State::Size {
            size,
            digits,
            ext: Ext::Space,
            line,
        },
        (Ext::No | Ext::Space, b';') if digits > 0 => State::Size {
            size,
            digits,
            ext: Ext::Inside,
            line,
        },
        (Ext::Inside, _) => State::Size {
            size,
            digits,
            ext,
            line,
        },
        _ => return Err(ChunkError("bad chunk size line")),
    })
}

/// A chunked-body decoder; it consumes what it decodes from the buffer it is given.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            state: State::Size {
                size: 0,
                digits: 0,
                ext: Ext::No,
                line: 0,
            },
        }
    }
}

impl Decoder {
    /// Whether the last chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::Trailers => return self.trailers(buf),
                _ => {}
            }
            let Some(&byte) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            self.state = match (self.state, byte) {
                (
                    State::Size {
                        size,
                        digits,
                        ext,
                        line,
                    },
                    _,
                ) => {
                    if line >= MAX_SIZE_LINE {
                        return Err(ChunkError("chunk size line too long"));
                    }
                    size_line(size, digits, ext, line, byte)?
                }
                (State::SizeLf { size: 0 }, b'\n') => State::Trailers,
                (State::SizeLf { size }, b'\n') => State::Data(size),
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size {
                    size: 0,
                    digits: 0,
                    ext: Ext::No,
                    line: 0,
                },
                _ => return Err(ChunkError("CRLF expected")),
            };
        }
    }

    /// The trailer section: nothing but CRLF, or fields up to an empty line.
    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        // Every line ends in CRLF: a bare LF is refused, not read as a line end, so no two
        // parsers can disagree on where the body ends (and the next message begins).
        let section_end = if buf.starts_with(b"\r\n") {
            2
        } else {
            buf.windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(buf.len(), |end| end + 4)
        };
        let bare_lf = buf[..section_end]
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (i == 0 || buf[i - 1] != b'\r'));
        if bare_lf {
            return Err(ChunkError("bare LF in the trailer section"));
        }
        if buf.len() < 2 {
            return Ok(Decoded::NeedMore);
        }
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            self.state = State::Done;
            return Ok(Decoded::Done);
        }
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if buf.len() > MAX_TRAILERS {
                return Err(ChunkError("trailer section too large"));
            }
            return Ok(Decoded::NeedMore);
        };
        let section = buf.split_to(end + 4);
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let parsed = match httparse::parse_headers(&section, &mut fields) {
            Ok(httparse::Status::Complete((length, parsed))) if length == section.len() => parsed,
            _ => return Err(ChunkError("bad trailer section")),
        };
        let mut trailers = HeaderMap::with_capacity(parsed.len());
        for field in parsed {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(field.name.as_bytes()),
                HeaderValue::from_bytes(field.value),
            ) else {
                return Err(ChunkError("bad trailer field"));
            };
            trailers.append(name, value);
        }
        self.state = State::Done;
        Ok(Decoded::Trailers(trailers))
    }
}

/// The line that starts a chunk of `len` bytes.
pub fn chunk_head(len: usize) -> Vec<u8> {
    format!("{len:x}\r\n").into_bytes()
}

/// What ends a chunked body: the last chunk, the trailers if any, the empty line.
pub fn last_chunk(trailers: Option<&HeaderMap>) -> Vec<u8> {
    let mut out = b"0\r\n".to_vec();
    for (name, value) in trailers.into_iter().flatten() {
        crate::wire::write_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; the body bytes, trailers, and whether
    /// it completed.
    fn decode_in_steps(
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, bool), ChunkError> {
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = None;
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(data) => body.extend_from_slice(&data),
                    Decoded::Trailers(t) => trailers = Some(t),
                    Decoded::Done | Decoded::NeedMore => break,
                }
            }
        }
        Ok((body, trailers, decoder.is_done()))
    }

    #[test]
    fn decodes_whatever_way_the_bytes_arrive() {
        let input = b"5\r\nhello\r\n1;name=value\r\n,\r\nA\r\n world!!!!\r\n0\r\n\r\n";
        for step in 1..=input.len() {
            let (body, trailers, done) = decode_in_steps(input, step).unwrap();
            assert_eq!(body, b"hello, world!!!!", "step {step}");
            assert!(trailers.is_none());
            assert!(done);
        }
    }

    #[test]
    fn trailers_are_returned() {
        let input = b"3\r\nabc\r\n0\r\nx-checksum: 42\r\nx-more: yes\r\n\r\n";
        for step in [1, 4, input.len()] {
            let (body, trailers, done) = decode_in_steps(input, step).unwrap();
            assert_eq!(body, b"abc");
            let trailers = trailers.unwrap();
            assert_eq!(trailers["x-checksum"], "42");
            assert_eq!(trailers["x-more"], "yes");
            assert!(done);
        }
    }

    #[test]
    fn bytes_after_the_body_are_left_alone() {
        let mut buf = BytesMut::from(&b"0\r\n\r\nHTTP/1.1"[..]);
        let mut decoder = Decoder::default();
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (body, _, done) = decode_in_steps(b"5\r\nhel", 2).unwrap();
        assert_eq!(body, b"hel");
        assert!(!done);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for input in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"11111111111111111\r\n",
            b"5 5\r\n",
        ] {
            assert!(
                decode_in_steps(input, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_SIZE_LINE));
        assert!(decode_in_steps(long.as_bytes(), 64).is_err());
    }

    #[test]
    fn a_bare_lf_in_the_trailers_is_refused_not_read_past() {
        // Read leniently, `0\r\n\n` ends the body and the GET is a message of its own;
        // read strictly, the GET is trailers. Neither: refuse.
        for input in [
            &b"0\r\n\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"0\r\nx: y\r\n\nGET /admin HTTP/1.1\r\n\r\n",
            b"0\r\n\n",
        ] {
            for step in [1, input.len()] {
                assert!(
                    decode_in_steps(input, step).is_err(),
                    "{:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn encoding_round_trips() {
        let mut wire = Vec::new();
        for piece in [&b"hello"[..], b", ", b"world"] {
            wire.extend(chunk_head(piece.len()));
            wire.extend_from_slice(piece);
            wire.extend_from_slice(b"\r\n");
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", HeaderValue::from_static("1"));
        wire.extend(last_chunk(Some(&trailers)));
        let (body, decoded, done) = decode_in_steps(&wire, 3).unwrap();
        assert_eq!(body, b"hello, world");
        assert_eq!(decoded.unwrap()["x-t"], "1");
        assert!(done);
    }
}
