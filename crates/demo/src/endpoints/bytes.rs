//! `GET /bytes?n=N[&chunk=C]`: streams `N` pattern bytes without holding them.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response};

use crate::body::ResponseBody;
use crate::pattern::{DEFAULT_CHUNK, MAX_CHUNK, PatternBody};
use crate::query;
use crate::response::{DemoResponse, bad_request};

const EXAMPLE: &str = "/bytes?n=1048576&chunk=65536";

pub(crate) fn respond<B>(request: &Request<B>) -> DemoResponse {
    let q = request.uri().query();
    let len = match query::number::<u64>(q, "n", EXAMPLE) {
        Ok(Some(len)) => len,
        Ok(None) => {
            return bad_request(format_args!(
                "/bytes needs the byte count n, e.g. {EXAMPLE}"
            ));
        }
        Err(message) => return bad_request(message),
    };
    let chunk = match query::number::<usize>(q, "chunk", EXAMPLE) {
        Ok(Some(chunk)) if (1..=MAX_CHUNK).contains(&chunk) => chunk,
        Ok(Some(chunk)) => {
            return bad_request(format_args!(
                "chunk={chunk} is out of range: use 1..={MAX_CHUNK}"
            ));
        }
        Ok(None) => DEFAULT_CHUNK,
        Err(message) => return bad_request(message),
    };
    let mut response = Response::new(ResponseBody::Pattern(PatternBody::new(len, chunk)));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    response
}
