//! `Image`: a local image tag, built from a context or pulled.
//!
//! Builds are how berth runs software without a registry: the context is
//! packed into an in-memory tar and sent to the engine's build API. The
//! context's content hash is recorded, so an edit to any file in it triggers a
//! rebuild and, through the spec hash, recreates the Containers that run it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{FieldErrors, FieldPath};
use super::{CommonStatus, Kind, Spec};

/// Desired state of an Image. Exactly one of `build` and `pull`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpec {
    /// Local tag to produce. Default `berth.local/<namespace>/<name>:latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Build the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ImageBuild>,
    /// Pull the image from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<ImagePull>,
}

/// How to build an image: a context directory, an inline Dockerfile with
/// inline files, or both (inline entries override the directory's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageBuild {
    /// Context directory, relative to the manifest file's directory (or absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Dockerfile path inside the context. Default `Dockerfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Dockerfile text, instead of a file in the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Extra context files: relative path → content.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Build arguments (`ARG`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Build stage to stop at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Where to pull an image from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagePull {
    /// Image reference, e.g. `docker.io/library/redis:7`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `IfNotPresent` (default) or `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PullPolicy>,
}

/// When to pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Only when the engine lacks the image.
    IfNotPresent,
    /// On every reconcile of the Image (to follow a moving tag).
    Always,
}

/// Observed state of an Image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Engine image id of the current tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    /// The tag produced.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// SHA-256 of the build context the image was built from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_hash: String,
}

/// Rejects absolute and `..` paths, which would escape the build context.
fn check_context_relative(errors: &mut FieldErrors, at: &FieldPath, path: &str, what: &str) {
    let escapes = path.starts_with('/') || path.split('/').any(|part| part == "..");
    if path.is_empty() || escapes {
        errors.push(at, format!("{what} `{path}` must be a relative path inside the build context, without `..`"));
    }
}

impl Spec for ImageSpec {
    const KIND: Kind = Kind::Image;
    type Status = ImageStatus;

    fn validate(&self, spec: &FieldPath, errors: &mut FieldErrors) {
        errors.exactly_one(spec, &[("build", self.build.is_some()), ("pull", self.pull.is_some())]);
        if let Some(tag) = &self.tag {
            if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c.is_ascii_uppercase()) {
                errors.push(
                    &spec.key("tag"),
                    format!("tag `{tag}` must be lowercase with no spaces, e.g. berth.local/web:1"),
                );
            }
        }
        if let Some(build) = &self.build {
            let at = spec.key("build");
            if build.context.is_none() && build.dockerfile_inline.is_none() {
                errors.push(
                    &at,
                    "a build needs `context` (a directory) or `dockerfileInline` (Dockerfile text), or both",
                );
            }
            if build.dockerfile.is_some() && build.dockerfile_inline.is_some() {
                errors.push(&at.key("dockerfile"), "only one of `dockerfile` and `dockerfileInline` may be set");
            }
            if let Some(dockerfile) = &build.dockerfile {
                check_context_relative(errors, &at.key("dockerfile"), dockerfile, "dockerfile");
            }
            for name in build.files.keys() {
                check_context_relative(errors, &at.key("files").key(name), name, "file");
            }
            if let Some(context) = build.context.as_deref().filter(|c| c.trim().is_empty()) {
                errors.push(
                    &at.key("context"),
                    format!("context `{context}` must not be blank; use `.` for the manifest's directory"),
                );
            }
        }
        if let Some(pull) = &self.pull {
            if pull.reference.trim().is_empty() || pull.reference.contains(char::is_whitespace) {
                errors.push(
                    &spec.key("pull").key("ref"),
                    format!("image reference `{}` must be non-empty with no spaces", pull.reference),
                );
            }
        }
    }

    fn status_common(status: &Self::Status) -> &CommonStatus {
        &status.common
    }
}
