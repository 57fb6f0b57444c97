//! Object metadata, conditions and label selectors shared by every kind.
//!
//! These mirror Kubernetes' `ObjectMeta` and `Condition` closely so that
//! people who know `kubectl` read berth objects without a manual, and so that
//! the generated CRDs look like any other CRD. Fields marked *server-set* are
//! ignored when they appear in a manifest: the store owns them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The namespace objects land in when their manifest names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Identity and bookkeeping of an object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Name of the object, unique per kind and namespace. A DNS-1123 label:
    /// lowercase letters, digits and `-`, starting and ending with a letter or
    /// digit, at most 63 characters.
    pub name: String,
    /// Namespace of the object (a DNS-1123 label). Defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels used by selectors (DnsRecord, Route) and shown by `berth get -l`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations; berth does not interpret them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Server-set: unique id assigned when the object is first stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Server-set: bumped each time `spec` changes, and only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Server-set: store-wide version of the last write to this object. Send it
    /// back on an update to make the write conditional (compare-and-swap).
    #[serde(default, with = "super::wire_version::optional", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub resource_version: Option<u64>,
    /// Server-set: when the object was first stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// Server-set: when deletion was requested. The object stays until its
    /// reconciler has torn down what it created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<DateTime<Utc>>,
    /// Server-set: teardown steps that must finish before the object is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Server-set: where the object came from; only that source may change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Server-set: which API client (field manager) set which fields, as
    /// Kubernetes keeps it; server-side apply reports conflicts from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<super::managed_fields::ManagedFieldsEntry>,
}

impl ObjectMeta {
    /// The namespace, with the default applied.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// Drops every server-set field, as the store does with user input.
    pub fn clear_server_fields(&mut self) {
        self.uid = None;
        self.generation = None;
        self.resource_version = None;
        self.creation_timestamp = None;
        self.deletion_timestamp = None;
        self.finalizers.clear();
        self.source = None;
        self.managed_fields.clear();
    }
}

/// The origin of an object. A source owns the objects it wrote: a file
/// removed from a watched directory deletes exactly the objects it declared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// `file`, `git` or `api`.
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// For `file`: the manifest's path. For `git`: the path inside the
    /// repository. For `api`: the name of the applied set, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For `git`: the repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// For `git`: the branch followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// For `git`: the commit the object was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Source {
    /// An object read from a manifest file.
    pub fn file(path: impl Into<String>) -> Self {
        Source { kind: SourceKind::File, path: Some(path.into()), repo: None, branch: None, commit: None }
    }

    /// An object written through the REST API.
    pub fn api() -> Self {
        Source { kind: SourceKind::Api, path: None, repo: None, branch: None, commit: None }
    }

    /// A named set of objects applied through the REST API as a whole
    /// (`berth apply --source NAME`): each apply replaces the set.
    pub fn api_set(name: &str) -> Self {
        Source { path: Some(name.to_string()), ..Source::api() }
    }

    /// Stable identity of the source, used as its key in the store. Git
    /// sources are identified without the commit: a new commit is the same
    /// source at a later state.
    pub fn id(&self) -> String {
        let path = self.path.as_deref().unwrap_or("");
        match self.kind {
            SourceKind::File => format!("file:{path}"),
            SourceKind::Git => {
                format!("git:{}#{}:{path}", self.repo.as_deref().unwrap_or(""), self.branch.as_deref().unwrap_or(""))
            }
            SourceKind::Api if path.is_empty() => "api".to_string(),
            SourceKind::Api => format!("api:{path}"),
        }
    }
}

/// The id, and for git the commit (`git:<repo>#<branch>:<path>@<12 digits>`),
/// so that events say which commit wrote what.
impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())?;
        match (&self.kind, &self.commit) {
            (SourceKind::Git, Some(commit)) => write!(f, "@{}", commit.get(..12).unwrap_or(commit)),
            _ => Ok(()),
        }
    }
}

/// Kind of [`Source`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A manifest file in a watched directory.
    File,
    /// A manifest in a followed git repository.
    Git,
    /// The REST API (`berth apply`).
    Api,
}

/// Observed condition of an object, as in Kubernetes. Every kind has `Ready`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// One CamelCase word saying why, e.g. `WaitingForImage`.
    #[serde(default)]
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: DateTime<Utc>,
    /// The `generation` this condition was computed from.
    #[serde(default)]
    pub observed_generation: u64,
}

/// Truth value of a [`Condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// Conditions and the generation they describe: the part of status every
/// kind shares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `generation` the controller last acted on.
    #[serde(default)]
    pub observed_generation: u64,
    /// Current conditions, at most one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl CommonStatus {
    /// The condition of the given type, if set.
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Sets a condition, keeping `lastTransitionTime` when the status did not change.
    pub fn set_condition(&mut self, mut condition: Condition) {
        match self.conditions.iter_mut().find(|c| c.kind == condition.kind) {
            Some(existing) => {
                if existing.status == condition.status {
                    condition.last_transition_time = existing.last_transition_time;
                }
                *existing = condition;
            }
            None => self.conditions.push(condition),
        }
    }
}

/// Selects Containers by their `metadata.labels`. Every listed label must
/// match; an empty selector is rejected because it would select everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels a Container must carry, all of them, with these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}
