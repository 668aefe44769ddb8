//! The body of `GET /bytes`: `len` bytes of a repeating pattern, generated chunk by chunk.
//!
//! Memory use does not depend on `len`: every chunk is a slice of one static buffer, so a
//! 1 TiB body costs the same as a 1 KiB one, and hyper pulls chunks only as fast as the
//! client reads them.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The repeating unit; byte `i` of every body is `PERIOD[i % 16]`.
pub(crate) const PERIOD: &[u8; 16] = b"0123456789abcdef";
pub(crate) const DEFAULT_CHUNK: usize = 64 * 1024;
pub(crate) const MAX_CHUNK: usize = 256 * 1024;

/// `MAX_CHUNK` bytes of pattern plus one period, so a chunk can start at any phase.
static BUFFER: LazyLock<Box<[u8]>> = LazyLock::new(|| {
    PERIOD
        .iter()
        .copied()
        .cycle()
        .take(MAX_CHUNK + PERIOD.len())
        .collect()
});

pub(crate) struct PatternBody {
    sent: u64,
    len: u64,
    chunk: usize,
}

impl PatternBody {
    /// `chunk` is clamped to `1..=MAX_CHUNK`.
    pub(crate) fn new(len: u64, chunk: usize) -> PatternBody {
        PatternBody {
            sent: 0,
            len,
            chunk: chunk.clamp(1, MAX_CHUNK),
        }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        let remaining = self.len - self.sent;
        if remaining == 0 {
            return None;
        }
        let size = usize::try_from(remaining).map_or(self.chunk, |r| r.min(self.chunk));
        let phase = (self.sent % PERIOD.len() as u64) as usize;
        self.sent += size as u64;
        let buffer: &'static [u8] = &BUFFER;
        Some(Bytes::from_static(&buffer[phase..phase + size]))
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().next_chunk().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_continue_the_pattern_across_boundaries() {
        let mut body = PatternBody::new(100, 7);
        let mut all = Vec::new();
        while let Some(chunk) = body.next_chunk() {
            assert!(chunk.len() <= 7);
            all.extend_from_slice(&chunk);
        }
        let expected: Vec<u8> = PERIOD.iter().copied().cycle().take(100).collect();
        assert_eq!(all, expected);
        assert!(body.is_end_stream());
    }

    #[test]
    fn a_terabyte_body_is_generated_one_bounded_chunk_at_a_time() {
        let mut body = PatternBody::new(1 << 40, DEFAULT_CHUNK);
        assert_eq!(body.size_hint().exact(), Some(1 << 40));
        for _ in 0..100 {
            assert_eq!(body.next_chunk().map(|c| c.len()), Some(DEFAULT_CHUNK));
        }
        assert_eq!(
            body.size_hint().exact(),
            Some((1 << 40) - 100 * DEFAULT_CHUNK as u64)
        );
    }

    #[test]
    fn chunk_size_is_clamped() {
        let mut huge = PatternBody::new(u64::MAX, usize::MAX);
        assert_eq!(huge.next_chunk().map(|c| c.len()), Some(MAX_CHUNK));
        let mut zero = PatternBody::new(3, 0);
        assert_eq!(zero.next_chunk().map(|c| c.len()), Some(1));
    }

    #[test]
    fn empty_body_ends_immediately() {
        let mut body = PatternBody::new(0, DEFAULT_CHUNK);
        assert!(body.is_end_stream());
        assert!(body.next_chunk().is_none());
    }
}
