//! Container reconciler: the replicas of a Container object.
//!
//! Each replica is an engine container named
//! `berth-<namespace>-<name>-<replica>-<hash8>` and labelled with its owner,
//! replica index and spec hash. A reconcile resolves the template
//! ([`container_spec::resolve`]: image, volumes, networks, secrets; it may
//! pull a missing image), lets [`super::replica_steps::decide`] work out the
//! steps from the replicas the engine has, and runs them here, recording
//! each in the event log:
//!
//! - a missing replica is created and started;
//! - a replica whose hash differs is replaced (`Recreate`: removed, then
//!   created; `StartFirst`: the new one is started and the old one removed
//!   once the new one is ready; fixed host ports force `Recreate`);
//! - a stopped replica is started again (unless its restart policy wants it
//!   down, or the engine is restarting it, or someone paused it), at most
//!   as fast as the crash-loop back-off allows; a dead one is replaced;
//! - replicas beyond `replicas`, and containers of deleted objects, are removed;
//! - a suspended Container ([`crate::api::overrides::SUSPENDED`]) keeps no
//!   replica until it is resumed.
//!
//! # Guarantees
//! Idempotent and safe to cancel at any await: every step is re-derived from
//! the engine's labelled containers, and names are deterministic, so a crash
//! after any engine call leaves a state from which the next reconcile
//! finishes the job without duplicating a replica.

use std::time::Duration;

use crate::api::container::ReplicaStatus;
use crate::api::{Container, ContainerStatus, ObjectKey};
use crate::engine::{labels, ContainerInfo, ContainerState, EngineError, Health};

use super::action::{Action, ReconcileError};
use super::container_spec::{self, Resolution, Template};
use super::context::{Conditions, Context};
use super::finalizer::{self, Cleanup};
use super::image_steps::{self, PullWhy};
use super::replica_steps::{decide, replica_of, Desired, Step, Teardown, Wanted};

/// How long a not-ready Container waits before it is looked at again even
/// without an engine event (a safety net; events normally arrive first).
const NOT_READY_RECHECK: Duration = Duration::from_secs(10);
/// Grace period for containers whose object is gone.
const ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// Brings the replicas of `key` in line with the store.
pub async fn reconcile(ctx: &Context, key: &ObjectKey, desired: Option<Container>) -> Result<Action, ReconcileError> {
    let observed = ctx.reflector.containers_of(key).await?;
    let teardown = |deleting| teardown(ctx, key, deleting, &observed);
    finalizer::run(ctx, key, desired.as_ref(), |container| apply(ctx, container, &observed), teardown).await
}

/// Removes every replica of a deleted Container (or the orphans of one
/// that is gone), stopped together.
async fn teardown(
    ctx: &Context,
    key: &ObjectKey,
    deleting: Option<&Container>,
    observed: &[ContainerInfo],
) -> Result<Cleanup, ReconcileError> {
    let (grace, why) = match deleting {
        Some(c) => (grace_of(c), Teardown::Deleted),
        None => (ORPHAN_GRACE, Teardown::Orphan),
    };
    if execute(ctx, key, None, grace, decide(&Desired::Nothing(why), observed)).await? {
        ctx.reflector.refresh_containers(key).await?;
    }
    Ok(Cleanup::Done)
}

/// Converges the replicas of a live Container and writes its status.
async fn apply(ctx: &Context, container: &Container, observed: &[ContainerInfo]) -> Result<Action, ReconcileError> {
    let key = &container.key();
    if let Some(why) = crate::api::overrides::suspended(&container.metadata) {
        return suspend(ctx, container, observed, why).await;
    }
    let template = match resolve_pulling(ctx, container).await? {
        Resolution::Ready(template) => template,
        Resolution::MissingImage(reference) => unreachable!("{reference} was pulled by resolve_pulling"),
        Resolution::Waiting(reason, message) => {
            let status = ContainerStatus {
                common: Conditions::from(container).ready(false, reason, message, false).build(),
                ..container.status.clone().unwrap_or_default()
            };
            ctx.write_status(container, status)?;
            // References wake this key when they turn Ready; secrets and
            // pulls do not announce themselves, so look again later.
            let recheck = matches!(reason, "SecretUnavailable" | "ImagePullFailed");
            return Ok(if recheck { Action::requeue(Duration::from_secs(30)) } else { Action::await_change() });
        }
    };
    let steps = decide(&Desired::Replicas(Wanted::of(container, &template)), observed);
    // Status describes the engine after converging: list again only if it
    // changed, and keep that list for the next reconcile.
    let replicas = if execute(ctx, key, Some(&template), grace_of(container), steps).await? {
        ctx.reflector.refresh_containers(key).await?
    } else {
        observed.to_vec()
    };
    let all_ready = write_status(ctx, container, &template, &replicas)?;
    let recheck = ctx
        .crash_loops
        .next_due(key, std::time::Instant::now())
        .map_or(NOT_READY_RECHECK, |due| due.min(NOT_READY_RECHECK));
    Ok(if all_ready { Action::await_change() } else { Action::requeue(recheck) })
}

/// Resolves `container`'s references, first pulling an image the engine
/// lacks (the one step before its replicas' steps: the image id is part of
/// their spec hash). Never answers [`Resolution::MissingImage`].
async fn resolve_pulling(ctx: &Context, container: &Container) -> Result<Resolution, ReconcileError> {
    let reference = match container_spec::resolve(ctx, container).await? {
        Resolution::MissingImage(reference) => reference,
        resolved => return Ok(resolved),
    };
    if let Err(message) = image_steps::pull(ctx, &container.key(), &reference, PullWhy::Missing).await? {
        return Ok(Resolution::Waiting("ImagePullFailed", format!("image {reference} is not present: {message}")));
    }
    Ok(match container_spec::resolve(ctx, container).await? {
        Resolution::MissingImage(reference) => {
            Resolution::Waiting("ImagePullFailed", format!("image {reference} is missing after a pull"))
        }
        resolved => resolved,
    })
}

/// A suspended Container: every replica removed, the object kept, and a
/// status that says so until it is resumed.
async fn suspend(
    ctx: &Context,
    container: &Container,
    observed: &[ContainerInfo],
    why: &str,
) -> Result<Action, ReconcileError> {
    let key = container.key();
    let steps = decide(&Desired::Nothing(Teardown::Suspended), observed);
    if execute(ctx, &key, None, grace_of(container), steps).await? {
        ctx.reflector.refresh_containers(&key).await?;
    }
    let namespace = match key.namespace.as_str() {
        crate::api::meta::DEFAULT_NAMESPACE => String::new(),
        other => format!(" -n {other}"),
    };
    let message = format!("suspended {why}; `berth resume {}{namespace}` runs its replicas again", key.name);
    let status = ContainerStatus {
        common: Conditions::from(container).suspended(message).build(),
        ready_replicas: 0,
        replicas: Vec::new(),
    };
    ctx.write_status(container, status)?;
    Ok(Action::await_change())
}

/// Runs `steps` (from [`decide`]) against the engine, recording each in the
/// event log. Returns whether any engine call changed something.
async fn execute(
    ctx: &Context,
    key: &ObjectKey,
    template: Option<&Template>,
    grace: Duration,
    steps: Vec<Step>,
) -> Result<bool, ReconcileError> {
    let mut touched = false;
    let template = || template.ok_or_else(|| ReconcileError::transient("a replica step without a template"));
    for step in steps {
        match step {
            Step::Create { index } => {
                let id = create_and_start(ctx, key, index, template()?).await?;
                ctx.record(
                    key,
                    "created",
                    "ReplicaMissing",
                    format!("replica {index} created and started ({})", short(&id)),
                )?;
            }
            Step::Replace { index, old, reason, start_first } => {
                if !start_first {
                    for old in &old {
                        remove(ctx, key, old, grace, &reason, "recreate").await?;
                    }
                }
                let id = create_and_start(ctx, key, index, template()?).await?;
                ctx.record(key, "created", &reason, format!("replica {index} created and started ({})", short(&id)))?;
            }
            Step::ReplaceDead { index, dead } => {
                remove(ctx, key, &dead, grace, "ReplicaDead", "removed").await?;
                let id = create_and_start(ctx, key, index, template()?).await?;
                ctx.record(key, "created", "ReplicaDead", format!("replica {index} replaced ({})", short(&id)))?;
            }
            Step::Start { index, replica } => {
                // A replica that keeps exiting waits its turn (the
                // reconcile comes back when it is due).
                if ctx.crash_loops.try_start(key, index, std::time::Instant::now()).is_err() {
                    continue;
                }
                // Started, or found going away: either way the engine moved on.
                if start_existing(ctx, &replica).await? {
                    ctx.record(
                        key,
                        "started",
                        "ReplicaNotRunning",
                        format!("replica {index} was {}; started it", replica.state.as_str()),
                    )?;
                }
            }
            Step::Connect { index, replica_id, attachment } => {
                ctx.engine.connect_network(&attachment.network, &replica_id, &attachment.aliases).await?;
                ctx.record(
                    key,
                    "connected",
                    "NetworkMissing",
                    format!("replica {index} joined {}", attachment.network),
                )?;
            }
            Step::RemoveReplaced { old, reason, .. } => remove(ctx, key, &old, grace, &reason, "replaced").await?,
            Step::RemoveScaledDown { replica, .. } => {
                remove(ctx, key, &replica, grace, "ScaledDown", "removed").await?
            }
            Step::RemoveDuplicate { replica, .. } => remove(ctx, key, &replica, grace, "Duplicate", "removed").await?,
            Step::RemoveAll { replicas, why } => {
                let removals = replicas.iter().map(|replica| remove(ctx, key, replica, grace, why.reason(), "removed"));
                futures::future::try_join_all(removals).await?;
            }
        }
        touched = true;
    }
    Ok(touched)
}

async fn create_and_start(
    ctx: &Context,
    key: &ObjectKey,
    index: u32,
    template: &Template,
) -> Result<String, ReconcileError> {
    let id = create(ctx, key, index, template).await?;
    ctx.engine.start_container(&id).await?;
    Ok(id)
}

/// Starts a stopped replica. `false` when it is being removed or stopped
/// instead (by hand: `docker rm -f` reports `die`, which wakes this
/// reconcile, before the removal ends): that is not a failure, and the
/// engine's next event brings the reconcile back to create the replacement.
async fn start_existing(ctx: &Context, replica: &ContainerInfo) -> Result<bool, ReconcileError> {
    if replica.state == ContainerState::Removing {
        return Ok(false);
    }
    match ctx.engine.start_container(&replica.id).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        // The answer for a container marked for removal (Docker) or being
        // stopped or removed (Podman); other conflicts (a paused container)
        // stay errors.
        Err(e) if e.is_conflict() => match ctx.engine.inspect_container(&replica.id).await {
            Ok(now) if matches!(now.state, ContainerState::Removing | ContainerState::Running) => Ok(false),
            Err(gone) if gone.is_not_found() => Ok(false),
            _ => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

async fn create(ctx: &Context, key: &ObjectKey, index: u32, template: &Template) -> Result<String, ReconcileError> {
    ctx.crash_loops.forget(key, index);
    let mut config = template.config.clone();
    config.name = format!("berth-{}-{}-{index}-{}", key.namespace, key.name, &template.hash[..8]);
    config.labels.extend(labels::owner_labels(&ctx.instance, key));
    config.labels.insert(labels::REPLICA.into(), index.to_string());
    config.labels.insert(labels::SPEC_HASH.into(), template.hash.clone());
    config.labels.insert(labels::HASH_VERSION.into(), labels::CURRENT_HASH_VERSION.into());
    config.labels.insert(labels::SPEC.into(), template.hashed.to_string());
    match ctx.engine.create_container(&config).await {
        Ok(id) => Ok(id),
        // A container of that name exists: ours from an interrupted attempt
        // (then use it), or someone else's (then say so).
        Err(e) if e.is_conflict() => {
            let existing = ctx.engine.inspect_container(&config.name).await?;
            if labels::owner_of(&existing.labels, &ctx.instance).as_ref() == Some(key) {
                Ok(existing.id)
            } else {
                Err(ReconcileError::transient(format!(
                    "container name {} is taken by a container berth does not manage",
                    config.name
                )))
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn remove(
    ctx: &Context,
    key: &ObjectKey,
    replica: &ContainerInfo,
    grace: Duration,
    reason: &str,
    action: &str,
) -> Result<(), ReconcileError> {
    // One being stopped already (Podman's `stopping`) is removed at once.
    if replica.state == ContainerState::Running && !replica.stopping {
        ctx.engine.stop_container(&replica.id, grace).await.or_else(EngineError::ignore_not_found)?;
    }
    match ctx.engine.remove_container(&replica.id).await {
        Ok(()) => {}
        // Gone already (a second pass on a cache that had not seen the
        // removal yet): done, and not recorded a second time.
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let index = replica_of(replica).map_or("?".to_string(), |i| i.to_string());
    ctx.record(key, action, reason, format!("replica {index} removed ({})", short(&replica.id)))
}

fn grace_of(container: &Container) -> Duration {
    container.spec.stop_grace_period.as_ref().and_then(|d| d.duration().ok()).unwrap_or(ORPHAN_GRACE)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Writes the replicas' status; returns whether every replica is ready (and
/// its status written: a restart count held back makes it `false`, so the
/// reconcile comes back for it).
fn write_status(
    ctx: &Context,
    container: &Container,
    template: &Template,
    replicas: &[ContainerInfo],
) -> Result<bool, ReconcileError> {
    let wanted = container.spec.replicas.unwrap_or(1).max(0) as u32;
    let current: Vec<&ContainerInfo> =
        replicas.iter().filter(|r| r.labels.get(labels::SPEC_HASH) == Some(&template.hash)).collect();
    let mut statuses: Vec<ReplicaStatus> = replicas
        .iter()
        .map(|r| ReplicaStatus {
            index: replica_of(r).unwrap_or(u32::MAX),
            container_id: r.id.clone(),
            state: r.state.as_str().to_string(),
            health: r.health.map(|h| h.as_str().to_string()).unwrap_or_default(),
            ips: r.ips.clone(),
            host_ports: r.host_ports.clone(),
            restarts: r.restart_count,
            spec_hash: r.labels.get(labels::SPEC_HASH).cloned().unwrap_or_default(),
        })
        .collect();
    statuses.sort_by(|a, b| (a.index, &a.container_id).cmp(&(b.index, &b.container_id)));
    let ready = current.iter().filter(|r| r.is_ready()).count() as u32;
    let failing: Vec<String> = current
        .iter()
        .filter(|r| {
            r.health == Some(Health::Unhealthy) || (r.state == ContainerState::Exited && r.exit_code != Some(0))
        })
        .map(|r| {
            format!("replica {} is {}", replica_of(r).unwrap_or(0), r.health.map_or(r.state.as_str(), Health::as_str))
        })
        .collect();
    let all_ready = ready == wanted && current.len() == replicas.len();
    let conditions = if all_ready {
        Conditions::from(container).ready(true, "AllReplicasReady", format!("{ready}/{wanted} replicas ready"), false)
    } else if !failing.is_empty() {
        Conditions::from(container).ready(false, "ReplicaFailing", failing.join("; "), true)
    } else {
        Conditions::from(container).ready(false, "ReplicasNotReady", format!("{ready}/{wanted} replicas ready"), false)
    };
    let status = ContainerStatus { common: conditions.build(), ready_replicas: ready, replicas: statuses };
    let only_restarts_changed = container.status.as_ref().is_some_and(|stored| {
        let without_counts = |s: &ContainerStatus| {
            let mut s = s.clone();
            s.replicas.iter_mut().for_each(|r| r.restarts = 0);
            s
        };
        *stored != status && without_counts(stored) == without_counts(&status)
    });
    if !only_restarts_changed || ctx.crash_loops.restart_count_write(&container.key(), std::time::Instant::now()) {
        ctx.write_status(container, status)?;
        return Ok(all_ready);
    }
    // Held back: look again when the count may be written.
    Ok(false)
}
