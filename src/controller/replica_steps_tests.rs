//! [`decide`] on hand-built engines: one case per rule of "How berth
//! converges" (docs/converging.md) and of the Container reconciler's docs.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::api::container::{ContainerSpec, PortMapping};
use crate::engine::{ContainerConfig, Health};

const CURRENT: &str = "cccccccccccccccc";
const OLD: &str = "oooooooooooooooo";

fn template() -> Template {
    let config = ContainerConfig {
        networks: vec![NetworkAttachment { network: "berth-default-net".into(), aliases: vec!["web".into()] }],
        ..Default::default()
    };
    Template { config, hash: CURRENT.into(), hashed: json!({"spec": {"image": "web:2", "env": ["A=2"]}}) }
}

/// A container of replica `index`, running the spec of `hash`, on the
/// template's network.
fn replica(index: u32, hash: &str, state: ContainerState) -> ContainerInfo {
    let mut labels = BTreeMap::new();
    labels.insert(labels::REPLICA.to_string(), index.to_string());
    labels.insert(labels::SPEC_HASH.to_string(), hash.to_string());
    let spec = match hash {
        CURRENT => json!({"spec": {"image": "web:2", "env": ["A=2"]}}),
        _ => json!({"spec": {"image": "web:2", "env": ["A=1"]}}),
    };
    labels.insert(labels::SPEC.to_string(), spec.to_string());
    ContainerInfo {
        id: format!("{hash}-{index}-{}", state.as_str()),
        name: format!("berth-default-web-{index}-{}", &hash[..8]),
        image_id: "sha256:web".into(),
        labels,
        state,
        stopping: false,
        health: None,
        exit_code: (state == ContainerState::Exited).then_some(1),
        restart_count: 0,
        ips: [("berth-default-net".to_string(), "10.0.0.2".to_string())].into(),
        host_ports: BTreeMap::new(),
    }
}

fn running(index: u32, hash: &str) -> ContainerInfo {
    replica(index, hash, ContainerState::Running)
}

fn wanted(template: &Template, replicas: u32) -> Wanted<'_> {
    Wanted { replicas, template, start_first: false, restart_policy: RestartPolicy::Always }
}

fn steps(wanted: Wanted<'_>, observed: &[ContainerInfo]) -> Vec<Step> {
    decide(&Desired::Replicas(wanted), observed)
}

#[test]
fn missing_replicas_are_created_and_current_ones_left_alone() {
    let t = template();
    assert_eq!(steps(wanted(&t, 2), &[]), [Step::Create { index: 0 }, Step::Create { index: 1 }]);
    assert_eq!(steps(wanted(&t, 2), &[running(1, CURRENT)]), [Step::Create { index: 0 }]);
    assert_eq!(steps(wanted(&t, 2), &[running(0, CURRENT), running(1, CURRENT)]), []);
    assert_eq!(steps(wanted(&t, 0), &[]), []);
}

#[test]
fn a_changed_spec_recreates_only_the_replicas_that_run_the_old_one_and_names_the_fields() {
    let t = template();
    let old = running(1, OLD);
    let plan = steps(wanted(&t, 2), &[running(0, CURRENT), old.clone()]);
    let reason = "spec changed: env".to_string();
    assert_eq!(plan, [Step::Replace { index: 1, old: vec![old], reason, start_first: false }]);
    assert_eq!(plan[0].describe(), [("recreate replica 1".to_string(), "spec changed: env".to_string())]);
}

#[test]
fn a_restart_on_request_says_so() {
    let t =
        Template { hashed: json!({"spec": {"image": "web:2", "env": ["A=1"]}, "restartedAt": "now"}), ..template() };
    let [Step::Replace { reason, .. }] = &steps(wanted(&t, 1), &[running(0, OLD)])[..] else { panic!() };
    assert_eq!(reason, "restart requested");
}

#[test]
fn start_first_starts_the_new_replica_and_removes_the_old_one_once_the_new_is_ready() {
    let t = template();
    let start_first = || Wanted { start_first: true, ..wanted(&t, 1) };
    let old = running(0, OLD);
    let [Step::Replace { start_first: true, .. }] = &steps(start_first(), std::slice::from_ref(&old))[..] else {
        panic!()
    };

    // The new one runs but its health check has not passed: wait.
    let mut new = running(0, CURRENT);
    new.health = Some(Health::Starting);
    assert_eq!(steps(start_first(), &[old.clone(), new.clone()]), []);

    new.health = Some(Health::Healthy);
    let reason = "spec changed: env".to_string();
    assert_eq!(steps(start_first(), &[old.clone(), new]), [Step::RemoveReplaced { index: 0, old, reason }]);
}

#[test]
fn fixed_host_ports_force_recreate() {
    let t = template();
    let mut spec = ContainerSpec {
        image: Some("web:2".into()),
        update_strategy: Some(UpdateStrategy::StartFirst),
        ..Default::default()
    };
    assert!(Wanted::of(&Container::new("web", spec.clone()), &t).start_first);
    let port = PortMapping { name: None, container_port: 80, host_port: None, host_ip: None, protocol: None };
    spec.ports = vec![PortMapping { host_port: Some(HostPort::Auto), ..port.clone() }];
    assert!(Wanted::of(&Container::new("web", spec.clone()), &t).start_first);
    spec.ports = vec![PortMapping { host_port: Some(HostPort::Fixed(8080)), ..port }];
    assert!(!Wanted::of(&Container::new("web", spec), &t).start_first);
}

#[test]
fn a_stopped_replica_is_started_unless_its_policy_wants_it_down() {
    let t = template();
    let with = |policy| Wanted { restart_policy: policy, ..wanted(&t, 1) };
    let exited = replica(0, CURRENT, ContainerState::Exited);
    let start = Step::Start { index: 0, replica: exited.clone() };
    for policy in [RestartPolicy::Always, RestartPolicy::OnFailure] {
        assert_eq!(steps(with(policy), std::slice::from_ref(&exited)), std::slice::from_ref(&start), "{policy:?}");
    }
    assert_eq!(steps(with(RestartPolicy::Never), std::slice::from_ref(&exited)), []);
    let done = ContainerInfo { exit_code: Some(0), ..exited };
    assert_eq!(steps(with(RestartPolicy::OnFailure), &[done]), []);

    // Never started: started, and nothing else until it runs (not even its networks).
    let created = ContainerInfo { ips: BTreeMap::new(), ..replica(0, CURRENT, ContainerState::Created) };
    assert_eq!(steps(wanted(&t, 1), std::slice::from_ref(&created)), [Step::Start { index: 0, replica: created }]);
}

#[test]
fn what_the_engine_or_a_person_holds_is_left_alone() {
    let t = template();
    for state in [ContainerState::Restarting, ContainerState::Paused] {
        assert_eq!(steps(wanted(&t, 1), &[replica(0, CURRENT, state)]), [], "{state:?}");
    }
}

#[test]
fn a_dead_replica_is_replaced() {
    let t = template();
    let dead = replica(0, CURRENT, ContainerState::Dead);
    assert_eq!(steps(wanted(&t, 1), std::slice::from_ref(&dead)), [Step::ReplaceDead { index: 0, dead }]);
}

#[test]
fn containers_beyond_the_count_go_first_and_a_container_without_an_index_too() {
    let t = template();
    let mut unlabelled = running(0, CURRENT);
    unlabelled.labels.remove(labels::REPLICA);
    let third = running(2, CURRENT);
    let plan = steps(wanted(&t, 2), &[third.clone(), unlabelled.clone(), running(1, CURRENT)]);
    assert_eq!(
        plan,
        [
            Step::RemoveScaledDown { replica: third, to: 2 },
            Step::RemoveScaledDown { replica: unlabelled, to: 2 },
            Step::Create { index: 0 },
        ]
    );
    assert_eq!(plan[0].describe(), [("remove replica 2".to_string(), "scaled down to 2".to_string())]);
}

#[test]
fn a_duplicate_of_a_current_replica_is_removed() {
    let t = template();
    let mut twin = running(0, CURRENT);
    twin.id = "twin".into();
    assert_eq!(
        steps(wanted(&t, 1), &[running(0, CURRENT), twin.clone()]),
        [Step::RemoveDuplicate { index: 0, replica: twin }]
    );
}

#[test]
fn a_running_replica_off_its_network_is_connected() {
    let t = template();
    let off = ContainerInfo { ips: BTreeMap::new(), ..running(0, CURRENT) };
    let attachment = t.config.networks[0].clone();
    assert_eq!(
        steps(wanted(&t, 1), std::slice::from_ref(&off)),
        [Step::Connect { index: 0, replica_id: off.id.clone(), attachment }]
    );
}

#[test]
fn deletion_orphans_and_suspension_remove_everything_together() {
    let observed = [running(0, CURRENT), running(1, OLD)];
    for why in [Teardown::Deleted, Teardown::Orphan, Teardown::Suspended] {
        let plan = decide(&Desired::Nothing(why), &observed);
        assert_eq!(plan, [Step::RemoveAll { replicas: observed.to_vec(), why }]);
        assert_eq!(plan[0].describe().len(), 2);
        assert_eq!(decide(&Desired::Nothing(why), &[]), []);
    }
}
