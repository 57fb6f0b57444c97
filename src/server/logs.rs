//! `GET .../containers/{name}/logs`: a replica's output, streamed as plain
//! text lines, following new output with `follow=true` until the replica
//! stops. The engine is asked by label, so the endpoint serves the replica
//! the Container owns now, whatever its generated name.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::api::Kind;
use crate::engine::labels;

use super::error::{ApiError, ApiResult};
use super::objects::{checked_name, ObjectPath};
use super::query::StrictQuery;
use super::AppState;

/// Query of the logs endpoint.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Keep streaming new lines until the replica stops.
    #[serde(default)]
    pub follow: bool,
    /// Which replica (default 0).
    #[serde(default)]
    pub replica: u32,
    /// Lines of history first (default 100).
    pub tail: Option<usize>,
}

/// `/namespaces/{namespace}/containers/{name}/logs`.
#[derive(Deserialize, JsonSchema)]
pub struct LogsPath {
    /// The namespace.
    pub namespace: String,
    /// `containers`: only Containers have logs.
    pub plural: String,
    /// The Container's name.
    pub name: String,
}

/// Streams a replica's logs.
pub async fn logs(
    State(state): State<AppState>,
    Path(path): Path<LogsPath>,
    StrictQuery(query): StrictQuery<LogsQuery>,
) -> ApiResult<Response> {
    checked_name("namespace", &path.namespace)?;
    checked_name("name", &path.name)?;
    if path.plural != Kind::Container.plural() {
        let kind = super::objects::kind_of(&path.plural)?;
        return Err(ApiError::not_found(format!("{kind} objects have no logs; only Containers do")));
    }
    let object = ObjectPath { namespace: path.namespace, plural: path.plural, name: path.name };
    let key = super::objects::object_key(&object)?;
    if state.store.get(&key)?.is_none() {
        return Err(ApiError::not_found(format!("{key} not found")));
    }
    let ctx = &state.engine.require()?.ctx;
    let engine = &ctx.engine;
    let replicas = engine.list_containers(&labels::owner_labels(&ctx.instance, &key)).await.map_err(|e| {
        ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("cannot ask the engine: {e}"))
    })?;
    let index = |c: &crate::engine::ContainerInfo| c.labels.get(labels::REPLICA).and_then(|r| r.parse::<u32>().ok());
    let Some(replica) = replicas.iter().find(|c| index(c) == Some(query.replica)) else {
        let mut have: Vec<String> = replicas.iter().filter_map(index).map(|i| i.to_string()).collect();
        have.sort();
        let have = if have.is_empty() { "none running".to_string() } else { format!("it has {}", have.join(", ")) };
        return Err(ApiError::not_found(format!("{key} has no replica {}; {have}", query.replica)));
    };
    let lines = engine
        .stream_logs(&replica.id, query.tail.unwrap_or(100), query.follow)
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("cannot read logs: {e}")))?;
    // An engine error mid-stream ends the body; the client sees the lines so far.
    let body = lines
        .take_while(|line| std::future::ready(line.is_ok()))
        .map(|line| Ok::<_, std::convert::Infallible>(format!("{}\n", line.unwrap_or_default())));
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(body)).into_response())
}
