//! What an HTTP intermediary must do to headers (RFC 9110 §7.6): drop hop-by-hop fields,
//! including those the `Connection` header names, and say it was here (`Via`,
//! `X-Forwarded-For` / `-Proto` / `-Host`).

use http::Version;
use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop fields that never cross the proxy, whatever `Connection` says. `Close` is a
/// reserved field name (RFC 9110 §18.4: it would clash with the `close` connection option, so
/// a `Connection: close` names it, and the HTTP/1 parser does not keep that line in the map).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("close"),
];

/// Joins the separate `cookie` fields an HTTP/2 client may send into the single field an
/// HTTP/1.1 server expects (RFC 9113 §8.2.3: joined with "; ").
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

/// The protocol token this proxy puts in `Via`.
const VIA_PSEUDONYM: &str = "watertight";

/// Whether a request asks to switch protocols (`Connection: upgrade` plus `Upgrade`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has_token(headers, "upgrade")
}

fn connection_has_token(headers: &HeaderMap, token: &str) -> bool {
    list_items(headers, &header::CONNECTION).any(|t| t.eq_ignore_ascii_case(token))
}

/// The `Connection` field almost every HTTP/1 message carries: one line of one token (the
/// HTTP/1 parser notes it instead of putting it in the field map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlainConnection {
    KeepAlive,
    Close,
}

impl PlainConnection {
    /// What one `Connection` line says, if it is only `keep-alive` or `close`.
    pub(crate) fn of(line: &[u8]) -> Option<Self> {
        let token = line.trim_ascii();
        if token.eq_ignore_ascii_case(b"keep-alive") {
            Some(Self::KeepAlive)
        } else if token.eq_ignore_ascii_case(b"close") {
            Some(Self::Close)
        } else {
            None
        }
    }
}

/// The items of a comma-separated list field, over all its lines, trimmed, empty ones skipped
/// (a line that is not text is skipped whole).
pub(crate) fn list_items<'a>(headers: &'a HeaderMap, name: &HeaderName) -> ListItems<'a> {
    ListItems {
        lines: headers.get_all(name).into_iter(),
        rest: "",
    }
}

/// The iterator of [`list_items`]: one loop over the lines and their commas (a chain of
/// `flat_map` and `filter` adapters cost several times as much on every message).
pub(crate) struct ListItems<'a> {
    lines: header::ValueIter<'a, HeaderValue>,
    /// What is left of the current line.
    rest: &'a str,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            while self.rest.is_empty() {
                let line = self.lines.next()?;
                self.rest = line.to_str().unwrap_or("");
            }
            // A byte search: the text is ASCII, so a comma's position is a char boundary.
            let bytes = self.rest.as_bytes();
            let (item, rest) = match bytes.iter().position(|&b| b == b',') {
                Some(comma) => (&self.rest[..comma], &self.rest[comma + 1..]),
                None => (self.rest, ""),
            };
            self.rest = rest;
            // Only visible ASCII, spaces and tabs are text here: no Unicode to trim.
            let item = item.trim_ascii();
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// Removes hop-by-hop fields. With `keep_upgrade`, `Upgrade` and `Connection: upgrade` stay
/// (the proxy tunnels the upgrade end to end). `TE: trailers` is kept when asked for, as
/// gRPC and other trailer users need it. True if `Connection` named other fields (which are
/// gone too, whatever they were).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) -> bool {
    // One pass over the names finds which hop-by-hop fields there are; most messages carry
    // none or only `Connection`, and a field that is not there costs no lookup.
    let mut present = [false; 7];
    for name in headers.keys() {
        // In `HOP_BY_HOP`'s order; a match on the text is a length switch and one compare.
        let i = match name.as_str() {
            "connection" => 0,
            "keep-alive" => 1,
            "proxy-connection" => 2,
            "te" => 3,
            "transfer-encoding" => 4,
            "upgrade" => 5,
            "close" => 6,
            _ => continue,
        };
        present[i] = true;
    }
    let [connection, _, _, te, _, _, _] = present; // in `HOP_BY_HOP`'s order
    // Tokens naming the standard hop-by-hop fields (`keep-alive`, `upgrade`, `close`) need no entry
    // here: those go anyway. Only other names are collected (no allocation otherwise).
    let mut named: Vec<HeaderName> = Vec::new();
    if connection {
        for token in list_items(headers, &header::CONNECTION) {
            if HOP_BY_HOP
                .iter()
                .any(|n| token.eq_ignore_ascii_case(n.as_str()))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    let wants_trailers =
        te && list_items(headers, &header::TE).any(|t| t.eq_ignore_ascii_case("trailers"));
    let named_others = !named.is_empty();
    for name in named {
        headers.remove(&name);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, there)| *there) {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if wants_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    named_others
}

/// The `Via` protocol version for a message received with `version`.
fn via_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Appends this proxy to `Via` for a message that arrived as `version`.
pub fn append_via(headers: &mut HeaderMap, version: Version) {
    // Made at compile time (`from_static` checks its text when it runs).
    const VIA_2: HeaderValue = HeaderValue::from_static("2 watertight");
    const VIA_1_0: HeaderValue = HeaderValue::from_static("1.0 watertight");
    const VIA_1_1: HeaderValue = HeaderValue::from_static("1.1 watertight");
    let common = match version {
        Version::HTTP_2 => Some(VIA_2),
        Version::HTTP_10 => Some(VIA_1_0),
        Version::HTTP_11 => Some(VIA_1_1),
        _ => None,
    };
    // The common case, the first `Via`: one lookup, without formatting or allocating.
    if let (Some(value), Entry::Vacant(vacant)) = (common, headers.entry(header::VIA)) {
        vacant.insert(value);
        return;
    }
    let entry = format!("{} {VIA_PSEUDONYM}", via_version(version));
    if let Ok(entry) = HeaderValue::from_str(&entry) {
        append_list(headers, header::VIA, entry);
    }
}

/// Appends the forwarding fields for a request from `client` (its address as text, made once
/// per connection) that asked for `host` over `scheme`. Each field keeps earlier hops' entries and gets this hop's added at the end.
pub fn append_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) {
    append_list(headers, X_FORWARDED_FOR, client.clone());
    append_list(headers, X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
    if let Some(host) = host {
        append_list(headers, X_FORWARDED_HOST, host.clone());
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Joins `entry` onto a comma-separated list field, folding repeated fields into one line.
/// The first entry is stored as it is, without formatting or copying.
fn append_list(headers: &mut HeaderMap, name: HeaderName, entry: HeaderValue) {
    // The usual case, a field no earlier hop set: one lookup.
    let name = match headers.entry(name) {
        Entry::Vacant(vacant) => {
            vacant.insert(entry);
            return;
        }
        Entry::Occupied(occupied) => occupied.key().clone(),
    };
    let existing: Vec<&str> = list_items(headers, &name).collect();
    if existing.is_empty() {
        headers.insert(name, entry);
        return;
    }
    let Ok(entry) = entry.to_str() else {
        return;
    };
    let joined = format!("{}, {entry}", existing.join(", "));
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn removes_standard_and_connection_named_fields() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "kept"),
        ]);
        remove_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-end-to-end"]);
    }

    #[test]
    fn separate_cookie_fields_are_joined_for_http1() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        join_cookies(&mut h);
        let cookies: Vec<&str> = h
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies, vec!["a=1; b=2; c=3"]);
        let mut single = map(&[("cookie", "a=1; b=2")]);
        join_cookies(&mut single);
        assert_eq!(single.get("cookie").unwrap(), "a=1; b=2");
    }

    #[test]
    fn list_items_span_lines_trim_and_skip_empty_items_and_non_text_lines() {
        let mut h = map(&[
            ("connection", " close ,, keep-alive,"),
            ("connection", ""),
            ("connection", ","),
            ("connection", "x-a,x-b"),
        ]);
        h.append(
            "connection",
            HeaderValue::from_bytes(b"x-\xff, x-c").unwrap(),
        );
        h.append("connection", HeaderValue::from_static("x-d"));
        let items: Vec<&str> = list_items(&h, &header::CONNECTION).collect();
        assert_eq!(items, vec!["close", "keep-alive", "x-a", "x-b", "x-d"]);
        assert_eq!(list_items(&h, &header::TE).count(), 0);
    }

    #[test]
    fn a_plain_connection_line_is_keep_alive_or_close_alone() {
        // Several lines are the parser's to tell (`wire::FieldSpans::to_map`).
        let plain = |line: &str| PlainConnection::of(line.as_bytes());
        assert_eq!(plain(" Keep-Alive "), Some(PlainConnection::KeepAlive));
        assert_eq!(plain("CLOSE"), Some(PlainConnection::Close));
        assert_eq!(plain(""), None);
        assert_eq!(plain("keep-alive, x-hop"), None);
        assert_eq!(plain("upgrade"), None);
    }

    #[test]
    fn a_close_field_goes_with_connection_close_however_it_came() {
        for (connection, names_another) in [("close", false), ("close, x-hop", true)] {
            let mut h = map(&[("connection", connection), ("close", "1"), ("x-kept", "1")]);
            // Only a name outside the standard hop-by-hop ones counts as another field.
            assert_eq!(remove_hop_by_hop(&mut h, false), names_another);
            assert!(h.get("close").is_none(), "{connection}");
            assert!(h.get("x-kept").is_some());
        }
        // As the HTTP/1 parser leaves it: `Connection: close` noted, not in the map.
        let mut h = map(&[("close", "1")]);
        remove_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
    }

    #[test]
    fn keeps_te_trailers_only() {
        let mut h = map(&[("te", "trailers, deflate")]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.get("te").unwrap(), "trailers");
        let mut h = map(&[("te", "deflate")]);
        remove_hop_by_hop(&mut h, false);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn upgrade_survives_when_tunnelling() {
        let mut h = map(&[
            ("connection", "Upgrade, x-hop"),
            ("upgrade", "websocket"),
            ("x-hop", "1"),
        ]);
        assert!(is_upgrade_request(&h));
        assert!(remove_hop_by_hop(&mut h, true));
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(h.get("x-hop").is_none());
    }

    #[test]
    fn forwarding_fields_append_to_earlier_hops() {
        let mut h = map(&[("x-forwarded-for", "203.0.113.9"), ("via", "1.1 edge")]);
        append_forwarded(
            &mut h,
            &HeaderValue::from_static("127.0.0.1"),
            "http",
            Some(&HeaderValue::from_static("shop.example")),
        );
        append_via(&mut h, Version::HTTP_2);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "203.0.113.9, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "shop.example");
        assert_eq!(h.get("via").unwrap(), "1.1 edge, 2 watertight");
    }
}
