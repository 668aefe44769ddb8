//! `POST /upload` (or `PUT`): consumes the body as a stream and answers its length and
//! FNV-1a 64 hash, so a client can check that every byte arrived, in order.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::drain;
use crate::replica::Replica;
use crate::response::{DemoResponse, bad_request, json, method_not_allowed};

pub(crate) async fn respond(replica: &Replica, request: Request<Incoming>) -> DemoResponse {
    if !matches!(*request.method(), Method::POST | Method::PUT) {
        return method_not_allowed("/upload", "POST, PUT");
    }
    let mut hash = Fnv1a64::new();
    match drain(request.into_body(), |chunk| hash.update(chunk)).await {
        Ok(bytes) => json(
            StatusCode::OK,
            &json!({
                "service": replica.name(),
                "replica": replica.index(),
                "bytes": bytes,
                "fnv1a64": format!("{:016x}", hash.finish()),
            }),
        ),
        Err(e) => bad_request(format_args!("reading the upload failed: {e}")),
    }
}

/// FNV-1a, 64-bit: tiny, streaming, and easy to recompute in a test or a shell script.
pub(crate) struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn new() -> Self {
        Fnv1a64(Self::OFFSET_BASIS)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_published_vectors() {
        let hash = |s: &[u8]| {
            let mut h = Fnv1a64::new();
            h.update(s);
            h.finish()
        };
        assert_eq!(hash(b""), 0xcbf29ce484222325);
        assert_eq!(hash(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(hash(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn fnv1a64_is_the_same_whatever_the_chunking() {
        let mut whole = Fnv1a64::new();
        whole.update(b"hello world");
        let mut pieces = Fnv1a64::new();
        pieces.update(b"hel");
        pieces.update(b"");
        pieces.update(b"lo world");
        assert_eq!(whole.finish(), pieces.finish());
    }
}
