//! The running replica an endpoint acts on (logs, exec): a Container's
//! replica by index, found by the engine's ownership labels, so the endpoint
//! serves the replica the Container owns now, whatever its generated name.

use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::api::{Kind, ObjectKey};
use crate::controller::Context;
use crate::engine::{labels, ContainerInfo};

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
