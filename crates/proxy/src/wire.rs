//! HTTP/1 wire pieces both sides share (RFC 9112): the length a message declares, whether its
//! transfer coding ends in chunked, whether its connection persists, field lines, and the
//! fields of a parsed head as slices of its bytes.

use std::ops::Range;

use bytes::Bytes;
use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::headers::list_items;

/// The `Content-Length` a message declares: `None` if it has none, an error unless every
/// value (over all lines and comma-separated items) is the same non-negative number
/// (RFC 9112 §6.3, point 5).
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.to_str().map_err(|_| ())?.split(',').map(str::trim) {
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            let n: u64 = item.parse().map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Whether the last transfer coding is chunked (so the body is delimited by it).
pub fn chunked_last(headers: &HeaderMap) -> bool {
    list_items(headers, &header::TRANSFER_ENCODING)
        .last()
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
}

/// Whether a message of `version` with these fields leaves its connection open (RFC 9112
/// §9.3). An HTTP/1.0 message cannot be chunked: if it says so, its framing is suspect and
/// the connection closes after it (§6.1).
pub fn persistent(version: Version, headers: &HeaderMap) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for token in list_items(headers, &header::CONNECTION) {
        close |= token.eq_ignore_ascii_case("close");
        keep_alive |= token.eq_ignore_ascii_case("keep-alive");
    }
    let chunked_1_0 =
        version == Version::HTTP_10 && headers.contains_key(header::TRANSFER_ENCODING);
    !close && !chunked_1_0 && (version == Version::HTTP_11 || keep_alive)
}

/// Writes one `name: value` line of an HTTP/1 head.
pub fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Where `part` (a slice httparse returned) lies in `buf`.
pub fn span(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// Which part of a field was not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadField {
    Name,
    Value,
}

/// The fields of a parsed head, noted as spans of its buffer before the head leaves it, then
/// made into a map whose values share the head's bytes instead of copying them.
pub struct FieldSpans<const N: usize> {
    spans: [(Range<usize>, Range<usize>); N],
    count: usize,
}

impl<const N: usize> FieldSpans<N> {
    /// Notes where each of `fields` (parsed from `buf`) lies.
    pub fn of(buf: &[u8], fields: &[httparse::Header<'_>]) -> Self {
        let mut spans = std::array::from_fn(|_| (0..0, 0..0));
        for (slot, field) in spans.iter_mut().zip(fields) {
            *slot = (span(buf, field.name.as_bytes()), span(buf, field.value));
        }
        Self {
            spans,
            count: fields.len().min(N),
        }
    }

    /// The fields as a map over `head` (the bytes the spans point into), with room for
    /// `extra` more without growing.
    pub fn into_map(self, head: &Bytes, extra: usize) -> Result<HeaderMap, BadField> {
        let mut headers = HeaderMap::with_capacity(self.count + extra);
        for (name, value) in self.spans.into_iter().take(self.count) {
            let name = HeaderName::from_bytes(&head[name]).map_err(|_| BadField::Name)?;
            let value =
                HeaderValue::from_maybe_shared(head.slice(value)).map_err(|_| BadField::Value)?;
            headers.append(name, value);
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn content_lengths_must_agree() {
        assert_eq!(content_length(&with(&[])), Ok(None));
        let same = with(&[("content-length", "7, 7"), ("content-length", "7")]);
        assert_eq!(content_length(&same), Ok(Some(7)));
        for bad in ["7, 8", "-1", "+5", "", "0x10", "99999999999999999999999"] {
            assert_eq!(
                content_length(&with(&[("content-length", bad)])),
                Err(()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn chunked_counts_only_last() {
        assert!(chunked_last(&with(&[(
            "transfer-encoding",
            "gzip, chunked"
        )])));
        assert!(!chunked_last(&with(&[(
            "transfer-encoding",
            "chunked, gzip"
        )])));
        assert!(!chunked_last(&with(&[])));
    }

    #[test]
    fn fields_share_the_head() {
        let text = b"x-a: one\r\nX-B: two\r\n\r\n";
        let mut parsed = [httparse::EMPTY_HEADER; 4];
        let httparse::Status::Complete((_, fields)) =
            httparse::parse_headers(text, &mut parsed).unwrap()
        else {
            panic!("complete");
        };
        let spans = FieldSpans::<4>::of(text, fields);
        let head = Bytes::from_static(text);
        let map = spans.into_map(&head, 0).unwrap();
        assert_eq!(map["x-a"], "one");
        assert_eq!(map["x-b"], "two");
    }
}
