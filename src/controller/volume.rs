//! Volume reconciler: one engine volume per Volume object.
//!
//! Data comes first. A volume is created when missing and never recreated:
//! a changed driver or options is reported (`Degraded`, reason
//! `SpecChangeNotApplied`) instead of silently replacing the data. Deleting
//! the object removes the engine volume only with `reclaimPolicy: Delete`;
//! with `Retain` (the default) the data stays, and so do its labels.

use crate::api::volume::ReclaimPolicy;
use crate::api::{ObjectKey, Volume, VolumeStatus};
use crate::engine::{labels, VolumeConfig, VolumeInfo};

use super::action::{Action, ReconcileError};
use super::context::{name_taken, wait_for_users, Conditions, Context};
use super::finalizer::{self, Cleanup};
use super::network::engine_name;
use super::volume_steps::{decide, VolumeStep, Wanted};

/// Brings the engine's volume for `key` in line with the store.
pub async fn reconcile(ctx: &Context, key: &ObjectKey, desired: Option<Volume>) -> Result<Action, ReconcileError> {
    let observed = ctx.reflector.volumes_of(key).await?;
    let teardown = |deleting| teardown(ctx, key, deleting, &observed);
    let apply = |volume| apply(ctx, key, volume, &observed);
    finalizer::run(ctx, key, desired.as_ref(), apply, teardown).await
}

/// Removes (`reclaimPolicy: Delete`) or keeps the volume of a deleted
/// Volume once no Container uses it.
async fn teardown(
    ctx: &Context,
    key: &ObjectKey,
    deleting: Option<&Volume>,
    observed: &[VolumeInfo],
) -> Result<Cleanup, ReconcileError> {
    let wanted = match deleting {
        Some(deleting) => {
            let keep = |common| VolumeStatus { common, ..deleting.status.clone().unwrap_or_default() };
            if let Some(wait) = wait_for_users(ctx, deleting, keep)? {
                return Ok(Cleanup::Wait(wait));
            }
            Wanted::Deleted(deleting.spec.reclaim_policy.unwrap_or(ReclaimPolicy::Retain))
        }
        None => Wanted::Orphan,
    };
    for step in decide(&wanted, observed) {
        match step {
            VolumeStep::Remove { name } => {
                let removed = ctx.engine.remove_volume(&name).await;
                ctx.reflector.refresh_volumes().await?;
                match removed {
                    Ok(()) => ctx.record(
                        key,
                        "removed",
                        "Deleted",
                        format!("removed volume {name} and its data (reclaimPolicy Delete)"),
                    )?,
                    Err(e) if e.is_not_found() => {}
                    // Still mounted by a container being torn down: try again shortly.
                    Err(e) if e.is_conflict() => return Ok(Cleanup::Wait(Action::requeue(IN_USE_RECHECK))),
                    Err(e) => return Err(e.into()),
                }
            }
            VolumeStep::Retain { name } => {
                ctx.record(key, "retained", "ReclaimPolicyRetain", format!("kept volume {name} and its data"))?
            }
            VolumeStep::Create { .. } | VolumeStep::KeepChanged { .. } => {
                return Err(ReconcileError::terminal(format!("a teardown decided {step:?}")))
            }
        }
    }
    Ok(Cleanup::Done)
}

/// How soon removing a volume still mounted by a container on its way out
/// is tried again.
const IN_USE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The engine volume `volume` wants.
pub(super) fn config(ctx: &Context, volume: &Volume) -> VolumeConfig {
    let key = volume.key();
    let driver = volume.spec.driver.clone().unwrap_or_else(|| crate::api::defaults::VOLUME_DRIVER.into());
    let mut engine_labels = labels::owner_labels(&ctx.instance, &key);
    engine_labels.insert(labels::SPEC_HASH.into(), storage_hash(&driver, volume));
    VolumeConfig {
        name: engine_name(&key),
        driver,
        driver_opts: volume.spec.driver_opts.clone(),
        labels: engine_labels,
    }
}

/// What `config` asks of the engine, as [`decide`] compares it.
pub(super) fn wanted(config: &VolumeConfig) -> Wanted<'_> {
    Wanted::Volume { name: &config.name, hash: config.labels.get(labels::SPEC_HASH).map_or("", String::as_str) }
}

/// Creates the volume of a live Volume, and reports a spec it cannot apply.
async fn apply(
    ctx: &Context,
    key: &ObjectKey,
    volume: &Volume,
    observed: &[VolumeInfo],
) -> Result<Action, ReconcileError> {
    let config = config(ctx, volume);
    let mut current = observed.iter().find(|v| v.name == config.name).cloned();
    let mut unchanged = true;
    for step in decide(&wanted(&config), observed) {
        match step {
            VolumeStep::Create { .. } => {
                // The host policy, again, before the engine mounts anything (a
                // Volume stored by an older berth; a path that resolves
                // elsewhere now). One that exists already keeps its data.
                if let Some(refused) = crate::manifest::policy::refusal(&crate::api::AnyObject::Volume(volume.clone()))
                {
                    let common = Conditions::from(volume).ready(false, "PolicyDenied", refused, false).build();
                    ctx.write_status(volume, VolumeStatus { common, ..volume.status.clone().unwrap_or_default() })?;
                    return Ok(Action::await_change());
                }
                current = Some(create(ctx, key, &config).await?);
            }
            VolumeStep::KeepChanged { .. } => unchanged = false,
            VolumeStep::Remove { .. } | VolumeStep::Retain { .. } => {
                return Err(ReconcileError::terminal(format!("a live Volume decided {step:?}")))
            }
        }
    }
    let current = current.ok_or_else(|| ReconcileError::transient(format!("volume {} is missing", config.name)))?;
    let mut conditions = Conditions::from(volume).ready(true, "Created", format!("volume {}", current.name), false);
    if !unchanged {
        let message =
            "driver or driverOpts changed; volumes are never recreated automatically (that would lose data): \
                       delete the Volume with reclaimPolicy Delete and apply it again";
        conditions = conditions.set("Degraded", true, "SpecChangeNotApplied", message);
    }
    let status = VolumeStatus {
        common: conditions.build(),
        engine_name: current.name.clone(),
        mountpoint: current.mountpoint.clone(),
    };
    ctx.write_status(volume, status)?;
    Ok(Action::await_change())
}

/// Creates the wanted volume and records it; one of the same name made
/// since the reflector last looked is ours, any other is an error.
async fn create(ctx: &Context, key: &ObjectKey, config: &VolumeConfig) -> Result<VolumeInfo, ReconcileError> {
    let created = ctx.engine.create_volume(config).await;
    ctx.reflector.refresh_volumes().await?;
    match created {
        Err(e) if e.is_conflict() => {
            let ours = ctx.reflector.volumes_of(key).await?.into_iter().find(|v| v.name == config.name);
            ours.ok_or_else(|| name_taken("volume", &config.name))
        }
        created => {
            let created = created?;
            ctx.record(key, "created", "Missing", format!("created volume {}", created.name))?;
            Ok(created)
        }
    }
}

/// Hash of what decides where the data lives (not the reclaim policy).
fn storage_hash(driver: &str, volume: &Volume) -> String {
    labels::spec_hash(&serde_json::json!({ "driver": driver, "driverOpts": volume.spec.driver_opts }))
}
