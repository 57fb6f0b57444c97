//! `GET .../containers/{name}/logs`: a replica's output, streamed as plain
//! text lines, following new output with `follow=true` until the replica
//! stops, from the replica the Container owns now ([`super::replica`]).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::query::StrictQuery;
use super::replica::ReplicaPath;
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

/// Streams a replica's logs.
pub async fn logs(
    State(state): State<AppState>,
    Path(path): Path<ReplicaPath>,
    StrictQuery(query): StrictQuery<LogsQuery>,
) -> ApiResult<Response> {
    let replica = super::replica::find(&state, path, query.replica, "logs").await?;
    let (engine, replica) = (&replica.ctx.engine, &replica.info);
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
