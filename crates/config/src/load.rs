//! Loading a config: YAML text → `Config`, validated, with located diagnostics.
//! (Minimal first version; validation and locations are filled in by the config work.)

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::Config;

/// A config that parsed and validated, with a version hash of its content.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// A short hash that changes whenever the config's meaning changes.
    pub version: String,
}

/// One problem in a config, pinned to a place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

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
pub fn load_str(text: &str, file: &str) -> Result<Loaded, Diagnostics> {
    let config: Config = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as u32, l.column() as u32))
            .unwrap_or((0, 0));
        Diagnostics(vec![Diagnostic {
            file: file.to_owned(),
            line,
            column,
            message: e.to_string(),
            hint: None,
        }])
    })?;
    let problems = validate(&config);
    if !problems.is_empty() {
        return Err(Diagnostics(
            problems
                .into_iter()
                .map(|mut d| {
                    d.file = file.to_owned();
                    d
                })
                .collect(),
        ));
    }
    let version = version_of(&config);
    Ok(Loaded { config, version })
}

/// Semantic checks that serde cannot make, on a config built in code or loaded from a file.
/// Diagnostics returned here carry no file position.
pub fn validate(config: &Config) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut problem = |message: String| {
        problems.push(Diagnostic {
            file: String::new(),
            line: 0,
            column: 0,
            message,
            hint: None,
        })
    };
    if let Err(e) = crate::parse_listen_address(&config.admin.address) {
        problem(e);
    }
    for listener in &config.listeners {
        if let Err(e) = crate::parse_listen_address(&listener.address) {
            problem(e);
        }
        for route in &listener.routes {
            if !config.clusters.iter().any(|c| c.name == route.cluster) {
                problem(format!(
                    "route {:?} points to cluster {:?}, which is not defined",
                    route.name, route.cluster
                ));
            }
        }
    }
    for cluster in &config.clusters {
        for endpoint in &cluster.endpoints {
            if let Err(e) = crate::parse_endpoint_address(&endpoint.address) {
                problem(e);
            }
        }
    }
    problems
}

/// A short, stable hash of a config's meaning (formatting and comments do not change it).
pub fn version_of(config: &Config) -> String {
    let canonical = serde_json::to_vec(config).expect("a Config always serializes to JSON");
    let digest = Sha256::digest(&canonical);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
