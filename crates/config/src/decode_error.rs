//! serde-saphyr's deserialization errors, reworded to name the field and say what to write.

use serde_saphyr::Error;

use crate::diagnostic::split_hint;
use crate::path::Path;
use crate::source_map::{Position, SourceMap};
use crate::suggest;

/// A deserialization error as a position, a message and a hint.
pub(crate) struct Described {
    pub(crate) position: Position,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

/// Describes `error`, which happened while reading the value at `path` (from the filter).
pub(crate) fn describe(error: &Error, path: Option<&Path>, map: &SourceMap) -> Described {
    let root = Path::root();
    let path = path.unwrap_or(&root);
    let reported = error.location().map(|location| Position {
        line: u32::try_from(location.line()).unwrap_or(u32::MAX),
        column: u32::try_from(location.column()).unwrap_or(u32::MAX),
    });
    let position = match (error.without_snippet(), reported) {
        // serde notices a missing field at the end of the mapping; point at its start.
        (Error::SerdeMissingField { .. }, _) | (_, None) => map.value(path),
        (_, Some(position)) => position,
    };
    let subject = if path.segments().is_empty() {
        "the config".to_owned()
    } else {
        path.to_string()
    };
    let found = || {
        map.found_at(path)
            .map(|found| format!(", found {found}"))
            .unwrap_or_default()
    };
    let (message, hint) = match error.without_snippet() {
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            format!("{subject}: unknown value {variant:?}"),
            Some(allowed_values(variant, expected)),
        ),
        Error::SerdeMissingField { field, .. } => (
            format!("missing required field {field:?} {}", path.describe()),
            Some(format!("add \"{field}:\" with a value to this mapping")),
        ),
        Error::NullIntoString { .. } => (
            format!("{subject}: expected a value, found nothing"),
            Some("write a value after the colon".to_owned()),
        ),
        Error::Unexpected { expected, .. } => (
            format!("{subject}: expected {}{}", shape(expected), found()),
            None,
        ),
        Error::ExternallyTaggedEnumExpectedScalarOrMapping { .. } => (
            format!("{subject}: expected a single value{}", found()),
            None,
        ),
        Error::InvalidScalar { ty, .. } => (
            format!("{subject}: expected {}{}", scalar(ty), found()),
            None,
        ),
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => (
            format!("{subject}: expected {expected}, found {unexpected}"),
            None,
        ),
        Error::Message { msg, .. } => {
            let (message, hint) = split_hint(msg);
            (format!("{subject}: {message}"), hint)
        }
        other => (format!("{subject}: {}", without_location(other)), None),
    };
    Described {
        position,
        message,
        hint,
    }
}

/// `allowed values: a, b`, led by `did you mean "a"?` when the written value is close to one.
fn allowed_values(written: &str, allowed: &[&str]) -> String {
    let list = format!("allowed values: {}", allowed.join(", "));
    match suggest::closest(written, allowed.iter().copied()) {
        Some(best) => format!("did you mean {best:?}? {list}"),
        None => list,
    }
}

/// What serde-saphyr's "expected …" token means to someone writing YAML.
fn shape(expected: &str) -> &str {
    match expected {
        "sequence start" => "a list",
        "mapping start" => "a mapping",
        "string scalar" => "a single value",
        other => other,
    }
}

/// The Rust scalar type, in config terms (`usize` reads as `u64`).
fn scalar(ty: &str) -> String {
    match ty {
        "u32" => format!("a whole number from 0 to {}", u32::MAX),
        "u64" | "usize" => format!("a whole number from 0 to {}", u64::MAX),
        "bool" => "true or false".to_owned(),
        other => format!("a value of type {other}"),
    }
}

/// serde-saphyr's text for an error, without its " at line L, column C" suffix (the
/// diagnostic carries the position).
fn without_location(error: &Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}
