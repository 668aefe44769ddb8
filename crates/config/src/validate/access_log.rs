//! `access_log`: `stdout`, `stderr`, `off`, or a file path, and nothing that looks like a
//! keyword but would silently become a file name.

use crate::path::Path;

use super::Finding;

const KEYWORDS: [&str; 3] = ["stdout", "stderr", "off"];

pub(super) fn check(value: &str, found: &mut Vec<Finding>) {
    let path = Path::root().key("access_log");
    let hint =
        "write stdout, stderr, off, or a file path such as \"/var/log/watertight/access.log\"";
    let problem = |message: String, hint: String| Finding::new(path.clone(), message).hint(hint);
    if KEYWORDS.contains(&value) {
        return;
    }
    let finding = if value.trim().is_empty() {
        problem("access_log is empty".to_owned(), hint.to_owned())
    } else if value.trim() != value {
        problem(
            format!("access_log {value:?} starts or ends with whitespace"),
            format!("write {:?}", value.trim()),
        )
    } else if let Some(keyword) = KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(value)) {
        problem(
            format!(
                "access_log {value:?} would be a file named {value:?}: the keywords are lower-case"
            ),
            format!("write {keyword:?}, or \"./{value}\" for a file"),
        )
    } else if let Some(keyword) = meant_keyword(value) {
        problem(
            format!("access_log {value:?} would be a file named {value:?}"),
            format!("write {keyword:?}, or \"./{value}\" for a file with that name"),
        )
    } else if value.chars().any(char::is_control) {
        problem(
            format!("access_log {value:?} contains control characters"),
            hint.to_owned(),
        )
    } else if value.ends_with('/') || value.ends_with("/.") || value.ends_with("/..") {
        problem(
            format!("access_log {value:?} names a directory, not a file"),
            format!(
                "name a file in it, e.g. \"{}/access.log\"",
                value.trim_end_matches('/')
            ),
        )
    } else {
        return;
    };
    found.push(finding);
}

/// YAML 1.1 booleans and common words for "disabled" that a user meant as a keyword.
fn meant_keyword(value: &str) -> Option<&'static str> {
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "false" | "no" | "none" | "null" | "disabled" | "disable" | "0" => Some("off"),
        "true" | "yes" | "on" | "console" | "-" => Some("stdout"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(value: &str) -> Vec<String> {
        let mut found = Vec::new();
        check(value, &mut found);
        found
            .into_iter()
            .map(|f| f.unlocated().to_string())
            .collect()
    }

    #[test]
    fn keywords_and_paths_are_accepted() {
        for ok in [
            "stdout",
            "stderr",
            "off",
            "/var/log/access.log",
            "access.log",
            "./false",
        ] {
            assert!(problems(ok).is_empty(), "{ok}");
        }
    }

    #[test]
    fn keyword_lookalikes_are_rejected_with_the_keyword_to_write() {
        let found = problems("false");
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("hint: write \"off\""), "{}", found[0]);
        assert!(problems("STDOUT")[0].contains("write \"stdout\""));
    }

    #[test]
    fn empty_values_and_directories_are_rejected() {
        assert!(problems("")[0].contains("access_log is empty"));
        assert!(problems("logs/")[0].contains("names a directory"));
    }
}
