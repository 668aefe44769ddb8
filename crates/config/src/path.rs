//! Where a value sits in the config tree: `listeners[0].routes[2].cluster`.
//!
//! Deserialization, the source map and validation all speak in these paths, so a problem found
//! on the parsed `Config` can be pinned back to a line and column of the YAML text.

use std::fmt;

/// A path from the top of the config to one value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(Vec<Segment>);

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A mapping key (a struct field).
    Key(String),
    /// A sequence position, 0-based.
    Index(usize),
}

impl Path {
    /// The whole document.
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// The value under `key` in this mapping.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Self(segments)
    }

    /// The `index`th item of this sequence.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// `in listeners[0]`, or `at the top level` for the root: for "unknown field … {where}".
    pub(crate) fn describe(&self) -> String {
        if self.0.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in {self}")
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_an_accessor_expression() {
        let path = Path::root()
            .key("listeners")
            .index(0)
            .key("routes")
            .index(2)
            .key("cluster");
        assert_eq!(path.to_string(), "listeners[0].routes[2].cluster");
    }

    #[test]
    fn root_is_described_as_the_top_level() {
        assert_eq!(Path::root().describe(), "at the top level");
        assert_eq!(Path::root().key("admin").describe(), "in admin");
    }
}
