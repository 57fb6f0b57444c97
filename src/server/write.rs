//! The object writes: create (POST to a collection), replace (PUT) and
//! delete (DELETE), and [`write_one`], the step every write of one object
//! shares with PATCH: the object checked against its path, its field
//! managers recorded, written as the API's (or only checked, for a dry
//! run), and answered 201 when created, 200 otherwise.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::api::managed_fields::{record_update, ManagedFieldsEntry};
use crate::api::{AnyObject, ObjectKey, Source};
use crate::source::{apply_set, check_set, SetOptions};
use crate::store::{Outcome, Precondition, WriteBatch, WriteOp};

use super::body::ManifestBody;
use super::error::{ApiError, ApiResult};
use super::objects::{checked_name, kind_of, object_key, stored, NamespacePath, ObjectPath};
use super::query::{DryRun, StrictQuery};
use super::{AppState, ServerState};

/// Query of writes.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    /// Write even if a file or repository owns the object (it takes the
    /// object back on its next change); with a server-side apply, also take
    /// the fields other managers own (`kubectl apply --force-conflicts`).
    #[serde(default)]
    pub force: bool,
    /// Delete only if the object is at this version.
    pub resource_version: Option<u64>,
    /// Check the write and answer what it would do, writing nothing
    /// (`true`, or Kubernetes' `All`).
    #[serde(default)]
    pub dry_run: DryRun,
    /// Who writes (kubectl sends `kubectl-edit`, `kubectl-client-side-apply`, …).
    pub field_manager: Option<String>,
    /// `Strict`, `Warn` or `Ignore`. berth validates strictly whatever is
    /// asked: a field it does not know is always an error, never dropped.
    #[serde(rename = "fieldValidation")]
    pub _field_validation: Option<FieldValidation>,
    /// DELETE: `Background` or `Foreground` (the same here: a berth object
    /// has no dependent objects); `Orphan` is refused.
    pub propagation_policy: Option<String>,
    /// DELETE: accepted; replicas always get their stop timeout.
    #[serde(rename = "gracePeriodSeconds")]
    pub _grace_period_seconds: Option<i64>,
}

impl WriteQuery {
    /// Checks `fieldManager`: at most Kubernetes' 128 printable characters.
    pub(super) fn check(&self) -> ApiResult<()> {
        if let Some(manager) = &self.field_manager {
            if manager.len() > 128 || manager.chars().any(char::is_control) {
                return Err(ApiError::bad_request("fieldManager must be at most 128 printable characters"));
            }
        }
        Ok(())
    }
}

/// `fieldValidation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum FieldValidation {
    /// Unknown or duplicate fields fail the request.
    Strict,
    /// Answered as Strict.
    Warn,
    /// Answered as Strict.
    Ignore,
}

/// The body kubectl sends with a DELETE (`meta/v1 DeleteOptions`). The
/// underscored fields are accepted and have no effect here.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeleteOptions {
    #[serde(default, rename = "kind")]
    _kind: Option<String>,
    #[serde(default, rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(default)]
    propagation_policy: Option<String>,
    #[serde(default, rename = "gracePeriodSeconds")]
    _grace_period_seconds: Option<i64>,
    #[serde(default)]
    orphan_dependents: Option<bool>,
    #[serde(default)]
    preconditions: Option<DeletePreconditions>,
    #[serde(default)]
    dry_run: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeletePreconditions {
    #[serde(default)]
    uid: Option<String>,
    #[serde(default, with = "crate::api::wire_version::optional")]
    resource_version: Option<u64>,
}

fn delete_options(body: &[u8]) -> ApiResult<DeleteOptions> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeleteOptions::default());
    }
    let options: DeleteOptions = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the DELETE body is not DeleteOptions: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if options.orphan_dependents == Some(true) {
        check_propagation(Some("Orphan"))?;
    }
    check_propagation(options.propagation_policy.as_deref())?;
    if options.dry_run.iter().any(|d| d != "All") {
        return Err(ApiError::bad_request("DeleteOptions.dryRun takes only `All`"));
    }
    Ok(options)
}

/// Checks a `propagationPolicy`, from the query or the DeleteOptions body.
fn check_propagation(policy: Option<&str>) -> ApiResult<()> {
    match policy {
        None | Some("Background" | "Foreground") => Ok(()),
        Some("Orphan") => Err(ApiError::bad_request(
            "propagationPolicy Orphan is not supported: deleting a berth object always removes the engine objects \
             it made; use Background (the default) or Foreground",
        )),
        Some(other) => {
            Err(ApiError::bad_request(format!("propagationPolicy `{other}` is not one of Background, Foreground")))
        }
    }
}

/// The field manager of a write: `fieldManager`, else the client's name
/// from its User-Agent (`kubectl/v1.32.0 (linux/amd64)` → `kubectl`), as
/// kube-apiserver names it.
pub(super) fn manager(query: &WriteQuery, headers: &HeaderMap) -> String {
    if let Some(manager) = &query.field_manager {
        return manager.clone();
    }
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let name: String = agent.split('/').next().unwrap_or("").chars().filter(|c| !c.is_control()).take(128).collect();
    if name.trim().is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

/// Who a write records as owning which fields.
pub(super) enum Ownership {
    /// An ordinary write by this manager: it owns what it changed.
    Update(String),
    /// A server-side apply, whose entries are worked out already.
    Applied(Vec<ManagedFieldsEntry>),
}

/// How [`write_one`] writes.
pub(super) struct OneWrite<'a> {
    /// The object the path names.
    pub key: &'a ObjectKey,
    /// The stored object, as read before the write was worked out.
    pub current: Option<&'a AnyObject>,
    /// The field managers to record.
    pub ownership: Ownership,
    /// The object must not exist yet (POST).
    pub create_only: bool,
    /// Write over another source's ownership.
    pub force: bool,
    /// Check only.
    pub dry_run: bool,
}

impl<'a> OneWrite<'a> {
    /// An ordinary write of `key` by the request's field manager, as its
    /// query says (`force`, `dryRun`).
    pub(super) fn update(
        key: &'a ObjectKey,
        current: Option<&'a AnyObject>,
        query: &WriteQuery,
        headers: &HeaderMap,
    ) -> Self {
        OneWrite {
            key,
            current,
            ownership: Ownership::Update(manager(query, headers)),
            create_only: false,
            force: query.force,
            dry_run: query.dry_run.0,
        }
    }
}

/// Writes `object` as the path's object, as the API's.
pub(super) fn write_one(state: &AppState, mut object: AnyObject, write: OneWrite<'_>) -> ApiResult<Response> {
    let key = write.key;
    if object.key() != *key {
        return Err(ApiError::invalid(format!(
            "the body declares {}, the path names {key}; make kind, namespace and name agree",
            object.key()
        ))
        .about(key));
    }
    let entries = match write.ownership {
        Ownership::Applied(entries) => entries,
        Ownership::Update(manager) => {
            let mut entries = write.current.map(|c| c.metadata().managed_fields.clone()).unwrap_or_default();
            record_update(&mut entries, &manager, write.current.map(AnyObject::to_json).as_ref(), &object.to_json());
            entries
        }
    };
    object.metadata_mut().managed_fields = entries;
    let options = SetOptions {
        prune: false,
        force: write.force,
        preconditions: true,
        record: false,
        create_only: write.create_only,
    };
    if write.dry_run {
        let commit = check_set(&state.store, &Source::api(), vec![object], options)?;
        let created = commit.outcomes.first() == Some(&Outcome::Created);
        let object = match commit.changes.into_iter().next() {
            Some(change) => change.object,
            None => stored(state, key)?,
        };
        return Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(object)).into_response());
    }
    let applied = apply_set(&state.store, &Source::api(), vec![object], options)?;
    let status = if applied.created > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored(state, key)?)).into_response())
}

/// Creates or replaces one object; with `metadata.resourceVersion`, only if
/// the stored object is still at that version.
pub async fn put(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    StrictQuery(query): StrictQuery<WriteQuery>,
    headers: HeaderMap,
    body: ManifestBody,
) -> ApiResult<Response> {
    let key = object_key(&path)?;
    query.check()?;
    let object = body.one_object(&key.namespace, "PUT")?;
    let current = state.store.get(&key)?;
    write_one(&state, object, OneWrite::update(&key, current.as_ref(), &query, &headers))
}

/// Creates one object in a namespace: 409 `AlreadyExists` if its name is
/// taken (PUT replaces).
pub async fn create(
    State(state): State<AppState>,
    Path(path): Path<NamespacePath>,
    StrictQuery(query): StrictQuery<WriteQuery>,
    headers: HeaderMap,
    body: ManifestBody,
) -> ApiResult<Response> {
    let kind = kind_of(&path.plural)?;
    checked_name("namespace", &path.namespace)?;
    query.check()?;
    let object = body.one_object(&path.namespace, "POST")?;
    if object.kind() != kind || object.metadata().namespace() != path.namespace {
        return Err(ApiError::invalid(format!(
            "the body declares {}, the path is {}s in namespace {}; make kind and namespace agree",
            object.key(),
            kind.as_str().to_lowercase(),
            path.namespace
        )));
    }
    let key = object.key();
    let write = OneWrite { create_only: true, ..OneWrite::update(&key, None, &query, &headers) };
    write_one(&state, object, write)
}

/// Marks one object for deletion; its reconciler tears down what it made,
/// then the object goes. Answers 200 with the object as marked, as
/// kube-apiserver does for an object with finalizers.
pub async fn delete(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    StrictQuery(query): StrictQuery<WriteQuery>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let key = object_key(&path)?;
    query.check()?;
    let options = delete_options(&body)?;
    check_propagation(query.propagation_policy.as_deref())?;
    let current = stored(&state, &key)?;
    let preconditions = options.preconditions.unwrap_or_default();
    if let Some(uid) = &preconditions.uid {
        if current.metadata().uid.as_ref() != Some(uid) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "{key} has uid {}, not {uid}: it is another object of the same name",
                    current.metadata().uid.clone().unwrap_or_default()
                ),
            )
            .about(&key));
        }
    }
    let dry_run = query.dry_run.0 || !options.dry_run.is_empty();
    let precondition = query
        .resource_version
        .or(preconditions.resource_version)
        .map_or(Precondition::None, Precondition::ResourceVersion);
    let who = super::replica::caller_name(caller);
    // The dashboard says why in `Berth-Reason` (percent-encoded UTF-8, as
    // headers carry only ASCII); kubectl sends none.
    let reason = headers
        .get(REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().trim().to_string())
        .filter(|r| !r.is_empty());
    let why = match reason {
        Some(reason) => format!("deletion requested through the API by {who}: {}", truncated(&reason, 500)),
        None => format!("deletion requested through the API by {who}"),
    };
    let object = mark_deleted(&state, &key, precondition, query.force, dry_run, &why)?;
    Ok((StatusCode::OK, Json(object)).into_response())
}

/// The header a client says why it deletes in (recorded in the audit
/// log), percent-encoded.
pub const REASON_HEADER: &str = "berth-reason";

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Marks `key` for deletion as the API's write (or only checks that it
/// could be, for a dry run), recording `why` in the event log; answers the
/// object as marked. The one delete of the REST API and every ingress
/// transport.
pub(crate) fn mark_deleted(
    state: &ServerState,
    key: &ObjectKey,
    precondition: Precondition,
    force: bool,
    dry_run: bool,
    why: &str,
) -> ApiResult<AnyObject> {
    let event = crate::store::Event::about(key, "deleted", "ApiDelete", why);
    let batch = WriteBatch::new()
        .op(WriteOp::Delete { key: key.clone(), precondition, source: Some(Source::api()), force })
        .event(event);
    // The object as this commit left it: reading it again could find it
    // gone already, when its reconciler finished the deletion in between.
    let commit = if dry_run { state.store.check(batch)? } else { state.store.commit(batch)? };
    match commit.changes.into_iter().next() {
        Some(change) => Ok(change.object),
        None => state.store.get(key)?.ok_or_else(|| ApiError::not_found(format!("{key} not found"))),
    }
}
