//! The Kubernetes-shaped object endpoints:
//! `/apis/berth.dev/v1alpha1[/namespaces/{namespace}]/{plural}[/{name}[/status]]`.
//!
//! Names and namespaces in paths are checked as DNS-1123 labels before
//! anything is looked up, so no path (`..`, `%2F`, a 10 kB name) reaches the
//! store as anything but a clean key. Writes are owned by the API source:
//! an object a watched file or a git repository owns is refused with 409
//! naming the owner, unless `?force=true`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::api::validation::check_dns_label;
use crate::api::{AnyObject, Kind, ListMeta, ObjectKey, ObjectList, Selector, Source, API_VERSION};
use crate::source::{apply_set, check_set, SetOptions};
use crate::store::{Outcome, Precondition, WriteBatch, WriteOp};

use super::body::ManifestBody;
use super::error::{ApiError, ApiResult};
use super::query::{DryRun, NoParams, StrictQuery};
use super::watch::{watch_response, WatchFilter};
use super::AppState;

/// `/{plural}`.
#[derive(Deserialize, JsonSchema)]
pub struct KindPath {
    /// `containers`, `volumes`, `networks`, `images`, `dnsrecords` or `routes`.
    pub plural: String,
}

/// `/namespaces/{namespace}/{plural}`.
#[derive(Deserialize, JsonSchema)]
pub struct NamespacePath {
    /// The namespace.
    pub namespace: String,
    /// The kind's plural.
    pub plural: String,
}

/// `/namespaces/{namespace}/{plural}/{name}`.
#[derive(Deserialize, JsonSchema)]
pub struct ObjectPath {
    /// The namespace.
    pub namespace: String,
    /// The kind's plural.
    pub plural: String,
    /// The object's name.
    pub name: String,
}

/// Query of list and get.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// Only objects whose labels match, e.g. `app=web,tier!=cache`.
    pub label_selector: Option<String>,
    /// Stream changes as Server-Sent Events instead of answering once.
    #[serde(default)]
    pub watch: bool,
    /// With `watch`: send the changes after this version (else the current
    /// objects as ADDED first). `Last-Event-ID` does the same.
    pub resource_version: Option<u64>,
}

/// Query of writes.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    /// Write even if a file or repository owns the object (it takes the
    /// object back on its next change).
    #[serde(default)]
    pub force: bool,
    /// Delete only if the object is at this version.
    pub resource_version: Option<u64>,
    /// Check the write and answer what it would do, writing nothing
    /// (`true`, or Kubernetes' `All`).
    #[serde(default)]
    pub dry_run: DryRun,
}

pub(super) fn kind_of(plural: &str) -> ApiResult<Kind> {
    Kind::ALL.into_iter().find(|k| k.plural() == plural).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
        ApiError::not_found(format!("unknown resource type `{plural}`; known: {}", known.join(", ")))
    })
}

pub(super) fn checked_name(what: &str, name: &str) -> ApiResult<()> {
    check_dns_label(name).map_err(|why| {
        let shown: String = name.chars().take(80).collect();
        ApiError::bad_request(format!("{what} `{shown}` is not a valid name: {why}"))
    })
}

pub(super) fn object_key(path: &ObjectPath) -> ApiResult<ObjectKey> {
    let kind = kind_of(&path.plural)?;
    checked_name("namespace", &path.namespace)?;
    checked_name("name", &path.name)?;
    Ok(ObjectKey::new(kind, &path.namespace, &path.name))
}

fn selector(query: &ReadQuery) -> ApiResult<Selector> {
    query
        .label_selector
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(|e: crate::api::selector::SelectorError| ApiError::bad_request(e.to_string()))
}

fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

fn list(
    state: &AppState,
    kind: Kind,
    namespace: Option<&str>,
    query: ReadQuery,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let selector = selector(&query)?;
    if query.watch {
        let filter = WatchFilter { kind: Some(kind), namespace: namespace.map(str::to_string), name: None, selector };
        return watch_response(state, filter, query.resource_version.or_else(|| last_event_id(headers)));
    }
    let resource_version = state.store.resource_version();
    let items: Vec<AnyObject> = state
        .store
        .list(Some(kind), namespace)?
        .into_iter()
        .filter(|o| selector.matches(&o.metadata().labels))
        .collect();
    let list = ObjectList {
        api_version: API_VERSION.to_string(),
        kind: format!("{kind}List"),
        metadata: ListMeta { resource_version },
        items,
    };
    Ok(Json(list).into_response())
}

/// Lists objects of a kind in every namespace.
pub async fn list_all(
    State(state): State<AppState>,
    Path(path): Path<KindPath>,
    StrictQuery(query): StrictQuery<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list(&state, kind_of(&path.plural)?, None, query, &headers)
}

/// Lists objects of a kind in one namespace.
pub async fn list_namespaced(
    State(state): State<AppState>,
    Path(path): Path<NamespacePath>,
    StrictQuery(query): StrictQuery<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let kind = kind_of(&path.plural)?;
    checked_name("namespace", &path.namespace)?;
    list(&state, kind, Some(&path.namespace), query, &headers)
}

fn stored(state: &AppState, key: &ObjectKey) -> ApiResult<AnyObject> {
    state.store.get(key)?.ok_or_else(|| ApiError::not_found(format!("{key} not found")))
}

/// Reads one object (or watches it).
pub async fn get(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    StrictQuery(query): StrictQuery<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = object_key(&path)?;
    if query.watch {
        let filter = WatchFilter {
            kind: Some(key.kind),
            namespace: Some(key.namespace.clone()),
            name: Some(key.name.clone()),
            selector: selector(&query)?,
        };
        return watch_response(&state, filter, query.resource_version.or_else(|| last_event_id(&headers)));
    }
    Ok(Json(stored(&state, &key)?).into_response())
}

/// Reads one object's status (the whole object, as Kubernetes answers).
pub async fn status(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    _: StrictQuery<NoParams>,
) -> ApiResult<Json<AnyObject>> {
    Ok(Json(stored(&state, &object_key(&path)?)?))
}

/// Creates or replaces one object; with `metadata.resourceVersion`, only if
/// the stored object is still at that version.
pub async fn put(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    StrictQuery(query): StrictQuery<WriteQuery>,
    body: ManifestBody,
) -> ApiResult<Response> {
    let key = object_key(&path)?;
    let mut objects = body.objects()?;
    if objects.len() != 1 {
        return Err(ApiError::invalid(format!(
            "PUT takes exactly one object, the body has {}; use POST /apply for several",
            objects.len()
        )));
    }
    let object = objects.remove(0).object;
    if object.key() != key {
        return Err(ApiError::invalid(format!(
            "the body declares {}, the path names {key}; make kind, namespace and name agree",
            object.key()
        )));
    }
    let options = SetOptions { prune: false, force: query.force, preconditions: true, record: false };
    if query.dry_run.0 {
        let commit = check_set(&state.store, &Source::api(), vec![object.clone()], options)?;
        let created = commit.outcomes.first() == Some(&Outcome::Created);
        let would_be = commit.changes.into_iter().next().map(|c| c.object);
        let object = match would_be {
            Some(object) => object,
            None => stored(&state, &key)?,
        };
        return Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(object)).into_response());
    }
    let applied = apply_set(&state.store, &Source::api(), vec![object], options)?;
    let status = if applied.created > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored(&state, &key)?)).into_response())
}

/// Marks one object for deletion; its reconciler tears down what it made,
/// then the object goes. Answers 200 with the object as marked, as
/// kube-apiserver does for an object with finalizers.
pub async fn delete(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    StrictQuery(query): StrictQuery<WriteQuery>,
) -> ApiResult<Response> {
    let key = object_key(&path)?;
    stored(&state, &key)?;
    let precondition = query.resource_version.map_or(Precondition::None, Precondition::ResourceVersion);
    let event = crate::store::Event::about(&key, "deleted", "ApiDelete", "deletion requested through the API");
    let batch = WriteBatch::new()
        .op(WriteOp::Delete { key: key.clone(), precondition, source: Some(Source::api()), force: query.force })
        .event(event);
    if query.dry_run.0 {
        let commit = state.store.check(batch)?;
        let object = match commit.changes.into_iter().next() {
            Some(change) => change.object,
            None => stored(&state, &key)?,
        };
        return Ok((StatusCode::OK, Json(object)).into_response());
    }
    state.store.commit(batch)?;
    Ok((StatusCode::OK, Json(stored(&state, &key)?)).into_response())
}
