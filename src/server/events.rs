//! `GET /events`: the audit log (what berth did, to what, and why), as one
//! JSON page or, with `follow=true`, as Server-Sent Events that continue
//! with each new entry. Each entry's SSE id is its sequence number, so a
//! follower that reconnects with `after=` (or `Last-Event-ID`) misses none.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream::{self, StreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::ObjectKey;
use crate::store::Event;

use super::error::{ApiError, ApiResult};
use super::query::StrictQuery;
use super::watch::sse;
use super::AppState;

/// Entries returned per page (and per read while following).
const PAGE: usize = 500;

/// Query of `/events`.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only entries about this object, `Kind/namespace/name`.
    pub object: Option<String>,
    /// Entries after this sequence number.
    #[serde(default)]
    pub after: u64,
    /// At most this many entries (default and maximum 500), without `follow`.
    pub limit: Option<usize>,
    /// Keep the response open and stream new entries as Server-Sent Events.
    #[serde(default)]
    pub follow: bool,
}

/// A page of the log.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct EventList {
    /// The entries, oldest first.
    pub items: Vec<EventEntry>,
}

/// One entry, as the API shows it.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventEntry {
    /// Position in the log.
    pub seq: u64,
    /// When (RFC 3339).
    pub time: String,
    /// `Kind/namespace/name`, if about an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// What was done.
    pub action: String,
    /// Why.
    pub reason: String,
    /// Details.
    pub message: String,
}

impl From<Event> for EventEntry {
    fn from(e: Event) -> Self {
        EventEntry {
            seq: e.seq,
            time: e.time.to_rfc3339(),
            object: e.object,
            action: e.action,
            reason: e.reason,
            message: e.message,
        }
    }
}

/// Reads or follows the event log.
pub async fn events(
    State(state): State<AppState>,
    StrictQuery(query): StrictQuery<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let object = match &query.object {
        Some(text) => Some(ObjectKey::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("object `{text}` is not `Kind/namespace/name`, e.g. `Container/default/web`"))
        })?),
        None => None,
    };
    let resumed = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let after = resumed.unwrap_or(query.after);
    let store = state.store.clone();
    if !query.follow {
        let limit = query.limit.unwrap_or(PAGE).min(PAGE);
        let items = store.events(object.as_ref(), after, limit)?.into_iter().map(EventEntry::from).collect();
        return Ok(Json(EventList { items }).into_response());
    }
    let changed = store.watch_events();
    let follow = stream::unfold((store, changed, object, after), |(store, mut changed, object, after)| async move {
        loop {
            // Mark the newest sequence seen before reading, so an entry
            // appended during the read wakes the next wait.
            changed.borrow_and_update();
            match store.events(object.as_ref(), after, PAGE) {
                Ok(page) if !page.is_empty() => {
                    let next = page.last().map_or(after, |e| e.seq);
                    let events: Vec<SseEvent> = page.into_iter().map(to_sse).collect();
                    return Some((stream::iter(events), (store, changed, object, next)));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("event log follower stopped: {e}");
                    return None;
                }
            }
            if changed.changed().await.is_err() {
                return None;
            }
        }
    });
    Ok(sse(follow.flatten().map(Ok::<SseEvent, Infallible>)))
}

fn to_sse(event: Event) -> SseEvent {
    let seq = event.seq;
    let entry = EventEntry::from(event);
    SseEvent::default().id(seq.to_string()).event("event").data(serde_json::to_string(&entry).unwrap_or_default())
}
