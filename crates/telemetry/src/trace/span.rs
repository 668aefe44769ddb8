//! A finished span as the proxy records it, and its OTLP form.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as otlp;

use super::context::{SpanId, TraceId};

/// Server (the client's request to us) or client (our attempt upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A request this proxy served.
    Server,
    /// An attempt this proxy sent upstream.
    Client,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
}

/// Something that happened during a span (a bulkhead wait, a breaker rejection, a cache hit).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// What happened.
    pub name: &'static str,
    /// When.
    pub at: SystemTime,
    /// Details.
    pub attributes: Vec<(&'static str, Value)>,
}

/// A finished span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    /// Its trace.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent, if any.
    pub parent: Option<SpanId>,
    /// Display name.
    pub name: String,
    /// Server or client.
    pub kind: SpanKind,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Attributes.
    pub attributes: Vec<(&'static str, Value)>,
    /// Events.
    pub events: Vec<Event>,
    /// Set when the span failed, with why.
    pub error: Option<String>,
}

impl SpanRecord {
    /// The attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The OTLP protobuf span.
    pub fn to_otlp(&self) -> otlp::Span {
        otlp::Span {
            trace_id: self.trace_id.0.to_vec(),
            span_id: self.span_id.0.to_vec(),
            parent_span_id: self.parent.map(|p| p.0.to_vec()).unwrap_or_default(),
            name: self.name.clone(),
            kind: match self.kind {
                SpanKind::Server => otlp::span::SpanKind::Server,
                SpanKind::Client => otlp::span::SpanKind::Client,
            } as i32,
            start_time_unix_nano: unix_nanos(self.start),
            end_time_unix_nano: unix_nanos(self.end),
            attributes: key_values(&self.attributes),
            events: self
                .events
                .iter()
                .map(|event| otlp::span::Event {
                    time_unix_nano: unix_nanos(event.at),
                    name: event.name.to_owned(),
                    attributes: key_values(&event.attributes),
                    dropped_attributes_count: 0,
                })
                .collect(),
            status: Some(match &self.error {
                Some(message) => otlp::Status {
                    message: message.clone(),
                    code: otlp::status::StatusCode::Error as i32,
                },
                None => otlp::Status {
                    message: String::new(),
                    code: otlp::status::StatusCode::Unset as i32,
                },
            }),
            ..otlp::Span::default()
        }
    }
}

fn key_values(attributes: &[(&'static str, Value)]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|(key, value)| KeyValue {
            key: (*key).to_owned(),
            value: Some(AnyValue {
                value: Some(match value {
                    Value::Str(text) => any_value::Value::StringValue(text.clone()),
                    Value::Int(n) => any_value::Value::IntValue(*n),
                }),
            }),
            ..KeyValue::default()
        })
        .collect()
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
