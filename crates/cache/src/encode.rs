//! Compression of stored responses on the way out: when the client accepts it and the origin
//! did not compress a compressible type, the stored body is compressed once per coding
//! (brotli preferred, then gzip) and the result kept with it.

use std::io::Write;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};

/// Bodies shorter than this are not worth compressing.
pub const MIN_LENGTH: usize = 1024;

/// A content coding we produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `br` (RFC 7932), quality 5: most of brotli's gain at gzip's speed.
    Brotli,
    /// `gzip` (RFC 1952), level 6.
    Gzip,
}

impl Coding {
    /// The token in `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// Compresses `body`.
    pub fn compress(self, body: &[u8]) -> Bytes {
        match self {
            Coding::Brotli => {
                let mut out = Vec::with_capacity(body.len() / 3);
                {
                    let mut writer = brotli::CompressorWriter::new(&mut out, 16 * 1024, 5, 22);
                    writer
                        .write_all(body)
                        .expect("compressing into memory cannot fail");
                }
                Bytes::from(out)
            }
            Coding::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 3),
                    flate2::Compression::new(6),
                );
                encoder
                    .write_all(body)
                    .expect("compressing into memory cannot fail");
                Bytes::from(
                    encoder
                        .finish()
                        .expect("compressing into memory cannot fail"),
                )
            }
        }
    }
}

/// Whether a stored response is one we may compress: no `Content-Encoding` yet, no
/// `no-transform` (RFC 9111 §5.2.2.6), a compressible media type, and long enough.
pub fn compressible(headers: &HeaderMap, length: usize) -> bool {
    if length < MIN_LENGTH || headers.contains_key(CONTENT_ENCODING) {
        return false;
    }
    let no_transform = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"));
    if no_transform {
        return false;
    }
    let Some(media) = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    else {
        return false;
    };
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/wasm"
                | "image/svg+xml"
                | "application/x-javascript"
        )
}

/// The coding to answer a request with these headers (RFC 9110 §12.5.3): brotli, then gzip,
/// among those it accepts with a non-zero weight (`*` accepts both); `None` for identity.
pub fn negotiate(request: &HeaderMap) -> Option<Coding> {
    let mut brotli = None;
    let mut gzip = None;
    let mut any = None;
    for member in request
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = member.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let weight = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "br" => brotli = Some(weight),
            "gzip" | "x-gzip" => gzip = Some(weight),
            "*" => any = Some(weight),
            _ => {}
        }
    }
    let accepts = |explicit: Option<f32>| explicit.or(any).is_some_and(|w| w > 0.0);
    if accepts(brotli) {
        Some(Coding::Brotli)
    } else if accepts(gzip) {
        Some(Coding::Gzip)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn negotiation_prefers_brotli_and_honours_zero_weights() {
        assert_eq!(
            negotiate(&headers(&[("accept-encoding", "gzip, br")])),
            Some(Coding::Brotli)
        );
        assert_eq!(
            negotiate(&headers(&[("accept-encoding", "gzip, br;q=0")])),
            Some(Coding::Gzip)
        );
        assert_eq!(
            negotiate(&headers(&[("accept-encoding", "*")])),
            Some(Coding::Brotli)
        );
        assert_eq!(
            negotiate(&headers(&[("accept-encoding", "*;q=0, gzip")])),
            Some(Coding::Gzip)
        );
        assert_eq!(
            negotiate(&headers(&[("accept-encoding", "identity")])),
            None
        );
        assert_eq!(negotiate(&headers(&[])), None);
    }

    #[test]
    fn only_long_uncompressed_text_like_bodies_are_compressed() {
        let text = headers(&[("content-type", "text/html; charset=utf-8")]);
        assert!(compressible(&text, 4096));
        assert!(!compressible(&text, 100));
        assert!(!compressible(
            &headers(&[("content-type", "image/png")]),
            4096
        ));
        assert!(compressible(
            &headers(&[("content-type", "application/ld+json")]),
            4096
        ));
        assert!(!compressible(
            &headers(&[("content-type", "text/css"), ("content-encoding", "gzip")]),
            4096
        ));
        assert!(!compressible(
            &headers(&[
                ("content-type", "text/css"),
                ("cache-control", "max-age=60, no-transform")
            ]),
            4096
        ));
    }

    #[test]
    fn both_codings_round_trip() {
        let body = "watertight ".repeat(500);
        let gz = Coding::Gzip.compress(body.as_bytes());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let br = Coding::Brotli.compress(body.as_bytes());
        let mut out = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body.as_bytes());
        assert!(br.len() < body.len() / 10 && gz.len() < body.len() / 10);
    }
}
