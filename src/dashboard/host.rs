//! The pages about the host as a whole rather than one object: apply a
//! manifest, the sources with their errors (and "sync now"), DNS records
//! and the route table.
//!
//! The apply page and the DNS and routes page read the REST API from the
//! browser (`/apply?dryRun=true`, then `/apply`; the DnsRecord and Route
//! watches). Source records are not objects, so they have a stream of
//! their own here: [`sources_stream`] sends the list whenever the store
//! writes a source record.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde::Deserialize;

use crate::api::{AnyObject, ObjectKey};
use crate::server::{AppState, SourceStatus};
use crate::store::Store;

use super::{host_pages, html};

/// Writes closer together than this are sent as one list.
const SETTLE: Duration = Duration::from_millis(200);

/// `?from=Kind/namespace/name`: start from that object's manifest.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApplyQuery {
    from: Option<String>,
}

/// `GET /ui/apply`.
pub(super) async fn apply(State(state): State<AppState>, Query(query): Query<ApplyQuery>) -> Response {
    let text = match query.from.as_deref() {
        None => String::new(),
        Some(from) => match ObjectKey::parse(from).map(|key| state.store.get(&key)) {
            Some(Ok(Some(object))) => manifest_of(&object),
            _ => format!("# {from} is not in the store\n"),
        },
    };
    html(StatusCode::OK, host_pages::apply(&text))
}

/// The manifest a person would write for `object`: its name, namespace,
/// labels, its own annotations and spec; nothing the server sets.
fn manifest_of(object: &AnyObject) -> String {
    let mut json = object.to_json();
    if let Some(meta) = json["metadata"].as_object_mut() {
        meta.retain(|k, _| ["name", "namespace", "labels", "annotations"].contains(&k.as_str()));
        if let Some(annotations) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
            annotations.retain(|k, _| !crate::api::overrides::is_reserved(k));
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if let Some(object) = json.as_object_mut() {
        object.remove("status");
    }
    serde_yaml::to_string(&json).unwrap_or_default()
}

/// `GET /ui/sources`.
pub(super) async fn sources() -> Response {
    html(StatusCode::OK, host_pages::sources())
}

fn source_list(store: &Store) -> Event {
    let list = match store.sources() {
        Ok(records) => {
            let mut items: Vec<SourceStatus> = records.into_iter().map(SourceStatus::from).collect();
            items.sort_by(|a, b| a.id.cmp(&b.id));
            items
        }
        Err(error) => return Event::default().event("problem").data(format!("cannot read the sources: {error}")),
    };
    Event::default().event("sources").data(serde_json::to_string(&list).unwrap_or_default())
}

/// `GET /ui/sources/stream`: the sources, then again after each write.
pub(super) async fn sources_stream(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let mut written = store.watch_sources();
    written.mark_unchanged();
    let first = source_list(&store);
    let follow = stream::unfold((store, written), |(store, mut written)| async move {
        written.changed().await.ok()?;
        tokio::time::sleep(SETTLE).await;
        written.mark_unchanged();
        Some((source_list(&store), (store, written)))
    });
    let events = stream::once(async { first }).chain(follow).map(Ok::<Event, Infallible>);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// `GET /ui/network`.
pub(super) async fn network() -> Response {
    html(StatusCode::OK, host_pages::network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_objects_manifest_has_nothing_the_server_sets() {
        let yaml = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\n  annotations:\n    \
                    team: a\n    berth.dev/suspended: since now\nspec:\n  image: busybox\n";
        let mut object: AnyObject = serde_yaml::from_str(yaml).unwrap();
        object.metadata_mut().uid = Some("u".into());
        object.metadata_mut().resource_version = Some(9);
        let text = manifest_of(&object);
        assert!(text.contains("team: a") && text.contains("image: busybox"), "{text}");
        for server_set in ["uid", "resourceVersion", "berth.dev/suspended", "status"] {
            assert!(!text.contains(server_set), "{server_set} in {text}");
        }
    }
}
