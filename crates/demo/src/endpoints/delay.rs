//! `/delay?ms=N`: answers after `N` milliseconds of tokio time (so tests can pause it).

use std::time::Duration;

use http::{Request, StatusCode};

use crate::query;
use crate::response::{DemoResponse, bad_request, text};

pub(crate) async fn respond<B>(request: &Request<B>) -> DemoResponse {
    let ms = match query::number::<u64>(request.uri().query(), "ms", "/delay?ms=250") {
        Ok(Some(ms)) => ms,
        Ok(None) => {
            return bad_request("/delay needs the wait in milliseconds, e.g. /delay?ms=250");
        }
        Err(message) => return bad_request(message),
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    text(StatusCode::OK, format!("waited {ms} ms\n"))
}
