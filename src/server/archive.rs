//! A replica's files as tar archives, as `docker cp` moves them:
//! `GET .../containers/{name}/archive?path=P` answers the archive of `P` (a
//! file, or a directory with everything under it); `PUT ...?path=DIR` with
//! an `application/x-tar` body extracts it into the directory `DIR`.
//! `berth cp` is the client of both; uploads are bounded by
//! [`MAX_UPLOAD_BYTES`] and audited.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::query::StrictQuery;
use super::replica::{self, engine_refused, ReplicaPath};
use super::AppState;

/// The largest archive a `PUT` takes (it is held in memory).
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// The query of the archive endpoints.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveQuery {
    /// Which replica (default 0).
    #[serde(default)]
    pub replica: u32,
    /// An absolute path in the replica.
    pub path: String,
}

/// `path`, if it is one berth passes to the engine: absolute, without NUL,
/// at most 4096 bytes.
pub(super) fn checked_path(path: &str) -> ApiResult<&str> {
    if !path.starts_with('/') || path.contains('\0') || path.len() > 4096 {
        let shown: String = path.chars().take(80).collect();
        return Err(ApiError::bad_request(format!(
            "path `{shown}` is not an absolute path in the container (like /etc/hostname), at most 4096 bytes"
        )));
    }
    Ok(path)
}

/// The archive of `path`, streamed.
pub async fn download(
    State(state): State<AppState>,
    Path(path): Path<ReplicaPath>,
    StrictQuery(query): StrictQuery<ArchiveQuery>,
) -> ApiResult<Response> {
    let wanted = checked_path(&query.path)?;
    let replica = replica::find(&state, path, query.replica, "files").await?;
    let archive = replica
        .ctx
        .engine
        .copy_from(&replica.info.id, wanted)
        .await
        .map_err(|e| engine_refused(&replica, query.replica, wanted, e))?;
    let name = wanted.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("root");
    let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
    // An engine error mid-way ends the body early: the client sees a
    // truncated archive, which tar reports.
    let body = archive
        .take_while(|chunk| std::future::ready(chunk.is_ok()))
        .map(|chunk| Ok::<_, std::convert::Infallible>(chunk.unwrap_or_default()));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.tar\"")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Extracts the body (a tar archive) into the directory `path`.
pub async fn upload(
    State(state): State<AppState>,
    Path(path): Path<ReplicaPath>,
    StrictQuery(query): StrictQuery<ArchiveQuery>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> ApiResult<Response> {
    let directory = checked_path(&query.path)?.to_string();
    if super::body::media_type(request.headers()) != "application/x-tar" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the files as a tar archive with Content-Type: application/x-tar (`berth cp` makes one)",
        ));
    }
    let tar = axum::body::to_bytes(request.into_body(), MAX_UPLOAD_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the archive is over {} MiB, the most berth takes at once; copy it in parts",
                MAX_UPLOAD_BYTES >> 20
            ),
        )
    })?;
    let size = tar.len();
    let replica = replica::find(&state, path, query.replica, "files").await?;
    let message = format!(
        "{size} bytes of files copied into {directory} of replica {} by {}",
        query.replica,
        replica::caller_name(caller)
    );
    replica::copy_in(&state, &replica, query.replica, &directory, tar, "FilesCopied", message).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
