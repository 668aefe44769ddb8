//! Problems found in a config, each pinned to `FILE:LINE:COL` with an optional hint.

use std::fmt;

use crate::source_map::Position;

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

impl Diagnostic {
    pub(crate) fn at(
        file: &str,
        position: Position,
        message: String,
        hint: Option<String>,
    ) -> Self {
        Self {
            file: file.to_owned(),
            line: position.line,
            column: position.column,
            message,
            hint,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            // A config built in code: the message names the path.
            (true, _) => write!(f, "{}", self.message)?,
            // A problem with the file as a whole (cannot be read).
            (false, 0) => write!(f, "{}: {}", self.file, self.message)?,
            (false, _) => write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )?,
        }
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

/// Splits a parser's error text into the problem and its advice, so the advice can go on the
/// `hint:` line: `… has no unit (write e.g. "5s")` and `invalid … "x": expected IP:port, …`.
pub(crate) fn split_hint(text: &str) -> (String, Option<String>) {
    if let Some(open) = trailing_parenthesis(text) {
        let message = text[..open].trim_end();
        let hint = &text[open + 1..text.len() - 1];
        if !message.is_empty() && !hint.is_empty() {
            return (message.to_owned(), Some(hint.to_owned()));
        }
    }
    if let Some((message, advice)) = text.split_once(": expected ") {
        return (message.to_owned(), Some(format!("expected {advice}")));
    }
    (text.to_owned(), None)
}

/// The byte index of the `(` that opens a parenthesis closing the text, if there is one.
fn trailing_parenthesis(text: &str) -> Option<usize> {
    if !text.ends_with(')') {
        return None;
    }
    let mut depth = 0_usize;
    for (i, c) in text.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return text[..i].ends_with(' ').then_some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_the_hint_on_its_own_line() {
        let d = Diagnostic::at(
            "config.yaml",
            Position {
                line: 14,
                column: 18,
            },
            "route \"api\" points to cluster \"backend\", which is not defined".into(),
            Some("defined clusters: catalog, checkout".into()),
        );
        assert_eq!(
            d.to_string(),
            "config.yaml:14:18: route \"api\" points to cluster \"backend\", which is not defined\n  hint: defined clusters: catalog, checkout"
        );
    }

    #[test]
    fn splits_trailing_advice_into_a_hint() {
        assert_eq!(
            split_hint("duration \"5\" has no unit (write e.g. \"5s\" or \"5ms\")"),
            (
                "duration \"5\" has no unit".to_owned(),
                Some("write e.g. \"5s\" or \"5ms\"".to_owned())
            )
        );
        assert_eq!(
            split_hint("invalid listen address \"x\": expected IP:port, e.g. \"127.0.0.1:8080\""),
            (
                "invalid listen address \"x\"".to_owned(),
                Some("expected IP:port, e.g. \"127.0.0.1:8080\"".to_owned())
            )
        );
        assert_eq!(split_hint("plain"), ("plain".to_owned(), None));
    }

    #[test]
    fn position_is_left_out_when_there_is_none() {
        let unreadable = Diagnostic {
            file: "w.yaml".into(),
            line: 0,
            column: 0,
            message: "cannot read config file: No such file or directory".into(),
            hint: None,
        };
        assert_eq!(
            unreadable.to_string(),
            "w.yaml: cannot read config file: No such file or directory"
        );
        let in_code = Diagnostic {
            file: String::new(),
            ..unreadable
        };
        assert!(in_code.to_string().starts_with("cannot read"));
    }
}
