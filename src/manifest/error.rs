//! Errors of manifest loading: every one says where (`file:line:column`),
//! which object when known, what is wrong and what is accepted instead.

use std::fmt;

use crate::api::ObjectKey;

use super::yaml_tree::Position;

/// One problem in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The file as the user named it, or `<api>` / `<stdin>` for text
    /// without a file.
    pub file: String,
    /// Where in the file.
    pub position: Position,
    /// 1-based index of the YAML document in the file, when the problem is
    /// inside one.
    pub document: Option<usize>,
    /// The object, when its kind and name could be read.
    pub object: Option<ObjectKey>,
    /// The field, e.g. `spec.ports[0].hostPort`, when the problem is in one.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ManifestError {
    /// A problem at a position of a file, outside any object.
    pub fn at(file: &str, position: Position, message: impl Into<String>) -> Self {
        ManifestError {
            file: file.to_string(),
            position,
            document: None,
            object: None,
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.position.line, self.position.column)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        } else if let Some(document) = self.document {
            write!(f, "document {document}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}

/// Every problem found in a set of manifests, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}
