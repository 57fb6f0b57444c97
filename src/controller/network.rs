//! Network reconciler: one engine network per Network object.
//!
//! Idempotent and cancel-safe: it reads what the engine has (by ownership
//! labels) and acts on the difference, so running it again, or after a
//! crash at any step, converges to the same place. A network whose spec
//! changed is recreated: berth's containers are detached first (their
//! reconcilers recreate them on the new network, whose id is part of their
//! spec hash); a network still used by containers berth does not own is
//! reported as Degraded rather than broken.

use serde_json::json;

use crate::api::{Network, NetworkSpec, NetworkStatus, ObjectKey};
use crate::engine::{labels, EngineError, NetworkConfig, NetworkInfo};

use super::action::{Action, ReconcileError};
use super::context::{name_taken, wait_for_users, Conditions, Context};
use super::finalizer::{self, Cleanup};
use super::network_steps::{decide, is_current, NetworkStep, Removal, Wanted};
use super::teardown::Teardown;

/// berth's DNS server answers on the gateway of every berth network
/// (`berth serve --dns-on-networks`). Those networks are created without
/// the engine's DNS server where it would hold the gateway's port 53, and
/// the containers on them get the gateways as their DNS servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkDns {
    /// The zone berth serves (`berth.internal.`). Containers search
    /// `<namespace>.<zone>`, so `api` names the Container `api` of theirs.
    pub zone: String,
}

impl NetworkDns {
    /// The search domain of the containers of `namespace`.
    pub fn search_domain(&self, namespace: &str) -> String {
        format!("{namespace}.{}", self.zone.trim_end_matches('.'))
    }
}

/// Engine name of a Network or Volume object.
pub fn engine_name(key: &ObjectKey) -> String {
    format!("berth-{}-{}", key.namespace, key.name)
}

/// The engine network `network` wants, labels and spec hash included.
pub(super) fn config(ctx: &Context, network: &Network) -> NetworkConfig {
    let key = network.key();
    let spec: &NetworkSpec = &network.spec;
    // Serving DNS on the gateway changes what the engine network is (Podman's
    // has no DNS server of its own then); the hash of a network without it
    // stays what it always was.
    let berth_dns = ctx.network_dns.is_some() && spec.gateway_dns();
    let hash = match berth_dns {
        true => labels::spec_hash(&json!({ "spec": spec, "dns": "berth" })),
        false => labels::spec_hash(&json!(spec)),
    };
    let mut engine_labels = labels::owner_labels(&ctx.instance, &key);
    engine_labels.insert(labels::SPEC_HASH.into(), hash);
    engine_labels.insert(labels::HASH_VERSION.into(), labels::CURRENT_HASH_VERSION.into());
    NetworkConfig {
        name: engine_name(&key),
        driver: spec.driver.clone().unwrap_or_else(|| crate::api::defaults::NETWORK_DRIVER.into()),
        subnet: spec.subnet.clone(),
        gateway: spec.gateway.clone(),
        internal: spec.internal,
        ipv6: spec.ipv6,
        berth_dns,
        labels: engine_labels,
    }
}

/// Brings the engine's network for `key` in line with the store.
pub async fn reconcile(ctx: &Context, key: &ObjectKey, desired: Option<Network>) -> Result<Action, ReconcileError> {
    let observed = ctx.reflector.networks_of(key).await?;
    let teardown = |deleting| teardown(ctx, key, deleting, &observed);
    let apply = |network| apply(ctx, key, network, &observed);
    finalizer::run(ctx, key, desired.as_ref(), apply, teardown).await
}

/// Removes the network of a deleted Network once no Container uses it.
async fn teardown(
    ctx: &Context,
    key: &ObjectKey,
    deleting: Option<&Network>,
    observed: &[NetworkInfo],
) -> Result<Cleanup, ReconcileError> {
    if let Some(deleting) = deleting {
        let keep = |common| NetworkStatus { common, ..deleting.status.clone().unwrap_or_default() };
        if let Some(wait) = wait_for_users(ctx, deleting, keep)? {
            return Ok(Cleanup::Wait(wait));
        }
    }
    let why = if deleting.is_some() { Teardown::Deleted } else { Teardown::Orphan };
    for step in decide(&Wanted::Nothing(why), observed) {
        let NetworkStep::Remove { name, why } = step else { continue };
        if !remove(ctx, key, &name, why).await? {
            let Some(deleting) = deleting else { return Ok(Cleanup::Wait(Action::requeue(IN_USE_RECHECK))) };
            let why = format!("being deleted: network {name} stays while containers berth does not manage use it");
            return in_use(ctx, deleting, why).map(Cleanup::Wait);
        }
    }
    Ok(Cleanup::Done)
}

/// Creates the network of a live Network, recreating one whose spec changed.
async fn apply(
    ctx: &Context,
    key: &ObjectKey,
    network: &Network,
    observed: &[NetworkInfo],
) -> Result<Action, ReconcileError> {
    let wanted = config(ctx, network);
    let mut current = observed.iter().find(|n| is_current(n, &wanted)).cloned();
    for step in decide(&Wanted::Network(&wanted), observed) {
        match step {
            NetworkStep::Remove { name, why } => {
                if !remove(ctx, key, &name, why).await? {
                    let why = format!("network {name} must be recreated but containers berth does not manage use it");
                    return in_use(ctx, network, why);
                }
            }
            NetworkStep::Create { .. } => current = Some(create(ctx, key, &wanted).await?),
        }
    }
    let current = current.ok_or_else(|| ReconcileError::transient(format!("network {} is missing", wanted.name)))?;
    let status = NetworkStatus {
        common: Conditions::from(network).ready(true, "Created", format!("network {}", current.name), false).build(),
        engine_id: current.id.clone(),
        subnets: current.subnets.clone(),
        gateways: current.gateways.clone(),
    };
    ctx.write_status(network, status)?;
    Ok(Action::await_change())
}

/// Creates the wanted network and records it; one of the same name made
/// since the reflector last looked is ours, any other is an error.
async fn create(ctx: &Context, key: &ObjectKey, wanted: &NetworkConfig) -> Result<NetworkInfo, ReconcileError> {
    let created = ctx.engine.create_network(wanted).await;
    ctx.reflector.refresh_networks().await?;
    match created {
        Err(e) if e.is_conflict() => {
            let ours = ctx.reflector.networks_of(key).await?.into_iter().find(|n| n.name == wanted.name);
            ours.ok_or_else(|| name_taken("network", &wanted.name))
        }
        created => {
            let created = created?;
            ctx.record(key, "created", "Missing", format!("created network {}", created.name))?;
            Ok(created)
        }
    }
}

/// How soon a network kept by containers berth does not manage is tried again.
const IN_USE_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports that `network` cannot be removed (`why`) while others use it,
/// and looks again shortly.
fn in_use(ctx: &Context, network: &Network, why: String) -> Result<Action, ReconcileError> {
    let status = NetworkStatus {
        common: Conditions::from(network).ready(false, "InUse", why, true).build(),
        ..network.status.clone().unwrap_or_default()
    };
    ctx.write_status(network, status)?;
    Ok(Action::requeue(IN_USE_RECHECK))
}

/// Removes a network, first detaching berth's own containers (on deletion,
/// only orphans are left by then: the Containers that use it went first).
/// Returns false when other containers still use it.
async fn remove(ctx: &Context, key: &ObjectKey, name: &str, why: Removal) -> Result<bool, ReconcileError> {
    let ours = ctx.reflector.all_containers().await?;
    for container in ours.iter().filter(|c| c.ips.contains_key(name)) {
        ctx.engine.disconnect_network(name, &container.id).await.or_else(EngineError::ignore_not_found)?;
    }
    let removed = ctx.engine.remove_network(name).await;
    ctx.reflector.refresh_networks().await?;
    match removed {
        Ok(()) => {
            ctx.record(key, "removed", why.reason(), format!("removed network {name}"))?;
            Ok(true)
        }
        Err(e) if e.is_not_found() => Ok(true),
        Err(e) if e.is_conflict() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::AnyObject;
    use crate::engine::fake::FakeEngine;
    use crate::store::{Store, WriteBatch};

    fn network() -> AnyObject {
        let json = serde_json::json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Network",
            "metadata": {"name": "net", "namespace": "default"}, "spec": {}
        });
        AnyObject::from_json(json).expect("a Network")
    }

    /// A store in a temporary directory, and a context on it and the fake engine.
    fn context() -> (tempfile::TempDir, Store, Context) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let ctx = Context::for_tests(store.clone(), Arc::new(FakeEngine::new()));
        (dir, store, ctx)
    }

    /// A reconcile that read no object must not remove one applied meanwhile.
    #[tokio::test]
    async fn an_object_created_during_a_reconcile_that_saw_none_is_kept() {
        let (_dir, store, ctx) = context();
        let key = network().key();
        store.commit(WriteBatch::new().put(network())).expect("apply");
        reconcile(&ctx, &key, None).await.expect("reconcile");
        assert!(store.get(&key).expect("read").is_some(), "the Network was removed from the store");
    }

    /// A teardown must not remove an object that was applied again while it ran.
    #[tokio::test]
    async fn an_object_applied_again_during_its_teardown_is_kept() {
        let (_dir, store, ctx) = context();
        let key = network().key();
        store.commit(WriteBatch::new().put(network())).expect("apply");
        store.commit(WriteBatch::new().delete(key.clone())).expect("delete");
        let Some(AnyObject::Network(seen)) = store.get(&key).expect("read") else { panic!("a Network") };
        store.commit(WriteBatch::new().put(network())).expect("applied again");
        reconcile(&ctx, &key, Some(seen)).await.expect("reconcile");
        let kept = store.get(&key).expect("read").expect("the Network was removed from the store");
        assert!(kept.metadata().deletion_timestamp.is_none());
    }
}
