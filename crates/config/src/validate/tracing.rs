//! `tracing`: a sampling ratio that is a share, an OTLP endpoint we can reach, batch limits
//! that allow a batch.

use crate::path::Path;
use crate::telemetry::Tracing;

use super::Finding;

pub(super) fn check(tracing: &Tracing, found: &mut Vec<Finding>) {
    let path = Path::root().key("tracing");
    if !(0.0..=1.0).contains(&tracing.head_ratio) {
        found.push(
            Finding::new(
                path.key("head_ratio"),
                format!(
                    "head_ratio {} is not a share between 0 and 1",
                    tracing.head_ratio
                ),
            )
            .hint("write e.g. 0.01 to sample 1% of new traces, 1 for all, 0 for none"),
        );
    }
    if tracing.service_name.trim().is_empty() {
        found.push(
            Finding::new(path.key("service_name"), "service_name is empty")
                .hint("write the name your tracing backend should show, e.g. \"edge-proxy\""),
        );
    }
    for (i, format) in tracing.propagation.iter().enumerate() {
        if tracing.propagation[..i].contains(format) {
            found.push(Finding::new(
                path.key("propagation").index(i),
                format!("propagation lists {} twice", format.name()),
            ));
        }
    }
    if let Some(tail) = &tracing.tail
        && tail.max_held_spans == 0
    {
        found.push(
            Finding::new(
                path.key("tail").key("max_held_spans"),
                "max_held_spans is 0: tail sampling could hold no span",
            )
            .hint("leave it out for the default (100000)"),
        );
    }
    let otlp = &tracing.otlp;
    let otlp_path = path.key("otlp");
    if let Err(problem) = check_endpoint(&otlp.endpoint) {
        found.push(
            Finding::new(
                otlp_path.key("endpoint"),
                format!("endpoint {:?} {problem}", otlp.endpoint),
            )
            .hint("write http://host:port, e.g. http://127.0.0.1:4317 for gRPC or http://127.0.0.1:4318 for HTTP"),
        );
    }
    if otlp.batch_size == 0 {
        found.push(Finding::new(
            otlp_path.key("batch_size"),
            "batch_size is 0: no span could ever be exported",
        ));
    }
    if otlp.queue_size < otlp.batch_size {
        found.push(
            Finding::new(
                otlp_path.key("queue_size"),
                format!(
                    "queue_size {} is smaller than batch_size {}: a batch could never fill",
                    otlp.queue_size, otlp.batch_size
                ),
            )
            .hint("make queue_size a few batches large"),
        );
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let uri: http::Uri = endpoint.parse().map_err(|_| "is not a URL")?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("uses https, which the exporter does not speak yet"),
        _ => return Err("does not start with http://"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if uri.query().is_some() {
        return Err("has a query string");
    }
    Ok(())
}
