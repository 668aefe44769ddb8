//! RFC 9111 (HTTP Caching, as a shared cache), RFC 5861 (stale-while-revalidate,
//! stale-if-error), RFC 9110 (conditional requests) and RFC 9211 (`Cache-Status`), as pure
//! functions of headers and times: no I/O, no clock (times are passed in).
//!
//! - [`directives`]: `Cache-Control` / `Pragma` parsing (§5.2, §5.4).
//! - [`freshness`]: freshness lifetime, heuristics and age (§4.2).
//! - [`storable`](mod@storable): may a response be stored, and what to leave out of it (§3).
//! - [`reuse`](mod@reuse): may a stored response answer a request, fresh or stale (§4, RFC 5861).
//! - [`conditional`]: validators, conditional requests, 304 handling (§4.3, RFC 9110 §13).
//! - [`vary`](mod@vary): secondary keys (§4.1).
//! - [`invalidation`]: invalidation by unsafe methods (§4.4).
//! - [`status`]: the `Cache-Status` header (RFC 9211).
//! - [`range`]: a single byte range from a stored response (RFC 9110 §14).
//!
//! Section numbers without an RFC are RFC 9111's.

pub mod conditional;
pub mod directives;
pub mod freshness;
pub mod invalidation;
mod parse;
pub mod range;
pub mod reuse;
pub mod status;
pub mod storable;
pub mod vary;

pub use conditional::{
    EntityTag, IfNoneMatch, NOT_UPDATED, answer_not_modified, answer_not_modified_for, etag,
    freshens, has_origin_preconditions, if_none_match, merge_not_modified, parse_etag,
    revalidation_headers, strong_match, weak_match,
};
pub use directives::{
    FieldNames, RequestDirectives, ResponseDirectives, request_directives, response_directives,
};
pub use freshness::{
    HEURISTIC_CAP, HEURISTIC_FRACTION_PERCENT, Lifetime, LifetimeSource, age_header_value,
    age_value, current_age, ensure_date, freshness_lifetime, heuristically_cacheable, initial_age,
    is_fresh, is_heuristic, lifetime,
};
pub use invalidation::{invalidated_uris, is_unsafe};
pub use parse::DELTA_SECONDS_MAX;
pub use range::{RangeAnswer, evaluate_range};
pub use reuse::{Reuse, is_stale_if_error_status, reuse, stale_forbidden, stale_if_error};
pub use status::{CacheStatus, Forward, ttl_seconds};
pub use storable::{
    NEVER_STORED, fields_to_strip, not_stored_fields, storable, strip_for_storage,
    understood_status,
};
pub use vary::{Vary, secondary_key, variant_matches, vary};
