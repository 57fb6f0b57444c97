//! What to do to a Volume's engine volume, decided before anything is done.
//!
//! Data comes first, and it shows here: no row of [`decide`] removes a
//! volume except the deletion of a Volume with `reclaimPolicy: Delete`. A
//! volume made from another driver or options is kept and reported, never
//! recreated. The Volume reconciler runs the steps ([`super::volume`]) and
//! the plan renders them.

use crate::api::volume::ReclaimPolicy;
use crate::engine::{labels, VolumeInfo};

/// What the engine volume should be.
pub(crate) enum Wanted<'a> {
    /// The volume `name`, made from the storage settings hashing to `hash`.
    Volume { name: &'a str, hash: &'a str },
    /// None: the Volume is being deleted with this policy.
    Deleted(ReclaimPolicy),
    /// None: nothing declares the volume. An orphan's data is kept.
    Orphan,
}

/// One thing to do, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VolumeStep {
    /// Create the volume, which is missing.
    Create { name: String },
    /// Keep a volume made from another driver or options, and say so: it
    /// is never recreated, that would lose its data.
    KeepChanged { name: String },
    /// Remove the volume and its data (`reclaimPolicy: Delete`).
    Remove { name: String },
    /// Keep the volume and its data (`reclaimPolicy: Retain`), and record it.
    Retain { name: String },
}

/// The steps that take `observed` (the engine's volumes of one object) to
/// `wanted`.
pub(crate) fn decide(wanted: &Wanted<'_>, observed: &[VolumeInfo]) -> Vec<VolumeStep> {
    let each =
        |step: fn(String) -> VolumeStep| -> Vec<VolumeStep> { observed.iter().map(|v| step(v.name.clone())).collect() };
    match wanted {
        Wanted::Volume { name, hash } => match observed.iter().find(|v| v.name == *name) {
            None => vec![VolumeStep::Create { name: name.to_string() }],
            Some(v) if v.labels.get(labels::SPEC_HASH).map(String::as_str) == Some(*hash) => Vec::new(),
            Some(v) => vec![VolumeStep::KeepChanged { name: v.name.clone() }],
        },
        Wanted::Deleted(ReclaimPolicy::Delete) => each(|name| VolumeStep::Remove { name }),
        Wanted::Deleted(ReclaimPolicy::Retain) => each(|name| VolumeStep::Retain { name }),
        Wanted::Orphan => Vec::new(),
    }
}

impl VolumeStep {
    /// The step as the plan shows it: what will be done, and why.
    pub(crate) fn describe(&self) -> (String, String) {
        match self {
            VolumeStep::Create { name } => (format!("create volume {name}"), "it is missing".into()),
            VolumeStep::KeepChanged { name } => (
                format!("keep volume {name} as it is"),
                "driver or driverOpts changed; volumes are never recreated (that would lose data): the new \
                 settings apply when the volume is created again"
                    .into(),
            ),
            VolumeStep::Remove { name } => {
                (format!("remove volume {name} and its data"), "reclaimPolicy Delete".into())
            }
            VolumeStep::Retain { name } => {
                (format!("keep volume {name}"), "reclaimPolicy Retain keeps the data".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(hash: &str) -> VolumeInfo {
        VolumeInfo {
            name: "berth-default-data".into(),
            driver: "local".into(),
            labels: [(labels::SPEC_HASH.to_string(), hash.to_string())].into(),
            mountpoint: "/var/lib/x".into(),
        }
    }

    #[test]
    fn each_case_decides_its_steps() {
        let name = || "berth-default-data".to_string();
        let live = Wanted::Volume { name: "berth-default-data", hash: "h1" };
        let rows: Vec<(&str, Wanted, Vec<VolumeInfo>, Vec<VolumeStep>)> = vec![
            ("missing", live, vec![], vec![VolumeStep::Create { name: name() }]),
            ("current", Wanted::Volume { name: "berth-default-data", hash: "h1" }, vec![volume("h1")], vec![]),
            (
                "driver changed: kept",
                Wanted::Volume { name: "berth-default-data", hash: "h2" },
                vec![volume("h1")],
                vec![VolumeStep::KeepChanged { name: name() }],
            ),
            (
                "deleted, Delete",
                Wanted::Deleted(ReclaimPolicy::Delete),
                vec![volume("h1")],
                vec![VolumeStep::Remove { name: name() }],
            ),
            (
                "deleted, Retain",
                Wanted::Deleted(ReclaimPolicy::Retain),
                vec![volume("h1")],
                vec![VolumeStep::Retain { name: name() }],
            ),
            ("deleted, already gone", Wanted::Deleted(ReclaimPolicy::Delete), vec![], vec![]),
            ("orphan: data kept", Wanted::Orphan, vec![volume("h1")], vec![]),
        ];
        for (case, wanted, observed, expected) in rows {
            assert_eq!(decide(&wanted, &observed), expected, "{case}");
        }
    }

    #[test]
    fn only_a_delete_policy_removes_data() {
        let observed = [volume("h1")];
        for wanted in [
            Wanted::Volume { name: "berth-default-data", hash: "h1" },
            Wanted::Volume { name: "berth-default-data", hash: "other" },
            Wanted::Deleted(ReclaimPolicy::Retain),
            Wanted::Orphan,
        ] {
            assert!(!decide(&wanted, &observed).iter().any(|s| matches!(s, VolumeStep::Remove { .. })));
        }
    }
}
