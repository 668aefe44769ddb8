//! The fault knobs of one sample service and the verdict they give each request.

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The fault knobs of one sample service. The default injects nothing.
///
/// They apply to every request except the `/fault` endpoints, in this order: wait
/// `latency_ms`, then with probability `reset_rate` abort without a response, then with
/// probability `error_rate` answer `error_status`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added before every request is handled, in milliseconds.
    pub latency_ms: u64,
    /// Probability (0..=1) that a request is answered with `error_status`.
    pub error_rate: f64,
    /// The status of injected errors (400..=599); 503 by default.
    pub error_status: u16,
    /// Probability (0..=1) that the connection is aborted without a response. HTTP/1
    /// connections are reset (RST); on HTTP/2 only the request's stream is reset.
    pub reset_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 503,
            reset_rate: 0.0,
        }
    }
}

impl Faults {
    /// Checks that the rates are probabilities and the status is an error status.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("reset_rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "{name} must be a probability between 0 and 1 (0.25 hits a quarter of requests), got {rate}"
                ));
            }
        }
        if !(400..=599).contains(&self.error_status) {
            return Err(format!(
                "error_status must be an error status between 400 and 599, got {}",
                self.error_status
            ));
        }
        Ok(())
    }

    /// Rolls the dice for one request (after its latency has been served).
    pub(crate) fn verdict(&self) -> Verdict {
        if chance(self.reset_rate) {
            Verdict::Reset
        } else if chance(self.error_rate) {
            // Knobs set through `set_faults` skip validation; a nonsense status still fails.
            let status =
                StatusCode::from_u16(self.error_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Verdict::Fail(status)
        } else {
            Verdict::Serve
        }
    }
}

/// What the knobs decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Serve,
    Reset,
    Fail(StatusCode),
}

/// A partial update from `POST /fault`: only the given fields change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultsPatch {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    error_status: Option<u16>,
    reset_rate: Option<f64>,
}

impl FaultsPatch {
    /// The knobs after this patch, validated.
    pub(crate) fn apply_to(&self, current: Faults) -> Result<Faults, String> {
        let patched = Faults {
            latency_ms: self.latency_ms.unwrap_or(current.latency_ms),
            error_rate: self.error_rate.unwrap_or(current.error_rate),
            error_status: self.error_status.unwrap_or(current.error_status),
            reset_rate: self.reset_rate.unwrap_or(current.reset_rate),
        };
        patched.validate()?;
        Ok(patched)
    }
}

/// True with probability `p`; tolerant of values outside 0..=1 (and NaN, which never hits),
/// because `rand::random_bool` panics on them.
fn chance(p: f64) -> bool {
    if p >= 1.0 {
        true
    } else if p > 0.0 {
        rand::random_bool(p)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_knobs_always_serve() {
        let faults = Faults::default();
        assert!((0..1000).all(|_| faults.verdict() == Verdict::Serve));
    }

    #[test]
    fn certain_reset_wins_over_certain_error() {
        let faults = Faults {
            error_rate: 1.0,
            reset_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(faults.verdict(), Verdict::Reset);
    }

    #[test]
    fn certain_error_uses_the_configured_status() {
        let faults = Faults {
            error_rate: 1.0,
            error_status: 429,
            ..Faults::default()
        };
        assert_eq!(
            faults.verdict(),
            Verdict::Fail(StatusCode::TOO_MANY_REQUESTS)
        );
    }

    #[test]
    fn half_error_rate_fails_about_half() {
        let faults = Faults {
            error_rate: 0.5,
            ..Faults::default()
        };
        let failed = (0..10_000)
            .filter(|_| faults.verdict() != Verdict::Serve)
            .count();
        assert!((4_000..6_000).contains(&failed), "{failed} of 10000 failed");
    }

    #[test]
    fn out_of_range_rates_do_not_panic() {
        let faults = Faults {
            error_rate: f64::NAN,
            reset_rate: -3.0,
            ..Faults::default()
        };
        assert_eq!(faults.verdict(), Verdict::Serve);
        let faults = Faults {
            error_rate: 7.0,
            error_status: 42,
            ..Faults::default()
        };
        assert_eq!(
            faults.verdict(),
            Verdict::Fail(StatusCode::SERVICE_UNAVAILABLE)
        );
    }

    #[test]
    fn validate_names_the_bad_knob() {
        let err = Faults {
            reset_rate: 1.5,
            ..Faults::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("reset_rate") && err.contains("1.5"), "{err}");
        let err = Faults {
            error_status: 200,
            ..Faults::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("error_status") && err.contains("200"), "{err}");
    }

    #[test]
    fn patch_changes_only_given_fields() {
        let current = Faults {
            latency_ms: 50,
            error_rate: 0.1,
            ..Faults::default()
        };
        let patch: FaultsPatch = serde_json::from_str(r#"{"error_rate":0.5}"#).unwrap();
        let patched = patch.apply_to(current).unwrap();
        assert_eq!(
            patched,
            Faults {
                error_rate: 0.5,
                ..current
            }
        );
    }

    #[test]
    fn patch_rejects_unknown_fields_and_invalid_results() {
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"latency":5}"#).is_err());
        let patch: FaultsPatch = serde_json::from_str(r#"{"error_rate":2}"#).unwrap();
        assert!(patch.apply_to(Faults::default()).is_err());
    }

    #[test]
    fn missing_fields_deserialize_to_defaults() {
        let faults: Faults = serde_json::from_str(r#"{"latency_ms":200}"#).unwrap();
        assert_eq!(
            faults,
            Faults {
                latency_ms: 200,
                ..Faults::default()
            }
        );
    }
}
