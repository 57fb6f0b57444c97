//! The plan: what an apply would change, and what the controller would then
//! do to the engine, with the reason for each step, computed without
//! changing anything.
//!
//! The plan answers "what happens if I apply this?" the way the reconcilers
//! would answer it: a Container's replicas are compared with the template
//! the Container reconciler would build (same resolution, same spec hash), so
//! `recreate replica 1: spec changed: env` is the recreate that will happen,
//! not a guess from a text diff.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::volume::ReclaimPolicy;
use crate::api::{AnyObject, Container, ObjectKey};
use crate::store::Store;

use super::container_spec::{self, Resolution};
use super::image::Decision;
use super::image_steps::{ImageStep, PullWhy};
use super::network_steps::{self, NetworkStep};
use super::replica_steps::{decide, Desired, Step, Teardown, Wanted};
use super::volume_steps::{self, VolumeStep};
use super::{Context, ReconcileError};

/// What an apply does to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanAction {
    /// The object is new.
    Create,
    /// The object's spec, labels or annotations change.
    Update,
    /// Nothing changes.
    Unchanged,
    /// The object goes (its named source no longer declares it).
    Delete,
}

/// One engine operation that will follow, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedOperation {
    /// What will be done, e.g. `recreate replica 1`.
    pub operation: String,
    /// Why, e.g. `spec changed: env`.
    pub reason: String,
}

/// The plan for one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    /// `Kind/namespace/name`.
    pub object: String,
    /// What happens to the object.
    pub action: PlanAction,
    /// Fields that change, e.g. `spec.env[0].value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<String>,
    /// Engine operations the controller will then make.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<PlannedOperation>,
    /// The stored spec, for showing a diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Value>,
    /// The applied spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Value>,
}

/// The plan of an apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// One entry per object, in the order applied, deletions last.
    pub items: Vec<PlanItem>,
}

impl Plan {
    /// Objects that change (anything but `unchanged`).
    pub fn changes(&self) -> usize {
        self.items.iter().filter(|i| i.action != PlanAction::Unchanged).count()
    }
}

fn op(operation: impl Into<String>, reason: impl Into<String>) -> PlannedOperation {
    PlannedOperation { operation: operation.into(), reason: reason.into() }
}

/// Leaf paths where two JSON values differ (`spec.env[0].value`), at most
/// a few levels deep: deeper differences are reported at that depth.
pub fn changed_paths(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    const MAX_DEPTH: usize = 6;
    if old == new {
        return;
    }
    let depth = path.matches(['.', '[']).count();
    match (old, new) {
        (Value::Object(a), Value::Object(b)) if depth < MAX_DEPTH => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null));
                changed_paths(x, y, &format!("{path}.{key}"), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() && depth < MAX_DEPTH => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                changed_paths(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

/// The plan's lines for steps `described`, or one that says why there
/// is nothing to do.
fn or_none(described: impl Iterator<Item = (String, String)>, why_none: &str) -> Vec<PlannedOperation> {
    let operations: Vec<PlannedOperation> = described.map(|(operation, reason)| op(operation, reason)).collect();
    match operations.is_empty() {
        true => vec![op("none", why_none)],
        false => operations,
    }
}

/// What the plan says when the engine cannot be asked.
fn unknown(why: impl std::fmt::Display) -> Vec<PlannedOperation> {
    vec![op("unknown until the engine answers", why.to_string())]
}

/// Plans applying `desired` and deleting `deleted`, against `store` and, once
/// it is connected, the engine of `ctx` (without it, engine operations are
/// reported as unknown).
pub async fn plan(
    store: &Store,
    ctx: Option<&Context>,
    desired: &[AnyObject],
    deleted: &[ObjectKey],
) -> Result<Plan, ReconcileError> {
    const NOT_CONNECTED: &str = "the engine is not connected yet";
    let mut items = Vec::new();
    for object in desired {
        let key = object.key();
        let stored = store.get(&key)?;
        let current = stored.as_ref().filter(|o| o.metadata().deletion_timestamp.is_none());
        // What the store will keep of the stored object: its overrides.
        let mut object = object.clone();
        crate::api::overrides::carry_over(current.map(AnyObject::metadata), object.metadata_mut());
        let object = &object;
        let mut changed_fields = Vec::new();
        let action = match current {
            None => PlanAction::Create,
            Some(current) => {
                changed_paths(&current.spec_json(), &object.spec_json(), "spec", &mut changed_fields);
                let (old, new) = (current.metadata(), object.metadata());
                for (field, differs) in [
                    ("metadata.labels", old.labels != new.labels),
                    (
                        "metadata.annotations",
                        !crate::api::overrides::same_annotations(&old.annotations, &new.annotations),
                    ),
                ] {
                    if differs {
                        changed_fields.push(field.to_string());
                    }
                }
                if changed_fields.is_empty() {
                    PlanAction::Unchanged
                } else {
                    PlanAction::Update
                }
            }
        };
        let operations = match (action, ctx) {
            (PlanAction::Unchanged, _) => Vec::new(),
            (_, Some(ctx)) => operations(ctx, object, current).await.unwrap_or_else(unknown),
            (_, None) => unknown(NOT_CONNECTED),
        };
        items.push(PlanItem {
            object: key.to_string(),
            action,
            changed_fields,
            operations,
            current: current.map(AnyObject::spec_json),
            desired: Some(object.spec_json()),
        });
    }
    for key in deleted {
        let Some(stored) = store.get(key)?.filter(|o| o.metadata().deletion_timestamp.is_none()) else { continue };
        let operations = match ctx {
            Some(ctx) => teardown(ctx, &stored).await.unwrap_or_else(unknown),
            None => unknown(NOT_CONNECTED),
        };
        items.push(PlanItem {
            object: key.to_string(),
            action: PlanAction::Delete,
            changed_fields: Vec::new(),
            operations,
            current: Some(stored.spec_json()),
            desired: None,
        });
    }
    Ok(Plan { items })
}

/// Engine operations that converge `object` (created or updated from `current`).
async fn operations(
    ctx: &Context,
    object: &AnyObject,
    current: Option<&AnyObject>,
) -> Result<Vec<PlannedOperation>, ReconcileError> {
    let key = object.key();
    let spec_changed = current.is_none_or(|c| !c.same_spec(object));
    if !spec_changed {
        return Ok(vec![op("none", "only labels or annotations change; the engine objects stay")]);
    }
    Ok(match object {
        AnyObject::Container(container) if current.is_none() => {
            let replicas = container.spec.replicas.unwrap_or(1).max(0);
            let after = container.spec.depends_on.iter().map(|d| d.container.clone()).collect::<Vec<_>>();
            let reason = match after.is_empty() {
                true => "new Container".to_string(),
                false => format!("new Container (once {} are ready)", after.join(", ")),
            };
            (0..replicas).map(|i| op(format!("create and start replica {i}"), reason.clone())).collect()
        }
        AnyObject::Container(container) if crate::api::overrides::suspended(&container.metadata).is_some() => {
            vec![op("none", "the Container is suspended: its replicas run again when it is resumed")]
        }
        AnyObject::Container(container) => container_operations(ctx, container).await?,
        AnyObject::Volume(volume) => {
            let config = super::volume::config(ctx, volume);
            let steps = volume_steps::decide(&super::volume::wanted(&config), &ctx.reflector.volumes_of(&key).await?);
            or_none(steps.iter().map(VolumeStep::describe), "the volume exists, made from these settings")
        }
        AnyObject::Network(network) => {
            let config = super::network::config(ctx, network);
            let wanted = network_steps::Wanted::Network(&config);
            let steps = network_steps::decide(&wanted, &ctx.reflector.networks_of(&key).await?);
            or_none(steps.iter().map(NetworkStep::describe), "the network exists, made from this spec")
        }
        AnyObject::Image(image) => match super::image::decide(ctx, image).await? {
            Decision::Pull { step, .. } => {
                or_none(step.iter().map(ImageStep::describe), "the image is present (pull policy IfNotPresent)")
            }
            Decision::Build { step, .. } => {
                or_none(step.iter().map(ImageStep::describe), "the tag's image was built from this context")
            }
            Decision::Refused { reason, message, .. } => {
                vec![op("none: the image cannot be had", format!("{reason}: {message}"))]
            }
        },
        AnyObject::DnsRecord(_) | AnyObject::Route(_) => {
            vec![op("update the served records and routes", if current.is_some() { "spec changed" } else { "new" })]
        }
    })
}

/// What the Container reconciler would do to each replica.
async fn container_operations(ctx: &Context, container: &Container) -> Result<Vec<PlannedOperation>, ReconcileError> {
    Ok(match container_steps(ctx, container).await? {
        Ok(steps) => or_none(
            steps.iter().flat_map(Step::describe),
            "every replica already runs this spec (only replicas, updateStrategy or dependsOn changed)",
        ),
        Err(first) => first,
    })
}

/// The steps the Container reconciler would decide on the engine as it is
/// now, or what comes first instead (a wait, or the pull of its image).
/// Reads only: a missing image is planned, not pulled.
async fn container_steps(
    ctx: &Context,
    container: &Container,
) -> Result<Result<Vec<Step>, Vec<PlannedOperation>>, ReconcileError> {
    let template = match container_spec::resolve(ctx, container).await? {
        Resolution::Ready(template) => template,
        Resolution::Waiting(reason, message) => {
            return Ok(Err(vec![op("wait before creating or replacing replicas", format!("{reason}: {message}"))]))
        }
        Resolution::MissingImage(reference) => {
            let (operation, reason) = ImageStep::Pull { reference, why: PullWhy::Missing }.describe();
            let then = op(
                "then create or replace the replicas the pulled image changes",
                "the image's id is part of each replica's spec hash",
            );
            return Ok(Err(vec![op(operation, reason), then]));
        }
    };
    let observed = ctx.reflector.containers_of(&container.key()).await?;
    Ok(Ok(decide(&Desired::Replicas(Wanted::of(container, &template)), &observed)))
}

/// The plan's lines for `steps`.
fn render(steps: &[Step]) -> Vec<PlannedOperation> {
    steps.iter().flat_map(Step::describe).map(|(operation, reason)| PlannedOperation { operation, reason }).collect()
}

/// What deleting `object` does to the engine.
async fn teardown(ctx: &Context, object: &AnyObject) -> Result<Vec<PlannedOperation>, ReconcileError> {
    let key = object.key();
    Ok(match object {
        AnyObject::Container(_) => {
            let observed = ctx.reflector.containers_of(&key).await?;
            render(&decide(&Desired::Nothing(Teardown::Deleted), &observed))
        }
        AnyObject::Volume(volume) => {
            let wanted = volume_steps::Wanted::Deleted(volume.spec.reclaim_policy.unwrap_or(ReclaimPolicy::Retain));
            let steps = volume_steps::decide(&wanted, &ctx.reflector.volumes_of(&key).await?);
            or_none(steps.iter().map(VolumeStep::describe), "the engine has no volume of it")
        }
        AnyObject::Network(_) => {
            let wanted = network_steps::Wanted::Nothing(Teardown::Deleted);
            let steps = network_steps::decide(&wanted, &ctx.reflector.networks_of(&key).await?);
            or_none(steps.iter().map(NetworkStep::describe), "the engine has no network of it")
        }
        AnyObject::Image(_) => vec![op("keep the image", "images are kept: other containers may run them")],
        AnyObject::DnsRecord(_) | AnyObject::Route(_) => vec![op("stop serving it", "deleted")],
    })
}

#[cfg(test)]
#[path = "plan_matches_execution.rs"]
mod plan_matches_execution;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_paths_name_the_leaves() {
        let old = json!({"env": [{"name": "A", "value": "1"}], "replicas": 2, "ports": [1]});
        let new = json!({"env": [{"name": "A", "value": "2"}], "replicas": 2, "ports": [1, 2], "user": "x"});
        let mut out = Vec::new();
        changed_paths(&old, &new, "spec", &mut out);
        assert_eq!(out, ["spec.env[0].value", "spec.ports", "spec.user"]);
    }
}
