//! `GET /ui/stream`: every object as a table row, then each change, as
//! Server-Sent Events: `row` (an object added or changed, as [`Row`]),
//! `gone` (its key) and `reset` (the stream fell behind the store: drop
//! every row, the current ones follow). One connection for every kind.
//!
//! The subscription opens before the listing, so nothing committed in
//! between is missed; a row sent twice replaces itself.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::api::{columns, AnyObject};
use crate::server::AppState;
use crate::store::{ChangeType, Store};

/// One object, as the overview shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Row {
    key: String,
    namespace: String,
    kind: String,
    plural: &'static str,
    name: String,
    ready: bool,
    status: String,
    reason: String,
    message: String,
    /// `ready/declared`, for Containers.
    replicas: Option<String>,
    source: String,
    created: Option<String>,
    labels: BTreeMap<String, String>,
}

impl Row {
    fn of(object: &AnyObject) -> Row {
        let meta = object.metadata();
        let readiness = columns::readiness(object);
        Row {
            key: object.key().to_string(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            kind: object.kind().to_string(),
            plural: object.kind().plural(),
            name: meta.name.clone(),
            ready: readiness.ready,
            status: readiness.status,
            reason: readiness.reason,
            message: readiness.message,
            replicas: columns::replicas(object),
            source: meta.source.as_ref().map_or("-".into(), |s| s.id()),
            created: meta.creation_timestamp.map(|t| t.to_rfc3339()),
            labels: meta.labels.clone(),
        }
    }
}

fn row_event(object: &AnyObject) -> Event {
    Event::default().event("row").data(serde_json::to_string(&Row::of(object)).unwrap_or_default())
}

/// Every current object as a row.
fn snapshot(store: &Store) -> Vec<Event> {
    match store.list(None, None) {
        Ok(objects) => objects.iter().map(row_event).collect(),
        Err(error) => {
            tracing::warn!("dashboard stream: cannot list the store: {error}");
            Vec::new()
        }
    }
}

fn rows_of(store: Store) -> impl Stream<Item = Event> {
    let changes = store.watch();
    let first = snapshot(&store);
    let follow = stream::unfold((store, changes), |(store, mut changes)| async move {
        let events = match changes.recv().await {
            Ok(change) if change.change == ChangeType::Deleted => {
                vec![Event::default().event("gone").data(change.object.key().to_string())]
            }
            Ok(change) => vec![row_event(&change.object)],
            Err(RecvError::Lagged(_)) => {
                let mut events = vec![Event::default().event("reset").data("")];
                events.extend(snapshot(&store));
                events
            }
            Err(RecvError::Closed) => return None,
        };
        Some((stream::iter(events), (store, changes)))
    });
    stream::iter(first).chain(follow.flatten())
}

/// The handler.
pub(super) async fn rows(State(state): State<AppState>) -> Response {
    let events = rows_of(state.store.clone()).map(Ok::<Event, Infallible>);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
