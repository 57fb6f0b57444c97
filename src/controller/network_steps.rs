//! What to do to a Network's engine network, decided before anything is
//! done.
//!
//! [`decide`] is a pure function from the wanted network (or why there is
//! none) and the engine's networks of the object to the steps that
//! converge them. The Network reconciler runs them ([`super::network`]) and
//! the plan renders them, so the two cannot disagree. Removals come first:
//! a network whose spec changed goes before its replacement, which takes
//! its name.

use crate::engine::{labels, NetworkConfig, NetworkInfo};

use super::teardown::Teardown;

/// What the engine network should be.
pub(crate) enum Wanted<'a> {
    /// This network, as the reconciler would create it.
    Network(&'a NetworkConfig),
    /// None: the object is being deleted, or is gone.
    Nothing(Teardown),
}

/// Why a network goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// It was made from another spec; a new one replaces it.
    SpecChanged,
    /// Its object is deleted or gone.
    Gone(Teardown),
}

impl Removal {
    /// The reason recorded in the event log.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Removal::SpecChanged => "spec changed",
            Removal::Gone(_) => "deleted",
        }
    }
}

/// One thing to do to the engine, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NetworkStep {
    /// Create the wanted network, which is missing.
    Create { name: String },
    /// Remove a network of the object (berth's containers are detached first).
    Remove { name: String, why: Removal },
}

/// Whether `existing` is the wanted network: its name, made from its spec.
pub(crate) fn is_current(existing: &NetworkInfo, wanted: &NetworkConfig) -> bool {
    existing.name == wanted.name && existing.labels.get(labels::SPEC_HASH) == wanted.labels.get(labels::SPEC_HASH)
}

/// The steps that take `observed` (the engine's networks of one object) to
/// `wanted`.
pub(crate) fn decide(wanted: &Wanted<'_>, observed: &[NetworkInfo]) -> Vec<NetworkStep> {
    let remove = |existing: &NetworkInfo, why| NetworkStep::Remove { name: existing.name.clone(), why };
    match wanted {
        Wanted::Nothing(why) => observed.iter().map(|n| remove(n, Removal::Gone(*why))).collect(),
        Wanted::Network(config) => {
            let mut steps: Vec<NetworkStep> =
                observed.iter().filter(|n| !is_current(n, config)).map(|n| remove(n, Removal::SpecChanged)).collect();
            if !observed.iter().any(|n| is_current(n, config)) {
                steps.push(NetworkStep::Create { name: config.name.clone() });
            }
            steps
        }
    }
}

impl NetworkStep {
    /// The step as the plan shows it: what will be done, and why.
    pub(crate) fn describe(&self) -> (String, String) {
        match self {
            NetworkStep::Create { name } => (format!("create network {name}"), "it is missing".into()),
            NetworkStep::Remove { name, why: Removal::SpecChanged } => (
                format!("remove network {name}, detaching berth's containers"),
                "spec changed: it is created again, and the Containers on it are recreated on the new one".into(),
            ),
            NetworkStep::Remove { name, why: Removal::Gone(why) } => (
                format!("remove network {name}"),
                match why {
                    Teardown::Orphan => "nothing declares it",
                    Teardown::Deleted | Teardown::Suspended => "Network deleted",
                }
                .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hash: &str) -> NetworkConfig {
        NetworkConfig {
            name: "berth-default-net".into(),
            labels: [(labels::SPEC_HASH.to_string(), hash.to_string())].into(),
            ..NetworkConfig::default()
        }
    }

    fn network(name: &str, hash: &str) -> NetworkInfo {
        NetworkInfo {
            id: format!("id-{name}-{hash}"),
            name: name.into(),
            driver: "bridge".into(),
            labels: [(labels::SPEC_HASH.to_string(), hash.to_string())].into(),
            subnets: Vec::new(),
            gateways: Vec::new(),
            internal: false,
            containers: Vec::new(),
        }
    }

    fn create() -> NetworkStep {
        NetworkStep::Create { name: "berth-default-net".into() }
    }

    fn remove(name: &str, why: Removal) -> NetworkStep {
        NetworkStep::Remove { name: name.into(), why }
    }

    #[test]
    fn each_case_decides_its_steps() {
        let wanted = config("h1");
        let live = Wanted::Network(&wanted);
        let (current, stale) = (network("berth-default-net", "h1"), network("berth-default-net", "h0"));
        let renamed = network("berth-default-old", "h1");
        let rows: Vec<(&str, &Wanted, Vec<NetworkInfo>, Vec<NetworkStep>)> = vec![
            ("missing", &live, vec![], vec![create()]),
            ("current", &live, vec![current.clone()], vec![]),
            (
                "spec changed: removed, then created",
                &live,
                vec![stale.clone()],
                vec![remove("berth-default-net", Removal::SpecChanged), create()],
            ),
            (
                "a second network of the object",
                &live,
                vec![current.clone(), renamed.clone()],
                vec![remove("berth-default-old", Removal::SpecChanged)],
            ),
            ("deleted, none left", &Wanted::Nothing(Teardown::Deleted), vec![], vec![]),
            (
                "deleted",
                &Wanted::Nothing(Teardown::Deleted),
                vec![current.clone()],
                vec![remove("berth-default-net", Removal::Gone(Teardown::Deleted))],
            ),
            (
                "orphan",
                &Wanted::Nothing(Teardown::Orphan),
                vec![stale.clone()],
                vec![remove("berth-default-net", Removal::Gone(Teardown::Orphan))],
            ),
        ];
        for (case, wanted, observed, expected) in rows {
            assert_eq!(decide(wanted, &observed), expected, "{case}");
        }
    }

    #[test]
    fn each_step_says_what_and_why() {
        let described = [create(), remove("n", Removal::Gone(Teardown::Orphan))].map(|s| s.describe());
        assert_eq!(
            described,
            [
                ("create network berth-default-net".into(), "it is missing".into()),
                ("remove network n".into(), "nothing declares it".into()),
            ]
        );
    }
}
