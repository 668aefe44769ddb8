//! `/echo` and `/echo/...`: describes the request back as JSON, after counting its body.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::drain;
use crate::replica::Replica;
use crate::response::{DemoResponse, bad_request, json};

pub(crate) async fn respond(replica: &Replica, request: Request<Incoming>) -> DemoResponse {
    let (parts, body) = request.into_parts();
    let body_bytes = match drain(body, |_| {}).await {
        Ok(n) => n,
        Err(e) => return bad_request(format_args!("reading the request body failed: {e}")),
    };
    // `HeaderMap` keeps names in order of first appearance and each name's values in order;
    // interleaved duplicates (a, b, a) come back grouped (a, a, b).
    let headers: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            [
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ]
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "service": replica.name(),
            "replica": replica.index(),
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            // HTTP/2's :authority (absent for HTTP/1.1 requests in origin form).
            "authority": parts.uri.authority().map(|a| a.as_str()),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": body_bytes,
        }),
    )
}
