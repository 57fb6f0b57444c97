//! berth's event log as Kubernetes core/v1 `Event`s, under `/api/v1`, so
//! `kubectl describe container web` shows what berth did to it and why, and
//! `kubectl get events` lists the log. Read-only: berth writes its log
//! itself.
//!
//! `describe` lists `/api/v1/namespaces/{namespace}/events` with a field
//! selector on `involvedObject` (name, namespace, kind, uid): that reads the
//! log's by-object index, newest entries first, so it costs the object's
//! events, not the whole log. Other lists read the newest entries of the
//! log. An entry's `type` is `Warning` when it reports a failure.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{Kind, ObjectKey, API_VERSION};
use crate::store::Event;

use super::error::{ApiError, ApiResult};
use super::list_options::FieldSelector;
use super::objects::{checked_name, label_selector};
use super::query::{NoParams, StrictQuery};
use super::AppState;

/// Events answered by a list: Kubernetes' own page size, and the most a
/// list reads.
const MAX_EVENTS: usize = 500;

/// The fields a `fieldSelector` on events may name.
const EVENT_FIELDS: [&str; 8] = [
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "metadata.namespace",
    "reason",
    "type",
];

/// `GET /api`: the core group's one version.
pub async fn versions(_: StrictQuery<NoParams>) -> Response {
    Json(json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [] })).into_response()
}

/// `GET /api/v1`: of the core group, berth serves events.
pub async fn resources(_: StrictQuery<NoParams>) -> Response {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": [{
            "name": "events",
            "singularName": "event",
            "namespaced": true,
            "kind": "Event",
            "verbs": ["get", "list"],
            "shortNames": ["ev"],
        }],
    }))
    .into_response()
}

/// Query of an event list.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventListQuery {
    /// `involvedObject.name=web,involvedObject.kind=Container`, `type=Warning`, …
    pub field_selector: Option<String>,
    /// Events carry no labels: only an empty selector matches.
    pub label_selector: Option<String>,
    /// At most this many (and at most 500), the newest.
    pub limit: Option<usize>,
    /// Accepted: events are always read at the newest version.
    #[serde(rename = "resourceVersion")]
    pub _resource_version: Option<String>,
    /// Refused: follow the log with `GET /events?follow=true` instead.
    #[serde(default)]
    pub watch: bool,
}

/// `/api/v1/namespaces/{namespace}/events`.
#[derive(Deserialize, JsonSchema)]
pub struct EventsPath {
    /// The namespace.
    pub namespace: String,
}

fn is_warning(event: &Event) -> bool {
    let text = format!("{} {}", event.action, event.reason).to_ascii_lowercase();
    ["fail", "error", "reject", "crash", "unhealthy", "backoff"].iter().any(|w| text.contains(w))
}

/// One entry as a core/v1 Event about `key`, whose current uid is `uid`.
fn core_event(event: &Event, key: Option<&ObjectKey>, uid: Option<&str>) -> Value {
    let (namespace, involved) = match key {
        Some(key) => (
            key.namespace.clone(),
            json!({
                "apiVersion": API_VERSION,
                "kind": key.kind.as_str(),
                "namespace": key.namespace,
                "name": key.name,
                "uid": uid.unwrap_or(""),
            }),
        ),
        None => (crate::api::meta::DEFAULT_NAMESPACE.to_string(), json!({})),
    };
    let subject = key.map_or("berth", |k| k.name.as_str());
    let time = event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "metadata": {
            "name": format!("{subject}.{:016x}", event.seq),
            "namespace": namespace,
            "uid": format!("berth-event-{}", event.seq),
            "resourceVersion": event.seq.to_string(),
            "creationTimestamp": time,
        },
        "involvedObject": involved,
        "reason": event.reason,
        "message": if event.message.is_empty() { event.action.clone() } else { event.message.clone() },
        "source": { "component": "berth" },
        "firstTimestamp": time,
        "lastTimestamp": time,
        "count": 1,
        "type": if is_warning(event) { "Warning" } else { "Normal" },
        "action": event.action,
        "reportingComponent": "berth",
        "reportingInstance": "",
    })
}

fn field_of(event: &Value, field: &str) -> String {
    let pointer = format!("/{}", field.replace('.', "/"));
    let pointer = if field == "metadata.namespace" { "/metadata/namespace".to_string() } else { pointer };
    event.pointer(&pointer).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The Table `kubectl get events` shows: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.
fn event_table(version: &str, items: &[Value], resource_version: u64) -> Value {
    let column = |name: &str, kind: &str, format: &str| json!({ "name": name, "type": kind, "format": format, "description": name, "priority": 0 });
    let rows: Vec<Value> = items
        .iter()
        .map(|event| {
            let seen = event["lastTimestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(String::new, |t| crate::api::columns::age(Some(t.with_timezone(&chrono::Utc))));
            let involved = &event["involvedObject"];
            let object = match involved["kind"].as_str() {
                Some(kind) => format!("{}/{}", kind.to_ascii_lowercase(), involved["name"].as_str().unwrap_or("")),
                None => String::new(),
            };
            json!({
                "cells": [seen, event["type"], event["reason"], object, event["message"]],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": format!("meta.k8s.io/{version}"),
                    "metadata": event["metadata"],
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": { "resourceVersion": resource_version.to_string() },
        "columnDefinitions": [
            column("Last Seen", "string", ""),
            column("Type", "string", ""),
            column("Reason", "string", ""),
            column("Object", "string", ""),
            column("Message", "string", ""),
        ],
        "rows": rows,
    })
}

fn list(
    state: &AppState,
    namespace: Option<&str>,
    query: EventListQuery,
    headers: &axum::http::HeaderMap,
) -> ApiResult<Response> {
    let representation = super::negotiate::representation(headers)?;
    if query.watch {
        return Err(ApiError::bad_request(
            "berth does not watch core/v1 events; follow its event log with `berth events --follow` \
             (GET /events?follow=true)",
        ));
    }
    let fields = FieldSelector::parse(query.field_selector.as_deref().unwrap_or(""), &EVENT_FIELDS)?;
    // Events carry no labels: a selector either matches every one or none.
    let labels_match = label_selector(query.label_selector.as_deref())?.matches(&Default::default());
    let limit = query.limit.unwrap_or(MAX_EVENTS).clamp(1, MAX_EVENTS);
    let namespace = namespace.or(fields.required("involvedObject.namespace"));
    // An object named in full reads its own index.
    let object = match (fields.required("involvedObject.kind"), namespace, fields.required("involvedObject.name")) {
        (Some(kind), Some(namespace), Some(name)) => match kind.parse::<Kind>() {
            Ok(kind) => Some(ObjectKey::new(kind, namespace, name)),
            Err(_) => None,
        },
        _ => None,
    };
    let mut uids = std::collections::BTreeMap::new();
    let mut items = Vec::new();
    for event in state.store.latest_events(object.as_ref(), limit)? {
        let key = event.object.as_deref().and_then(ObjectKey::parse);
        let uid = match &key {
            Some(key) => uids
                .entry(key.clone())
                .or_insert_with(|| state.store.get(key).ok().flatten().and_then(|o| o.metadata().uid.clone()))
                .clone(),
            None => None,
        };
        let core = core_event(&event, key.as_ref(), uid.as_deref());
        let in_namespace = namespace.is_none_or(|ns| core["metadata"]["namespace"] == ns);
        if in_namespace && labels_match && fields.matches(|f| field_of(&core, f)) {
            items.push(core);
        }
    }
    let resource_version = state.store.resource_version();
    if let super::negotiate::Representation::Table(version) = representation {
        return Ok(Json(event_table(version, &items, resource_version)).into_response());
    }
    Ok(Json(json!({
        "kind": "EventList",
        "apiVersion": "v1",
        "metadata": { "resourceVersion": resource_version.to_string() },
        "items": items,
    }))
    .into_response())
}

/// `GET /api/v1/namespaces/{namespace}/events`.
pub async fn list_namespaced(
    State(state): State<AppState>,
    Path(path): Path<EventsPath>,
    StrictQuery(query): StrictQuery<EventListQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    checked_name("namespace", &path.namespace)?;
    list(&state, Some(&path.namespace), query, &headers)
}

/// `GET /api/v1/events`.
pub async fn list_all(
    State(state): State<AppState>,
    StrictQuery(query): StrictQuery<EventListQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    list(&state, None, query, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_warnings_and_the_object_is_involved() {
        let key = ObjectKey::new(Kind::Container, "default", "web");
        let mut event = Event::about(&key, "build-failed", "BuildFailed", "RUN false: exit 1");
        event.seq = 42;
        let core = core_event(&event, Some(&key), Some("u-1"));
        assert_eq!(core["type"], "Warning");
        assert_eq!(core["involvedObject"]["uid"], "u-1");
        assert_eq!(field_of(&core, "involvedObject.kind"), "Container");
        assert_eq!(core["metadata"]["name"], "web.000000000000002a");
        let created = Event::about(&key, "created", "ReplicaMissing", "replica 0 created");
        assert_eq!(core_event(&created, Some(&key), None)["type"], "Normal");
    }
}
