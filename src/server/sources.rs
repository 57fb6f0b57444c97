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
