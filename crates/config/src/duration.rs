//! Human-readable durations in config files: `250ms`, `2s`, `1m30s`, `0s`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as text in the config (`250ms`, `2s`, `1m30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    /// The standard library duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// `None` for zero, which the config uses to mean "no limit".
    pub fn non_zero(self) -> Option<std::time::Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }

    /// Parses `250ms`, `2s`, `1m30s`; the error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.chars().all(|c| c.is_ascii_digit()) && !trimmed.is_empty() {
            return Err(format!(
                "duration {trimmed:?} has no unit (write e.g. \"{trimmed}s\" or \"{trimmed}ms\")"
            ));
        }
        let parsed = humantime::parse_duration(trimmed).map_err(|e| {
            format!("invalid duration {text:?}: {e} (write e.g. \"250ms\", \"2s\", \"1m30s\")")
        })?;
        if parsed > Self::MAX.0 {
            return Err(format!(
                "duration {trimmed:?} is longer than the longest allowed, 365d (use 0s where a limit can be turned off)"
            ));
        }
        Ok(Self(parsed))
    }

    /// The longest duration a config may give: a year. Anything longer is a typo, and the
    /// clock arithmetic of timers need not worry about overflow below it.
    pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Exactly the units humantime's parser accepts, and fractions (`1.5s`), so editors
        // flag no value the loader takes.
        json_schema!({
            "type": "string",
            "description": "A duration with a unit: `250ms`, `2s`, `1m30s`, `1.5s`, `1h`.",
            "pattern": "^\\s*([0-9]+(\\.[0-9]+)?\\s*(nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)\\s*)+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_units() {
        assert_eq!(Duration::parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(Duration::parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(Duration::parse("1m30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn parses_fractions_and_long_unit_names_the_schema_allows() {
        assert_eq!(Duration::parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(Duration::parse("2sec"), Ok(Duration::from_secs(2)));
        assert_eq!(Duration::parse("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(Duration::parse("1w"), Ok(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn absurdly_long_durations_are_rejected() {
        assert_eq!(Duration::parse("365d"), Ok(Duration::MAX));
        let err = Duration::parse("500000000000y").unwrap_err();
        assert!(err.contains("365d"), "{err}");
    }

    #[test]
    fn bare_number_is_rejected_with_a_hint() {
        let err = Duration::parse("5").unwrap_err();
        assert!(err.contains("no unit"), "{err}");
    }

    #[test]
    fn display_round_trips() {
        for text in ["0s", "250ms", "1m 30s", "2s"] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }
    }
}
