//! A semantic problem found on a parsed `Config`, placed by path until it meets a source map.

use crate::diagnostic::{Diagnostic, split_hint};
use crate::path::Path;
use crate::source_map::SourceMap;

use super::http_syntax::Advice;

/// One problem, at the value `path` points to.
#[derive(Debug)]
pub(crate) struct Finding {
    pub(crate) path: Path,
    message: String,
    hint: Option<String>,
    /// Another place the message refers to ("first defined" at …).
    related: Option<(&'static str, Path)>,
}

impl Finding {
    pub(super) fn new(path: Path, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
            hint: None,
            related: None,
        }
    }

    /// `subject: problem` from a syntax check, with its advice as the hint.
    pub(super) fn advice(path: Path, subject: &str, advice: Advice) -> Self {
        Self::new(path, format!("{subject}: {}", advice.problem)).hint(advice.hint)
    }

    /// `subject: problem` from a parser's error text (address.rs), its advice split off.
    pub(super) fn parse_error(path: Path, subject: &str, error: &str) -> Self {
        let (problem, hint) = split_hint(error);
        Self {
            hint,
            ..Self::new(path, format!("{subject}: {problem}"))
        }
    }

    pub(super) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(super) fn related(mut self, label: &'static str, path: Path) -> Self {
        self.related = Some((label, path));
        self
    }

    /// Placed in the file: the position of the value, other places by line.
    pub(crate) fn located(self, file: &str, map: &SourceMap) -> Diagnostic {
        let mut message = self.message;
        if let Some((label, path)) = &self.related
            && let Some(at) = map.find(path)
        {
            message.push_str(&format!(" ({label} at line {})", at.line));
        }
        Diagnostic::at(file, map.value(&self.path), message, self.hint)
    }

    /// Without a file (a config built in code): the path leads the message instead.
    pub(crate) fn unlocated(self) -> Diagnostic {
        let mut message = format!("{}: {}", self.path, self.message);
        if let Some((label, path)) = &self.related {
            message.push_str(&format!(" ({label} at {path})"));
        }
        Diagnostic {
            file: String::new(),
            line: 0,
            column: 0,
            message,
            hint: self.hint,
        }
    }
}
