//! A positioned view of YAML documents: where every value starts.
//!
//! serde_yaml reports the position of syntax and type errors, but validation
//! runs after deserialization, on typed values that no longer know where they
//! came from. This module parses the same text with yaml-rust2's event
//! parser into a light tree of positions, so a validation error at
//! `spec.ports[0].hostPort` can be reported at its `line:column`. It also
//! tells where each document of a multi-document file starts, which is how
//! the loader hands serde_yaml one document at a time.
//!
//! The tree is built iteratively with an explicit stack and a depth limit,
//! and aliases are not expanded, so no input can overflow the stack or blow
//! up memory. The parse also counts what the text would expand to: every
//! alias counts the size of what it names, so a "billion laughs" (a value
//! anchored once and aliased thousands of times) is refused here, at the
//! alias that crosses the expanded-size limit ([`limits`]), before serde_yaml (which does
//! expand aliases) ever sees it. Documents per file and the length of one
//! scalar are bounded too.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

use crate::api::validation::{FieldPath, Segment};

use super::limits::{self, Limits};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl From<Marker> for Position {
    fn from(mark: Marker) -> Self {
        Position { line: mark.line().max(1), column: mark.col() + 1 }
    }
}

/// A YAML value and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub position: Position,
    /// The value.
    pub value: NodeValue,
}

/// The shape of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    /// A scalar, as written (before type resolution).
    Scalar(String),
    /// A sequence.
    Sequence(Vec<Node>),
    /// A mapping; keys that are not scalars are kept as empty strings.
    Mapping(Vec<(String, Node)>),
    /// An alias (`*name`), not expanded.
    Alias,
}

impl Node {
    /// The value under `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Mapping(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar(text) => Some(text),
            _ => None,
        }
    }

    /// Whether this is an empty document (`~`, `null` or nothing).
    pub fn is_null(&self) -> bool {
        matches!(self.as_str(), Some("" | "~" | "null" | "Null" | "NULL"))
    }

    /// A word for the node's shape, for error messages.
    pub fn shape(&self) -> &'static str {
        match &self.value {
            NodeValue::Scalar(_) => "a scalar",
            NodeValue::Sequence(_) => "a sequence",
            NodeValue::Mapping(_) => "a mapping",
            NodeValue::Alias => "an alias",
        }
    }

    /// The position of the value at `path`, or of its closest existing
    /// ancestor when the value is missing (e.g. a required field).
    pub fn position_of(&self, path: &FieldPath) -> Position {
        let mut node = self;
        for segment in &path.0 {
            let next = match (segment, &node.value) {
                (Segment::Key(key), NodeValue::Mapping(_)) => node.get(key),
                (Segment::Index(i), NodeValue::Sequence(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(child) => node = child,
                None => break,
            }
        }
        node.position
    }
}

/// One document of a stream.
#[derive(Clone, Debug)]
pub struct Document {
    /// Line where the document starts (its `---`, or its first token).
    pub start_line: usize,
    /// The document's root value.
    pub root: Node,
}

/// A syntax error, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser gave up.
    pub position: Position,
    /// What it found wrong.
    pub message: String,
    /// The text is well-formed but over one of the limits above.
    pub limit: bool,
}

impl SyntaxError {
    /// Well-formed text over one of the limits.
    fn limit(position: Position, message: String) -> Self {
        SyntaxError { position, message, limit: true }
    }
}

/// Partially built collection on the stack.
enum Open {
    Sequence(Position, Vec<Node>),
    /// Entries so far, and the key waiting for its value.
    Mapping(Position, Vec<(String, Node)>, Option<String>),
}

/// What a text expands to, counted as it is parsed.
struct Expansion {
    /// The most it may.
    limit: u64,
    /// Bytes so far, aliases expanded.
    total: u64,
    /// Expanded size of each anchored value, by anchor id.
    anchored: std::collections::HashMap<usize, u64>,
    /// For each open collection: its anchor id and `total` when it opened.
    open: Vec<(usize, u64)>,
}

impl Expansion {
    /// Counts `bytes` more at `position`; an error past the limit.
    fn add(&mut self, bytes: u64, position: Position) -> Result<(), SyntaxError> {
        self.total = self.total.saturating_add(bytes);
        if self.total <= self.limit {
            return Ok(());
        }
        Err(SyntaxError::limit(
            position,
            format!(
                "with its aliases expanded the text is over {} bytes (the expanded-size limit, \
                 --max-manifest-expanded); an alias repeats what its anchor names, so write the value out or split \
                 the file",
                self.limit
            ),
        ))
    }
}

/// Parses every document of `text`.
pub fn parse(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut documents = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut start_line = 1;
    let Limits { expanded_bytes, documents: max_documents, depth: max_depth, value_bytes } = limits::current();
    let mut expansion = Expansion { limit: expanded_bytes, total: 0, anchored: Default::default(), open: Vec::new() };
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            let position = (*e.marker()).into();
            match e.info() {
                // The scanner's own guard, hit first by flow collections.
                "recursion limit exceeded" => SyntaxError::limit(
                    position,
                    format!("nesting deeper than {max_depth} levels (--max-manifest-depth); manifests never need that"),
                ),
                info => SyntaxError { position, message: info.to_string(), limit: false },
            }
        })?;
        let position = Position::from(mark);
        let completed = match event {
            Event::StreamEnd => return Ok(documents),
            Event::DocumentStart => {
                start_line = position.line;
                if documents.len() >= max_documents {
                    return Err(SyntaxError::limit(
                        position,
                        format!(
                            "more than {max_documents} documents (the per-file limit, --max-manifest-documents); \
                             split them into several files"
                        ),
                    ));
                }
                None
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => None,
            Event::Alias(anchor) => {
                expansion.add(expansion.anchored.get(&anchor).copied().unwrap_or(1), position)?;
                Some(Node { position, value: NodeValue::Alias })
            }
            Event::Scalar(text, _, anchor, _) => {
                if text.len() > value_bytes {
                    return Err(SyntaxError::limit(
                        position,
                        format!(
                            "a {}-byte value, over the {value_bytes}-byte limit of one value \
                             (--max-manifest-value); keep large content in files (a build context, a secretFile)",
                            text.len(),
                        ),
                    ));
                }
                let bytes = text.len() as u64 + 1;
                expansion.add(bytes, position)?;
                if anchor != 0 {
                    expansion.anchored.insert(anchor, bytes);
                }
                Some(Node { position, value: NodeValue::Scalar(text) })
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= max_depth {
                    return Err(SyntaxError::limit(
                        position,
                        format!(
                            "nesting deeper than {max_depth} levels (--max-manifest-depth); manifests never need that"
                        ),
                    ));
                }
                let anchor = match event {
                    Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => anchor,
                    _ => 0,
                };
                expansion.add(1, position)?;
                expansion.open.push((anchor, expansion.total - 1));
                stack.push(match event {
                    Event::SequenceStart(..) => Open::Sequence(position, Vec::new()),
                    _ => Open::Mapping(position, Vec::new(), None),
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match (stack.pop(), expansion.open.pop()) {
                (open, Some((anchor, opened))) if anchor != 0 => {
                    expansion.anchored.insert(anchor, expansion.total - opened);
                    close(open)
                }
                (open, _) => close(open),
            },
        };
        let Some(node) = completed else { continue };
        match stack.last_mut() {
            None => documents.push(Document { start_line, root: node }),
            Some(Open::Sequence(_, items)) => items.push(node),
            Some(Open::Mapping(start, entries, pending)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    // The parser marks a block mapping after its first key;
                    // the first key is where a reader sees it start.
                    if entries.is_empty() {
                        *start = node.position;
                    }
                    *pending = Some(node.as_str().unwrap_or_default().to_string());
                }
            },
        }
    }
}

/// The node a finished collection makes.
fn close(open: Option<Open>) -> Option<Node> {
    match open? {
        Open::Sequence(position, items) => Some(Node { position, value: NodeValue::Sequence(items) }),
        Open::Mapping(position, entries, _) => Some(Node { position, value: NodeValue::Mapping(entries) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_values() {
        let text = "a: 1\nspec:\n  ports:\n    - containerPort: 80\n      hostPort: auto\n";
        let docs = parse(text).unwrap();
        let root = &docs[0].root;
        let path = FieldPath::root().key("spec").key("ports").index(0).key("hostPort");
        assert_eq!(root.position_of(&path), Position { line: 5, column: 17 });
        let missing = FieldPath::root().key("spec").key("ports").index(0).key("name");
        assert_eq!(root.position_of(&missing), Position { line: 4, column: 7 });
    }

    #[test]
    fn documents_know_their_start_line() {
        let docs = parse("# lead\na: 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs.iter().map(|d| d.start_line).collect::<Vec<_>>(), vec![2, 3, 5]);
        assert!(docs[2].root.is_null());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1, "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("nesting") || err.message.contains("recursion limit"), "{err:?}");
    }
}
