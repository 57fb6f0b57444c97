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
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::api::validation::check_dns_label;
use crate::api::{AnyObject, Kind, ListMeta, ObjectKey, Selector, API_VERSION};
use crate::store::Cached;

use super::error::{ApiError, ApiResult};
use super::list_options::{page, FieldSelector, Position};
use super::negotiate::{representation, Representation};
use super::query::{NoParams, StrictQuery};
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
    label_selector(query.label_selector.as_deref())
}

/// A `labelSelector` (absent: everything), or 400 saying what is wrong.
pub(super) fn label_selector(text: Option<&str>) -> ApiResult<Selector> {
    text.unwrap_or("").parse().map_err(|e: crate::api::selector::SelectorError| ApiError::bad_request(e.to_string()))
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
    let items: Vec<Arc<Cached>> = state
        .store
        .list_shared(Some(kind), namespace)?
        .into_iter()
        .filter(|c| selector.matches(&c.object().metadata().labels) && fields.matches(|f| field_of(c.object(), f)))
        .collect();
    let key = |c: &Arc<Cached>| (c.object().metadata().namespace().to_string(), c.object().metadata().name.clone());
    let (items, next, remaining) = page(items, key, after.as_ref(), query.limit);
    if let Representation::Table(version) = representation {
        let include = query.include_object.unwrap_or_default();
        let objects: Vec<AnyObject> = items.iter().map(|c| c.object().clone()).collect();
        let mut table = super::table::table(version, kind, &objects, Some(resource_version), include);
        if let Some(next) = &next {
            table["metadata"]["continue"] = next.token().into();
            table["metadata"]["remainingItemCount"] = remaining.into();
        }
        return Ok(Json(table).into_response());
    }
    // The items as the cache keeps them encoded: a list of objects that
    // did not change since the last list encodes nothing again.
    let list = EncodedList {
        api_version: API_VERSION,
        kind: format!("{kind}List"),
        metadata: ListMeta {
            resource_version,
            continue_token: next.map(|p| p.token()),
            remaining_item_count: remaining,
        },
        items: items.iter().map(|c| c.json()).collect(),
    };
    Ok(Json(list).into_response())
}

/// An [`ObjectList`](crate::api::ObjectList), the same on the wire, of
/// objects already encoded.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EncodedList<'a> {
    api_version: &'static str,
    kind: String,
    metadata: ListMeta,
    items: Vec<&'a RawValue>,
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

pub(super) fn stored(state: &AppState, key: &ObjectKey) -> ApiResult<AnyObject> {
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
