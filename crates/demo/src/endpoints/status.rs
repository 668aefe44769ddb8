//! `/status/{code}`: answers with that status.

use http::StatusCode;

use crate::body::ResponseBody;
use crate::response::{DemoResponse, bad_request, text};

/// `code` is the path after `/status/`.
pub(crate) fn respond(code: &str) -> DemoResponse {
    let status = match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        // 1xx can't end an exchange; a 101 without an upgrade would wedge the connection.
        Some(status) if (200..=599).contains(&status.as_u16()) => status,
        _ => {
            return bad_request(format_args!(
                "/status/{code}: use a status between 200 and 599, e.g. /status/503"
            ));
        }
    };
    // These statuses must not carry a body.
    if matches!(status.as_u16(), 204 | 205 | 304) {
        let mut response = http::Response::new(ResponseBody::empty());
        *response.status_mut() = status;
        return response;
    }
    text(status, format!("status {}\n", status.as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_the_requested_status() {
        assert_eq!(respond("418").status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(respond("204").status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn rejects_informational_and_nonsense_codes() {
        for code in ["101", "600", "abc", ""] {
            assert_eq!(
                respond(code).status(),
                StatusCode::BAD_REQUEST,
                "/status/{code}"
            );
        }
    }
}
