//! HTTP/1.x message heads on the client side (RFC 9112): the request heads we read, and the
//! response heads we write with the framing of their bodies. Pure functions over bytes;
//! parsing itself is `httparse`'s.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

use crate::headers::list_items;
use crate::wire::{
    BadField, FieldSpans, Noted, chunked_last, content_length, persistent, span, write_field,
};

/// Most fields a request head may carry.
const MAX_HEADERS: usize = 100;
/// Largest request head (request line and fields) accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// Why a request head was refused: the answer to send before closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not a valid request head, or ambiguous framing.
    BadRequest(&'static str),
    /// 414: the request line alone is longer than a whole head may be.
    UriTooLong,
    /// 431: the head is too large or has too many fields.
    HeadTooLarge,
    /// 501: a transfer coding other than chunked last.
    NotImplemented,
    /// 505: not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

impl Refusal {
    /// The reason word, as in `x-watertight-reason` and the `proxy_errors` metric.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad-request",
            Refusal::UriTooLong => "uri-too-long",
            Refusal::HeadTooLarge => "head-too-large",
            Refusal::NotImplemented => "unsupported-transfer-coding",
            Refusal::VersionNotSupported => "unsupported-version",
        }
    }

    /// The status to answer with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::UriTooLong => StatusCode::URI_TOO_LONG,
            Refusal::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Refusal::VersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }
}

/// How a request body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, target, version and fields (with an empty body).
    pub request: Request<()>,
    /// How its body is delimited.
    pub framing: BodyFraming,
    /// Whether the client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending its body.
    pub expects_continue: bool,
    /// `TE: trailers`: the client takes trailer fields in a chunked answer.
    pub takes_trailers: bool,
}

/// Parses the request head at the start of `buf`, consuming it. `Ok(None)`: incomplete, read
/// more. Empty lines before a request are skipped (RFC 9112 §2.2).
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, Refusal> {
    let blank = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    if blank > 0 {
        let _ = buf.split_to(blank);
    }
    // Left uninitialised: the parser writes only the fields there are.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match parsed.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(too_large(buf)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(Refusal::VersionNotSupported),
        Err(_) => return Err(Refusal::BadRequest("malformed request head")),
    };
    if length > MAX_HEAD {
        return Err(too_large(buf));
    }
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| Refusal::BadRequest("bad method"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(Refusal::VersionNotSupported),
    };
    // Field values and the target are slices of the head's bytes, shared rather than copied.
    let target = span(buf, parsed.path.unwrap_or("").as_bytes());
    let spans = FieldSpans::of(buf, parsed.headers);
    let head = buf.split_to(length).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target))
        .map_err(|_| Refusal::BadRequest("bad request target"))?;
    // Room for what the proxy adds (Via, X-Forwarded-*) without growing.
    let (mut headers, noted) = spans.to_map(&head, 4).map_err(|bad| match bad {
        BadField::Name => Refusal::BadRequest("bad field name"),
        BadField::Value => Refusal::BadRequest("bad field value"),
    })?;
    settle_host(&uri, &mut headers, version, noted, &head)?;
    let framing = request_framing(&headers, noted)?;
    let keep_alive = persistent(version, &headers, noted);
    let expects_continue = noted.expect
        && version == Version::HTTP_11
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let takes_trailers =
        noted.te && list_items(&headers, &header::TE).any(|t| t.eq_ignore_ascii_case("trailers"));
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(RequestHead {
        request,
        framing,
        keep_alive,
        expects_continue,
        takes_trailers,
    }))
}

/// Which limit a head over [`MAX_HEAD`] broke: the request line's alone, or the head's.
fn too_large(buf: &[u8]) -> Refusal {
    if buf[..buf.len().min(MAX_HEAD)].contains(&b'\n') {
        Refusal::HeadTooLarge
    } else {
        Refusal::UriTooLong
    }
}

/// The host a request is for, by RFC 9112 §3.2: at most one `Host` line, a valid one, and
/// one always on HTTP/1.1 (two lines, or a value that is not `host[:port]`, could be read
/// one way here and another way upstream: refused). A request in absolute form names its
/// host in the target, which then replaces the `Host` line (§3.2.2: the proxy must not
/// forward the client's); a target with `user@` in it is refused (RFC 9110 §4.2.4).
fn settle_host(
    uri: &Uri,
    headers: &mut HeaderMap,
    version: Version,
    noted: Noted,
    head: &[u8],
) -> Result<(), Refusal> {
    match noted.hosts {
        0 if version == Version::HTTP_11 && uri.scheme().is_none() => {
            return Err(Refusal::BadRequest("no Host"));
        }
        0 => {}
        1 => {
            let (start, end) = noted.host;
            if !valid_host(&head[start as usize..end as usize]) {
                return Err(Refusal::BadRequest("bad Host"));
            }
        }
        _ => return Err(Refusal::BadRequest("more than one Host")),
    }
    if uri.scheme().is_some()
        && let Some(authority) = uri.authority()
    {
        let host = HeaderValue::from_str(authority.as_str())
            .ok()
            .filter(|host| valid_host(host.as_bytes()))
            .ok_or(Refusal::BadRequest("bad host in the request target"))?;
        headers.insert(header::HOST, host);
    }
    Ok(())
}

/// `host[:port]` (RFC 9110 §7.2): a registered name or IPv4 address (RFC 3986 reg-name
/// characters but `,`, which a list-splitting reader would take for two values), or an IPv6
/// literal in brackets (no zone identifier, no IPvFuture), and a port of at most five
/// digits. Not empty: an `http` URI's host never is (RFC 9110 §4.2.1). One pass over the
/// bytes, by table: it runs on every request.
pub(crate) fn valid_host(value: &[u8]) -> bool {
    if value.first() == Some(&b'[') {
        let Some(end) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &value[1..end];
        return !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
            && valid_port(&value[end + 1..]);
    }
    let mut colon = None;
    for (i, &b) in value.iter().enumerate() {
        if !REG_NAME[usize::from(b)] {
            if b != b':' || colon.is_some() {
                return false;
            }
            colon = Some(i);
        }
    }
    match colon {
        None => !value.is_empty(),
        Some(at) => at > 0 && valid_port(&value[at..]),
    }
}

/// Nothing, or `:` and up to five digits.
fn valid_port(port: &[u8]) -> bool {
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// The bytes of an RFC 3986 reg-name: unreserved, sub-delims but `,`, and `%` (of
/// pct-encoded).
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~%!$&'()*+;=";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// The framing of a request body (RFC 9112 §6.3). Both `Transfer-Encoding` and
/// `Content-Length`, or several differing lengths, are refused: a request whose length two
/// parties could read differently is how requests are smuggled.
fn request_framing(headers: &HeaderMap, noted: Noted) -> Result<BodyFraming, Refusal> {
    if noted.transfer_encoding {
        if noted.content_length {
            return Err(Refusal::BadRequest(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        return if chunked_last(headers) {
            Ok(BodyFraming::Chunked)
        } else {
            Err(Refusal::NotImplemented)
        };
    }
    if !noted.content_length {
        return Ok(BodyFraming::Empty);
    }
    match content_length(headers) {
        Err(()) => Err(Refusal::BadRequest("bad or differing Content-Length")),
        Ok(None | Some(0)) => Ok(BodyFraming::Empty),
        Ok(Some(n)) => Ok(BodyFraming::Length(n)),
    }
}

/// How a response body goes to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body is written (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding (HTTP/1.1 clients).
    Chunked,
    /// Until the connection closes (HTTP/1.0 clients, length unknown).
    Close,
}

/// Sets the framing fields of a response and says how its body goes. A `Content-Length` the
/// response carries is trusted, as the body must then match it; otherwise a body of known
/// size gets one, and any other body is chunked (or, for HTTP/1.0, ends with the connection).
pub fn frame_response(
    headers: &mut HeaderMap,
    status: StatusCode,
    method: &Method,
    client: Version,
    exact: Option<u64>,
) -> ResponseFraming {
    headers.remove(header::TRANSFER_ENCODING);
    if status.is_informational() || status == StatusCode::NO_CONTENT {
        headers.remove(header::CONTENT_LENGTH);
        return ResponseFraming::None;
    }
    if *method == Method::HEAD || status == StatusCode::NOT_MODIFIED {
        // The fields describe the body a GET would get; none is sent.
        return ResponseFraming::None;
    }
    let declared = content_length(headers).ok().flatten();
    if let Some(length) = declared.or(exact) {
        if declared.is_none() {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        return ResponseFraming::Length(length);
    }
    headers.remove(header::CONTENT_LENGTH);
    if client == Version::HTTP_11 {
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        ResponseFraming::Chunked
    } else {
        ResponseFraming::Close
    }
}

/// Writes the status line and fields, then `connection` (if any) and `date` (unless there:
/// the clock is read only for an answer without one), and the empty line.
pub fn encode_response<D: AsRef<[u8]>>(
    status: StatusCode,
    headers: &HeaderMap,
    connection: Option<&'static str>,
    date: impl FnOnce() -> D,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    for (name, value) in headers {
        dated |= name == header::DATE;
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(connection) = connection {
        write_field(out, b"connection", connection.as_bytes());
    }
    if !dated {
        write_field(out, b"date", date().as_ref());
    }
    out.extend_from_slice(b"\r\n");
}

/// A short answer to a refused request head, closing the connection.
pub fn refusal_response(refusal: Refusal, date: &[u8]) -> Vec<u8> {
    let status = refusal.status();
    let reason = match refusal {
        Refusal::BadRequest(why) => why,
        Refusal::UriTooLong => "request target too long",
        Refusal::HeadTooLarge => "request head too large",
        Refusal::NotImplemented => "transfer coding not implemented",
        Refusal::VersionNotSupported => "HTTP version not supported",
    };
    let body = format!(
        "{} {}: {reason}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(
        crate::edge::REASON_HEADER,
        HeaderValue::from_static(refusal.reason()),
    );
    let mut out = Vec::with_capacity(256);
    encode_response(status, &headers, Some("close"), || date, &mut out);
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<RequestHead>, Refusal> {
        parse_request(&mut BytesMut::from(text))
    }

    fn head(text: &str) -> RequestHead {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn a_request_head_is_parsed_and_consumed() {
        let mut buf = BytesMut::from(
            "\r\nPOST /a?b=c HTTP/1.1\r\nHost: x.example\r\nContent-Length: 3\r\nX-Two: 1\r\nX-Two: 2\r\n\r\nabcGET",
        );
        let head = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!(head.request.method(), Method::POST);
        assert_eq!(head.request.uri(), "/a?b=c");
        assert_eq!(head.request.version(), Version::HTTP_11);
        assert_eq!(head.request.headers()["host"], "x.example");
        assert_eq!(head.request.headers().get_all("x-two").iter().count(), 2);
        assert_eq!(head.framing, BodyFraming::Length(3));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"abcGET");
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
    }

    #[test]
    fn absolute_and_authority_targets() {
        assert_eq!(
            head("GET http://a.example/p HTTP/1.1\r\n\r\n")
                .request
                .uri()
                .host(),
            Some("a.example")
        );
        let connect = head("CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n");
        assert_eq!(
            connect.request.uri().authority().unwrap(),
            "db.example:5432"
        );
    }

    #[test]
    fn the_target_of_an_absolute_form_request_replaces_its_host() {
        let h = head("GET http://a.example:8080/p HTTP/1.1\r\nHost: b.example\r\n\r\n");
        let hosts: Vec<_> = h.request.headers().get_all("host").iter().collect();
        assert_eq!(hosts, ["a.example:8080"]);
        // The target is enough, even on HTTP/1.1.
        let h = head("GET http://a.example/ HTTP/1.1\r\n\r\n");
        assert_eq!(h.request.headers()["host"], "a.example");
        for bad in ["http://a.example:1234567/", "http://user@a.example/"] {
            let text = format!("GET {bad} HTTP/1.1\r\nHost: a.example\r\n\r\n");
            assert_eq!(
                parse(&text).unwrap_err(),
                Refusal::BadRequest("bad host in the request target"),
                "{bad}"
            );
        }
        // The `Host` rules hold in absolute form too.
        assert_eq!(
            parse("GET http://a.example/ HTTP/1.1\r\nHost: b\r\nHost: c\r\n\r\n").unwrap_err(),
            Refusal::BadRequest("more than one Host")
        );
        assert_eq!(
            parse("GET http://a.example/ HTTP/1.1\r\nHost: b/c\r\n\r\n").unwrap_err(),
            Refusal::BadRequest("bad Host")
        );
    }

    #[test]
    fn http_1_1_needs_exactly_one_valid_host() {
        assert_eq!(
            parse("GET / HTTP/1.1\r\n\r\n").unwrap_err(),
            Refusal::BadRequest("no Host")
        );
        assert!(head("GET / HTTP/1.0\r\n\r\n").request.headers().is_empty());
        assert_eq!(
            parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n").unwrap_err(),
            Refusal::BadRequest("more than one Host")
        );
        assert_eq!(
            parse("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n").unwrap_err(),
            Refusal::BadRequest("more than one Host")
        );
        for good in [
            "a.example",
            "a.example:8080",
            "A-1.example.",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8443",
            "[2001:db8::7]",
            "xn--bcher-kva.example",
        ] {
            let text = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
            assert!(parse(&text).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "user@a.example",
            "a.example:80x",
            "a.example:123456",
            "[::1",
            "[]",
            "[::1]x",
            "[zz::1]",
            ":80",
            "a\\b",
            "a,b",
            "[fe80::1%25eth0]",
        ] {
            let text = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(
                parse(&text).unwrap_err(),
                Refusal::BadRequest("bad Host"),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn body_framing_by_rfc_9112_section_6_3() {
        assert_eq!(
            head("GET / HTTP/1.1\r\nHost: a\r\n\r\n").framing,
            BodyFraming::Empty
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing,
            BodyFraming::Empty
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing,
            BodyFraming::Chunked
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n").framing,
            BodyFraming::Length(5)
        );
    }

    #[test]
    fn ambiguous_or_unknown_framing_is_refused() {
        let smuggle =
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse(smuggle), Err(Refusal::BadRequest(_))));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Err(Refusal::BadRequest(_))
        ));
        for bad in ["-1", "+5", "0x5", "", "5 5"] {
            let text = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {bad}\r\n\r\n");
            assert!(
                matches!(parse(&text), Err(Refusal::BadRequest(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap_err(),
            Refusal::NotImplemented
        );
    }

    #[test]
    fn bad_heads_are_refused_with_their_status() {
        assert_eq!(
            parse("GET / HTTP/2.0\r\n\r\n").unwrap_err(),
            Refusal::VersionNotSupported
        );
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            Err(Refusal::BadRequest(_))
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            Refusal::HeadTooLarge
        );
        let huge = format!("GET / HTTP/1.1\r\nx-big: {}", "a".repeat(MAX_HEAD));
        assert_eq!(parse(&huge).unwrap_err(), Refusal::HeadTooLarge);
        let long_target = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(&long_target).unwrap_err(), Refusal::UriTooLong);
        assert_eq!(Refusal::UriTooLong.status(), StatusCode::URI_TOO_LONG);
    }

    #[test]
    fn which_clients_keep_the_connection() {
        assert!(head("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        let chunked_1_0 =
            "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(!head(chunked_1_0).keep_alive);
    }

    #[test]
    fn expect_and_te_are_noted() {
        let h = head(
            "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTE: trailers\r\nContent-Length: 1\r\n\r\n",
        );
        assert!(h.expects_continue);
        assert!(h.takes_trailers);
        assert!(!head("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue);
    }

    #[test]
    fn response_framing() {
        let get = Method::GET;
        let mut h = HeaderMap::new();
        assert_eq!(
            frame_response(&mut h, StatusCode::OK, &get, Version::HTTP_11, Some(5)),
            ResponseFraming::Length(5)
        );
        assert_eq!(h["content-length"], "5");

        let mut h = HeaderMap::new();
        assert_eq!(
            frame_response(&mut h, StatusCode::OK, &get, Version::HTTP_11, None),
            ResponseFraming::Chunked
        );
        assert_eq!(h["transfer-encoding"], "chunked");

        let mut h = HeaderMap::new();
        assert_eq!(
            frame_response(&mut h, StatusCode::OK, &get, Version::HTTP_10, None),
            ResponseFraming::Close
        );
        assert!(h.is_empty());

        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("9"));
        assert_eq!(
            frame_response(
                &mut h,
                StatusCode::OK,
                &Method::HEAD,
                Version::HTTP_11,
                None
            ),
            ResponseFraming::None
        );
        assert_eq!(h["content-length"], "9", "a HEAD answer keeps its length");
        assert_eq!(
            frame_response(&mut h, StatusCode::OK, &get, Version::HTTP_11, None),
            ResponseFraming::Length(9)
        );

        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("9"));
        assert_eq!(
            frame_response(
                &mut h,
                StatusCode::NO_CONTENT,
                &get,
                Version::HTTP_11,
                Some(0)
            ),
            ResponseFraming::None
        );
        assert!(h.is_empty());
    }

    #[test]
    fn response_head_bytes() {
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        encode_response(
            StatusCode::OK,
            &h,
            Some("close"),
            || b"Sun, 29 Nov 2026 05:00:00 GMT",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\ndate: Sun, 29 Nov 2026 05:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn an_answer_with_its_own_date_keeps_it_and_reads_no_clock() {
        let mut h = HeaderMap::new();
        h.insert(
            "date",
            HeaderValue::from_static("Sat, 28 Nov 2026 05:00:00 GMT"),
        );
        let mut out = Vec::new();
        let no_clock = || -> [u8; 29] { panic!("the clock was read for an answer with a Date") };
        encode_response(StatusCode::OK, &h, None, no_clock, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ndate: Sat, 28 Nov 2026 05:00:00 GMT\r\n\r\n"
        );
    }
}
