//! Positions of config values in the YAML text, looked up by [`Path`].
//!
//! Semantic checks run on the parsed, plain-data `Config`, which carries no positions. This map
//! is built from the parser's events (each with its source span) in one pass over the text, so a
//! problem found at `listeners[0].routes[2].cluster` can be reported at its line and column. It
//! also finds what serde never sees: duplicate keys and extra documents.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScanError, Span};

use crate::path::{Path, Segment};

/// A 1-based line and column (counted in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub(crate) line: u32,
    pub(crate) column: u32,
}

impl Position {
    /// The start of the file, for problems that have no better place.
    pub(crate) const START: Self = Self { line: 1, column: 1 };
}

/// The text is not well-formed YAML.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) position: Position,
    pub(crate) message: String,
}

/// A key written twice in one mapping.
#[derive(Debug)]
pub(crate) struct DuplicateKey {
    /// The mapping that holds both.
    pub(crate) mapping: Path,
    pub(crate) key: String,
    pub(crate) first: Position,
    pub(crate) second: Position,
}

/// The first YAML document of a text, as a tree of positioned nodes.
#[derive(Debug)]
pub(crate) struct SourceMap {
    root: Option<Node>,
    /// Where a second document starts, if the text has more than one.
    extra_document: Option<Position>,
}

#[derive(Debug)]
struct Node {
    at: Position,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Scalar(String),
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
    /// `*name`: the map does not follow aliases; lookups below one stop here.
    Alias,
}

/// A collection whose end event has not been seen yet.
enum Open {
    Sequence(Position, Vec<Node>),
    Mapping(Position, Vec<(Node, Node)>, Option<Node>),
}

impl SourceMap {
    /// Parses `text`; fails on the first YAML syntax error.
    pub(crate) fn parse(text: &str) -> Result<Self, SyntaxError> {
        let mut open: Vec<Open> = Vec::new();
        let mut root = None;
        let mut documents = 0_u32;
        let mut extra_document = None;
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(syntax_error)?;
            let at = start_of(&span);
            if let Event::DocumentStart(..) = event {
                documents += 1;
                if documents == 2 {
                    extra_document = Some(at);
                }
                continue;
            }
            if documents > 1 {
                // Later documents are only parsed for syntax errors.
                continue;
            }
            let node = match event {
                Event::Scalar(text, ..) => Node {
                    at,
                    kind: Kind::Scalar(text.into_owned()),
                },
                Event::Alias(_) => Node {
                    at,
                    kind: Kind::Alias,
                },
                Event::SequenceStart(..) => {
                    open.push(Open::Sequence(at, Vec::new()));
                    continue;
                }
                Event::MappingStart(..) => {
                    open.push(Open::Mapping(at, Vec::new(), None));
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                    Some(Open::Sequence(at, items)) => Node {
                        at,
                        kind: Kind::Sequence(items),
                    },
                    Some(Open::Mapping(at, entries, _)) => Node {
                        at,
                        kind: Kind::Mapping(entries),
                    },
                    None => continue,
                },
                _ => continue,
            };
            match open.last_mut() {
                None => root = Some(node),
                Some(Open::Sequence(_, items)) => items.push(node),
                Some(Open::Mapping(_, entries, pending)) => match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => entries.push((key, node)),
                },
            }
        }
        Ok(Self {
            root,
            extra_document,
        })
    }

    /// True when the document holds nothing (no content, or a bare null).
    pub(crate) fn is_empty(&self) -> bool {
        match &self.root {
            None => true,
            Some(Node {
                kind: Kind::Scalar(text),
                ..
            }) => matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"),
            Some(_) => false,
        }
    }

    /// Where a second YAML document starts (`---`), if there is one.
    pub(crate) fn extra_document(&self) -> Option<Position> {
        self.extra_document
    }

    /// Where the value at `path` starts; the nearest written ancestor if it is not in the text
    /// (a default, or a value reached through an alias or merge key).
    pub(crate) fn value(&self, path: &Path) -> Position {
        let found = self.walk(path);
        found.node.map_or(Position::START, |node| node.at)
    }

    /// Where the value at `path` starts, only if it is written in the text.
    pub(crate) fn find(&self, path: &Path) -> Option<Position> {
        let found = self.walk(path);
        if found.complete {
            found.node.map(|node| node.at)
        } else {
            None
        }
    }

    /// Where the key of the field at `path` is written (for unknown fields); falls back like
    /// [`Self::value`].
    pub(crate) fn key(&self, path: &Path) -> Position {
        let found = self.walk(path);
        match (found.complete, found.key) {
            (true, Some(key)) => key.at,
            _ => found.node.map_or(Position::START, |node| node.at),
        }
    }

    /// What is written at `path`, in words (`a mapping`, `a list`, `"text"`), if it is there.
    pub(crate) fn found_at(&self, path: &Path) -> Option<String> {
        let found = self.walk(path);
        if !found.complete {
            return None;
        }
        found.node.map(|node| match &node.kind {
            Kind::Scalar(text) if text.is_empty() || text == "~" => "nothing".to_owned(),
            Kind::Scalar(text) => format!("{text:?}"),
            Kind::Sequence(_) => "a list".to_owned(),
            Kind::Mapping(_) => "a mapping".to_owned(),
            Kind::Alias => "an alias".to_owned(),
        })
    }

    /// Every key written more than once in the same mapping (merge keys `<<` excepted).
    pub(crate) fn duplicate_keys(&self) -> Vec<DuplicateKey> {
        let mut found = Vec::new();
        let mut pending: Vec<(&Node, Path)> = self.root.iter().map(|n| (n, Path::root())).collect();
        while let Some((node, path)) = pending.pop() {
            match &node.kind {
                Kind::Sequence(items) => {
                    for (i, item) in items.iter().enumerate() {
                        pending.push((item, path.index(i)));
                    }
                }
                Kind::Mapping(entries) => {
                    let mut seen: HashMap<&str, Position> = HashMap::new();
                    for (key, value) in entries {
                        let Kind::Scalar(name) = &key.kind else {
                            continue;
                        };
                        if name == "<<" {
                            continue;
                        }
                        match seen.get(name.as_str()) {
                            Some(&first) => found.push(DuplicateKey {
                                mapping: path.clone(),
                                key: name.clone(),
                                first,
                                second: key.at,
                            }),
                            None => {
                                seen.insert(name, key.at);
                                pending.push((value, path.key(name)));
                            }
                        }
                    }
                }
                Kind::Scalar(_) | Kind::Alias => {}
            }
        }
        found.sort_by_key(|d| d.second);
        found
    }

    fn walk(&self, path: &Path) -> Walk<'_> {
        let mut walk = Walk {
            node: self.root.as_ref(),
            key: None,
            complete: true,
        };
        for segment in path.segments() {
            let Some(node) = walk.node else { break };
            let next = match (&node.kind, segment) {
                (Kind::Mapping(entries), Segment::Key(name)) => entries
                    .iter()
                    .find(|(key, _)| matches!(&key.kind, Kind::Scalar(k) if k == name))
                    .map(|(key, value)| (Some(key), value)),
                (Kind::Sequence(items), Segment::Index(i)) => items.get(*i).map(|v| (None, v)),
                _ => None,
            };
            match next {
                Some((key, value)) => {
                    walk.key = key;
                    walk.node = Some(value);
                }
                None => {
                    walk.complete = false;
                    break;
                }
            }
        }
        walk
    }
}

/// The result of following a path as far as the text goes.
struct Walk<'a> {
    /// The deepest node reached.
    node: Option<&'a Node>,
    /// The key of that node, when it is a mapping value.
    key: Option<&'a Node>,
    /// Whether the whole path was found.
    complete: bool,
}

fn start_of(span: &Span) -> Position {
    Position {
        line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
        column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
    }
}

fn syntax_error(error: ScanError) -> SyntaxError {
    let marker = error.marker();
    SyntaxError {
        position: Position {
            line: u32::try_from(marker.line()).unwrap_or(u32::MAX),
            column: u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
        },
        message: error.info(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
listeners:
  - name: main
    routes:
      - name: all
        cluster: web
clusters: []
";

    fn at(line: u32, column: u32) -> Position {
        Position { line, column }
    }

    #[test]
    fn finds_values_and_keys_by_path() {
        let map = SourceMap::parse(TEXT).unwrap();
        let cluster = Path::root()
            .key("listeners")
            .index(0)
            .key("routes")
            .index(0)
            .key("cluster");
        assert_eq!(map.value(&cluster), at(5, 18));
        assert_eq!(map.key(&cluster), at(5, 9));
        assert_eq!(map.value(&Path::root().key("clusters")), at(6, 11));
    }

    #[test]
    fn missing_path_falls_back_to_nearest_written_ancestor() {
        let map = SourceMap::parse(TEXT).unwrap();
        let timeout = Path::root().key("listeners").index(0).key("idle_timeout");
        assert_eq!(map.value(&timeout), at(2, 5));
        assert_eq!(map.key(&timeout), at(2, 5));
    }

    #[test]
    fn reports_every_duplicate_key_with_both_positions() {
        let map = SourceMap::parse("a: 1\nb: 2\na: 3\nc:\n  d: 1\n  d: 2\n").unwrap();
        let dups = map.duplicate_keys();
        assert_eq!(dups.len(), 2);
        assert_eq!(
            (dups[0].key.as_str(), dups[0].first, dups[0].second),
            ("a", at(1, 1), at(3, 1))
        );
        assert_eq!(dups[1].mapping.to_string(), "c");
        assert_eq!(dups[1].second, at(6, 3));
    }

    #[test]
    fn syntax_error_has_the_parser_position() {
        let err = SourceMap::parse("listeners:\n  - name: [main\n").unwrap_err();
        assert_eq!(err.position, at(2, 11));
        assert!(err.message.contains("unclosed bracket"), "{}", err.message);
    }

    #[test]
    fn empty_and_multi_document_texts_are_recognised() {
        assert!(SourceMap::parse("").unwrap().is_empty());
        assert!(SourceMap::parse("# only a comment\n").unwrap().is_empty());
        let two = SourceMap::parse("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(two.extra_document(), Some(at(2, 1)));
    }
}
