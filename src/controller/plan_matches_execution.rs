//! The plan is what the reconciler then does: for random Container specs
//! and random engine states (replicas stopped, removed or duplicated by
//! hand, a spec changed, scaled up or down), the steps the plan decides on
//! the read-only path are exactly the engine calls the next reconcile
//! makes, in order; and a few reconciles converge to a plan with nothing
//! left to do.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::container_steps;
use crate::api::{AnyObject, Container, ObjectKey};
use crate::controller::context::Context;
use crate::controller::replica_steps::Step;
use crate::engine::fake::FakeEngine;
use crate::engine::{labels, ContainerState, Engine};
use crate::store::{Store, WriteBatch};

#[derive(Clone, Debug)]
struct Spec {
    replicas: u32,
    env: u8,
    start_first: bool,
    never: bool,
}

/// Something a person does to the engine behind berth's back; the index
/// picks a container (modulo how many there are).
#[derive(Clone, Debug)]
enum Meddling {
    Stop(usize),
    Remove(usize),
    Duplicate(usize),
}

fn spec() -> impl Strategy<Value = Spec> {
    (0u32..4, 0u8..2, any::<bool>(), any::<bool>()).prop_map(|(replicas, env, start_first, never)| Spec {
        replicas,
        env,
        start_first,
        never,
    })
}

fn meddling() -> impl Strategy<Value = Meddling> {
    prop_oneof![
        (0usize..8).prop_map(Meddling::Stop),
        (0usize..8).prop_map(Meddling::Remove),
        (0usize..8).prop_map(Meddling::Duplicate),
    ]
}

fn container(spec: &Spec) -> Container {
    let json = json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Container",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "image": "web:1",
            "replicas": spec.replicas,
            "env": [{"name": "A", "value": spec.env.to_string()}],
            "updateStrategy": if spec.start_first { "StartFirst" } else { "Recreate" },
            "restartPolicy": if spec.never { "Never" } else { "Always" },
            "stopGracePeriod": "0s",
        }
    });
    let mut object = AnyObject::from_json(json).expect("a Container");
    crate::api::defaults::apply(&mut object);
    match object {
        AnyObject::Container(container) => container,
        _ => unreachable!(),
    }
}

/// Writes `spec` and returns the stored Container, as the reconciler gets it.
fn store(store: &Store, spec: &Spec) -> Container {
    let object = AnyObject::Container(container(spec));
    store.commit(WriteBatch::new().put(object.clone())).expect("write");
    match store.get(&object.key()).expect("read") {
        Some(AnyObject::Container(container)) => container,
        _ => unreachable!(),
    }
}

/// The engine calls a step stands for: `(operation, target)`, where a
/// target of `None` is a container the step itself creates.
fn calls(step: &Step) -> Vec<(&'static str, Option<String>)> {
    let removal = |info: &crate::engine::ContainerInfo| {
        let stop = (info.state == ContainerState::Running && !info.stopping)
            .then(|| ("stop_container", Some(info.id.clone())));
        stop.into_iter().chain([("remove_container", Some(info.id.clone()))]).collect::<Vec<_>>()
    };
    let create = || vec![("create_container", None), ("start_container", None)];
    match step {
        Step::Create { .. } | Step::Replace { start_first: true, .. } => create(),
        Step::Replace { old, .. } => old.iter().flat_map(removal).chain(create()).collect(),
        Step::ReplaceDead { dead, .. } => removal(dead).into_iter().chain(create()).collect(),
        Step::Start { replica, .. } => vec![("start_container", Some(replica.id.clone()))],
        Step::Connect { replica_id, .. } => vec![("connect_network", Some(replica_id.clone()))],
        Step::RemoveReplaced { old: info, .. }
        | Step::RemoveScaledDown { replica: info, .. }
        | Step::RemoveDuplicate { replica: info, .. } => removal(info),
        Step::RemoveAll { replicas, .. } => replicas.iter().flat_map(removal).collect(),
    }
}

async fn meddle(engine: &FakeEngine, meddling: &[Meddling]) {
    for (n, m) in meddling.iter().enumerate() {
        let mut ours = engine.containers();
        ours.sort_by(|a, b| a.name.cmp(&b.name));
        if ours.is_empty() {
            return;
        }
        match m {
            Meddling::Stop(i) => engine.stop_container(&ours[i % ours.len()].id, Duration::ZERO).await.expect("stop"),
            Meddling::Remove(i) => engine.remove_container(&ours[i % ours.len()].id).await.expect("remove"),
            Meddling::Duplicate(i) => {
                let original = &ours[i % ours.len()];
                let mut config = engine.container_config(&original.id).expect("config");
                config.name = format!("{}-twin{n}", config.name);
                let id = engine.create_container(&config).await.expect("create");
                engine.start_container(&id).await.expect("start");
            }
        }
    }
}

async fn plan_then_reconcile(before: Spec, after: Spec, meddling: Vec<Meddling>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = FakeEngine::new();
    engine.preload_image("web:1");
    let ctx = Context::for_tests(Store::open(dir.path()).expect("store"), Arc::new(engine.clone()));
    let key = ObjectKey::parse("Container/default/web").expect("key");
    let stored = store(&ctx.store, &before);
    super::super::container::reconcile(&ctx, &key, Some(stored)).await.expect("first reconcile");
    meddle(&engine, &meddling).await;
    let wanted = store(&ctx.store, &after);

    // Planning reads: no engine change, no store write.
    let version = ctx.store.resource_version();
    engine.clear_calls();
    let steps = container_steps(&ctx, &wanted).await.expect("plan").expect("nothing to wait for");
    assert_eq!(engine.mutating_calls(), [], "planning changed the engine");
    assert_eq!(ctx.store.resource_version(), version, "planning wrote to the store");
    let planned: Vec<_> = steps.iter().flat_map(calls).collect();
    super::super::container::reconcile(&ctx, &key, Some(wanted.clone())).await.expect("reconcile");
    let made: Vec<_> = engine.mutating_calls().into_iter().map(|c| (c.op, c.target)).collect();
    assert_eq!(made.len(), planned.len(), "planned {steps:#?}\nmade {made:#?}");
    for ((op, target), (planned_op, planned_target)) in made.iter().zip(&planned) {
        assert_eq!(op, planned_op, "planned {steps:#?}\nmade {made:#?}");
        if let Some(planned_target) = planned_target {
            assert_eq!(target, planned_target, "planned {steps:#?}\nmade {made:#?}");
        }
    }

    // A few more reconciles leave nothing to do (StartFirst takes one to
    // remove what it replaced), and then every replica runs the spec.
    for _ in 0..3 {
        let wanted = match ctx.store.get(&key).expect("read") {
            Some(AnyObject::Container(c)) => c,
            _ => unreachable!(),
        };
        super::super::container::reconcile(&ctx, &key, Some(wanted)).await.expect("reconcile");
    }
    let left = container_steps(&ctx, &wanted).await.expect("plan").expect("nothing to wait for");
    let replicas = engine.containers().into_iter().filter(|c| c.labels.contains_key(labels::REPLICA)).count();
    assert_eq!(left, [], "left to do after converging");
    assert_eq!(replicas, after.replicas as usize, "containers after converging");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_plan_is_what_the_reconciler_then_does(before in spec(), after in spec(), meddling in proptest::collection::vec(meddling(), 0..4)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(plan_then_reconcile(before, after, meddling));
    }
}

/// The engine calls the plan's lines for a Network, Volume or Image name,
/// by their first words ("none", "keep volume …" name none).
fn other_calls(planned: &[(String, String)]) -> Vec<&'static str> {
    let call = |operation: &str| match operation.split(' ').take(2).collect::<Vec<_>>()[..] {
        ["create", "network"] => Some("create_network"),
        ["remove", "network"] => Some("remove_network"),
        ["create", "volume"] => Some("create_volume"),
        ["remove", "volume"] => Some("remove_volume"),
        ["pull", "image"] => Some("pull_image"),
        ["build", "image"] => Some("build_image"),
        _ => None,
    };
    planned.iter().filter_map(|(operation, _)| call(operation)).collect()
}

fn object(kind: &str, spec: serde_json::Value) -> AnyObject {
    let json = json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": kind,
        "metadata": {"name": "it", "namespace": "default"}, "spec": spec,
    });
    let mut object = AnyObject::from_json(json).expect("an object");
    crate::api::defaults::apply(&mut object);
    object
}

/// Each row: what the engine got from `before` (applied and reconciled
/// first, if any), then `after` applied (or the object deleted): the plan's
/// engine steps are the calls the next reconcile makes, and the steps the
/// plan shows name them.
#[tokio::test]
async fn networks_volumes_and_images_plan_what_their_reconcilers_then_do() {
    let network = |subnet: &str| object("Network", json!({"subnet": subnet}));
    let volume = |driver_opt: &str, policy: &str| {
        object("Volume", json!({"driverOpts": {"o": driver_opt}, "reclaimPolicy": policy}))
    };
    let pull = |policy: &str| object("Image", json!({"pull": {"ref": "web:2", "policy": policy}}));
    let build = |arg: &str| object("Image", json!({"build": {"dockerfileInline": "FROM scratch", "args": {"A": arg}}}));
    type Row = (&'static str, Option<AnyObject>, Option<AnyObject>, Vec<&'static str>);
    let rows: Vec<Row> = vec![
        ("new network", None, Some(network("10.9.0.0/24")), vec!["create_network"]),
        ("network as it is", Some(network("10.9.0.0/24")), Some(network("10.9.0.0/24")), vec![]),
        (
            "network spec changed",
            Some(network("10.9.0.0/24")),
            Some(network("10.9.1.0/24")),
            vec!["remove_network", "create_network"],
        ),
        ("network deleted", Some(network("10.9.0.0/24")), None, vec!["remove_network"]),
        ("new volume", None, Some(volume("a", "Delete")), vec!["create_volume"]),
        ("volume options changed: kept", Some(volume("a", "Delete")), Some(volume("b", "Delete")), vec![]),
        ("volume deleted, Delete", Some(volume("a", "Delete")), None, vec!["remove_volume"]),
        ("volume deleted, Retain", Some(volume("a", "Retain")), None, vec![]),
        ("image to pull", None, Some(pull("IfNotPresent")), vec!["pull_image"]),
        ("image present", Some(pull("IfNotPresent")), Some(pull("IfNotPresent")), vec![]),
        ("image pulled always", Some(pull("IfNotPresent")), Some(pull("Always")), vec!["pull_image"]),
        ("image to build", None, Some(build("1")), vec!["build_image"]),
        ("image built from this context", Some(build("1")), Some(build("1")), vec![]),
        ("image build settings changed", Some(build("1")), Some(build("2")), vec!["build_image"]),
    ];
    for (case, before, after, expected) in rows {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = FakeEngine::new();
        let ctx = Context::for_tests(Store::open(dir.path()).expect("store"), Arc::new(engine.clone()));
        let key = before.as_ref().or(after.as_ref()).expect("an object").key();
        if let Some(before) = &before {
            ctx.store.commit(WriteBatch::new().put(before.clone())).expect("write");
            super::super::reconcile(&ctx, &key).await.unwrap_or_else(|e| panic!("{case}: first reconcile: {e}"));
        }
        let version = ctx.store.resource_version();
        engine.clear_calls();
        let planned = match &after {
            Some(after) => super::operations(&ctx, after, before.as_ref()).await,
            None => super::teardown(&ctx, before.as_ref().expect("deleted")).await,
        }
        .unwrap_or_else(|e| panic!("{case}: plan: {e}"));
        assert_eq!(engine.mutating_calls(), [], "{case}: planning changed the engine");
        assert_eq!(ctx.store.resource_version(), version, "{case}: planning wrote to the store");
        let planned: Vec<(String, String)> = planned.into_iter().map(|o| (o.operation, o.reason)).collect();
        let planned_calls = other_calls(&planned);
        match &after {
            Some(after) => ctx.store.commit(WriteBatch::new().put(after.clone())).expect("write"),
            None => ctx.store.commit(WriteBatch::new().delete(key.clone())).expect("delete"),
        };
        super::super::reconcile(&ctx, &key).await.unwrap_or_else(|e| panic!("{case}: reconcile: {e}"));
        let made: Vec<&str> = engine.mutating_calls().iter().map(|c| c.op).collect();
        assert_eq!(made, expected, "{case}: the reconcile made these calls; planned {planned:?}");
        assert_eq!(planned_calls, expected, "{case}: the plan said {planned:?}");
    }
}
