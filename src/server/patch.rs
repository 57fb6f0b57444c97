//! PATCH of one object, in the three forms kube-apiserver takes for custom
//! resources: a JSON merge patch (RFC 7386, `kubectl patch --type merge`,
//! `kubectl edit`, client-side `kubectl apply`), a JSON patch (RFC 6902,
//! `--type json`) and a server-side apply (`kubectl apply --server-side`),
//! which records field managers and reports conflicts between them.
//!
//! The patched object is checked exactly as a manifest is (positions then
//! count in the patched object, shown as JSON), and written through
//! [`write_one`] as a PUT would be. A patch that does not name a
//! `resourceVersion` applies to the newest object: when another write lands
//! between reading and writing, the patch is applied again to the newer
//! object (up to 16 times, backing off), as kube-apiserver does.

use std::time::Duration;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::api::managed_fields::{conflict_message, server_side_apply, Applying, Conflict};
use crate::api::{AnyObject, ObjectKey, ObjectMeta, API_VERSION};
use crate::manifest;

use super::body::{media, media_type, read_text};
use super::error::{ApiError, ApiResult};
use super::objects::{object_key, ObjectPath};
use super::query::StrictQuery;
use super::write::{manager, write_one, OneWrite, Ownership, WriteQuery};
use super::AppState;

/// How often a patch is applied again after losing a race with another
/// write, backing off from 1 ms to 50 ms (jittered) between attempts: the
/// controller's status writes move an object's version too, so a busy
/// object sees a few lost races.
const RACE_RETRIES: u32 = 16;

/// The label positions in a patched object carry.
const PATCHED: &str = "patched object";

/// A parsed patch.
pub enum Patch {
    /// `application/merge-patch+json`.
    Merge(Value),
    /// `application/json-patch+json`.
    Json(json_patch::Patch),
    /// `application/apply-patch+yaml`: the applier's partial object.
    Apply(Value),
}

fn unsupported(given: &str) -> ApiError {
    let hint = match given {
        "application/strategic-merge-patch+json" => {
            " (strategic merge patches are for Kubernetes' built-in kinds; berth objects are custom resources: \
             use `kubectl patch --type merge` or `--type json`)"
        }
        "" => " (the PATCH has no Content-Type)",
        _ => "",
    };
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{hint}"
        ),
    )
}

/// The media types of the three patches.
const PATCH_TYPES: [&str; 3] =
    ["application/merge-patch+json", "application/json-patch+json", "application/apply-patch+yaml"];

impl<S: Send + Sync> FromRequest<S> for Patch {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = media_type(request.headers());
        if !PATCH_TYPES.contains(&content_type.as_str()) {
            return Err(unsupported(&content_type));
        }
        let text = read_text(request.into_body()).await?;
        let json_syntax = |e: serde_json::Error| {
            ApiError::bad_request(format!("patch:{}:{}: JSON syntax error: {e}", e.line(), e.column()))
        };
        match content_type.as_str() {
            "application/merge-patch+json" => Ok(Patch::Merge(serde_json::from_str(&text).map_err(json_syntax)?)),
            "application/json-patch+json" => {
                let value: Value = serde_json::from_str(&text).map_err(json_syntax)?;
                let patch = serde_json::from_value(value).map_err(|e| {
                    ApiError::bad_request(format!(
                        "the body is not a JSON patch (a list of {{\"op\", \"path\", ...}} operations): {e}"
                    ))
                })?;
                Ok(Patch::Json(patch))
            }
            _ => Ok(Patch::Apply(applied_config(&text)?)),
        }
    }
}

impl aide::OperationInput for Patch {
    fn operation_input(ctx: &mut aide::generate::GenContext, operation: &mut aide::openapi::Operation) {
        let content = PATCH_TYPES
            .iter()
            .map(|t| {
                let schema = if *t == "application/json-patch+json" {
                    serde_json::json!({ "type": "array", "items": { "type": "object" } })
                } else {
                    serde_json::json!({ "type": "object" })
                };
                (t.to_string(), media(schema))
            })
            .collect();
        let body = aide::openapi::RequestBody {
            description: Some("A merge patch, a JSON patch, or the applier's object (server-side apply)".into()),
            content,
            required: true,
            extensions: Default::default(),
        };
        aide::operation::set_body(ctx, operation, body);
    }
}

/// The applier's partial object: one YAML (or JSON) document, read within
/// the manifest limits.
fn applied_config(text: &str) -> ApiResult<Value> {
    let documents = manifest::yaml_tree::parse(text).map_err(|e| {
        ApiError::bad_request(format!("patch:{}:{}: {}", e.position.line, e.position.column, e.message))
    })?;
    if documents.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "a server-side apply takes one object, the body has {} documents",
            documents.len()
        )));
    }
    serde_yaml::from_str(text).map_err(|e| ApiError::bad_request(format!("the applied object cannot be read: {e}")))
}

/// Checks that `applied` is a partial object of the path's object, with
/// only fields berth knows.
fn check_applied(applied: &Value, key: &ObjectKey) -> ApiResult<()> {
    let Value::Object(map) = applied else {
        return Err(ApiError::bad_request("the applied configuration must be an object (a mapping)"));
    };
    if let Some(unknown) =
        map.keys().find(|k| !["apiVersion", "kind", "metadata", "spec", "status"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid(format!(
            "the applied object has an unknown field `{unknown}`; berth objects have apiVersion, kind, metadata and spec"
        ))
        .about(key));
    }
    if applied.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        return Err(ApiError::invalid(format!("the applied object must have apiVersion: {API_VERSION}")).about(key));
    }
    if applied.get("kind").and_then(Value::as_str) != Some(key.kind.as_str()) {
        return Err(
            ApiError::invalid(format!("the applied object must have kind: {} (the path's)", key.kind)).about(key)
        );
    }
    let metadata = applied.get("metadata").cloned().unwrap_or(Value::Null);
    let meta: ObjectMeta = serde_json::from_value(metadata)
        .map_err(|e| ApiError::invalid(format!("metadata of the applied object: {e}")).about(key))?;
    if meta.name != key.name || meta.namespace.as_deref().is_some_and(|ns| ns != key.namespace) {
        return Err(ApiError::invalid(format!(
            "the applied object is named {}/{}, the path names {key}; make them agree",
            meta.namespace(),
            meta.name
        ))
        .about(key));
    }
    if !meta.managed_fields.is_empty() {
        return Err(ApiError::invalid("metadata.managedFields must be absent from an applied object").about(key));
    }
    Ok(())
}

fn conflicts_error(key: &ObjectKey, conflicts: &[Conflict]) -> ApiError {
    let mut error = ApiError::new(StatusCode::CONFLICT, conflict_message(conflicts)).about(key).with_reason("Conflict");
    for conflict in conflicts {
        error = error.detail(json!({
            "reason": "FieldManagerConflict",
            "message": format!("conflict with {}", conflict.manager),
            "field": conflict.field,
        }));
    }
    error
}

/// The object `json` describes, checked and defaulted as a manifest is.
fn decode(json: &Value, key: &ObjectKey) -> ApiResult<AnyObject> {
    let text = serde_json::to_string_pretty(json).map_err(ApiError::internal)?;
    let mut objects = manifest::load_text_in(&text, PATCHED, None, Some(&key.namespace))?;
    if objects.len() != 1 {
        return Err(ApiError::invalid("the patch leaves no object; a patch must leave the whole object").about(key));
    }
    Ok(objects.remove(0).object)
}

/// What a patch makes of the current object.
struct Patched {
    object: AnyObject,
    ownership: Ownership,
    /// Whether the patch named a `resourceVersion` (then a race is the
    /// client's to handle).
    conditional: bool,
}

fn apply_patch(
    patch: &Patch,
    key: &ObjectKey,
    current: Option<&AnyObject>,
    manager: &str,
    force: bool,
) -> ApiResult<Patched> {
    let current_json = current.map(|c| {
        let mut json = c.to_json();
        if let Some(object) = json.as_object_mut() {
            object.remove("status");
        }
        json
    });
    let missing = || ApiError::not_found(format!("{key} not found")).about(key);
    let current_version = current.and_then(|c| c.metadata().resource_version);
    let version_of = |json: &Value| json.pointer("/metadata/resourceVersion").cloned();
    let (json, ownership) = match patch {
        Patch::Merge(patch) => {
            let mut json = current_json.ok_or_else(missing)?;
            json_patch::merge(&mut json, patch);
            (json, Ownership::Update(manager.to_string()))
        }
        Patch::Json(patch) => {
            let mut json = current_json.ok_or_else(missing)?;
            json_patch::patch(&mut json, patch)
                .map_err(|e| ApiError::invalid(format!("the JSON patch does not apply: {e}")).about(key))?;
            (json, Ownership::Update(manager.to_string()))
        }
        Patch::Apply(applied) => {
            check_applied(applied, key)?;
            let mut entries = current.map(|c| c.metadata().managed_fields.clone()).unwrap_or_default();
            // What the apply makes, defaulted, is what its values are
            // compared with: first worked out without regard to conflicts.
            let unchecked = Applying { applied, outcome: applied };
            let merged = server_side_apply(&mut entries.clone(), manager, current_json.as_ref(), unchecked, true)
                .map_err(|conflicts| conflicts_error(key, &conflicts))?;
            let outcome = decode(&merged, key)?.to_json();
            let applying = Applying { applied, outcome: &outcome };
            let mut result = server_side_apply(&mut entries, manager, current_json.as_ref(), applying, force)
                .map_err(|conflicts| conflicts_error(key, &conflicts))?;
            result["metadata"]["resourceVersion"] = match version_of(applied) {
                Some(asked) => asked,
                None => current_version.map_or(Value::Null, |v| json!(v.to_string())),
            };
            (result, Ownership::Applied(entries))
        }
    };
    let ours = current_version.map(|v| json!(v.to_string()));
    let conditional = match patch {
        Patch::Apply(applied) => version_of(applied).is_some(),
        _ => version_of(&json) != ours,
    };
    Ok(Patched { object: decode(&json, key)?, ownership, conditional })
}

fn lost_race(error: &ApiError, creating: bool) -> bool {
    error.is_stale_version() || (creating && error.is_already_exists())
}

/// Patches one object (or, with a server-side apply, creates it).
pub async fn patch(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    StrictQuery(query): StrictQuery<WriteQuery>,
    headers: HeaderMap,
    patch: Patch,
) -> ApiResult<Response> {
    let key = object_key(&path)?;
    query.check()?;
    if matches!(patch, Patch::Apply(_)) && query.field_manager.is_none() {
        return Err(ApiError::bad_request(
            "a server-side apply needs a field manager: set fieldManager (kubectl sends `kubectl` unless \
             --field-manager says otherwise)",
        ));
    }
    let manager = manager(&query, &headers);
    let mut backoff = crate::backoff::Backoff::new(Duration::from_millis(1), Duration::from_millis(50));
    loop {
        let current = state.store.get(&key)?;
        let patched = apply_patch(&patch, &key, current.as_ref(), &manager, query.force)?;
        let creating = current.is_none();
        let write = OneWrite {
            ownership: patched.ownership,
            create_only: creating,
            ..OneWrite::update(&key, current.as_ref(), &query, &headers)
        };
        match write_one(&state, patched.object, write) {
            // Another write landed first (an update, or a create of the
            // object this apply would have created): apply to that one.
            Err(e) if lost_race(&e, creating) && !patched.conditional && backoff.failures() + 1 < RACE_RETRIES => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            answer => return answer,
        }
    }
}
