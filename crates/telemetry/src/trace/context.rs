//! Trace context on the wire: W3C `traceparent`/`tracestate`, and Zipkin's B3 in its single
//! (`b3`) and multi-header (`X-B3-*`) forms.
//!
//! Every format is accepted on the way in (W3C first, as the standard); the formats a tracing
//! config lists are written on the way out, after removing whatever the client sent, so the
//! upstream sees this proxy's span as its parent.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use watertight_config::Propagation;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const B3: HeaderName = HeaderName::from_static("b3");
const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Every trace context header this module reads or writes.
const ALL: [HeaderName; 8] = [
    TRACEPARENT,
    TRACESTATE,
    B3,
    B3_TRACE_ID,
    B3_SPAN_ID,
    B3_PARENT_SPAN_ID,
    B3_SAMPLED,
    B3_FLAGS,
];

/// A 16-byte trace id; never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id; never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random id.
    pub fn random() -> Self {
        loop {
            let bytes = rand::random::<u128>().to_be_bytes();
            if bytes != [0; 16] {
                return Self(bytes);
            }
        }
    }

    /// 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        hex(&self.0)
    }

    /// Its last eight bytes as a number: what ratio sampling compares (the random part in
    /// W3C Trace Context level 2, and all of a 64-bit B3 id).
    pub fn low_u64(self) -> u64 {
        u64::from_be_bytes(self.0[8..].try_into().expect("eight bytes"))
    }
}

impl SpanId {
    /// A random id.
    pub fn random() -> Self {
        loop {
            let bytes = rand::random::<u64>().to_be_bytes();
            if bytes != [0; 8] {
                return Self(bytes);
            }
        }
    }

    /// 16 lowercase hex digits.
    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

/// The caller's context, as found in a request's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    /// The trace the request belongs to.
    pub trace_id: TraceId,
    /// The caller's span: the parent of this proxy's server span.
    pub span_id: SpanId,
    /// The caller's sampling decision, if it made one (B3 may defer).
    pub sampled: Option<bool>,
    /// W3C `tracestate`, passed on unchanged.
    pub tracestate: Option<HeaderValue>,
}

/// The context this proxy sends upstream for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The trace.
    pub trace_id: TraceId,
    /// The attempt's client span (the upstream's parent).
    pub span_id: SpanId,
    /// The span that one is a child of (B3 sends it).
    pub parent_span_id: SpanId,
    /// Whether the trace is sampled.
    pub sampled: bool,
    /// W3C `tracestate` to pass on.
    pub tracestate: Option<HeaderValue>,
}

/// The caller's context from `headers`: W3C, else B3 single, else B3 multi. Malformed
/// headers are ignored (the request starts a new trace), as W3C Trace Context requires.
pub fn extract(headers: &HeaderMap) -> Option<Parent> {
    // Most requests carry none: one pass over the names beats the lookups below.
    if !headers.keys().any(is_trace_header) {
        return None;
    }
    w3c(headers)
        .or_else(|| b3_single(headers))
        .or_else(|| b3_multi(headers))
}

fn w3c(headers: &HeaderMap) -> Option<Parent> {
    // Exactly one traceparent; more than one is invalid.
    let mut values = headers.get_all(TRACEPARENT).iter();
    let value = values.next()?.to_str().ok()?.trim();
    if values.next().is_some() {
        return None;
    }
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let flags = parts.next()?;
    // Version 00 has exactly four fields; a later version may add more after the flags.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !is_lower_hex(version) || flags.len() != 2 || !is_lower_hex(flags) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let tracestate = headers.get(TRACESTATE).cloned();
    Some(Parent {
        trace_id: trace_id_from_hex(trace_id, true)?,
        span_id: span_id_from_hex(span_id, true)?,
        sampled: Some(flags & 1 == 1),
        tracestate,
    })
}

fn b3_single(headers: &HeaderMap) -> Option<Parent> {
    let value = headers.get(B3)?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let trace_id = trace_id_from_hex(parts.next()?, false)?;
    let span_id = span_id_from_hex(parts.next()?, false)?;
    let sampled = match parts.next() {
        None => None,
        Some("1" | "d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    Some(Parent {
        trace_id,
        span_id,
        sampled,
        tracestate: None,
    })
}

fn b3_multi(headers: &HeaderMap) -> Option<Parent> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let trace_id = trace_id_from_hex(text(B3_TRACE_ID)?, false)?;
    let span_id = span_id_from_hex(text(B3_SPAN_ID)?, false)?;
    let sampled = if text(B3_FLAGS) == Some("1") {
        Some(true)
    } else {
        match text(B3_SAMPLED) {
            Some("1" | "true") => Some(true),
            Some("0" | "false") => Some(false),
            _ => None,
        }
    };
    Some(Parent {
        trace_id,
        span_id,
        sampled,
        tracestate: None,
    })
}

/// Replaces any trace headers in `headers` with `context` in each of `formats`.
pub fn inject(headers: &mut HeaderMap, context: &Outgoing, formats: &[Propagation]) {
    // One pass over the (few) request headers is cheaper than eight failed lookups.
    if headers.keys().any(is_trace_header) {
        remove_all(headers);
    }
    let sampled = if context.sampled { "1" } else { "0" };
    for format in formats {
        match format {
            Propagation::W3c => {
                let mut value = String::with_capacity(55);
                value.push_str("00-");
                push_hex(&mut value, &context.trace_id.0);
                value.push('-');
                push_hex(&mut value, &context.span_id.0);
                value.push_str(if context.sampled { "-01" } else { "-00" });
                // Hex and dashes are always a valid value; this keeps the buffer (no copy).
                if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
                    headers.insert(TRACEPARENT, value);
                }
                if let Some(state) = &context.tracestate {
                    headers.insert(TRACESTATE, state.clone());
                }
            }
            Propagation::B3 => {
                let (trace_id, span_id) = (context.trace_id.to_hex(), context.span_id.to_hex());
                let parent = context.parent_span_id.to_hex();
                insert(
                    headers,
                    B3,
                    &format!("{trace_id}-{span_id}-{sampled}-{parent}"),
                );
            }
            Propagation::B3multi => {
                insert(headers, B3_TRACE_ID, &context.trace_id.to_hex());
                insert(headers, B3_SPAN_ID, &context.span_id.to_hex());
                insert(headers, B3_PARENT_SPAN_ID, &context.parent_span_id.to_hex());
                insert(headers, B3_SAMPLED, sampled);
            }
        }
    }
}

fn is_trace_header(name: &HeaderName) -> bool {
    ALL.contains(name)
}

fn remove_all(headers: &mut HeaderMap) {
    for name in &ALL {
        headers.remove(name);
    }
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// 32 hex digits (W3C: lowercase only), or 16 for a 64-bit B3 id (left-padded with zeros).
fn trace_id_from_hex(text: &str, strict: bool) -> Option<TraceId> {
    let mut bytes = [0u8; 16];
    match text.len() {
        32 => decode(text, &mut bytes, strict)?,
        16 if !strict => decode(text, &mut bytes[8..], strict)?,
        _ => return None,
    }
    (bytes != [0; 16]).then_some(TraceId(bytes))
}

fn span_id_from_hex(text: &str, strict: bool) -> Option<SpanId> {
    let mut bytes = [0u8; 8];
    if text.len() != 16 {
        return None;
    }
    decode(text, &mut bytes, strict)?;
    (bytes != [0; 8]).then_some(SpanId(bytes))
}

fn decode(text: &str, out: &mut [u8], strict: bool) -> Option<()> {
    if strict && !is_lower_hex(text) {
        return None;
    }
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(())
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    push_hex(&mut text, bytes);
    text
}

/// Appends `bytes` as lowercase hex (ids are written on every traced request: no `fmt`).
fn push_hex(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const SPAN: &str = "b7ad6b7169203331";

    #[test]
    fn w3c_traceparent_is_read_with_its_sampled_flag_and_tracestate() {
        let parent = extract(&headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]))
        .unwrap();
        assert_eq!(parent.trace_id.to_hex(), TRACE);
        assert_eq!(parent.span_id.to_hex(), SPAN);
        assert_eq!(parent.sampled, Some(true));
        assert_eq!(parent.tracestate.unwrap(), "congo=t61rcWkgMzE");
        let unsampled = extract(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-00"),
        )]));
        assert_eq!(unsampled.unwrap().sampled, Some(false));
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            format!("00-{}-{SPAN}-01", "0".repeat(32)), // zero trace id
            format!("00-{TRACE}-{}-01", "0".repeat(16)), // zero span id
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{TRACE}-{SPAN}"),
            format!("00-{}-{SPAN}-01", &TRACE[..30]),
        ] {
            assert_eq!(extract(&headers(&[("traceparent", &bad)])), None, "{bad}");
        }
        // A future version may carry more fields.
        assert!(
            extract(&headers(&[(
                "traceparent",
                &format!("01-{TRACE}-{SPAN}-01-x")
            )]))
            .is_some()
        );
        // Two traceparent fields: invalid, start over.
        let two = headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("traceparent", &format!("00-{TRACE}-{SPAN}-00")),
        ]);
        assert_eq!(extract(&two), None);
    }

    #[test]
    fn b3_single_and_multi_are_accepted_including_64_bit_ids() {
        let single = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}-1"))])).unwrap();
        assert_eq!(single.trace_id.to_hex(), TRACE);
        assert_eq!(single.sampled, Some(true));
        let deferred = extract(&headers(&[("b3", &format!("{}-{SPAN}", &TRACE[16..]))])).unwrap();
        assert_eq!(
            deferred.trace_id.to_hex(),
            format!("{}{}", "0".repeat(16), &TRACE[16..])
        );
        assert_eq!(deferred.sampled, None);
        let multi = extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
        ]))
        .unwrap();
        assert_eq!(multi.span_id.to_hex(), SPAN);
        assert_eq!(multi.sampled, Some(false));
        let debug = extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1"),
        ]))
        .unwrap();
        assert_eq!(debug.sampled, Some(true));
    }

    #[test]
    fn w3c_wins_over_b3() {
        let other = "1".repeat(32);
        let parent = extract(&headers(&[
            ("b3", &format!("{other}-{SPAN}-1")),
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
        ]))
        .unwrap();
        assert_eq!(parent.trace_id.to_hex(), TRACE);
    }

    #[test]
    fn inject_replaces_the_callers_headers_in_every_configured_format() {
        let mut map = headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("x-b3-sampled", "1"),
        ]);
        let outgoing = Outgoing {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_span_id: SpanId::random(),
            sampled: true,
            tracestate: Some(HeaderValue::from_static("a=b")),
        };
        inject(
            &mut map,
            &outgoing,
            &[Propagation::W3c, Propagation::B3, Propagation::B3multi],
        );
        let (trace, span) = (outgoing.trace_id.to_hex(), outgoing.span_id.to_hex());
        assert_eq!(map["traceparent"], format!("00-{trace}-{span}-01").as_str());
        assert_eq!(map["tracestate"], "a=b");
        assert_eq!(
            map["b3"],
            format!("{trace}-{span}-1-{}", outgoing.parent_span_id.to_hex()).as_str()
        );
        assert_eq!(map["x-b3-traceid"], trace.as_str());
        assert_eq!(map["x-b3-sampled"], "1");
        // What we wrote reads back as the same context.
        let back = extract(&map).unwrap();
        assert_eq!(
            (back.trace_id, back.span_id),
            (outgoing.trace_id, outgoing.span_id)
        );

        let mut only_b3 = headers(&[("traceparent", &format!("00-{TRACE}-{SPAN}-01"))]);
        inject(
            &mut only_b3,
            &Outgoing {
                sampled: false,
                ..outgoing
            },
            &[Propagation::B3],
        );
        assert!(!only_b3.contains_key("traceparent"));
        assert!(only_b3["b3"].to_str().unwrap().contains("-0-"));
    }
}
