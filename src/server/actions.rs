//! What a person does to a running Container besides editing its manifest:
//! restart one replica or all of them, suspend it, resume it. These are the
//! dashboard's buttons and `berth restart | suspend | resume`.
//!
//! - `POST {object}/restart` with `{"replica": N}` removes that replica
//!   (stopped within its grace period); the controller creates it again at
//!   once, as it does for a replica removed by hand. Without `replica`,
//!   every replica is replaced the way a spec change replaces them, in the
//!   Container's update strategy (`StartFirst` keeps serving), through the
//!   [`RESTARTED_AT`] override.
//! - `POST {object}/suspend` sets the [`SUSPENDED`] override: the object
//!   stays, its replicas go, and its file or git source cannot bring them
//!   back until `POST {object}/resume` clears it.
//!
//! The body is JSON, all optional: `{"reason": "why"}` (and `replica`).
//! Each action is an event in the audit log naming who asked and why.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use crate::api::overrides::{self, RESTARTED_AT, SUSPENDED};
use crate::api::{AnyObject, Container, Kind, ObjectKey};
use crate::store::{Event, WriteBatch, WriteOp};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::objects::{object_key, ObjectPath};
use super::replica::{self, ReplicaPath};
use super::AppState;

/// Longest reason kept, in bytes.
const MAX_REASON: usize = 500;

/// The body of an action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Why: recorded in the audit log.
    #[serde(default)]
    reason: Option<String>,
    /// `restart` only: the replica to restart; all of them without it.
    #[serde(default)]
    replica: Option<u32>,
}

/// What an action did.
#[derive(Debug, Serialize, Deserialize)]
pub struct ActionDone {
    /// `Container/namespace/name`.
    pub object: String,
    /// `restart`, `suspend` or `resume`.
    pub action: String,
    /// What happened and what follows.
    pub message: String,
}

fn body_of(bytes: &[u8], replica_allowed: bool) -> ApiResult<ActionBody> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionBody::default());
    }
    let body: ActionBody = serde_json::from_slice(bytes).map_err(|e| {
        let fields = if replica_allowed { "`reason` and `replica`" } else { "`reason`" };
        ApiError::bad_request(format!("body:{}:{}: {e}; send a JSON object with {fields}", e.line(), e.column()))
    })?;
    if body.replica.is_some() && !replica_allowed {
        return Err(ApiError::bad_request("`replica` is for restart only"));
    }
    if body.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
        return Err(ApiError::bad_request(format!("the reason is longer than {MAX_REASON} bytes; say it shorter")));
    }
    Ok(body)
}

/// The Container at `path`, live (not being deleted).
fn container(state: &AppState, path: &ObjectPath, action: &str) -> ApiResult<(ObjectKey, Container)> {
    let key = object_key(path)?;
    if key.kind != Kind::Container {
        return Err(ApiError::bad_request(format!("{key}: only Containers can be {action}")));
    }
    match state.store.get(&key)? {
        Some(AnyObject::Container(c)) if c.metadata.deletion_timestamp.is_none() => Ok((key, c)),
        Some(_) => Err(ApiError::new(StatusCode::CONFLICT, format!("{key} is being deleted")).about(&key)),
        None => Err(ApiError::not_found(format!("{key} not found"))),
    }
}

/// `by the API token: why`, as the audit log words it.
fn who_and_why(caller: Option<Extension<Caller>>, reason: Option<&str>) -> String {
    let who = replica::caller_name(caller);
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(reason) => format!("by {who}: {reason}"),
        None => format!("by {who}"),
    }
}

/// Sets or clears `annotation` on `key` with an audit event, in one batch.
fn set_override(
    state: &AppState,
    key: &ObjectKey,
    annotation: &'static str,
    value: Option<String>,
    (action, reason, message): (&str, &str, String),
) -> ApiResult<()> {
    tracing::info!(object = %key, action, "{message}");
    let batch = WriteBatch::new()
        .op(WriteOp::Override { key: key.clone(), annotation, value })
        .event(Event::about(key, action, reason, message));
    state.store.commit(batch)?;
    Ok(())
}

fn done(key: &ObjectKey, action: &str, message: String) -> Json<ActionDone> {
    Json(ActionDone { object: key.to_string(), action: action.into(), message })
}

/// `POST {object}/restart`.
pub async fn restart(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    caller: Option<Extension<Caller>>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<ActionDone>> {
    let body = body_of(&bytes, true)?;
    let (key, container) = container(&state, &path, "restarted")?;
    if overrides::suspended(&container.metadata).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{key} is suspended: it runs no replica to restart; resume it first"),
        )
        .about(&key));
    }
    let by = who_and_why(caller, body.reason.as_deref());
    match body.replica {
        Some(index) => {
            let path = ReplicaPath { namespace: path.namespace, plural: path.plural, name: path.name };
            let found = replica::find(&state, path, index, "replicas").await?;
            let grace = container
                .spec
                .stop_grace_period
                .as_ref()
                .and_then(|d| d.duration().ok())
                .unwrap_or(std::time::Duration::from_secs(10));
            let engine = &found.ctx.engine;
            let refused = |e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the engine refused: {e}"));
            engine
                .stop_container(&found.info.id, grace)
                .await
                .or_else(crate::engine::EngineError::ignore_not_found)
                .map_err(refused)?;
            engine
                .remove_container(&found.info.id)
                .await
                .or_else(crate::engine::EngineError::ignore_not_found)
                .map_err(refused)?;
            let message = format!("replica {index} restarted {by}: removed, the controller creates it again");
            replica::audit(&state, &key, "restart", "RestartRequested", message.clone());
            Ok(done(&key, "restart", message))
        }
        None => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let message = format!("every replica restarted {by}: each is replaced as for a spec change");
            set_override(&state, &key, RESTARTED_AT, Some(now), ("restart", "RestartRequested", message.clone()))?;
            Ok(done(&key, "restart", message))
        }
    }
}

/// `POST {object}/suspend`.
pub async fn suspend(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    caller: Option<Extension<Caller>>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<ActionDone>> {
    set_suspended(&state, &path, caller, &bytes, true)
}

/// `POST {object}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    Path(path): Path<ObjectPath>,
    caller: Option<Extension<Caller>>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<ActionDone>> {
    set_suspended(&state, &path, caller, &bytes, false)
}

/// Suspends (`suspend`) or resumes the Container at `path`; asking for
/// what already is answers so and changes nothing.
fn set_suspended(
    state: &AppState,
    path: &ObjectPath,
    caller: Option<Extension<Caller>>,
    bytes: &[u8],
    suspend: bool,
) -> ApiResult<Json<ActionDone>> {
    let body = body_of(bytes, false)?;
    let (key, container) = container(state, path, if suspend { "suspended" } else { "resumed" })?;
    let (action, reason) = if suspend { ("suspend", "SuspendRequested") } else { ("resume", "ResumeRequested") };
    match (overrides::suspended(&container.metadata), suspend) {
        (Some(since), true) => return Ok(done(&key, action, format!("already suspended {since}"))),
        (None, false) => return Ok(done(&key, action, "not suspended: nothing to resume".into())),
        _ => {}
    }
    let by = who_and_why(caller, body.reason.as_deref());
    let (value, message) = if suspend {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        (Some(format!("since {now} {by}")), format!("suspended {by}: its replicas are removed until it is resumed"))
    } else {
        (None, format!("resumed {by}: its replicas are created again"))
    };
    set_override(state, &key, SUSPENDED, value, (action, reason, message.clone()))?;
    Ok(done(&key, action, message))
}
