//! Watches as Server-Sent Events: one event per change, its SSE id the
//! resourceVersion, so a client that reconnects with `?resourceVersion=` (or
//! the standard `Last-Event-ID` header) gets exactly what it missed.
//!
//! Without a version the current objects come first as `ADDED`, then the
//! changes. An object that stops matching the selector is sent as `DELETED`.
//! A watcher too slow for the store's change channel, or resuming from a
//! version older than the history kept, gets an `ERROR` event with code 410
//! and must list again, as with Kubernetes.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::api::{AnyObject, Kind, ObjectKey, Selector};
use crate::store::{Change, ChangeType};

use super::error::ApiResult;
use super::AppState;

/// What a watch selects.
pub struct WatchFilter {
    /// One kind, or all.
    pub kind: Option<Kind>,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// One object, or all.
    pub name: Option<String>,
    /// Labels to match.
    pub selector: Selector,
}

impl WatchFilter {
    fn matches(&self, object: &AnyObject) -> bool {
        let key = object.key();
        self.kind.is_none_or(|k| k == key.kind)
            && self.namespace.as_ref().is_none_or(|ns| *ns == key.namespace)
            && self.name.as_ref().is_none_or(|n| *n == key.name)
            && self.selector.matches(&object.metadata().labels)
    }
}

/// The SSE event of a change.
fn sse_event(kind: &str, resource_version: u64, object: &AnyObject) -> Event {
    let data = json!({ "type": kind, "object": object }).to_string();
    Event::default().id(resource_version.to_string()).event(kind).data(data)
}

fn gone(message: String) -> Event {
    let data = json!({ "type": "ERROR", "object": { "code": 410, "reason": "Expired", "message": message } });
    Event::default().event("ERROR").data(data.to_string())
}

/// Decides what a watcher sees of each change.
struct Watcher {
    filter: WatchFilter,
    /// Objects the client has been told about and not told are gone.
    shown: HashSet<ObjectKey>,
    /// The newest version sent per object: older duplicates are skipped.
    sent: HashMap<ObjectKey, u64>,
    /// Resumed from a version: the client may know objects this watch never
    /// sent, so their removal is news too.
    resumed: bool,
}

impl Watcher {
    fn event(&mut self, change: &Change, initial: bool) -> Option<Event> {
        let key = change.object.key();
        if self.sent.get(&key).is_some_and(|v| *v >= change.resource_version) {
            return None;
        }
        let matches = self.filter.matches(&change.object);
        let shown = self.shown.contains(&key);
        let kind = match change.change {
            ChangeType::Deleted if shown || (self.resumed && matches) => "DELETED",
            ChangeType::Deleted => return None,
            _ if matches && !shown && (initial || change.change == ChangeType::Added) => "ADDED",
            _ if matches => "MODIFIED",
            _ if shown => "DELETED",
            _ => return None,
        };
        if kind == "DELETED" {
            self.shown.remove(&key);
        } else {
            self.shown.insert(key.clone());
        }
        self.sent.insert(key, change.resource_version);
        Some(sse_event(kind, change.resource_version, &change.object))
    }
}

/// Answers a watch request.
pub fn watch_response(state: &AppState, filter: WatchFilter, from: Option<u64>) -> ApiResult<Response> {
    let store = &state.store;
    let mut watcher = Watcher { filter, shown: HashSet::new(), sent: HashMap::new(), resumed: from.is_some() };
    let (first, receiver) = match from {
        Some(version) => {
            let (changes, receiver) = store.changes_since(version)?;
            let events: Vec<Event> = changes.iter().filter_map(|c| watcher.event(c, false)).collect();
            (events, receiver)
        }
        None => {
            // Subscribe first: a change committed while listing is then both
            // listed and received, and the duplicate is skipped by version.
            let receiver = store.watch();
            let mut events = Vec::new();
            for object in store.list(watcher.filter.kind, watcher.filter.namespace.as_deref())? {
                let version = object.metadata().resource_version.unwrap_or(0);
                let change =
                    Change { resource_version: version, change: ChangeType::Added, object, status_only: false };
                events.extend(watcher.event(&change, true));
            }
            (events, receiver)
        }
    };
    let live = stream::unfold((receiver, watcher, false), |(mut receiver, mut watcher, ended)| async move {
        if ended {
            return None;
        }
        loop {
            match receiver.recv().await {
                Ok(change) => {
                    if let Some(event) = watcher.event(&change, false) {
                        return Some((event, (receiver, watcher, false)));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let message = format!(
                        "this watch fell {missed} changes behind; list again and watch from the list's resourceVersion"
                    );
                    return Some((gone(message), (receiver, watcher, true)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let events = stream::iter(first).chain(live).map(Ok::<Event, Infallible>);
    Ok(sse(events))
}

/// An SSE response with keep-alive comments, so proxies and clients notice
/// a dead connection.
pub(super) fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
