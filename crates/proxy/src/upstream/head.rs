//! HTTP/1.1 message heads on the upstream side (RFC 9112): the request line and fields we
//! send, the status line and fields we read back, and how each message's body is framed.
//! Pure functions over bytes; parsing itself is `httparse`'s.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, Version, request};

use crate::wire::{
    BadField, FieldSpans, Noted, chunked_last, content_length, persistent, write_field,
};

/// Most fields a response head may carry.
const MAX_HEADERS: usize = 128;
/// Largest response head (status line and fields) accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// How a request body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body follows the head.
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    /// Chunked transfer coding (the length is not known up front).
    Chunked,
}

/// Sets the framing fields of a request about to be sent and says how its body goes: an
/// empty body sends none, a body of known size a `Content-Length`, any other body is
/// chunked. Framing is per hop, so whatever the client's request said is replaced.
pub fn frame_request(
    headers: &mut HeaderMap,
    end_stream: bool,
    exact: Option<u64>,
) -> RequestFraming {
    headers.remove(header::TRANSFER_ENCODING);
    if end_stream {
        // A `Content-Length: 0` the client sent stays; nothing else is needed.
        return RequestFraming::Empty;
    }
    match exact {
        Some(length) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            RequestFraming::Length(length)
        }
        None => {
            headers.remove(header::CONTENT_LENGTH);
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            RequestFraming::Chunked
        }
    }
}

/// Writes the request line and fields of `request` (origin form: only its URI's path and
/// query), ending with the empty line. `Host` comes from the request's fields, else it is
/// `endpoint` (the `host:port` the request goes to).
pub fn encode_request(request: &request::Parts, endpoint: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b' ');
    let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Whether `Host` is there is noted on the way through the fields (no lookup); the rare
    // request without one gets the endpoint's, first.
    let fields_at = out.len();
    let mut has_host = false;
    for (name, value) in &request.headers {
        has_host |= name == header::HOST;
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !has_host {
        let mut host = Vec::new();
        write_field(&mut host, b"host", endpoint.as_bytes());
        out.splice(fields_at..fields_at, host);
    }
    out.extend_from_slice(b"\r\n");
}

/// Why a response head was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    /// Not a valid HTTP/1.x response head.
    #[error("invalid response head from upstream: {0}")]
    Invalid(&'static str),
    /// Not HTTP/1.x syntax.
    #[error("invalid response head from upstream: {0}")]
    Syntax(httparse::Error),
    /// The head is larger than [`MAX_HEAD`].
    #[error("response head from upstream is larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// `Content-Length` is not one non-negative number (RFC 9112 §6.3, point 5).
    #[error("invalid Content-Length from upstream")]
    ContentLength,
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: a HEAD answer, 1xx, 204 or 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and fields (with an empty body).
    pub response: Response<()>,
    /// How its body is delimited.
    pub framing: ResponseFraming,
    /// Whether the connection may carry another request once this body is read.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf`, consuming it. `Ok(None)`: incomplete,
/// read more. Interim (1xx) answers other than 101 are skipped.
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, HeadError> {
    loop {
        // Left uninitialised: the parser writes only the fields there are.
        let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(HeadError::TooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(error) => return Err(HeadError::Syntax(error)),
        };
        let code = parsed.code.ok_or(HeadError::Invalid("no status"))?;
        let status = StatusCode::from_u16(code).map_err(|_| HeadError::Invalid("status"))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            // 100 Continue, 103 Early Hints: the final answer follows.
            buf.advance(length);
            continue;
        }
        let version = match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        // Values are slices of the head's bytes, shared rather than copied.
        let spans = FieldSpans::of(buf, parsed.headers);
        let head = buf.split_to(length).freeze();
        // Room for the `Via` the proxy adds.
        let (mut headers, noted) = spans.to_map(&head, 1).map_err(|bad| match bad {
            BadField::Name => HeadError::Invalid("field name"),
            BadField::Value => HeadError::Invalid("field value"),
        })?;
        let (framing, conflicting) = response_framing(method, status, &headers, noted)?;
        if conflicting {
            // Transfer-Encoding wins; the length is wrong for what gets forwarded (RFC 9112
            // §6.3, point 3).
            headers.remove(header::CONTENT_LENGTH);
        }
        let keep_alive = !conflicting
            && framing != ResponseFraming::UntilClose
            && status != StatusCode::SWITCHING_PROTOCOLS
            && persistent(version, &headers, noted);
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(ResponseHead {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// The body framing of a response, and whether its fields conflict (both
/// `Transfer-Encoding` and `Content-Length`: the connection must not be reused).
fn response_framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    noted: Noted,
) -> Result<(ResponseFraming, bool), HeadError> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((ResponseFraming::Empty, false));
    }
    if noted.transfer_encoding {
        let conflicting = noted.content_length;
        let framing = if chunked_last(headers) {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::UntilClose
        };
        return Ok((framing, conflicting));
    }
    let length = if noted.content_length {
        content_length(headers).map_err(|()| HeadError::ContentLength)?
    } else {
        None
    };
    Ok((
        length.map_or(ResponseFraming::UntilClose, ResponseFraming::Length),
        false,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, method: Method) -> Result<Option<ResponseHead>, HeadError> {
        let mut buf = BytesMut::from(text);
        parse_response(&mut buf, &method)
    }

    fn framing(text: &str) -> ResponseFraming {
        parse(text, Method::GET).unwrap().unwrap().framing
    }

    /// `request`'s head as written to the endpoint `10.0.0.1:8080`.
    fn encoded(request: http::Request<()>) -> String {
        let mut out = Vec::new();
        encode_request(&request.into_parts().0, "10.0.0.1:8080", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_line_fields_and_the_endpoint_as_host_when_none_is_given() {
        let request = http::Request::builder()
            .method(Method::POST)
            .uri("http://client.example/a/b?c=d")
            .header("x-one", "1")
            .header("x-one", "2")
            .body(())
            .unwrap();
        assert_eq!(
            encoded(request),
            "POST /a/b?c=d HTTP/1.1\r\nhost: 10.0.0.1:8080\r\nx-one: 1\r\nx-one: 2\r\n\r\n"
        );
    }

    #[test]
    fn a_host_among_other_fields_keeps_its_place_and_is_not_doubled() {
        let request = http::Request::builder()
            .uri("/a")
            .header("x-one", "1")
            .header("host", "example.com")
            .header("x-two", "2")
            .body(())
            .unwrap();
        assert_eq!(
            encoded(request),
            "GET /a HTTP/1.1\r\nx-one: 1\r\nhost: example.com\r\nx-two: 2\r\n\r\n"
        );
    }

    #[test]
    fn a_host_field_is_kept_over_the_endpoint() {
        let request = http::Request::builder()
            .uri("http://10.0.0.1:8080")
            .header("host", "example.com")
            .body(())
            .unwrap();
        assert_eq!(
            encoded(request),
            "GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"
        );
    }

    #[test]
    fn request_framing_follows_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert_eq!(
            frame_request(&mut headers, false, Some(5)),
            RequestFraming::Length(5)
        );
        assert_eq!(headers[header::CONTENT_LENGTH], "5");
        assert!(!headers.contains_key(header::TRANSFER_ENCODING));

        assert_eq!(
            frame_request(&mut headers, false, None),
            RequestFraming::Chunked
        );
        assert_eq!(headers[header::TRANSFER_ENCODING], "chunked");
        assert!(!headers.contains_key(header::CONTENT_LENGTH));

        let mut headers = HeaderMap::new();
        assert_eq!(
            frame_request(&mut headers, true, Some(0)),
            RequestFraming::Empty
        );
        assert!(headers.is_empty());
    }

    #[test]
    fn a_complete_head_is_consumed_and_the_body_left() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
        let head = parse_response(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::OK);
        assert_eq!(head.response.headers()["x-a"], "b");
        assert_eq!(head.framing, ResponseFraming::Length(5));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn a_partial_head_asks_for_more_and_consumes_nothing() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Len");
        assert!(parse_response(&mut buf, &Method::GET).unwrap().is_none());
        assert_eq!(buf.len(), 28);
    }

    #[test]
    fn interim_answers_are_skipped() {
        let head = parse(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            Method::POST,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.response.status(), StatusCode::CREATED);
        assert!(!head.response.headers().contains_key("link"));
    }

    #[test]
    fn framing_by_rfc_9112_section_6_3() {
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
            ResponseFraming::Empty
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\n\r\n"),
            ResponseFraming::Empty
        );
        let head = parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, ResponseFraming::Empty);
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            ResponseFraming::Chunked
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            ResponseFraming::UntilClose
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n"),
            ResponseFraming::UntilClose
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n"),
            ResponseFraming::Length(7)
        );
    }

    #[test]
    fn bad_content_lengths_are_refused() {
        for value in ["7, 8", "-1", "+5", "", "0x10", "99999999999999999999999"] {
            let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(
                parse(&text, Method::GET).unwrap_err(),
                HeadError::ContentLength,
                "{value:?}"
            );
        }
    }

    #[test]
    fn which_connections_persist() {
        let keep = |text: &str| parse(text, Method::GET).unwrap().unwrap().keep_alive;
        assert!(keep("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(keep(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.1 200 OK\r\n\r\n"), "delimited by close");
        assert!(
            !keep("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            "conflicting framing"
        );
        assert!(
            !keep(
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            "chunked in HTTP/1.0"
        );
        assert!(!keep(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        ));
    }

    #[test]
    fn garbage_and_oversized_heads_are_refused() {
        assert!(matches!(
            parse("HTTX/1.1 200 OK\r\n\r\n", Method::GET),
            Err(HeadError::Syntax(_))
        ));
        let huge = format!("HTTP/1.1 200 OK\r\nX-Big: {}", "a".repeat(MAX_HEAD + 1));
        assert_eq!(parse(&huge, Method::GET).unwrap_err(), HeadError::TooLarge);
    }
}
