//! Watches, as kube-apiserver serves them: by default the Kubernetes JSON
//! event stream (one `{"type","object"}` per line, what kubectl, client-go
//! and the Python client read), a `Table` per event when kubectl asks for
//! tables (`kubectl get -w`), or Server-Sent Events when the client accepts
//! `text/event-stream` (browsers, berth's CLI), each with `id:` its
//! resourceVersion so a reconnect with `Last-Event-ID` misses nothing.
//!
//! Without a version (or with `resourceVersion=0`, Kubernetes' "any") the
//! current objects come first as `ADDED`, then the changes; after a version,
//! exactly what changed since. An object that stops matching the selector
//! is sent as `DELETED`, and a `DELETED` carries the deletion's version.
//! `allowWatchBookmarks` adds a `BOOKMARK` every [`BOOKMARK_EVERY`] (and
//! after the initial objects with `sendInitialEvents`). A watcher too slow
//! for the store's change channel, or resuming from a version older than
//! the history kept, gets an `ERROR` event holding a 410 `Expired` Status
//! and must list again. `timeoutSeconds` ends the watch.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{AnyObject, Kind, ObjectKey, Selector};
use crate::store::{Change, ChangeType, StoreError};

use super::error::ApiResult;
use super::negotiate::Representation;
use super::table::{table, IncludeObject};
use super::AppState;

/// How often a watch that allows bookmarks gets one (kube-apiserver sends
/// one about every minute; more often here, as it also keeps idle
/// connections through proxies alive).
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

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

/// How a watch was asked for.
pub struct WatchOptions {
    /// After this version; `None` (or 0) starts with the current objects.
    pub from: Option<u64>,
    /// The answer's form.
    pub representation: Representation,
    /// With a Table: what each row carries.
    pub include: IncludeObject,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`: a bookmark marks the end of the initial objects.
    pub initial_events_end: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
}

/// One event of a watch.
struct WatchEvent {
    kind: &'static str,
    version: u64,
    object: Value,
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
    /// Every change up to this version has been decided: what a bookmark
    /// may promise.
    seen: u64,
}

impl Watcher {
    fn event(&mut self, change: &Change, initial: bool) -> Option<WatchEvent> {
        if !initial {
            self.seen = self.seen.max(change.resource_version);
        }
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
        let mut object = change.object.clone();
        if kind == "DELETED" {
            // The object as it was, at the version of its removal.
            object.metadata_mut().resource_version = Some(change.resource_version);
        }
        Some(WatchEvent { kind, version: change.resource_version, object: json!(object) })
    }

    fn bookmark(&self, initial_events_end: bool) -> WatchEvent {
        let kind = self.filter.kind.map_or("List", Kind::as_str);
        let mut metadata = json!({ "resourceVersion": self.seen.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = json!({ "kind": kind, "apiVersion": crate::api::API_VERSION, "metadata": metadata });
        WatchEvent { kind: "BOOKMARK", version: self.seen, object }
    }
}

fn expired(message: String) -> WatchEvent {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Expired", "code": 410,
    });
    WatchEvent { kind: "ERROR", version: 0, object: status }
}

/// The events before the live ones: the changes since `from`, or the
/// current objects; and the receiver of what follows.
fn first_events(
    state: &AppState,
    watcher: &mut Watcher,
    from: Option<u64>,
) -> ApiResult<(Vec<WatchEvent>, Option<tokio::sync::broadcast::Receiver<Change>>)> {
    let store = &state.store;
    match from {
        Some(version) => match store.changes_since(version) {
            Ok((changes, receiver)) => {
                watcher.seen = version;
                let events = changes.iter().filter_map(|c| watcher.event(c, false)).collect();
                Ok((events, Some(receiver)))
            }
            Err(StoreError::Expired { requested, kept_from }) => {
                let message = format!(
                    "resourceVersion {requested} is older than the history berth keeps (from {kept_from}); \
                     list again and watch from the list's resourceVersion"
                );
                Ok((vec![expired(message)], None))
            }
            Err(e) => Err(e.into()),
        },
        None => {
            // The version first, then subscribe, then list: a change
            // committed meanwhile is both listed and received, and the
            // duplicate is skipped by version.
            watcher.seen = store.resource_version();
            let receiver = store.watch();
            let mut events = Vec::new();
            for object in store.list(watcher.filter.kind, watcher.filter.namespace.as_deref())? {
                let version = object.metadata().resource_version.unwrap_or(0);
                let change =
                    Change { resource_version: version, change: ChangeType::Added, object, status_only: false };
                events.extend(watcher.event(&change, true));
            }
            Ok((events, Some(receiver)))
        }
    }
}

/// Answers a watch request.
pub fn watch_response(state: &AppState, filter: WatchFilter, options: WatchOptions) -> ApiResult<Response> {
    let from = options.from.filter(|v| *v > 0);
    let mut watcher = Watcher { filter, shown: HashSet::new(), sent: HashMap::new(), resumed: from.is_some(), seen: 0 };
    let (mut first, receiver) = first_events(state, &mut watcher, from)?;
    if options.initial_events_end && options.bookmarks && receiver.is_some() {
        first.push(watcher.bookmark(true));
    }
    let live: BoxStream<'static, WatchEvent> = match receiver {
        None => stream::empty().boxed(),
        Some(receiver) => live_events(receiver, watcher, options.bookmarks).boxed(),
    };
    let mut events = stream::iter(first).chain(live).boxed();
    if let Some(timeout) = options.timeout {
        events = events.take_until(tokio::time::sleep(timeout)).boxed();
    }
    let kind = options.representation;
    Ok(match kind {
        Representation::EventStream => sse(events.map(|e| Ok(sse_event(e)))),
        Representation::Json | Representation::Table(_) => {
            let include = options.include;
            let lines = events.map(move |event| {
                let object = match kind {
                    Representation::Table(version) if matches!(event.kind, "ADDED" | "MODIFIED" | "DELETED") => {
                        as_table(version, event.object, include)
                    }
                    _ => event.object,
                };
                let mut line = json!({ "type": event.kind, "object": object }).to_string();
                line.push('\n');
                Ok::<Bytes, Infallible>(Bytes::from(line))
            });
            ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(lines)).into_response()
        }
    })
}

/// A one-row Table of an event's object.
fn as_table(version: &'static str, object: Value, include: IncludeObject) -> Value {
    match AnyObject::from_json(object.clone()) {
        Ok(parsed) => table(version, parsed.kind(), &[parsed], None, include),
        Err(_) => object,
    }
}

/// The changes as they are committed, and bookmarks when allowed.
fn live_events(
    receiver: tokio::sync::broadcast::Receiver<Change>,
    watcher: Watcher,
    bookmarks: bool,
) -> impl Stream<Item = WatchEvent> + Send + 'static {
    let ticks = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
    stream::unfold((receiver, watcher, ticks, false), move |(mut receiver, mut watcher, mut ticks, ended)| async move {
        if ended {
            return None;
        }
        loop {
            // Cancel-safe: `recv` loses nothing when the tick wins.
            let received = tokio::select! {
                received = receiver.recv() => received,
                _ = ticks.tick(), if bookmarks => {
                    let bookmark = watcher.bookmark(false);
                    return Some((bookmark, (receiver, watcher, ticks, false)));
                }
            };
            match received {
                Ok(change) => {
                    if let Some(event) = watcher.event(&change, false) {
                        return Some((event, (receiver, watcher, ticks, false)));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let message = format!(
                        "this watch fell {missed} changes behind; list again and watch from the list's resourceVersion"
                    );
                    return Some((expired(message), (receiver, watcher, ticks, true)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// The SSE event of a watch event.
fn sse_event(event: WatchEvent) -> Event {
    let data = json!({ "type": event.kind, "object": event.object }).to_string();
    let sse = Event::default().event(event.kind).data(data);
    if event.kind == "ERROR" {
        sse
    } else {
        sse.id(event.version.to_string())
    }
}

/// An SSE response with keep-alive comments, so proxies and clients notice
/// a dead connection.
pub(super) fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
