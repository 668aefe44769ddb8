//! Distributed tracing: trace context on the wire ([`context`]), per-request recording with
//! head and tail sampling ([`tracer`]), and OTLP export.

pub mod context;
mod export;
pub mod span;
pub mod tracer;

pub use span::{SpanKind, SpanRecord, Value};
pub use tracer::{Attempt, RequestTrace, Summary, Tracer};
