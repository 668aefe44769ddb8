//! Range requests answered from a complete stored response (RFC 9110 §14).
//!
//! A single byte range is answered `206 Partial Content`; several ranges, another unit or a
//! syntax error are ignored, as §14.2 allows, and the whole response is sent; a range that
//! starts past the end is `416 Range Not Satisfiable`. (`If-Range` is left to the origin:
//! see [`has_origin_preconditions`](super::has_origin_preconditions).)

/// How to answer a `Range` header over a representation of `length` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Ignore the header: send the whole representation (200).
    Full,
    /// Send bytes `start..=end` (206, `Content-Range: bytes start-end/length`).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416, `Content-Range: bytes */length`.
    Unsatisfiable,
}

/// §14.1.2 `bytes=first-last`, `bytes=first-` and `bytes=-suffix`, for one range.
pub fn evaluate_range(range: &str, length: u64) -> RangeAnswer {
    let Some(spec) = range
        .trim()
        .strip_prefix("bytes=")
        .or_else(|| range.trim().strip_prefix("BYTES="))
    else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let number = |text: &str| {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(n) if n > 0 && length > 0 => RangeAnswer::Partial {
                start: length.saturating_sub(n),
                end: length - 1,
            },
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Full,
        },
        (first, "") => match number(first) {
            Some(start) if start < length => RangeAnswer::Partial {
                start,
                end: length - 1,
            },
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Full,
        },
        (first, last) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start < length {
                    RangeAnswer::Partial {
                        start,
                        end: end.min(length - 1),
                    }
                } else {
                    RangeAnswer::Unsatisfiable
                }
            }
            _ => RangeAnswer::Full,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s14_1_2_first_last_open_ended_and_suffix_ranges() {
        assert_eq!(
            evaluate_range("bytes=0-499", 10_000),
            RangeAnswer::Partial { start: 0, end: 499 }
        );
        assert_eq!(
            evaluate_range("bytes=9500-", 10_000),
            RangeAnswer::Partial {
                start: 9500,
                end: 9999
            }
        );
        assert_eq!(
            evaluate_range("bytes=-500", 10_000),
            RangeAnswer::Partial {
                start: 9500,
                end: 9999
            }
        );
        // A last position past the end is clamped; a suffix longer than the whole is all of it.
        assert_eq!(
            evaluate_range("bytes=500-20000", 1000),
            RangeAnswer::Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            evaluate_range("bytes=-5000", 1000),
            RangeAnswer::Partial { start: 0, end: 999 }
        );
    }

    #[test]
    fn s14_1_2_a_range_starting_past_the_end_is_unsatisfiable() {
        assert_eq!(
            evaluate_range("bytes=1000-", 1000),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(
            evaluate_range("bytes=2000-3000", 1000),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(evaluate_range("bytes=-0", 1000), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn s14_2_other_units_several_ranges_and_bad_syntax_are_ignored() {
        for header in [
            "items=0-5",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=",
            "bytes 0-5",
        ] {
            assert_eq!(evaluate_range(header, 1000), RangeAnswer::Full, "{header}");
        }
    }
}
