//! The running replica an endpoint acts on (logs, exec): a Container's
//! replica by index, found by the engine's ownership labels, so the endpoint
//! serves the replica the Container owns now, whatever its generated name.

use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::api::{Kind, ObjectKey};
use crate::controller::Context;
use crate::engine::{labels, ContainerInfo, EngineError};
use crate::store::{Event, WriteBatch};

use super::error::{ApiError, ApiResult};
use super::objects::{checked_name, object_key, ObjectPath};
use super::AppState;

/// `/namespaces/{namespace}/containers/{name}/…`: only Containers have
/// replicas.
#[derive(Deserialize, JsonSchema)]
pub struct ReplicaPath {
    /// The namespace.
    pub namespace: String,
    /// `containers`.
    pub plural: String,
    /// The Container's name.
    pub name: String,
}

/// A Container's replica, with what reaches its engine.
pub(super) struct Replica {
    /// The Container.
    pub key: ObjectKey,
    /// The controller's engine side.
    pub ctx: Context,
    /// The replica as the engine reports it.
    pub info: ContainerInfo,
}

/// Replica `index` of the Container at `path`: 404 when the Container or the
/// replica is missing (naming the replicas it has), 503 when the engine is
/// not connected or does not answer. `what` names the endpoint's subject
/// (`logs`) for the error of another kind.
pub(super) async fn find(state: &AppState, path: ReplicaPath, index: u32, what: &str) -> ApiResult<Replica> {
    checked_name("namespace", &path.namespace)?;
    checked_name("name", &path.name)?;
    if path.plural != Kind::Container.plural() {
        let kind = super::objects::kind_of(&path.plural)?;
        return Err(ApiError::not_found(format!("{kind} objects have no {what}; only Containers do")));
    }
    let key = object_key(&ObjectPath { namespace: path.namespace, plural: path.plural, name: path.name })?;
    if state.store.get(&key)?.is_none() {
        return Err(ApiError::not_found(format!("{key} not found")));
    }
    let ctx = state.engine.require()?.ctx.clone();
    let replicas = ctx
        .engine
        .list_containers(&labels::owner_labels(&ctx.instance, &key))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot ask the engine: {e}")))?;
    let index_of = |c: &ContainerInfo| c.labels.get(labels::REPLICA).and_then(|r| r.parse::<u32>().ok());
    match replicas.iter().find(|c| index_of(c) == Some(index)) {
        Some(info) => Ok(Replica { key, ctx, info: info.clone() }),
        None => {
            let mut have: Vec<u32> = replicas.iter().filter_map(index_of).collect();
            have.sort_unstable();
            let have: Vec<String> = have.iter().map(u32::to_string).collect();
            let have = if have.is_empty() { "none running".to_string() } else { format!("it has {}", have.join(", ")) };
            Err(ApiError::not_found(format!("{key} has no replica {index}; {have}")))
        }
    }
}

/// Records what a caller did to a Container's replica (an exec, a copy) in
/// the log and the event log. A failed record is logged, not an error: the
/// action is done.
pub(super) fn audit(state: &AppState, key: &ObjectKey, action: &str, reason: &str, message: String) {
    tracing::info!(object = %key, action, reason, "{message}");
    if let Err(error) = state.store.commit(WriteBatch::new().event(Event::about(key, action, reason, message))) {
        tracing::warn!(object = %key, %error, "the {action} was not recorded in the event log");
    }
}

/// Who made the request, as the audit log names them.
pub(super) fn caller_name(caller: Option<axum::Extension<super::auth::Caller>>) -> String {
    caller.map_or_else(|| "an unauthenticated caller".to_string(), |axum::Extension(c)| c.to_string())
}

/// Copies `tar` into `directory` of the replica and records who did.
pub(super) async fn copy_in(
    state: &AppState,
    replica: &Replica,
    index: u32,
    directory: &str,
    tar: bytes::Bytes,
    reason: &str,
    message: String,
) -> ApiResult<()> {
    replica
        .ctx
        .engine
        .copy_to(&replica.info.id, directory, tar)
        .await
        .map_err(|e| engine_refused(replica, index, directory, e))?;
    audit(state, &replica.key, "copy", reason, message);
    Ok(())
}

/// The API's answer to an engine error about `path` in `replica`.
pub(super) fn engine_refused(replica: &Replica, index: u32, path: &str, error: EngineError) -> ApiError {
    let status = match &error {
        EngineError::NotFound { .. } => StatusCode::NOT_FOUND,
        EngineError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, format!("{path} in {} replica {index}: {error}", replica.key))
}
