//! Reading numeric parameters from a query string (`n=1024&chunk=4096`).

use std::str::FromStr;

/// The raw value of `name` in `query`, if present.
fn raw<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// `name` parsed as a number: `Ok(None)` if absent, `Err` with a message naming the parameter
/// and an example (`example`) if present but not a number.
pub(crate) fn number<T: FromStr>(
    query: Option<&str>,
    name: &str,
    example: &str,
) -> Result<Option<T>, String> {
    match raw(query, name) {
        None => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| {
            format!(
                "query parameter {name}={value:?} is not a non-negative integer, e.g. {example}"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_parameters_by_exact_name() {
        let q = Some("chunk=7&n=100");
        assert_eq!(number::<u64>(q, "n", "").unwrap(), Some(100));
        assert_eq!(number::<u64>(q, "chunk", "").unwrap(), Some(7));
        assert_eq!(number::<u64>(q, "c", "").unwrap(), None);
        assert_eq!(number::<u64>(None, "n", "").unwrap(), None);
    }

    #[test]
    fn a_non_number_is_an_error_naming_the_parameter() {
        let err = number::<u64>(Some("n=lots"), "n", "/bytes?n=1024").unwrap_err();
        assert!(
            err.contains("n=\"lots\"") && err.contains("/bytes?n=1024"),
            "{err}"
        );
        assert!(number::<u64>(Some("n"), "n", "").is_err());
    }
}
