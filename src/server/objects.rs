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
use super::list_options::{page, FieldSelector, Position};
use super::negotiate::{representation, Representation};
use super::query::{DryRun, NoParams, StrictQuery};
use super::table::IncludeObject;
use super::watch::{watch_response, WatchFilter, WatchOptions};
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

/// Query of list and get, with the list options Kubernetes clients send.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// Only objects whose labels match, e.g. `app=web,tier!=cache`.
    pub label_selector: Option<String>,
    /// Only objects whose fields match: `metadata.name=web`,
    /// `metadata.namespace!=test`.
    pub field_selector: Option<String>,
    /// Stream changes instead of answering once: the Kubernetes JSON event
    /// stream, or Server-Sent Events with `Accept: text/event-stream`.
    #[serde(default)]
    pub watch: bool,
    /// With `watch`: send the changes after this version (absent or `0`:
    /// the current objects as ADDED first). `Last-Event-ID` does the same.
    pub resource_version: Option<String>,
    /// With `resourceVersion` on a list: `NotOlderThan` (served at the
    /// newest version) or `Exact` (only the newest version can be served).
    pub resource_version_match: Option<ResourceVersionMatch>,
    /// At most this many objects; `metadata.continue` then reads the next page.
    pub limit: Option<u64>,
    /// The token of the previous page.
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    /// With `watch`: end the watch after this many seconds.
    pub timeout_seconds: Option<u64>,
    /// With `watch`: send BOOKMARK events.
    #[serde(default)]
    pub allow_watch_bookmarks: bool,
    /// With `watch`: send the current objects first, then a BOOKMARK
    /// annotated `k8s.io/initial-events-end`.
    pub send_initial_events: Option<bool>,
    /// With a Table (`Accept: ...;as=Table`): `None`, `Metadata` (default) or `Object`.
    pub include_object: Option<IncludeObject>,
}

/// `resourceVersionMatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ResourceVersionMatch {
    /// At least that version.
    NotOlderThan,
    /// Exactly that version.
    Exact,
}

impl ReadQuery {
    fn version(&self) -> ApiResult<Option<u64>> {
        match self.resource_version.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                let shown: String = text.chars().take(40).collect();
                ApiError::bad_request(format!(
                    "resourceVersion `{shown}` is not a version berth gave out; use the one a list or get answered"
                ))
            }),
        }
    }
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
    /// Who writes (kubectl sends `kubectl-edit`, `kubectl-client-side-apply`, …).
    pub field_manager: Option<String>,
    /// `Strict`, `Warn` or `Ignore`. berth validates strictly whatever is
    /// asked: a field it does not know is always an error, never dropped.
    pub field_validation: Option<FieldValidation>,
    /// DELETE: `Background` or `Foreground` (the same here: a berth object
    /// has no dependent objects); `Orphan` is refused.
    pub propagation_policy: Option<String>,
    /// DELETE: accepted; replicas always get their stop timeout.
    pub grace_period_seconds: Option<i64>,
}

impl WriteQuery {
    /// Checks what berth accepts without acting on it: `fieldManager` (kept
    /// to Kubernetes' 128 printable characters), `fieldValidation` (always
    /// strict here) and `gracePeriodSeconds`.
    fn check(&self) -> ApiResult<()> {
        if let Some(manager) = &self.field_manager {
            if manager.len() > 128 || manager.chars().any(char::is_control) {
                return Err(ApiError::bad_request("fieldManager must be at most 128 printable characters"));
            }
        }
        let _accepted = (self.field_validation, self.grace_period_seconds);
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

/// The body kubectl sends with a DELETE (`meta/v1 DeleteOptions`).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeleteOptions {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    propagation_policy: Option<String>,
    #[serde(default)]
    grace_period_seconds: Option<i64>,
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
    let _ = (&options.kind, &options.api_version, options.grace_period_seconds);
    let orphan = options.orphan_dependents == Some(true) || options.propagation_policy.as_deref() == Some("Orphan");
    if orphan {
        return Err(orphan_refused());
    }
    if options.dry_run.iter().any(|d| d != "All") {
        return Err(ApiError::bad_request("DeleteOptions.dryRun takes only `All`"));
    }
    Ok(options)
}

fn orphan_refused() -> ApiError {
    ApiError::bad_request(
        "propagationPolicy Orphan is not supported: deleting a berth object always removes the engine objects it \
         made; use Background (the default) or Foreground",
    )
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

/// The fields a `fieldSelector` on berth's objects may name.
const OBJECT_FIELDS: [&str; 2] = ["metadata.name", "metadata.namespace"];

fn field_selector(query: &ReadQuery) -> ApiResult<FieldSelector> {
    FieldSelector::parse(query.field_selector.as_deref().unwrap_or(""), &OBJECT_FIELDS)
}

fn field_of(object: &AnyObject, field: &str) -> String {
    match field {
        "metadata.name" => object.metadata().name.clone(),
        _ => object.metadata().namespace().to_string(),
    }
}

fn watch(
    state: &AppState,
    filter: WatchFilter,
    query: &ReadQuery,
    headers: &HeaderMap,
    representation: Representation,
) -> ApiResult<Response> {
    let options = WatchOptions {
        from: query.version()?.or_else(|| last_event_id(headers)),
        representation,
        include: query.include_object.unwrap_or_default(),
        bookmarks: query.allow_watch_bookmarks,
        initial_events_end: query.send_initial_events == Some(true),
        timeout: query.timeout_seconds.map(std::time::Duration::from_secs),
    };
    watch_response(state, filter, options)
}

fn list(
    state: &AppState,
    kind: Kind,
    namespace: Option<&str>,
    query: ReadQuery,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let selector = selector(&query)?;
    let fields = field_selector(&query)?;
    let representation = representation(headers)?;
    if query.watch {
        // A field selector on the name is a watch of one object
        // (`kubectl get ctr web -w`); on the namespace, of one namespace.
        let namespace = namespace.or(fields.required("metadata.namespace")).map(str::to_string);
        let name = fields.required("metadata.name").map(str::to_string);
        let filter = WatchFilter { kind: Some(kind), namespace, name, selector };
        return watch(state, filter, &query, headers, representation);
    }
    let resource_version = state.store.resource_version();
    if let (Some(ResourceVersionMatch::Exact), Some(asked)) = (query.resource_version_match, query.version()?) {
        if asked != resource_version {
            return Err(ApiError::new(
                StatusCode::GONE,
                format!(
                    "berth serves lists only at its newest resourceVersion ({resource_version}), not at {asked}; \
                     list without resourceVersionMatch=Exact"
                ),
            )
            .with_reason("Expired"));
        }
    }
    let after = query.continue_token.as_deref().map(Position::parse).transpose()?;
    let items: Vec<AnyObject> = state
        .store
        .list(Some(kind), namespace)?
        .into_iter()
        .filter(|o| selector.matches(&o.metadata().labels) && fields.matches(|f| field_of(o, f)))
        .collect();
    let key = |o: &AnyObject| (o.metadata().namespace().to_string(), o.metadata().name.clone());
    let (items, next, remaining) = page(items, key, after.as_ref(), query.limit);
    if let Representation::Table(version) = representation {
        let include = query.include_object.unwrap_or_default();
        let mut table = super::table::table(version, kind, &items, Some(resource_version), include);
        if let Some(next) = &next {
            table["metadata"]["continue"] = next.token().into();
            table["metadata"]["remainingItemCount"] = remaining.into();
        }
        return Ok(Json(table).into_response());
    }
    let list = ObjectList {
        api_version: API_VERSION.to_string(),
        kind: format!("{kind}List"),
        metadata: ListMeta {
            resource_version,
            continue_token: next.map(|p| p.token()),
            remaining_item_count: remaining,
        },
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
    let representation = representation(&headers)?;
    if query.watch {
        let filter = WatchFilter {
            kind: Some(key.kind),
            namespace: Some(key.namespace.clone()),
            name: Some(key.name.clone()),
            selector: selector(&query)?,
        };
        return watch(&state, filter, &query, &headers, representation);
    }
    let object = stored(&state, &key)?;
    if let Representation::Table(version) = representation {
        let include = query.include_object.unwrap_or_default();
        let version_now = object.metadata().resource_version;
        return Ok(Json(super::table::table(version, key.kind, &[object], version_now, include)).into_response());
    }
    Ok(Json(object).into_response())
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
    query.check()?;
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
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let key = object_key(&path)?;
    query.check()?;
    let options = delete_options(&body)?;
    match query.propagation_policy.as_deref() {
        None | Some("Background" | "Foreground") => {}
        Some("Orphan") => return Err(orphan_refused()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy `{other}` is not one of Background, Foreground"
            )))
        }
    }
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
    let event = crate::store::Event::about(&key, "deleted", "ApiDelete", "deletion requested through the API");
    let batch = WriteBatch::new()
        .op(WriteOp::Delete { key: key.clone(), precondition, source: Some(Source::api()), force: query.force })
        .event(event);
    if dry_run {
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
