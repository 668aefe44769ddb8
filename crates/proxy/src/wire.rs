//! HTTP/1 wire pieces both sides share (RFC 9112): the length a message declares, whether its
//! transfer coding ends in chunked, whether its connection persists, field lines, and the
//! fields of a parsed head as slices of its bytes.

use std::ops::Range;

use bytes::Bytes;
use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::headers::{PlainConnection, list_items};

/// The `Content-Length` a message declares: `None` if it has none, an error unless every
/// value (over all lines and comma-separated items) is the same non-negative number
/// (RFC 9112 §6.3, point 5).
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    // The usual field: one line, one number.
    let mut lines = headers.get_all(header::CONTENT_LENGTH).iter();
    match (lines.next(), lines.next()) {
        (None, _) => return Ok(None),
        (Some(line), None) if !line.as_bytes().contains(&b',') => {
            return decimal(line.as_bytes().trim_ascii()).map(Some).ok_or(());
        }
        _ => {}
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let n = decimal(item.trim_ascii()).ok_or(())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// A non-empty run of ASCII digits as a number, if it fits (no sign, no spaces).
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// Whether the last transfer coding is chunked (so the body is delimited by it).
pub fn chunked_last(headers: &HeaderMap) -> bool {
    list_items(headers, &header::TRANSFER_ENCODING)
        .last()
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
}

/// Whether a message of `version` with these fields (of which `noted` says which are there)
/// leaves its connection open (RFC 9112 §9.3). An HTTP/1.0 message cannot be chunked: if it
/// says so, its framing is suspect and the connection closes after it (§6.1).
pub fn persistent(version: Version, headers: &HeaderMap, noted: Noted) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    if let Some(plain) = noted.plain_connection {
        close = plain == PlainConnection::Close;
        keep_alive = plain == PlainConnection::KeepAlive;
    } else if noted.connection {
        // Not a lone plain line (`to_map` holds that one out): read it as a list.
        for token in list_items(headers, &header::CONNECTION) {
            close |= token.eq_ignore_ascii_case("close");
            keep_alive |= token.eq_ignore_ascii_case("keep-alive");
        }
    }
    let chunked_1_0 = version == Version::HTTP_10 && noted.transfer_encoding;
    !close && !chunked_1_0 && (version == Version::HTTP_11 || keep_alive)
}

/// Which of the fields that decide a head's framing and persistence it carries, noted while
/// its map is built: a field that is not there then costs no lookup (a plain request has
/// none of them, and each lookup hashes and probes the map).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Noted {
    /// A lone `Connection: keep-alive` or `close`, left out of the map: it says only whether
    /// the connection persists, and being hop-by-hop it would be removed before the message
    /// is forwarded (a lookup and a removal on every message).
    pub plain_connection: Option<PlainConnection>,
    /// A `Connection` field is in the map (any other, or more than one line).
    pub connection: bool,
    pub content_length: bool,
    pub transfer_encoding: bool,
    pub te: bool,
    pub expect: bool,
    /// How many `Host` lines (counting stops at two).
    pub hosts: u8,
    /// Where the first `Host` line's value lies in the head.
    pub host: (u32, u32),
}

impl Noted {
    /// Notes a field named `name` whose value lies at `value` in the head.
    fn note(&mut self, name: &HeaderName, value: (u32, u32)) {
        // Standard names compare as small integers.
        if *name == header::HOST {
            if self.hosts == 0 {
                self.host = value;
            }
            self.hosts = (self.hosts + 1).min(2);
        } else if *name == header::CONNECTION {
            self.connection = true;
        } else if *name == header::CONTENT_LENGTH {
            self.content_length = true;
        } else if *name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
        } else if *name == header::TE {
            self.te = true;
        } else if *name == header::EXPECT {
            self.expect = true;
        }
    }
}

/// The names most heads carry, as clients and servers commonly spell them: recognised by one
/// match, without the case folding into a copy that `HeaderName::from_bytes` does first (about
/// a third of a head's parse). Any other spelling takes that way.
fn common_name(name: &[u8]) -> Option<HeaderName> {
    Some(match name {
        b"Host" | b"host" => header::HOST,
        b"User-Agent" | b"user-agent" => header::USER_AGENT,
        b"Accept" | b"accept" => header::ACCEPT,
        b"Accept-Encoding" | b"accept-encoding" => header::ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => header::ACCEPT_LANGUAGE,
        b"Connection" | b"connection" => header::CONNECTION,
        b"Content-Length" | b"content-length" => header::CONTENT_LENGTH,
        b"Content-Type" | b"content-type" => header::CONTENT_TYPE,
        b"Date" | b"date" => header::DATE,
        b"Server" | b"server" => header::SERVER,
        b"Cache-Control" | b"cache-control" => header::CACHE_CONTROL,
        b"Last-Modified" | b"last-modified" => header::LAST_MODIFIED,
        b"ETag" | b"etag" => header::ETAG,
        b"Cookie" | b"cookie" => header::COOKIE,
        b"Transfer-Encoding" | b"transfer-encoding" => header::TRANSFER_ENCODING,
        _ => return None,
    })
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

/// Fields noted inline before [`FieldSpans`] spills to the heap: most heads have fewer.
const INLINE_FIELDS: usize = 24;

/// The fields of a parsed head, noted as offsets into its buffer before the head leaves it,
/// then made into a map whose values share the head's bytes instead of copying them. Small
/// and made in place: a head's parse fills no large array and moves none.
pub struct FieldSpans {
    /// Name start, name end, value start, value end.
    inline: [[u32; 4]; INLINE_FIELDS],
    count: usize,
    more: Vec<[u32; 4]>,
}

impl FieldSpans {
    /// Notes where each of `fields` (parsed from `buf`, which is far below 4 GiB) lies.
    pub fn of(buf: &[u8], fields: &[httparse::Header<'_>]) -> Self {
        let mut spans = Self {
            inline: [[0; 4]; INLINE_FIELDS],
            count: fields.len(),
            more: Vec::new(),
        };
        for (i, field) in fields.iter().enumerate() {
            let name = span(buf, field.name.as_bytes());
            let value = span(buf, field.value);
            let offsets = [name.start, name.end, value.start, value.end].map(|o| o as u32);
            match spans.inline.get_mut(i) {
                Some(slot) => *slot = offsets,
                None => spans.more.push(offsets),
            }
        }
        spans
    }

    /// The fields as a map over `head` (the bytes the spans point into), with room for
    /// `extra` more without growing, and which framing fields are among them.
    pub fn to_map(&self, head: &Bytes, extra: usize) -> Result<(HeaderMap, Noted), BadField> {
        let mut headers = HeaderMap::with_capacity(self.count + extra);
        let mut noted = Noted::default();
        // A lone plain `Connection` line, held out of the map (as where its value lies: it
        // becomes a field value only if a second line needs it).
        let mut held: Option<(PlainConnection, Range<usize>)> = None;
        let value_of = |span: Range<usize>| {
            HeaderValue::from_maybe_shared(head.slice(span)).map_err(|_| BadField::Value)
        };
        let inline = self.count.min(INLINE_FIELDS);
        for &[name_start, name_end, value_start, value_end] in
            self.inline[..inline].iter().chain(&self.more)
        {
            let name = &head[name_start as usize..name_end as usize];
            let name = match common_name(name) {
                Some(name) => name,
                None => HeaderName::from_bytes(name).map_err(|_| BadField::Name)?,
            };
            let span = value_start as usize..value_end as usize;
            if name == header::CONNECTION {
                if !noted.connection && held.is_none() {
                    if let Some(plain) = PlainConnection::of(&head[span.clone()]) {
                        held = Some((plain, span));
                        continue;
                    }
                } else if let Some((_, first)) = held.take() {
                    // More than one line: the list is read from the map, all of it.
                    headers.append(header::CONNECTION, value_of(first)?);
                }
            }
            noted.note(&name, (value_start, value_end));
            headers.append(name, value_of(span)?);
        }
        noted.plain_connection = held.map(|(plain, _)| plain);
        Ok((headers, noted))
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
        assert_eq!(
            content_length(&with(&[("content-length", "18446744073709551615")])),
            Ok(Some(u64::MAX))
        );
        for bad in [
            "7, 8",
            "-1",
            "+5",
            "",
            "7,",
            "0x10",
            "1 2",
            "18446744073709551616",
        ] {
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
        let spans = FieldSpans::of(text, fields);
        let head = Bytes::from_static(text);
        let (map, noted) = spans.to_map(&head, 0).unwrap();
        assert_eq!(map["x-a"], "one");
        assert_eq!(map["x-b"], "two");
        assert_eq!(noted, Noted::default());
    }

    #[test]
    fn framing_fields_are_noted_whatever_their_case() {
        let text =
            b"Connection: close, x-hop\r\nCONTENT-LENGTH: 3\r\nTransfer-Encoding: chunked\r\n\
              te: trailers\r\nExpect: 100-continue\r\nx-other: 1\r\nHOST: ab\r\n\r\n";
        let (_, noted) = mapped(text);
        let host_at = text.windows(2).position(|w| w == b"ab").unwrap() as u32;
        let all = Noted {
            plain_connection: None,
            connection: true,
            content_length: true,
            transfer_encoding: true,
            te: true,
            expect: true,
            hosts: 1,
            host: (host_at, host_at + 2),
        };
        assert_eq!(noted, all);
        // Each on its own.
        let one = |field: &'static [u8]| mapped(field).1;
        assert!(one(b"Content-Length: 1\r\n\r\n").content_length);
        assert!(!one(b"Content-Length: 1\r\n\r\n").connection);
        assert!(one(b"TE: x\r\n\r\n").te);
        let hosts = one(b"Host: a\r\nhost: a\r\nHost: b\r\n\r\n");
        assert_eq!(
            (hosts.hosts, hosts.host),
            (2, (6, 7)),
            "counted; the first kept"
        );
        assert!(!one(b"TE: x\r\n\r\n").transfer_encoding);
    }

    /// The fields of `text` (a head's field lines) as `to_map` makes them.
    fn mapped(text: &'static [u8]) -> (HeaderMap, Noted) {
        let mut parsed = [httparse::EMPTY_HEADER; 8];
        let httparse::Status::Complete((_, fields)) =
            httparse::parse_headers(text, &mut parsed).unwrap()
        else {
            panic!("complete");
        };
        FieldSpans::of(text, fields)
            .to_map(&Bytes::from_static(text), 0)
            .unwrap()
    }

    #[test]
    fn a_lone_plain_connection_line_is_noted_and_left_out_of_the_map() {
        let (map, noted) = mapped(b"Host: a\r\nConnection: Keep-Alive\r\n\r\n");
        assert_eq!(noted.plain_connection, Some(PlainConnection::KeepAlive));
        assert!(!noted.connection);
        assert!(map.get(header::CONNECTION).is_none());
        assert_eq!(map.len(), 1);
        assert!(persistent(Version::HTTP_10, &map, noted));
        let (map, noted) = mapped(b"connection: close\r\n\r\n");
        assert_eq!(noted.plain_connection, Some(PlainConnection::Close));
        assert!(!persistent(Version::HTTP_11, &map, noted));
    }

    #[test]
    fn other_connection_lines_stay_in_the_map_all_of_them() {
        let (map, noted) = mapped(b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(noted.plain_connection, None);
        assert!(noted.connection);
        assert_eq!(map[header::CONNECTION], "upgrade");
        // A plain first line, then another: both are in the map, in order, and read as a list.
        let (map, noted) = mapped(b"Connection: close\r\nx-a: 1\r\nConnection: x-hop\r\n\r\n");
        assert_eq!(noted.plain_connection, None);
        assert!(noted.connection);
        let lines: Vec<_> = map.get_all(header::CONNECTION).iter().collect();
        assert_eq!(lines, ["close", "x-hop"]);
        assert!(!persistent(Version::HTTP_11, &map, noted));
    }

    #[test]
    fn common_names_are_the_names_http_makes_of_them() {
        let spellings: &[&[u8]] = &[
            b"Host",
            b"host",
            b"User-Agent",
            b"user-agent",
            b"Accept",
            b"accept",
            b"Accept-Encoding",
            b"accept-encoding",
            b"Accept-Language",
            b"accept-language",
            b"Connection",
            b"connection",
            b"Content-Length",
            b"content-length",
            b"Content-Type",
            b"content-type",
            b"Date",
            b"date",
            b"Server",
            b"server",
            b"Cache-Control",
            b"cache-control",
            b"Last-Modified",
            b"last-modified",
            b"ETag",
            b"etag",
            b"Cookie",
            b"cookie",
            b"Transfer-Encoding",
            b"transfer-encoding",
        ];
        for &spelling in spellings {
            let common = common_name(spelling);
            assert!(common.is_some(), "{:?}", String::from_utf8_lossy(spelling));
            assert_eq!(common, HeaderName::from_bytes(spelling).ok());
        }
        // Other spellings go the long way, and come out the same.
        for other in [&b"HOST"[..], b"x-custom", b"Content-length", b"Hosts"] {
            assert_eq!(common_name(other), None);
        }
        let (map, noted) = mapped(b"HOST: a\r\nContent-length: 2\r\n\r\n");
        assert_eq!(map[header::HOST], "a");
        assert_eq!(map[header::CONTENT_LENGTH], "2");
        assert!(noted.content_length);
    }

    #[test]
    fn fields_past_the_inline_ones_are_kept() {
        let text: String = (0..40)
            .map(|i| format!("x-{i}: v{i}\r\n"))
            .collect::<String>()
            + "\r\n";
        let mut parsed = [httparse::EMPTY_HEADER; 64];
        let httparse::Status::Complete((_, fields)) =
            httparse::parse_headers(text.as_bytes(), &mut parsed).unwrap()
        else {
            panic!("complete");
        };
        let spans = FieldSpans::of(text.as_bytes(), fields);
        let head = Bytes::from(text.clone());
        let (map, _) = spans.to_map(&head, 0).unwrap();
        assert_eq!(map.len(), 40);
        assert_eq!(map["x-0"], "v0");
        assert_eq!(map["x-39"], "v39");
    }
}
