//! Field ownership, `metadata.managedFields`, as kube-apiserver keeps it,
//! so that two writers of one object (a person with `kubectl edit`, a CI
//! job with `kubectl apply --server-side`) learn of each other instead of
//! silently undoing each other's changes.
//!
//! berth tracks ownership per label, per annotation and per top-level field
//! of `spec` (`spec.image`, `spec.replicas`, `spec.env`…): a server-side
//! apply replaces such a field whole, and two managers conflict when they
//! set one such field to different values. kube-apiserver goes deeper
//! (list items by key, nested maps); at this grain the conflicts it reports
//! are a superset of its own, never fewer.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One manager's fields, as in Kubernetes' `ManagedFieldsEntry`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedFieldsEntry {
    /// Who wrote: the request's `fieldManager`, or its client's name.
    pub manager: String,
    /// `Apply` (server-side apply) or `Update` (any other write).
    pub operation: ManagedOperation,
    /// The API version the fields are in.
    #[serde(default)]
    pub api_version: String,
    /// When this manager's set of fields last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// Always `FieldsV1`.
    #[serde(default = "fields_v1_type")]
    pub fields_type: String,
    /// The fields, as nested `f:<name>` keys.
    #[serde(default, rename = "fieldsV1")]
    pub fields_v1: Value,
    /// The subresource written through, if not the object itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

fn fields_v1_type() -> String {
    "FieldsV1".to_string()
}

/// How a manager wrote its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagedOperation {
    /// Server-side apply: the manager declares exactly these fields.
    Apply,
    /// Create, replace or patch: the manager changed these fields.
    Update,
}

/// A field berth tracks: `["spec", "replicas"]`, `["metadata", "labels", "app"]`.
pub type FieldPath = Vec<String>;

/// A set of fields.
pub type FieldSet = BTreeSet<FieldPath>;

/// The tracked fields `object` (its JSON) sets.
pub fn fields_of(object: &Value) -> FieldSet {
    let mut fields = FieldSet::new();
    for map in ["labels", "annotations"] {
        if let Some(Value::Object(entries)) = object.pointer(&format!("/metadata/{map}")) {
            for key in entries.keys() {
                fields.insert(vec!["metadata".into(), map.into(), key.clone()]);
            }
        }
    }
    match object.get("spec") {
        Some(Value::Object(spec)) => fields.extend(spec.keys().map(|key| vec!["spec".to_string(), key.clone()])),
        Some(Value::Null) | None => {}
        Some(_) => {
            fields.insert(vec!["spec".to_string()]);
        }
    }
    fields
}

/// The value of `path` in `object`.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |value, name| value.get(name))
}

/// Sets `path` in `object` to `value`, making the maps on the way.
pub fn set_at(object: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = object;
    for name in parents {
        if !at.get(name).is_some_and(Value::is_object) {
            at[name.as_str()] = Value::Object(Map::new());
        }
        at = &mut at[name.as_str()];
    }
    at[last.as_str()] = value;
}

/// Removes `path` from `object`.
pub fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let parent = parents.iter().try_fold(&mut *object, |value, name| value.get_mut(name));
    if let Some(Value::Object(map)) = parent {
        map.remove(last);
    }
}

/// `fields` as FieldsV1: `{"f:spec": {"f:replicas": {}}}`.
pub fn to_fields_v1(fields: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let keys: Vec<String> = path.iter().map(|name| format!("f:{name}")).collect();
        set_at(&mut root, &keys, Value::Object(Map::new()));
    }
    root
}

/// The fields FieldsV1 names, at berth's grain (deeper keys count as their
/// tracked ancestor).
pub fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk(value: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let children: Vec<(&String, &Value)> = match value {
            Value::Object(map) => map.iter().filter(|(k, _)| k.starts_with("f:")).collect(),
            _ => Vec::new(),
        };
        let tracked_depth = if path.first().map(String::as_str) == Some("metadata") { 3 } else { 2 };
        if children.is_empty() || path.len() == tracked_depth {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (key, child) in children {
            path.push(key.trim_start_matches("f:").to_string());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// Another manager owns a field the applier sets to another value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager, as kube-apiserver names it: `"ci"`, or
    /// `"kubectl-edit" using berth.dev/v1alpha1` for an ordinary writer.
    pub manager: String,
    /// The field, `.spec.replicas`.
    pub field: String,
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|name| format!(".{name}")).collect()
}

fn shown_manager(entry: &ManagedFieldsEntry) -> String {
    match entry.operation {
        ManagedOperation::Apply => format!("{:?}", entry.manager),
        ManagedOperation::Update => format!("{:?} using {}", entry.manager, entry.api_version),
    }
}

fn entry_fields(entry: &ManagedFieldsEntry) -> FieldSet {
    from_fields_v1(&entry.fields_v1)
}

fn is(entry: &ManagedFieldsEntry, manager: &str, operation: ManagedOperation) -> bool {
    entry.manager == manager && entry.operation == operation && entry.subresource.is_none()
}

/// Writes `fields` as the entry of (`manager`, `operation`): dropped when
/// empty, its time kept when its fields did not change.
fn put_entry(
    entries: &mut Vec<ManagedFieldsEntry>,
    manager: &str,
    operation: ManagedOperation,
    fields: &FieldSet,
    now: DateTime<Utc>,
) {
    let position = entries.iter().position(|e| is(e, manager, operation));
    let fields_v1 = to_fields_v1(fields);
    match position {
        Some(i) if fields.is_empty() => {
            entries.remove(i);
        }
        Some(i) if entries[i].fields_v1 != fields_v1 => {
            entries[i].fields_v1 = fields_v1;
            entries[i].time = Some(now);
        }
        Some(_) => {}
        None if fields.is_empty() => {}
        None => entries.push(ManagedFieldsEntry {
            manager: manager.to_string(),
            operation,
            api_version: super::API_VERSION.to_string(),
            time: Some(now),
            fields_type: fields_v1_type(),
            fields_v1,
            subresource: None,
        }),
    }
}

/// Takes `fields` away from every entry but (`manager`, `operation`).
fn take_from_others(
    entries: &mut Vec<ManagedFieldsEntry>,
    manager: &str,
    operation: ManagedOperation,
    fields: &FieldSet,
) {
    let now = Utc::now();
    let others: Vec<(String, ManagedOperation, FieldSet)> = entries
        .iter()
        .filter(|e| !is(e, manager, operation) && e.subresource.is_none())
        .map(|e| (e.manager.clone(), e.operation, entry_fields(e)))
        .collect();
    for (other, op, owned) in others {
        let kept: FieldSet = owned.difference(fields).cloned().collect();
        if kept.len() != owned.len() {
            put_entry(entries, &other, op, &kept, now);
        }
    }
}

/// Records an ordinary write (create, replace, patch) by `manager`: it
/// owns what it changed, and the others no longer own that.
pub fn record_update(entries: &mut Vec<ManagedFieldsEntry>, manager: &str, old: Option<&Value>, new: &Value) {
    let before = old.map(fields_of).unwrap_or_default();
    let after = fields_of(new);
    let changed: FieldSet = before
        .union(&after)
        .filter(|path| old.and_then(|o| value_at(o, path)) != value_at(new, path))
        .cloned()
        .collect();
    if changed.is_empty() {
        return;
    }
    take_from_others(entries, manager, ManagedOperation::Update, &changed);
    let mut owned: FieldSet =
        entries.iter().find(|e| is(e, manager, ManagedOperation::Update)).map(entry_fields).unwrap_or_default();
    owned.extend(changed);
    owned.retain(|path| after.contains(path));
    put_entry(entries, manager, ManagedOperation::Update, &owned, Utc::now());
}

/// What a server-side apply compares: the applied values as they will be
/// stored, defaults filled in (an applied `ports` entry without `protocol`
/// is the stored one with `protocol: TCP`, not a different value).
pub struct Applying<'a> {
    /// The applier's partial object.
    pub applied: &'a Value,
    /// The whole object the apply makes, defaulted, to compare with.
    pub outcome: &'a Value,
}

/// Server-side apply of a partial object by `manager` onto `current`: the
/// result, with `entries` updated, or the conflicts with other managers
/// (unless `force`, which takes their fields).
///
/// A field the manager applied before and no longer does is removed, unless
/// another manager owns it too.
pub fn server_side_apply(
    entries: &mut Vec<ManagedFieldsEntry>,
    manager: &str,
    current: Option<&Value>,
    applying_object: Applying<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let Applying { applied, outcome } = applying_object;
    let applying = fields_of(applied);
    let mut conflicts = Vec::new();
    for entry in entries.iter().filter(|e| !is(e, manager, ManagedOperation::Apply) && e.subresource.is_none()) {
        for path in entry_fields(entry).intersection(&applying) {
            if current.and_then(|c| value_at(c, path)) != value_at(outcome, path) {
                conflicts.push(Conflict { manager: shown_manager(entry), field: dotted(path) });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let forced: FieldSet =
        applying.iter().filter(|p| conflicts.iter().any(|c| c.field == dotted(p))).cloned().collect();
    take_from_others(entries, manager, ManagedOperation::Apply, &forced);
    let mut result = match current {
        Some(current) => current.clone(),
        None => applied.clone(),
    };
    let before: FieldSet =
        entries.iter().find(|e| is(e, manager, ManagedOperation::Apply)).map(entry_fields).unwrap_or_default();
    let others: FieldSet =
        entries.iter().filter(|e| !is(e, manager, ManagedOperation::Apply)).flat_map(entry_fields).collect();
    for dropped in before.difference(&applying) {
        if !others.contains(dropped) {
            remove_at(&mut result, dropped);
        }
    }
    for path in &applying {
        if let Some(value) = value_at(applied, path) {
            set_at(&mut result, path, value.clone());
        }
    }
    put_entry(entries, manager, ManagedOperation::Apply, &applying, Utc::now());
    Ok(result)
}

/// The message kube-apiserver gives a conflicted apply, which kubectl
/// prints followed by its advice: one conflict on one line, several
/// grouped by manager.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", one.manager, one.field);
    }
    let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for conflict in conflicts {
        by_manager.entry(&conflict.manager).or_default().push(&conflict.field);
    }
    let mut lines = Vec::new();
    for (manager, fields) in by_manager {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(fields.iter().map(|field| format!("- {field}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(dotted: &str) -> FieldPath {
        dotted.split('.').map(str::to_string).collect()
    }

    #[test]
    fn fields_are_labels_annotations_and_top_level_spec() {
        let object = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"note": "x"}},
            "spec": {"image": "busybox", "env": [{"name": "A"}]}
        });
        let fields = fields_of(&object);
        let expected: FieldSet =
            ["metadata.labels.app", "metadata.annotations.note", "spec.image", "spec.env"].map(path).into();
        assert_eq!(fields, expected);
        assert_eq!(from_fields_v1(&to_fields_v1(&fields)), fields);
        assert_eq!(to_fields_v1(&[path("spec.image")].into()), json!({"f:spec": {"f:image": {}}}));
    }

    #[test]
    fn deeper_fields_count_as_their_tracked_field() {
        let v1 = json!({"f:spec": {"f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:value": {}}}}, "f:metadata": {"f:labels": {"f:app": {}}}});
        let expected: FieldSet = [path("spec.env"), path("metadata.labels.app")].into();
        assert_eq!(from_fields_v1(&v1), expected);
    }

    #[test]
    fn an_update_owns_what_it_changed_and_takes_it_from_others() {
        let mut entries = Vec::new();
        let created = json!({"metadata": {"name": "web"}, "spec": {"image": "a", "replicas": 1}});
        record_update(&mut entries, "kubectl-create", None, &created);
        let edited = json!({"metadata": {"name": "web"}, "spec": {"image": "b", "replicas": 1}});
        record_update(&mut entries, "kubectl-edit", Some(&created), &edited);
        assert_eq!(entries.len(), 2);
        assert_eq!(entry_fields(&entries[0]), [path("spec.replicas")].into());
        assert_eq!(entry_fields(&entries[1]), [path("spec.image")].into());
        // A write that changes nothing records nothing.
        let before = entries.clone();
        record_update(&mut entries, "other", Some(&edited), &edited);
        assert_eq!(entries, before);
    }

    #[test]
    fn apply_conflicts_with_another_managers_different_value_unless_forced() {
        let mut entries = Vec::new();
        let current = json!({"metadata": {"name": "web"}, "spec": {"image": "a", "replicas": 1}});
        record_update(&mut entries, "kubectl-client-side-apply", None, &current);
        let applied = json!({"metadata": {"name": "web"}, "spec": {"image": "a", "replicas": 3}});
        let conflicts = server_side_apply(
            &mut entries.clone(),
            "ci",
            Some(&current),
            Applying { applied: &applied, outcome: &applied },
            false,
        )
        .unwrap_err();
        let manager = r#""kubectl-client-side-apply" using berth.dev/v1alpha1"#.to_string();
        assert_eq!(conflicts, vec![Conflict { manager: manager.clone(), field: ".spec.replicas".into() }]);
        let message = conflict_message(&conflicts);
        assert_eq!(message, format!("Apply failed with 1 conflict: conflict with {manager}: .spec.replicas"));
        let two = [conflicts[0].clone(), Conflict { manager: r#""ci""#.into(), field: ".spec.image".into() }];
        let expected = format!(
            "Apply failed with 2 conflicts: conflicts with \"ci\":\n- .spec.image\nconflicts with {manager}:\n- .spec.replicas"
        );
        assert_eq!(conflict_message(&two), expected);
        // The same value is shared, not a conflict; force takes the rest.
        let result = server_side_apply(
            &mut entries,
            "ci",
            Some(&current),
            Applying { applied: &applied, outcome: &applied },
            true,
        )
        .unwrap();
        assert_eq!(result["spec"]["replicas"], 3);
        let csa = entries.iter().find(|e| e.manager == "kubectl-client-side-apply").unwrap();
        assert_eq!(entry_fields(csa), [path("spec.image")].into());
        let ci = entries.iter().find(|e| e.manager == "ci").unwrap();
        assert_eq!(ci.operation, ManagedOperation::Apply);
        assert_eq!(entry_fields(ci), [path("spec.image"), path("spec.replicas")].into());
    }

    #[test]
    fn a_field_no_longer_applied_is_removed_unless_another_manager_owns_it() {
        let mut entries = Vec::new();
        let first = json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}, "spec": {"image": "x"}});
        let current =
            server_side_apply(&mut entries, "ci", None, Applying { applied: &first, outcome: &first }, false).unwrap();
        let current_with_other = {
            let mut c = current.clone();
            c["metadata"]["labels"]["c"] = json!("3");
            record_update(&mut entries, "edit", Some(&current), &c);
            c
        };
        let second = json!({"metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"image": "x"}});
        let result = server_side_apply(
            &mut entries,
            "ci",
            Some(&current_with_other),
            Applying { applied: &second, outcome: &second },
            false,
        )
        .unwrap();
        assert_eq!(result["metadata"]["labels"], json!({"a": "1", "c": "3"}));
    }
}
