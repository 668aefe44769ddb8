//! `GET /fault`, `POST /fault` (a partial JSON patch of the knobs) and `POST /fault/reset`:
//! control over the service's own port. These endpoints are never themselves faulted.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::faults::{Faults, FaultsPatch};
use crate::replica::Replica;
use crate::response::{DemoResponse, bad_request, json, method_not_allowed};

/// A patch is a handful of numbers; anything bigger is a mistake.
const MAX_PATCH_BYTES: usize = 16 * 1024;

/// Whether `path` is one of the control endpoints (and so exempt from faults).
pub(crate) fn is_control(path: &str) -> bool {
    path == "/fault" || path == "/fault/reset"
}

pub(crate) async fn respond(replica: &Replica, request: Request<Incoming>) -> DemoResponse {
    let method = request.method().clone();
    match (
        crate::router::local_path(replica.name(), request.uri().path()),
        method,
    ) {
        ("/fault", Method::GET | Method::HEAD) => json(StatusCode::OK, &replica.faults()),
        ("/fault", Method::POST | Method::PUT | Method::PATCH) => {
            let body = match read_patch(request.into_body()).await {
                Ok(body) => body,
                Err(message) => return bad_request(message),
            };
            let patched = serde_json::from_slice::<FaultsPatch>(&body)
                .map_err(|e| {
                    format!("POST /fault: {e}; send e.g. {{\"latency_ms\":200,\"error_rate\":0.5}}")
                })
                .and_then(|patch| {
                    patch
                        .apply_to(replica.faults())
                        .map_err(|e| format!("POST /fault: {e}"))
                });
            match patched {
                Ok(faults) => {
                    replica.set_faults(faults);
                    json(StatusCode::OK, &faults)
                }
                Err(message) => bad_request(message),
            }
        }
        ("/fault", _) => method_not_allowed("/fault", "GET, POST"),
        (_, Method::POST) => {
            replica.set_faults(Faults::default());
            json(StatusCode::OK, &Faults::default())
        }
        (_, _) => method_not_allowed("/fault/reset", "POST"),
    }
}

async fn read_patch(body: Incoming) -> Result<Bytes, String> {
    match Limited::new(body, MAX_PATCH_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(format!(
            "POST /fault: reading the body failed ({e}); limit {MAX_PATCH_BYTES} bytes"
        )),
    }
}
