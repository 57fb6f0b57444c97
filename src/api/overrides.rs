//! Overrides: what a person sets on a running Container from the dashboard
//! or the CLI, outside its manifest, and that its source must not undo.
//!
//! They are annotations under berth's reserved prefix, so they show in
//! `berth get -o yaml` and to kubectl like any annotation, and they are
//! server-set: the store carries them over every write of the object's
//! source (a file, a git commit, an apply), and a manifest cannot set them
//! (they are ignored there, like `uid` and `resourceVersion`). Only the
//! endpoints that own them (`…/suspend`, `…/resume`, `…/restart`) change
//! them. Any other `berth.dev/` annotation is a mistake and is refused.
//!
//! - [`SUSPENDED`]: the Container keeps its object but runs no replica
//!   until it is resumed. The value says since when, by whom and why.
//! - [`RESTARTED_AT`]: the time of the last "restart every replica"; it is
//!   part of the spec hash, so a new value replaces every replica the way a
//!   spec change does (`StartFirst` included), as `kubectl rollout restart`
//!   does with its annotation.

use std::collections::BTreeMap;

use super::meta::ObjectMeta;
use super::validation::{FieldErrors, FieldPath};
use super::RESERVED_LABEL_PREFIX;

/// A suspended Container: scaled to 0 until resumed.
pub const SUSPENDED: &str = "berth.dev/suspended";
/// When every replica was last restarted on request.
pub const RESTARTED_AT: &str = "berth.dev/restartedAt";
/// Every override.
pub const ALL: [&str; 2] = [SUSPENDED, RESTARTED_AT];

/// Whether `annotation` is berth's to set.
pub fn is_reserved(annotation: &str) -> bool {
    annotation.starts_with(RESERVED_LABEL_PREFIX)
}

/// Makes `next`'s overrides those of `stored`: whatever a writer sent under
/// the reserved prefix is dropped, the stored overrides are kept (and any
/// other reserved annotation an older berth let in goes).
pub fn carry_over(stored: Option<&ObjectMeta>, next: &mut ObjectMeta) {
    next.annotations.retain(|key, _| !is_reserved(key));
    if let Some(stored) = stored {
        let kept = stored.annotations.iter().filter(|(key, _)| ALL.contains(&key.as_str()));
        next.annotations.extend(kept.map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// Whether two objects' annotations are the same but for berth's
/// overrides (which no writer sets: a source's copy never has them).
pub fn same_annotations(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    let own = |m: &BTreeMap<String, String>| {
        m.iter().filter(|(k, _)| !is_reserved(k)).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
    };
    own(a) == own(b)
}

/// Why the Container is suspended (since when, by whom, why), if it is.
pub fn suspended(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations.get(SUSPENDED).map(String::as_str)
}

/// Refuses annotations under the reserved prefix that berth does not set.
pub(super) fn validate(path: &FieldPath, meta: &ObjectMeta, errors: &mut FieldErrors) {
    for key in meta.annotations.keys().filter(|k| is_reserved(k) && !ALL.contains(&k.as_str())) {
        errors.push(
            &path.key(key),
            format!(
                "annotation `{key}` is reserved: berth sets `{RESERVED_LABEL_PREFIX}*` annotations itself ({}); \
                 choose another prefix",
                ALL.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: "web".into(),
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_writer_can_neither_set_nor_clear_an_override() {
        let stored = meta(&[(SUSPENDED, "by me"), ("team", "a")]);
        let mut next = meta(&[(RESTARTED_AT, "forged"), ("team", "b")]);
        carry_over(Some(&stored), &mut next);
        assert_eq!(next.annotations.get(SUSPENDED).map(String::as_str), Some("by me"));
        assert_eq!(next.annotations.get(RESTARTED_AT), None);
        assert_eq!(next.annotations.get("team").map(String::as_str), Some("b"));
        let mut created = meta(&[(SUSPENDED, "forged")]);
        carry_over(None, &mut created);
        assert!(created.annotations.is_empty());
    }

    #[test]
    fn unknown_reserved_annotations_are_refused_and_overrides_are_not() {
        let mut errors = FieldErrors::default();
        validate(
            &FieldPath::root().key("annotations"),
            &meta(&[(SUSPENDED, "x"), ("berth.dev/paused", "x")]),
            &mut errors,
        );
        let text: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        let text = text.join("\n");
        assert!(text.contains("berth.dev/paused") && text.contains("reserved"), "{text}");
        assert!(!text.contains("berth.dev/suspended`"), "{text}");
    }
}
