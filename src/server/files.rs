//! A replica's files one at a time, for the dashboard and for `curl`:
//! `GET .../containers/{name}/files?path=DIR` lists a directory (or
//! describes a file) from its archive's headers, `GET .../file?path=F`
//! answers one file's bytes, and `PUT .../file?path=F` writes the body as
//! the file `F`. All three go through the engine's archives
//! ([`super::archive`]): nothing runs in the container.
//!
//! An archive is read as it streams, never held: a listing stops after
//! [`MAX_ENTRIES`] entries or [`MAX_SCANNED_BYTES`] read (a big directory's
//! files are read through to reach the next header) and says it was cut.

use std::io::Read;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::TryStreamExt;
use schemars::JsonSchema;
use serde::Serialize;

use super::archive::{checked_path, ArchiveQuery, MAX_UPLOAD_BYTES};
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::query::StrictQuery;
use super::replica::{self, engine_refused, Replica, ReplicaPath};
use super::AppState;

/// Entries a listing shows at most.
pub const MAX_ENTRIES: usize = 5000;
/// Bytes of archive a listing reads at most.
pub const MAX_SCANNED_BYTES: u64 = 256 << 20;

/// One entry of a listing.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// Its name in the directory.
    pub name: String,
    /// `file`, `directory`, `symlink` or `other`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Size in bytes (files).
    pub size: u64,
    /// Permission bits, octal (`0644`).
    pub mode: String,
    /// Last modification, RFC 3339 (absent when the archive has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// A listing.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileListing {
    /// The path listed.
    pub path: String,
    /// The path itself.
    #[serde(rename = "self")]
    pub itself: FileEntry,
    /// A directory's entries, by name.
    pub entries: Vec<FileEntry>,
    /// Whether the listing stopped at a bound before the end.
    pub truncated: bool,
}

fn entry_of(name: String, header: &tar::Header, link: Option<String>) -> FileEntry {
    let kind = match header.entry_type() {
        t if t.is_file() => "file",
        t if t.is_dir() => "directory",
        t if t.is_symlink() => "symlink",
        _ => "other",
    };
    let modified = header
        .mtime()
        .ok()
        .and_then(|seconds| chrono::DateTime::from_timestamp(i64::try_from(seconds).ok()?, 0))
        .map(|time| time.to_rfc3339());
    let size = if kind == "file" { header.size().unwrap_or(0) } else { 0 };
    FileEntry {
        name,
        kind,
        size,
        mode: format!("{:04o}", header.mode().unwrap_or(0) & 0o7777),
        modified,
        link_target: link,
    }
}

/// The archive of `path` as a blocking reader, for the tar crate.
async fn archive_reader(replica: &Replica, index: u32, path: &str) -> ApiResult<impl Read + Send + 'static> {
    let archive = replica
        .ctx
        .engine
        .copy_from(&replica.info.id, path)
        .await
        .map_err(|e| engine_refused(replica, index, path, e))?;
    let stream = archive.map_err(std::io::Error::other);
    Ok(tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream)))
}

/// Lists `path` from its archive (blocking).
fn list(reader: impl Read, path: &str) -> std::io::Result<FileListing> {
    let mut archive = tar::Archive::new(reader.take(MAX_SCANNED_BYTES));
    let base = path.trim_end_matches('/').rsplit('/').next().filter(|b| !b.is_empty()).unwrap_or("/").to_string();
    let mut itself = None;
    let mut below = false;
    let mut listed: std::collections::BTreeMap<String, FileEntry> = Default::default();
    let mut truncated = false;
    let mut read_any = false;
    for entry in archive.entries()? {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) if !read_any => return Err(error),
            // The scan bound, or a broken archive: what was read stands.
            Err(_) => {
                truncated = true;
                break;
            }
        };
        read_any = true;
        let name = entry.path()?.to_string_lossy().trim_end_matches('/').to_string();
        let link = entry.link_name().ok().flatten().map(|l| l.to_string_lossy().to_string());
        // The first component is the top (the path itself); entries below it
        // are the directory's. The fake's archives have no directory
        // entries: a file below the top is what makes it a directory.
        let Some((_, rest)) = name.split_once('/') else {
            itself = Some(entry_of(base.clone(), entry.header(), link));
            continue;
        };
        below = true;
        match rest.split_once('/') {
            Some((first, _)) => {
                listed.entry(first.to_string()).or_insert_with(|| implied_directory(first));
            }
            None => {
                listed.insert(rest.to_string(), entry_of(rest.to_string(), entry.header(), link));
            }
        }
        if listed.len() >= MAX_ENTRIES {
            truncated = true;
            break;
        }
    }
    if !read_any {
        return Err(std::io::Error::other("the engine sent an empty archive"));
    }
    let mut itself = itself.unwrap_or_else(|| implied_directory(&base));
    if below {
        itself.kind = "directory";
    }
    Ok(FileListing { path: path.to_string(), itself, entries: listed.into_values().collect(), truncated })
}

/// A directory the archive implies without an entry of its own.
fn implied_directory(name: &str) -> FileEntry {
    FileEntry {
        name: name.to_string(),
        kind: "directory",
        size: 0,
        mode: "0755".into(),
        modified: None,
        link_target: None,
    }
}

/// `GET .../files?path=`: a directory's entries, or a file's description.
pub async fn listing(
    State(state): State<AppState>,
    Path(path): Path<ReplicaPath>,
    StrictQuery(query): StrictQuery<ArchiveQuery>,
) -> ApiResult<Json<FileListing>> {
    let wanted = checked_path(&query.path)?.to_string();
    let replica = replica::find(&state, path, query.replica, "files").await?;
    let reader = archive_reader(&replica, query.replica, &wanted).await?;
    let listed = tokio::task::spawn_blocking(move || list(reader, &wanted)).await.map_err(ApiError::internal)?;
    listed
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("the engine's archive does not read: {e}")))
}

/// `GET .../file?path=`: one file's bytes, streamed.
pub async fn download(
    State(state): State<AppState>,
    Path(path): Path<ReplicaPath>,
    StrictQuery(query): StrictQuery<ArchiveQuery>,
) -> ApiResult<Response> {
    let wanted = checked_path(&query.path)?.to_string();
    let replica = replica::find(&state, path, query.replica, "files").await?;
    let reader = archive_reader(&replica, query.replica, &wanted).await?;
    let (chunks, body) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let (first, size) = tokio::sync::oneshot::channel::<Result<u64, String>>();
    tokio::task::spawn_blocking(move || {
        let mut archive = tar::Archive::new(reader);
        let mut entry = match archive.entries().and_then(|mut e| e.next().transpose()) {
            Ok(Some(entry)) if entry.header().entry_type().is_file() => entry,
            Ok(_) => return drop(first.send(Err("is not a file: list it, or copy it with berth cp".into()))),
            Err(e) => return drop(first.send(Err(format!("does not read: {e}")))),
        };
        let _ = first.send(Ok(entry.header().size().unwrap_or(0)));
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match entry.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => {
                    if chunks.blocking_send(Ok(bytes::Bytes::copy_from_slice(&buffer[..n]))).is_err() {
                        return;
                    }
                }
                Err(e) => return drop(chunks.blocking_send(Err(e))),
            }
        }
    });
    let size =
        size.await.map_err(ApiError::internal)?.map_err(|why| ApiError::bad_request(format!("{wanted} {why}")))?;
    let name: String = wanted
        .rsplit('/')
        .next()
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

/// `PUT .../file?path=`: the body becomes the file `path` (mode 0644).
pub async fn upload(
    State(state): State<AppState>,
    Path(path): Path<ReplicaPath>,
    StrictQuery(query): StrictQuery<ArchiveQuery>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> ApiResult<Response> {
    let wanted = checked_path(&query.path)?.to_string();
    let (directory, name) = wanted.rsplit_once('/').filter(|(_, name)| !name.is_empty()).ok_or_else(|| {
        ApiError::bad_request(format!("`{wanted}` names a directory; name the file to write (like /www/index.html)"))
    })?;
    let directory = if directory.is_empty() { "/".to_string() } else { directory.to_string() };
    let bytes = axum::body::to_bytes(request.into_body(), MAX_UPLOAD_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the file is over {} MiB, the most berth takes at once", MAX_UPLOAD_BYTES >> 20),
        )
    })?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes.as_ref()).map_err(ApiError::internal)?;
    let tar = tar.into_inner().map_err(ApiError::internal)?;
    let replica = replica::find(&state, path, query.replica, "files").await?;
    let message = format!(
        "{wanted} ({} bytes) written in replica {} by {}",
        bytes.len(),
        query.replica,
        replica::caller_name(caller)
    );
    replica::copy_in(&state, &replica, query.replica, &directory, tar.into(), "FileWritten", message).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
