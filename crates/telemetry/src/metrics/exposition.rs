//! Writing the registry out: the Prometheus text format by default, OpenMetrics (with
//! exemplars) when the scraper asks for it.
//!
//! prometheus-client encodes both formats, but it offers no way to hand it an exemplar from
//! outside its own (locking) histogram. So route histograms are encoded without, and the
//! OpenMetrics text gets each bucket's exemplar appended to its line here, found by the
//! series' labels and the bucket's `le`.

use std::collections::HashMap;
use std::fmt::Write as _;

use prometheus_client::registry::Registry;

use super::histogram::LatencyHistogram;

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` (as Prometheus does when exemplar storage is on),
    /// otherwise the classic text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut params = range.split(';').map(str::trim);
                let media = params.next().unwrap_or("");
                let refused = params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q == 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of a scrape answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Encodes `registry`; in OpenMetrics, bucket lines that start with a key of `exemplars` get
/// that histogram's exemplar for their bucket.
pub(super) fn encode(
    registry: &Registry,
    format: Format,
    exemplars: &HashMap<String, LatencyHistogram>,
) -> String {
    let mut text = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    match format {
        Format::Prometheus => {
            let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, registry);
            return text;
        }
        Format::OpenMetrics => {
            let _ = prometheus_client::encoding::text::encode(&mut text, registry);
        }
    }
    if exemplars.is_empty() {
        return text;
    }
    let mut annotated = String::with_capacity(text.len() + 1024);
    for line in text.lines() {
        annotated.push_str(line);
        if let Some(exemplar) = exemplar_for(line, exemplars) {
            annotated.push_str(&exemplar.annotation());
        }
        annotated.push('\n');
    }
    annotated
}

fn exemplar_for(
    line: &str,
    exemplars: &HashMap<String, LatencyHistogram>,
) -> Option<super::Exemplar> {
    // `name_bucket{le="0.001",route="r",cluster="c"} 12`: the series is the line up to the
    // closing brace with the `le` pair taken out.
    let series = &line[..=line.rfind("} ")?];
    let at = series.find("le=\"")?;
    let value_end = at + 4 + series[at + 4..].find('"')?;
    let le = &series[at + 4..value_end];
    let mut key = String::with_capacity(series.len());
    key.push_str(&series[..at]);
    key.push_str(series[value_end + 1..].trim_start_matches(','));
    if key.ends_with(",}") {
        key.replace_range(key.len() - 2.., "}");
    }
    let bound = if le == "+Inf" {
        f64::INFINITY
    } else {
        le.parse().ok()?
    };
    exemplars.get(&key)?.exemplar(bound)
}

/// The key of a bucket series of `name` with `labels`, as [`exemplar_for`] derives it from a
/// bucket line: `name_bucket{a="x",b="y"}`.
pub(super) fn bucket_series_key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut key = format!("{name}_bucket{{");
    for (i, (label, value)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        let _ = write!(key, "{label}=\"");
        for c in value.chars() {
            match c {
                '\\' => key.push_str("\\\\"),
                '"' => key.push_str("\\\""),
                '\n' => key.push_str("\\n"),
                c => key.push(c),
            }
        }
        key.push('"');
    }
    key.push('}');
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for_and_not_refused() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::Prometheus
        );
        // What Prometheus 2.x sends with exemplar storage on.
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Format::Prometheus
        );
    }

    #[test]
    fn series_keys_escape_like_the_encoder() {
        assert_eq!(
            bucket_series_key("m", &[("route", "a\"b"), ("cluster", "c")]),
            "m_bucket{route=\"a\\\"b\",cluster=\"c\"}"
        );
    }

    #[test]
    fn bucket_lines_find_their_series_wherever_le_stands() {
        let histogram = LatencyHistogram::default();
        histogram.observe_traced(std::time::Duration::from_micros(50), "f".repeat(32));
        let key = bucket_series_key("m", &[("route", "r"), ("cluster", "c")]);
        let exemplars = HashMap::from([(key, histogram)]);
        for line in [
            "m_bucket{le=\"0.0001\",route=\"r\",cluster=\"c\"} 1",
            "m_bucket{route=\"r\",le=\"0.0001\",cluster=\"c\"} 1",
            "m_bucket{route=\"r\",cluster=\"c\",le=\"0.0001\"} 1",
        ] {
            let exemplar = exemplar_for(line, &exemplars).expect(line);
            assert_eq!(exemplar.trace_id, "f".repeat(32));
        }
        assert!(
            exemplar_for(
                "m_bucket{le=\"0.001\",route=\"r\",cluster=\"c\"} 1",
                &exemplars
            )
            .is_none()
        );
        assert!(
            exemplar_for(
                "m_bucket{le=\"0.0001\",route=\"x\",cluster=\"c\"} 1",
                &exemplars
            )
            .is_none()
        );
    }
}
