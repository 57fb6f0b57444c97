//! Decoding the documents of one manifest file into objects.
//!
//! Each document goes through three checks, and every problem found is
//! reported with its position:
//!
//! 1. its header (`apiVersion`, `kind`) is read from the positioned tree, so
//!    an unknown kind is reported as such, with the list of known kinds,
//!    instead of as a confusing type error;
//! 2. its text alone is deserialized by serde_yaml into the kind's type,
//!    which catches syntax, type and unknown-field errors with their
//!    position (shifted from the document to the file);
//! 3. the typed object is validated, and each field error is placed at the
//!    position of its field in the tree.
//!
//! Documents are independent: one bad document does not hide the problems of
//! the next.

use std::path::Path;

use crate::api::{
    defaults, AnyObject, ContainerSpec, DnsRecordSpec, FieldPath, ImageSpec, IntoAny, Kind, NetworkSpec, Object,
    ObjectKey, RouteSpec, Spec, VolumeSpec, API_VERSION,
};

use super::error::ManifestError;
use super::yaml_tree::{self, Node, NodeValue, Position};

/// An object read from a manifest, with where it came from.
#[derive(Clone, Debug)]
pub struct LoadedObject {
    /// The object, validated and defaulted.
    pub object: AnyObject,
    /// The file as the user named it (`<api>` for request bodies).
    pub file: String,
    /// 1-based index of its document in the file.
    pub document: usize,
    /// Positions of every value of the document, for later checks.
    pub tree: Node,
}

impl LoadedObject {
    /// Where the object is declared: the position of its name.
    pub fn position(&self) -> Position {
        self.tree.position_of(&crate::api::FieldPath::root().key("metadata").key("name"))
    }
}

/// Manifest files larger than this are refused rather than read.
pub const MAX_FILE_BYTES: usize = 8 << 20;

/// Decodes `text`, a file named `file` in directory `base_dir` (where
/// relative build contexts are resolved; `None` for request bodies). Returns
/// the objects and the problems: objects are only meaningful when there are
/// no problems.
pub fn decode_text(text: &str, file: &str, base_dir: Option<&Path>) -> (Vec<LoadedObject>, Vec<ManifestError>) {
    decode_text_in(text, file, base_dir, None)
}

/// Decodes `text`, placing objects that name no namespace in `namespace`
/// (the one in a request's path) instead of `default`.
pub fn decode_text_in(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
    namespace: Option<&str>,
) -> (Vec<LoadedObject>, Vec<ManifestError>) {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    if text.len() > MAX_FILE_BYTES {
        let message = format!("file is {} bytes, over the {MAX_FILE_BYTES}-byte limit; split it", text.len());
        errors.push(ManifestError::at(file, Position { line: 1, column: 1 }, message));
        return (objects, errors);
    }
    let documents = match yaml_tree::parse(text) {
        Ok(documents) => documents,
        Err(syntax) => {
            let message = match syntax.limit {
                true => syntax.message,
                false => format!("YAML syntax error: {}", syntax.message),
            };
            errors.push(ManifestError::at(file, syntax.position, message));
            return (objects, errors);
        }
    };
    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let line_offset = |line: usize| line_starts.get(line.saturating_sub(1)).copied().unwrap_or(text.len());
    for (index, document) in documents.iter().enumerate() {
        let end = documents.get(index + 1).map_or(text.len(), |next| line_offset(next.start_line));
        let start = line_offset(document.start_line).min(end);
        let context = DocumentContext {
            file,
            number: index + 1,
            start_line: document.start_line,
            root: &document.root,
            namespace,
        };
        match context.decode(&text[start..end], base_dir) {
            Ok(Some(object)) => objects.push(LoadedObject {
                object,
                file: file.to_string(),
                document: index + 1,
                tree: document.root.clone(),
            }),
            Ok(None) => {}
            Err(mut found) => errors.append(&mut found),
        }
    }
    errors.sort_by_key(|e| e.position);
    (objects, errors)
}

/// Decodes a file read from disk.
pub fn decode_file(path: &Path) -> (Vec<LoadedObject>, Vec<ManifestError>) {
    match std::fs::read(path) {
        Ok(bytes) => decode_bytes(path, bytes),
        Err(e) => {
            let message = format!("cannot read: {e}");
            (Vec::new(), vec![ManifestError::at(&path.display().to_string(), Position { line: 1, column: 1 }, message)])
        }
    }
}

/// Decodes the content of the file at `path`, already read.
pub fn decode_bytes(path: &Path, bytes: Vec<u8>) -> (Vec<LoadedObject>, Vec<ManifestError>) {
    let file = path.display().to_string();
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let message = "file is not valid UTF-8; save it as UTF-8";
            return (Vec::new(), vec![ManifestError::at(&file, Position { line, column }, message)]);
        }
    };
    decode_text(&text, &file, path.parent())
}

/// One document being decoded.
struct DocumentContext<'a> {
    file: &'a str,
    number: usize,
    start_line: usize,
    root: &'a Node,
    namespace: Option<&'a str>,
}

impl DocumentContext<'_> {
    fn error(
        &self,
        object: Option<&ObjectKey>,
        position: Position,
        field: Option<String>,
        message: String,
    ) -> ManifestError {
        ManifestError {
            file: self.file.to_string(),
            position,
            document: Some(self.number),
            object: object.cloned(),
            field,
            message,
        }
    }

    /// The object in `text` (this document's lines), `None` for an empty document.
    fn decode(&self, text: &str, base_dir: Option<&Path>) -> Result<Option<AnyObject>, Vec<ManifestError>> {
        if self.root.is_null() {
            return Ok(None);
        }
        let (kind, key) = self.header()?;
        let mut object = decode_kind(kind, text).map_err(|e| {
            let mut errors = vec![self.serde_error(key.as_ref(), &e)];
            errors.extend(self.name_errors(key.as_ref()));
            errors
        })?;
        // resourceVersion stays: an API write uses it as its precondition
        // (directory sources ignore it); every other server field goes.
        let resource_version = object.metadata().resource_version;
        object.metadata_mut().clear_server_fields();
        object.metadata_mut().resource_version = resource_version;
        object.clear_status();
        if object.metadata().namespace.is_none() {
            object.metadata_mut().namespace = self.namespace.map(str::to_string);
        }
        let key = Some(object.key());
        let mut errors: Vec<ManifestError> = object
            .validate()
            .0
            .into_iter()
            .map(|e| self.error(key.as_ref(), self.root.position_of(&e.path), Some(e.path.to_string()), e.message))
            .collect();
        if let Some(policy) = super::policy::current() {
            errors.extend(policy.check(&object, base_dir).0.into_iter().map(|e| {
                self.error(key.as_ref(), self.root.position_of(&e.path), Some(e.path.to_string()), e.message)
            }));
        }
        if let AnyObject::Image(image) = &mut object {
            if let Err(e) = super::context::resolve_build_context(image, base_dir) {
                errors.push(self.error(
                    key.as_ref(),
                    self.root.position_of(&e.path),
                    Some(e.path.to_string()),
                    e.message,
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        defaults::apply(&mut object);
        Ok(Some(object))
    }

    /// Checks `apiVersion` and `kind`; returns the kind and, when the name
    /// can be read, the object's key (for messages).
    fn header(&self) -> Result<(Kind, Option<ObjectKey>), Vec<ManifestError>> {
        let root = self.root;
        if !matches!(root.value, NodeValue::Mapping(_)) {
            let message = format!(
                "document is {}; each document must be a mapping with apiVersion, kind, metadata and spec",
                root.shape()
            );
            return Err(vec![self.error(None, root.position, None, message)]);
        }
        let mut errors = Vec::new();
        match root.get("apiVersion") {
            None => errors.push(self.error(
                None,
                root.position,
                None,
                format!("missing `apiVersion`; set it to {API_VERSION}"),
            )),
            Some(node) if node.as_str() != Some(API_VERSION) => {
                let found = node.as_str().map_or_else(|| node.shape().to_string(), |s| format!("`{s}`"));
                let message = format!("unknown apiVersion {found}; berth knows {API_VERSION}");
                errors.push(self.error(None, node.position, Some("apiVersion".into()), message));
            }
            Some(_) => {}
        }
        let kind = match root.get("kind") {
            None => {
                let message = format!("missing `kind`; use one of {}", Kind::known_list());
                errors.push(self.error(None, root.position, None, message));
                None
            }
            Some(node) => match node.as_str().filter(|k| Kind::ALL.iter().any(|known| known.as_str() == *k)) {
                Some(kind) => kind.parse::<Kind>().ok(),
                None => {
                    let found = node.as_str().map_or_else(|| node.shape().to_string(), |s| format!("`{s}`"));
                    let hint = node
                        .as_str()
                        .and_then(|s| s.parse::<Kind>().ok())
                        .map_or(String::new(), |k| format!(" (did you mean `{k}`?)"));
                    let message = format!("unknown kind {found}{hint}; known kinds are {}", Kind::known_list());
                    errors.push(self.error(None, node.position, Some("kind".into()), message));
                    None
                }
            },
        };
        match (kind, errors.is_empty()) {
            (Some(kind), true) => {
                let metadata = root.get("metadata");
                let name = metadata.and_then(|m| m.get("name")).and_then(Node::as_str);
                let namespace = metadata.and_then(|m| m.get("namespace")).and_then(Node::as_str);
                let key =
                    name.map(|n| ObjectKey::new(kind, namespace.unwrap_or(crate::api::meta::DEFAULT_NAMESPACE), n));
                Ok((kind, key))
            }
            _ => Err(errors),
        }
    }

    /// Problems with `metadata.name` and `metadata.namespace`, read from the
    /// tree: reported even when a type error elsewhere stops deserialization.
    fn name_errors(&self, key: Option<&ObjectKey>) -> Vec<ManifestError> {
        let mut errors = Vec::new();
        let metadata = FieldPath::root().key("metadata");
        for field in ["name", "namespace"] {
            let path = metadata.key(field);
            let node = self.root.get("metadata").and_then(|m| m.get(field));
            if let Some(value) = node.and_then(Node::as_str) {
                if let Err(why) = crate::api::validation::check_dns_label(value) {
                    let message = format!("{field} `{value}` is invalid: {why}");
                    errors.push(self.error(key, self.root.position_of(&path), Some(path.to_string()), message));
                }
            }
        }
        errors
    }

    /// A serde_yaml error, placed in the file and worded for people.
    fn serde_error(&self, key: Option<&ObjectKey>, error: &serde_yaml::Error) -> ManifestError {
        let position = match error.location() {
            Some(location) => Position { line: location.line() + self.start_line - 1, column: location.column() },
            None => self.root.position,
        };
        let (field, message) = split_serde_message(&error.to_string());
        self.error(key, position, field, message)
    }
}

/// Deserializes a document of the given kind.
fn decode_kind(kind: Kind, text: &str) -> Result<AnyObject, serde_yaml::Error> {
    fn typed<S: Spec>(text: &str) -> Result<AnyObject, serde_yaml::Error>
    where
        Object<S>: IntoAny,
    {
        serde_yaml::from_str::<Object<S>>(text).map(IntoAny::into_any)
    }
    match kind {
        Kind::Container => typed::<ContainerSpec>(text),
        Kind::Volume => typed::<VolumeSpec>(text),
        Kind::Network => typed::<NetworkSpec>(text),
        Kind::Image => typed::<ImageSpec>(text),
        Kind::DnsRecord => typed::<DnsRecordSpec>(text),
        Kind::Route => typed::<RouteSpec>(text),
    }
}

/// Splits serde_yaml's `path: message at line L column C` into the field
/// path and a message without the position (which is reported separately)
/// and without Rust type names.
fn split_serde_message(text: &str) -> (Option<String>, String) {
    let text = match text.rfind(" at line ") {
        Some(at) if text[at..].contains(" column ") => &text[..at],
        _ => text,
    };
    let is_path = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c));
    let (field, message) = match text.split_once(": ") {
        Some((path, rest)) if is_path(path) => (Some(path.to_string()), rest),
        _ => (None, text),
    };
    (field, humanize_types(message))
}

/// Replaces Rust type names in serde's messages with YAML words.
fn humanize_types(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, yaml) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected a borrowed string", "expected a string"),
        ("expected a map", "expected a mapping"),
    ] {
        out = out.replace(rust, yaml);
    }
    if let Some(at) = out.find("expected struct ") {
        out.replace_range(at.., "expected a mapping");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_position_and_rust_types() {
        let (field, message) =
            split_serde_message("spec.replicas: invalid type: string \"x\", expected i64 at line 7 column 13");
        assert_eq!(field.as_deref(), Some("spec.replicas"));
        assert_eq!(message, "invalid type: string \"x\", expected an integer");
        let (field, message) = split_serde_message("invalid type: sequence, expected struct ObjectMeta");
        assert_eq!(field, None);
        assert_eq!(message, "invalid type: sequence, expected a mapping");
    }
}
