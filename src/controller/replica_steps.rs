//! What to do to a Container's replicas, decided before anything is done.
//!
//! [`decide`] is a pure function from what is wanted (the replicas of a
//! template, or none) and the engine's containers of the object to the
//! steps that converge them, each carrying its reason. The reconciler runs
//! the steps ([`super::container`]) and the plan (`berth diff`,
//! `/apply?dryRun`) shows them ([`super::plan`]): both call this one
//! function on the same inputs, so what the plan says is what the
//! reconciler then does, and a dry run changes nothing because deciding
//! cannot.
//!
//! The order of the steps is the order they run in: containers beyond the
//! replica count first, then each replica from 0 up.

use std::collections::BTreeMap;

use crate::api::container::{RestartPolicy, UpdateStrategy};
use crate::api::{Container, HostPort};
use crate::engine::{labels, ContainerInfo, ContainerState, NetworkAttachment};

use super::container_spec::{changed_fields, Template};
pub(crate) use super::teardown::Teardown;

/// What the replicas should be.
pub(crate) enum Desired<'a> {
    /// No replica at all.
    Nothing(Teardown),
    /// `replicas` replicas of `template`.
    Replicas(Wanted<'a>),
}

/// The replicas of a live Container.
pub(crate) struct Wanted<'a> {
    /// How many.
    pub(crate) replicas: u32,
    /// What each runs.
    pub(crate) template: &'a Template,
    /// A changed replica is started before its old container goes.
    pub(crate) start_first: bool,
    /// What to do with a replica that exited.
    pub(crate) restart_policy: RestartPolicy,
}

impl<'a> Wanted<'a> {
    /// The replicas `container` wants of `template`. Fixed host ports force
    /// `Recreate`: two replicas cannot bind one port.
    pub(crate) fn of(container: &Container, template: &'a Template) -> Self {
        let spec = &container.spec;
        let fixed_ports = spec.ports.iter().any(|p| matches!(p.host_port, Some(HostPort::Fixed(_))));
        Wanted {
            replicas: spec.replicas.unwrap_or(1).max(0) as u32,
            template,
            start_first: spec.update_strategy == Some(UpdateStrategy::StartFirst) && !fixed_ports,
            restart_policy: spec.restart_policy.unwrap_or(RestartPolicy::Always),
        }
    }
}

/// One thing to do to the engine, and why.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// Create and start replica `index`, which has no container.
    Create { index: u32 },
    /// Replace replica `index`, whose containers run another spec: remove
    /// them, then create and start it (`start_first`: create and start it
    /// now; the old ones go once it is ready, see [`Step::RemoveReplaced`]).
    Replace { index: u32, old: Vec<ContainerInfo>, reason: String, start_first: bool },
    /// Remove the dead container of replica `index` and create it again.
    ReplaceDead { index: u32, dead: ContainerInfo },
    /// Start replica `index` again (it stopped, and its policy wants it up).
    Start { index: u32, replica: ContainerInfo },
    /// Attach replica `index` to a network of its spec that it is not on.
    Connect { index: u32, replica_id: String, attachment: NetworkAttachment },
    /// Remove an old container of replica `index` now that its replacement
    /// is ready.
    RemoveReplaced { index: u32, old: ContainerInfo, reason: String },
    /// Remove a container beyond the replica count.
    RemoveScaledDown { replica: ContainerInfo, to: u32 },
    /// Remove a second container running replica `index`'s current spec.
    RemoveDuplicate { index: u32, replica: ContainerInfo },
    /// Remove every container of the object, stopped together.
    RemoveAll { replicas: Vec<ContainerInfo>, why: Teardown },
}

/// The replica index a container of berth's runs, from its label.
pub(crate) fn replica_of(info: &ContainerInfo) -> Option<u32> {
    info.labels.get(labels::REPLICA)?.parse().ok()
}

/// The steps that take `observed` (the engine's containers of one object)
/// to `desired`.
pub(crate) fn decide(desired: &Desired<'_>, observed: &[ContainerInfo]) -> Vec<Step> {
    let wanted = match desired {
        Desired::Nothing(_) if observed.is_empty() => return Vec::new(),
        Desired::Nothing(why) => return vec![Step::RemoveAll { replicas: observed.to_vec(), why: *why }],
        Desired::Replicas(wanted) => wanted,
    };
    let mut steps = Vec::new();
    let mut by_replica: BTreeMap<u32, Vec<&ContainerInfo>> = BTreeMap::new();
    for info in observed {
        match replica_of(info) {
            Some(index) if index < wanted.replicas => by_replica.entry(index).or_default().push(info),
            _ => steps.push(Step::RemoveScaledDown { replica: info.clone(), to: wanted.replicas }),
        }
    }
    let template = wanted.template;
    for index in 0..wanted.replicas {
        let group = by_replica.remove(&index).unwrap_or_default();
        let (mut current, stale): (Vec<_>, Vec<_>) =
            group.into_iter().partition(|c| c.labels.get(labels::SPEC_HASH) == Some(&template.hash));
        // Two current containers for one replica cannot come from berth's own
        // steps (names are deterministic); keep one, remove the rest.
        for extra in current.split_off(current.len().min(1)) {
            steps.push(Step::RemoveDuplicate { index, replica: extra.clone() });
        }
        let stale: Vec<ContainerInfo> = stale.into_iter().cloned().collect();
        let Some(replica) = current.pop() else {
            steps.push(match stale.first() {
                None => Step::Create { index },
                Some(old) => Step::Replace {
                    index,
                    reason: recreate_reason(old, template),
                    old: stale,
                    start_first: wanted.start_first,
                },
            });
            continue;
        };
        if replica.state == ContainerState::Dead {
            steps.push(Step::ReplaceDead { index, dead: replica.clone() });
            continue;
        }
        // Running, being restarted by the engine, or paused by someone:
        // not ours to start. Exited under `Never`, or done under
        // `OnFailure`: meant to stay down.
        let done = match wanted.restart_policy {
            RestartPolicy::Always => false,
            RestartPolicy::OnFailure => replica.exit_code == Some(0),
            RestartPolicy::Never => true,
        };
        let leave =
            matches!(replica.state, ContainerState::Running | ContainerState::Restarting | ContainerState::Paused)
                || (done && replica.state == ContainerState::Exited);
        if !leave {
            // Not running, so neither joined to networks nor ready: nothing
            // more for this replica until it runs.
            steps.push(Step::Start { index, replica: replica.clone() });
            continue;
        }
        if replica.state == ContainerState::Running {
            for attachment in &template.config.networks {
                if !replica.ips.contains_key(&attachment.network) {
                    let attachment = attachment.clone();
                    steps.push(Step::Connect { index, replica_id: replica.id.clone(), attachment });
                }
            }
        }
        if replica.is_ready() && !stale.is_empty() {
            let reason = recreate_reason(&stale[0], template);
            for old in stale {
                steps.push(Step::RemoveReplaced { index, old, reason: reason.clone() });
            }
        }
    }
    steps
}

/// `spec changed: env, ports` from the spec label of the replaced container.
pub(crate) fn recreate_reason(old: &ContainerInfo, template: &Template) -> String {
    let previous: serde_json::Value =
        old.labels.get(labels::SPEC).and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    let changed = changed_fields(&previous, &template.hashed);
    if changed == ["restart"] {
        "restart requested".to_string()
    } else if changed.is_empty() {
        "spec changed".to_string()
    } else {
        format!("spec changed: {}", changed.join(", "))
    }
}

impl Step {
    /// The step as the plan shows it: what will be done, and why.
    pub(crate) fn describe(&self) -> Vec<(String, String)> {
        let one = |what: String, why: String| vec![(what, why)];
        match self {
            Step::Create { index } => one(format!("create replica {index}"), "replica missing".into()),
            Step::Replace { index, reason, start_first: false, .. } => {
                one(format!("recreate replica {index}"), reason.clone())
            }
            Step::Replace { index, reason, start_first: true, .. } => {
                one(format!("start a new replica {index}, then remove the old one"), reason.clone())
            }
            Step::ReplaceDead { index, .. } => one(format!("replace replica {index}"), "its container is dead".into()),
            Step::Start { index, replica } => {
                one(format!("start replica {index}"), format!("it is {}", replica.state.as_str()))
            }
            Step::Connect { index, attachment, .. } => one(
                format!("connect replica {index} to {}", attachment.network),
                "it is not on a network of its spec".into(),
            ),
            Step::RemoveReplaced { index, reason, .. } => {
                one(format!("remove the old container of replica {index}"), format!("{reason}; replaced and ready"))
            }
            Step::RemoveScaledDown { replica, to } => one(
                format!("remove replica {}", replica_of(replica).map_or("?".into(), |i| i.to_string())),
                format!("scaled down to {to}"),
            ),
            Step::RemoveDuplicate { index, .. } => {
                one(format!("remove a duplicate of replica {index}"), "two containers run its spec".into())
            }
            Step::RemoveAll { replicas, why } => {
                let why = match why {
                    Teardown::Deleted => "Container deleted",
                    Teardown::Orphan => "nothing declares it",
                    Teardown::Suspended => "the Container is suspended",
                };
                let mut indexes: Vec<u32> = replicas.iter().filter_map(replica_of).collect();
                indexes.sort_unstable();
                indexes.into_iter().map(|i| (format!("remove replica {i}"), why.to_string())).collect()
            }
        }
    }
}

#[cfg(test)]
#[path = "replica_steps_tests.rs"]
mod tests;
