//! Building responses: plain text, JSON, and the small errors every endpoint shares.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ResponseBody;

pub(crate) type DemoResponse = Response<ResponseBody>;

static TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static JSON: HeaderValue = HeaderValue::from_static("application/json");

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> DemoResponse {
    with_type(status, &TEXT, body.into())
}

pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> DemoResponse {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, &JSON, Bytes::from(body)),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode JSON: {e}\n"),
        ),
    }
}

/// 400 with a message saying what was wrong with the request.
pub(crate) fn bad_request(message: impl std::fmt::Display) -> DemoResponse {
    text(StatusCode::BAD_REQUEST, format!("{message}\n"))
}

/// 405 listing the methods `path` accepts.
pub(crate) fn method_not_allowed(path: &str, allowed: &'static str) -> DemoResponse {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{path} accepts {allowed}\n"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    response
}

fn with_type(status: StatusCode, content_type: &HeaderValue, body: Bytes) -> DemoResponse {
    let mut response = Response::new(ResponseBody::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, content_type.clone());
    response
}
