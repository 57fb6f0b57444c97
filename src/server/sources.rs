//! `GET /sources`: where the objects come from, and how each source is
//! doing: a watched file, a named API set or a git repository with the
//! commit it last saw and the one it applied, and its last error.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::Source;
use crate::store::SourceRecord;

use super::error::ApiResult;
use super::query::{NoParams, StrictQuery};
use super::AppState;

/// Every source.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SourceList {
    /// The sources, by id.
    pub items: Vec<SourceStatus>,
}

/// One source.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// Its id: `file:<path>`, `api:<name>` or `git:<repo>#<branch>:<path>`.
    pub id: String,
    /// The source (type, path, repo, branch, the commit last read).
    pub source: Source,
    /// Git: the commit last fetched and looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_commit: Option<String>,
    /// Git: the commit whose objects are applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_commit: Option<String>,
    /// The objects it declared in its last good state (`Kind/namespace/name`).
    pub objects: Vec<String>,
    /// Why its current state was rejected (its last good objects stay).
    #[serde(default)]
    pub errors: Vec<String>,
    /// Git: why the last fetch failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
    /// When the errors were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_time: Option<DateTime<Utc>>,
    /// When the source was last read.
    pub updated: DateTime<Utc>,
}

impl From<SourceRecord> for SourceStatus {
    fn from(record: SourceRecord) -> Self {
        SourceStatus {
            id: record.source.id(),
            source: record.source,
            seen_commit: record.seen_commit,
            applied_commit: record.applied_commit,
            objects: record.objects.iter().map(ToString::to_string).collect(),
            errors: record.errors,
            fetch_error: record.fetch_error,
            error_time: record.error_time,
            updated: record.updated,
        }
    }
}

/// Lists every source.
pub async fn list(State(state): State<AppState>, _: StrictQuery<NoParams>) -> ApiResult<Json<SourceList>> {
    let mut items: Vec<SourceStatus> = state.store.sources()?.into_iter().map(SourceStatus::from).collect();
    items.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(SourceList { items }))
}

/// Query of `POST /sources/sync`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncQuery {
    /// The git source to fetch (its id, as `GET /sources` lists it); every
    /// git source without it.
    pub source: Option<String>,
}

/// What `POST /sources/sync` started.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SyncRequested {
    /// The git sources fetching now (their ids).
    pub triggered: Vec<String>,
}

/// Fetches git sources now instead of at their next poll.
pub async fn sync(
    State(state): State<AppState>,
    StrictQuery(query): StrictQuery<SyncQuery>,
    caller: Option<axum::Extension<super::auth::Caller>>,
) -> ApiResult<(axum::http::StatusCode, Json<SyncRequested>)> {
    let triggered = state.git_hooks.sync(query.source.as_deref());
    if triggered.is_empty() {
        return Err(super::error::ApiError::not_found(match &query.source {
            Some(id) => format!("no git source has id `{id}`; `berth get sources` lists them"),
            None => "berth serve follows no git repository (start it with --git URL)".to_string(),
        }));
    }
    tracing::info!(sources = ?triggered, "sync requested by {}", super::replica::caller_name(caller));
    Ok((axum::http::StatusCode::ACCEPTED, Json(SyncRequested { triggered })))
}
