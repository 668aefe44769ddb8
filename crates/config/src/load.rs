//! Loading a config: YAML text → `Config`, validated, with every problem located.
//!
//! The text goes through four stages, each finding what the previous cannot:
//! 1. the source map parses the YAML (syntax errors, empty file, several documents, duplicate
//!    keys) and remembers where every value is written;
//! 2. serde deserializes it through a filter that collects all unknown fields;
//! 3. if that succeeded, the semantic checks in `validate` run on the `Config`;
//! 4. every problem is pinned to its line and column and sorted by position.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::decode_error;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source_map::{Position, SourceMap};
use crate::suggest;
use crate::unknown_fields::{self, UnknownField};
use crate::{Config, validate};

/// A config that parsed and validated, with a version hash of its content.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// A short hash that changes whenever the config's meaning changes.
    pub version: String,
}

impl Loaded {
    /// Validates a config built or changed in code (quick mode, the demo's overrides) and
    /// versions it, as `load_str` does for a file.
    pub fn from_config(config: Config) -> Result<Loaded, Diagnostics> {
        let problems = validate(&config);
        if !problems.is_empty() {
            return Err(Diagnostics(problems));
        }
        let version = version_of(&config);
        Ok(Loaded { config, version })
    }
}

/// Reads, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<Loaded, Diagnostics> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {e}"),
            hint: None,
        }])
    })?;
    load_str(&text, &name)
}

/// Parses and validates config text; `file` names it in diagnostics.
///
/// On failure, returns every problem found, sorted by position. Semantic checks need a parsed
/// config, so when the YAML does not deserialize (a wrong type, a missing field) only that
/// error and the structural problems found so far are reported.
pub fn load_str(text: &str, file: &str) -> Result<Loaded, Diagnostics> {
    let map = match SourceMap::parse(text) {
        Ok(map) => map,
        Err(e) => {
            let message = format!("invalid YAML: {}", e.message);
            return Err(one(Diagnostic::at(file, e.position, message, None)));
        }
    };
    if map.is_empty() {
        return Err(one(Diagnostic::at(
            file,
            Position::START,
            "the config is empty".to_owned(),
            Some("a config needs at least \"listeners:\"; see docs/configuration.md".to_owned()),
        )));
    }
    if let Some(at) = map.extra_document() {
        return Err(one(Diagnostic::at(
            file,
            at,
            "the file holds more than one YAML document".to_owned(),
            Some("a config is one document; remove this \"---\" and merge what follows".to_owned()),
        )));
    }

    let mut problems: Vec<Diagnostic> = map
        .duplicate_keys()
        .into_iter()
        .map(|dup| {
            let message = format!(
                "duplicate key {:?} {} (first defined at line {})",
                dup.key,
                dup.mapping.describe(),
                dup.first.line
            );
            let hint = "keys must be unique within a mapping; remove one of them".to_owned();
            Diagnostic::at(file, dup.second, message, Some(hint))
        })
        .collect();
    let decoded = unknown_fields::decode::<Config>(text);
    problems.extend(decoded.unknown.iter().map(|u| unknown_field(u, file, &map)));
    match decoded.result {
        Ok(config) => {
            problems.extend(
                validate::findings(&config)
                    .into_iter()
                    .map(|finding| finding.located(file, &map)),
            );
            if problems.is_empty() {
                let version = version_of(&config);
                return Ok(Loaded { config, version });
            }
        }
        Err(error) => {
            let described = decode_error::describe(&error, decoded.error_path.as_ref(), &map);
            problems.push(Diagnostic::at(
                file,
                described.position,
                described.message,
                described.hint,
            ));
        }
    }
    problems.sort_by_key(|d| (d.line, d.column));
    Err(Diagnostics(problems))
}

fn unknown_field(unknown: &UnknownField, file: &str, map: &SourceMap) -> Diagnostic {
    let position = map.key(&unknown.parent.key(&unknown.key));
    let message = format!(
        "unknown field {:?} {}",
        unknown.key,
        unknown.parent.describe()
    );
    let hint = suggest::hint(&unknown.key, "known fields", unknown.known);
    Diagnostic::at(file, position, message, Some(hint))
}

fn one(diagnostic: Diagnostic) -> Diagnostics {
    Diagnostics(vec![diagnostic])
}

/// A short, stable hash of a config's meaning (formatting and comments do not change it).
pub fn version_of(config: &Config) -> String {
    let canonical = serde_json::to_vec(config).expect("a Config always serializes to JSON");
    let digest = Sha256::digest(&canonical);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
