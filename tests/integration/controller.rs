//! The controller against the fake engine: convergence, idempotence,
//! crash-resume after every engine call, drift repair, targeted recreation
//! and deletion. (The same scenarios run on real Docker in `docker_e2e`.)

use std::sync::Arc;
use std::time::Duration;

use berth::api::{AnyObject, ObjectKey};
use berth::controller::ControllerConfig;
use berth::engine::fake::FakeEngine;
use berth::engine::{labels, ContainerState, Engine};
use berth::metrics::Metrics;
use berth::store::{Store, WriteBatch};

use crate::support::controller::{apply, eventually, examples, is_ready, Running};

const WAIT: Duration = Duration::from_secs(20);

fn replicas_of(fake: &FakeEngine, name: &str) -> Vec<berth::engine::ContainerInfo> {
    fake.containers().into_iter().filter(|c| c.labels.get(labels::NAME).map(String::as_str) == Some(name)).collect()
}

async fn converged_examples() -> (tempfile::TempDir, Store, FakeEngine, Running) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fake = FakeEngine::new();
    apply(&store, examples());
    let running = Running::start(&store, Arc::new(fake.clone()));
    eventually(WAIT, "every example Container ready", || async {
        (is_ready(&store, "Container/default/web") && is_ready(&store, "Container/default/api")).then_some(())
    })
    .await;
    (dir, store, fake, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_converge_with_ownership_labels() {
    let (_dir, store, fake, running) = converged_examples().await;
    let instance = store.instance_id().unwrap();
    let web = replicas_of(&fake, "web");
    assert_eq!(web.len(), 2);
    for replica in &web {
        assert_eq!(replica.state, ContainerState::Running);
        assert_eq!(replica.labels[labels::MANAGED_BY], "berth");
        assert_eq!(replica.labels[labels::INSTANCE], instance);
        assert_eq!(replica.labels[labels::KIND], "Container");
        assert_eq!(replica.labels[labels::NAMESPACE], "default");
        assert!(replica.labels[labels::SPEC_HASH].len() == 64);
        assert_eq!(replica.labels[labels::HASH_VERSION], "1");
    }
    let mut replica_labels: Vec<&str> = web.iter().map(|r| r.labels[labels::REPLICA].as_str()).collect();
    replica_labels.sort();
    assert_eq!(replica_labels, ["0", "1"]);
    assert_eq!(replicas_of(&fake, "api").len(), 1);
    assert_eq!(fake.networks().iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["berth-default-app"]);
    assert!(fake.volumes().iter().any(|v| v.name == "berth-default-api-data"));
    assert!(
        is_ready(&store, "Image/default/busybox")
            && is_ready(&store, "Network/default/app")
            && is_ready(&store, "Volume/default/api-data")
    );
    let dns = store.get(&ObjectKey::parse("DnsRecord/default/web").unwrap()).unwrap().unwrap();
    let ready = dns.status_common().unwrap().condition("Ready").unwrap();
    assert_eq!((ready.reason.as_str(), ready.status), ("NotServed", berth::api::ConditionStatus::False));
    let events = store.events(Some(&ObjectKey::parse("Container/default/web").unwrap()), 0, 100).unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "created").count(), 2, "{events:#?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_with_nothing_changed_makes_no_mutating_call() {
    let (_dir, store, fake, running) = converged_examples().await;
    running.stop().await;
    fake.clear_calls();
    let rv = store.resource_version();
    let metrics = Metrics::new();
    let config = ControllerConfig { metrics: metrics.clone(), ..ControllerConfig::default() };
    let running = Running::start_with(&store, Arc::new(fake.clone()), config);
    let containers = store.list(Some(berth::api::Kind::Container), None).unwrap().len() as f64;
    let reconciled = r#"controller_runtime_reconcile_total{controller="container",result="success"}"#;
    eventually(WAIT, "a reconcile of every Container", || async {
        let text = metrics.render();
        let done = text.lines().find_map(|l| l.strip_prefix(reconciled)?.trim().parse::<f64>().ok())?;
        (done >= containers).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert_eq!(fake.mutating_calls(), [], "nothing changed, so nothing should be done");
    assert_eq!(store.resource_version(), rv, "nor written");
    // The restart observes the engine once through the shared reflector; the
    // reconciles read its cache instead of listing their replicas again.
    let lists = fake.calls().iter().filter(|c| c.op == "list_containers").count();
    assert_eq!(lists, 1, "{:?}", fake.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_removed_by_hand_comes_back() {
    let (_dir, store, fake, running) = converged_examples().await;
    let victim = replicas_of(&fake, "web").remove(0);
    fake.remove_container(&victim.id).await.unwrap();
    let back = eventually(Duration::from_secs(2), "replica 0 back", || async {
        replicas_of(&fake, "web")
            .into_iter()
            .find(|c| c.labels[labels::REPLICA] == "0" && c.state == ContainerState::Running)
    })
    .await;
    assert_ne!(back.id, victim.id);
    let stopped = replicas_of(&fake, "api").remove(0);
    fake.stop_container(&stopped.id, Duration::ZERO).await.unwrap();
    eventually(Duration::from_secs(2), "api running again", || async {
        (fake.inspect_container(&stopped.id).await.ok()?.state == ContainerState::Running).then_some(())
    })
    .await;
    let reasons: Vec<String> = store
        .events(Some(&ObjectKey::parse("Container/default/web").unwrap()), 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert!(reasons.contains(&"ReplicaMissing".to_string()), "{reasons:?}");
    drop(store);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_env_recreates_only_that_containers_replicas() {
    let (_dir, store, fake, running) = converged_examples().await;
    let web_before: Vec<String> = replicas_of(&fake, "web").into_iter().map(|c| c.id).collect();
    let api_before = replicas_of(&fake, "api")[0].id.clone();
    let mut web = store.get(&ObjectKey::parse("Container/default/web").unwrap()).unwrap().unwrap();
    let AnyObject::Container(c) = &mut web else { unreachable!() };
    c.spec.env.push(berth::api::container::EnvVar {
        name: "MODE".into(),
        value: Some("blue".into()),
        value_from: None,
    });
    apply(&store, [web]);
    eventually(WAIT, "web replaced", || async {
        let now: Vec<String> = replicas_of(&fake, "web").into_iter().map(|c| c.id).collect();
        (now.len() == 2 && now.iter().all(|id| !web_before.contains(id)) && is_ready(&store, "Container/default/web"))
            .then_some(())
    })
    .await;
    assert_eq!(replicas_of(&fake, "api")[0].id, api_before, "api must not be touched");
    let events = store.events(Some(&ObjectKey::parse("Container/default/web").unwrap()), 0, 100).unwrap();
    assert!(events.iter().any(|e| e.reason == "spec changed: env"), "{events:#?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_removes_containers_and_keeps_retained_volumes() {
    let (_dir, store, fake, running) = converged_examples().await;
    let batch = WriteBatch::new()
        .delete(ObjectKey::parse("Container/default/api").unwrap())
        .delete(ObjectKey::parse("Volume/default/api-data").unwrap());
    store.commit(batch).unwrap();
    eventually(WAIT, "api and its volume object gone", || async {
        let gone = store.get(&ObjectKey::parse("Container/default/api").unwrap()).unwrap().is_none()
            && store.get(&ObjectKey::parse("Volume/default/api-data").unwrap()).unwrap().is_none();
        (gone && replicas_of(&fake, "api").is_empty()).then_some(())
    })
    .await;
    assert!(fake.volumes().iter().any(|v| v.name == "berth-default-api-data"), "Retain keeps the data");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_of_this_instance_are_removed_and_others_are_left_alone() {
    let (_dir, store, fake, running) = converged_examples().await;
    running.stop().await;
    let instance = store.instance_id().unwrap();
    let mut orphan =
        berth::engine::ContainerConfig { name: "leftover".into(), image: "busybox".into(), ..Default::default() };
    orphan.labels = labels::owner_labels(&instance, &ObjectKey::parse("Container/default/gone").unwrap());
    fake.preload_image("busybox");
    let orphan_id = fake.create_container(&orphan).await.unwrap();
    let mut foreign = orphan.clone();
    foreign.name = "someone-elses".into();
    foreign.labels = labels::owner_labels("another-instance", &ObjectKey::parse("Container/default/gone").unwrap());
    let foreign_id = fake.create_container(&foreign).await.unwrap();
    let running = Running::start(&store, Arc::new(fake.clone()));
    eventually(WAIT, "the orphan removed", || async {
        fake.inspect_container(&orphan_id).await.is_err().then_some(())
    })
    .await;
    assert!(fake.inspect_container(&foreign_id).await.is_ok(), "never touch another instance's containers");
    running.stop().await;
}

/// A small stack without health checks, so that each crash-resume round is quick.
fn small_stack() -> Vec<AnyObject> {
    let text = "\
apiVersion: berth.dev/v1alpha1
kind: Network
metadata: {name: net}
spec: {}
---
apiVersion: berth.dev/v1alpha1
kind: Volume
metadata: {name: data}
spec: {}
---
apiVersion: berth.dev/v1alpha1
kind: Image
metadata: {name: app}
spec: {build: {dockerfileInline: 'FROM scratch'}}
---
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: app}
spec:
  imageRef: app
  replicas: 2
  networks: [{name: net}]
  volumeMounts: [{volume: data, mountPath: /data}]
---
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: side}
spec: {image: busybox, dependsOn: [{container: app}]}
";
    berth::manifest::load_text(text, "<test>", None).unwrap().into_iter().map(|o| o.object).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_engine_call_resumes_without_duplicates_or_orphans() {
    // How many mutating calls a clean convergence takes.
    let total = {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let fake = FakeEngine::new();
        fake.preload_image("busybox");
        apply(&store, small_stack());
        let running = Running::start(&store, Arc::new(fake.clone()));
        eventually(WAIT, "clean convergence", || async { is_ready(&store, "Container/default/side").then_some(()) })
            .await;
        running.stop().await;
        fake.mutating_calls().len()
    };
    assert!(total >= 8, "the stack should need several engine calls, took {total}");
    for crash_after in 0..total {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeEngine::new();
        fake.preload_image("busybox");
        {
            let store = Store::open(dir.path()).unwrap();
            apply(&store, small_stack());
            fake.fail_mutations_after(crash_after);
            let running = Running::start(&store, Arc::new(fake.clone()));
            eventually(WAIT, "the crash point", || async { (fake.mutating_calls().len() > crash_after).then_some(()) })
                .await;
            running.crash().await;
        }
        fake.clear_faults();
        let store = Store::open(dir.path()).unwrap();
        let running = Running::start(&store, Arc::new(fake.clone()));
        eventually(WAIT, &format!("convergence after a crash after call {crash_after}"), || async {
            (is_ready(&store, "Container/default/side") && is_ready(&store, "Container/default/app")).then_some(())
        })
        .await;
        running.stop().await;
        let mut names: Vec<String> = fake
            .containers()
            .into_iter()
            .map(|c| format!("{}#{}", c.labels[labels::NAME], c.labels[labels::REPLICA]))
            .collect();
        names.sort();
        assert_eq!(names, ["app#0", "app#1", "side#0"], "after a crash after call {crash_after}");
        assert_eq!(fake.networks().len(), 1, "after a crash after call {crash_after}");
        assert_eq!(fake.volumes().len(), 1, "after a crash after call {crash_after}");
    }
}

/// `--dns-on-networks`: berth's networks are created without the engine's
/// DNS, their gateways go in their status, and the replicas on them get the
/// gateways as DNS servers and their namespace's search domain. Turning it
/// off again recreates the network and the replicas without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_on_networks_points_the_replicas_at_the_gateways() {
    use berth::controller::{ControllerConfig, NetworkDns};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fake = FakeEngine::new();
    apply(&store, examples());
    let network_dns = Some(NetworkDns { zone: "berth.internal.".into() });
    let running =
        Running::start_with(&store, Arc::new(fake.clone()), ControllerConfig { network_dns, ..Default::default() });
    let ready = || async {
        (is_ready(&store, "Container/default/web") && is_ready(&store, "Container/default/api")).then_some(())
    };
    eventually(WAIT, "every example Container ready", ready).await;
    running.stop().await;

    let network = store.get(&ObjectKey::parse("Network/default/app").unwrap()).unwrap().unwrap();
    let AnyObject::Network(network) = network else { panic!("a Network") };
    let gateways = network.status.unwrap().gateways;
    assert_eq!(gateways, fake.networks()[0].gateways, "the status names the engine's gateway");
    assert!(!gateways.is_empty());
    let before = replicas_of(&fake, "web");
    for replica in &before {
        let config = fake.container_config(&replica.id).unwrap();
        assert_eq!(config.dns, gateways);
        assert_eq!(config.dns_search, ["default.berth.internal"]);
    }
    let created = fake.calls().into_iter().filter(|c| c.op == "create_network").count();

    let running = Running::start(&store, Arc::new(fake.clone()));
    eventually(WAIT, "the web replicas recreated without berth's DNS", || async {
        let web = replicas_of(&fake, "web");
        let replaced = web.len() == 2 && web.iter().all(|r| before.iter().all(|old| old.id != r.id));
        (replaced && is_ready(&store, "Container/default/web")).then_some(())
    })
    .await;
    running.stop().await;
    assert_eq!(
        fake.calls().into_iter().filter(|c| c.op == "create_network").count(),
        created + 1,
        "the network was recreated"
    );
    for replica in replicas_of(&fake, "web") {
        let config = fake.container_config(&replica.id).unwrap();
        assert!(config.dns.is_empty() && config.dns_search.is_empty(), "{config:?}");
    }
}

fn object(yaml: &str) -> AnyObject {
    berth::manifest::load_text(yaml, "test", None).unwrap().remove(0).object
}

/// A controller on a fresh store and fake engine (busybox loaded), with
/// `yaml`'s objects applied and `ready` Ready.
async fn started(yaml: &[&str], ready: &str) -> (tempfile::TempDir, Store, FakeEngine, Running) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fake = FakeEngine::new();
    fake.preload_image("busybox");
    apply(&store, yaml.iter().map(|y| object(y)));
    let running = Running::start(&store, Arc::new(fake.clone()));
    eventually(WAIT, ready, || async { is_ready(&store, ready).then_some(()) }).await;
    (dir, store, fake, running)
}

const NET: &str = "apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: net}\nspec: {}\n";

/// A Container of four replicas that ignore SIGTERM (each stop waits out
/// its 2 s grace), on a Network: deleted together, the replicas stop at the
/// same time and the Network goes only after the last of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teardown_stops_replicas_together_and_removes_the_network_last() {
    let four = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: four}\nspec:\n  image: busybox\n  replicas: 4\n  command: [sleep, '3600']\n  stopGracePeriod: 2s\n  networks: [{name: net}]\n";
    let (_dir, store, fake, running) = started(&[NET, four], "Container/default/four").await;
    let started = std::time::Instant::now();
    let keys = ["Container/default/four", "Network/default/net"].map(|k| ObjectKey::parse(k).unwrap());
    store.commit(keys.iter().fold(WriteBatch::new(), |batch, key| batch.delete(key.clone()))).unwrap();
    eventually(WAIT, "both objects gone", || async {
        keys.iter().all(|k| store.get(k).unwrap().is_none()).then_some(())
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "four 2 s stops one after another would take 8 s; took {took:?}");
    eprintln!("four replicas with a 2 s grace torn down in {took:.2?}");
    assert!(fake.networks().is_empty() && fake.containers().is_empty());
    let events = store.events(None, 0, 1000).unwrap();
    let replicas: Vec<u64> =
        events.iter().filter(|e| e.message.starts_with("replica ") && e.action == "removed").map(|e| e.seq).collect();
    let network = events.iter().find(|e| e.message.starts_with("removed network")).expect("network removed").seq;
    assert_eq!(replicas.len(), 4);
    assert!(replicas.iter().all(|r| *r < network), "the network went before a replica: {events:#?}");
    // Without disconnecting anyone first: nothing of berth's was on it any more.
    assert!(!fake.calls().iter().any(|c| c.op == "disconnect_network"), "{:#?}", fake.calls());
    running.stop().await;
}

/// A Network deleted while a Container still declared uses it stays, says
/// why, and goes once that Container is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_still_used_by_a_declared_container_waits_for_it() {
    let user = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: user}\nspec:\n  image: busybox\n  command: [sleep, '3600']\n  stopGracePeriod: 1s\n  networks: [{name: net}]\n";
    let (_dir, store, fake, running) = started(&[NET, user], "Container/default/user").await;
    let net = ObjectKey::parse("Network/default/net").unwrap();
    store.commit(WriteBatch::new().delete(net.clone())).unwrap();
    let message = eventually(WAIT, "the network saying why it stays", || async {
        let object = store.get(&net).unwrap()?;
        let ready = object.status_common()?.condition("Ready")?.clone();
        (ready.reason == "WaitingForContainers").then_some(ready.message)
    })
    .await;
    assert!(message.contains("Container/default/user"), "{message}");
    assert_eq!(fake.networks().len(), 1, "the network stays while berth's container uses it");
    assert_eq!(replicas_of(&fake, "user").len(), 1, "the user keeps running");
    store.commit(WriteBatch::new().delete(ObjectKey::parse("Container/default/user").unwrap())).unwrap();
    eventually(WAIT, "the network gone after its user", || async {
        (store.get(&net).unwrap().is_none() && fake.networks().is_empty()).then_some(())
    })
    .await;
    running.stop().await;
}

/// An engine outage where the event stream "connects" and fails at once
/// (Docker's with its socket gone): the engine reflector (the one follower
/// of the engine's events, for the controller and the endpoint set) backs
/// off instead of spinning, and once the engine is back a replica removed
/// by hand is replaced again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_outage_is_waited_out_with_backoff_then_drift_is_repaired_again() {
    let (_dir, _store, fake, running) = converged_examples().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.clear_calls();
    fake.set_down(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // An attempt pings the engine (`info`), then opens the stream.
    let opened = fake.calls().iter().filter(|c| c.op == "events" || c.op == "info").count();
    // One follower, waiting 0.8 s, then twice as long up to 2 s: a handful
    // of attempts in 3 s, where a loop without backoff makes thousands.
    assert!((1..=8).contains(&opened), "{opened} attempts to reach the engine during a 3 s outage");
    eprintln!("{opened} attempts and {} engine calls in a 3 s outage", fake.calls().len());
    let calls = fake.calls().len();
    assert!(calls < 200, "{calls} engine calls during a 3 s outage");
    fake.set_down(false);
    let victim = replicas_of(&fake, "web")[0].id.clone();
    // Back within the longest backoff step reached (about 3 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    fake.remove_container(&victim).await.unwrap();
    eventually(WAIT, "web's replica replaced after the outage", || async {
        let web = replicas_of(&fake, "web");
        (web.len() == 2 && web.iter().all(|c| c.id != victim && c.state == ContainerState::Running)).then_some(())
    })
    .await;
    running.stop().await;
}

/// After a restart with the replicas gone (removed behind berth's back),
/// the stored status still says the dependency is healthy; the dependent
/// must wait for the engine to say so again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_after_a_restart_waits_for_the_engine_not_the_stored_status() {
    let db = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: db}\nspec:\n  image: busybox\n  command: [sleep, '3600']\n  stopGracePeriod: 1s\n  healthCheck:\n    exec: {command: [\"true\"]}\n    interval: 1s\n    startPeriod: 1s\n";
    let web = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: busybox\n  command: [sleep, '3600']\n  stopGracePeriod: 1s\n  dependsOn: [{container: db, condition: Healthy}]\n";
    let (_dir, store, fake, running) = started(&[db, web], "Container/default/web").await;
    running.crash().await;
    // Behind berth's back, while it is down: every replica goes.
    for container in fake.containers() {
        fake.remove_container(&container.id).await.unwrap();
    }
    assert!(is_ready(&store, "Container/default/db"), "the stored status still says db is healthy");
    let running = Running::start(&store, Arc::new(fake.clone()));
    let db_health_when_web_appeared = eventually(WAIT, "web created again", || async {
        let db_health = replicas_of(&fake, "db").first().and_then(|c| c.health);
        (!replicas_of(&fake, "web").is_empty()).then_some(db_health)
    })
    .await;
    assert_eq!(
        db_health_when_web_appeared,
        Some(berth::engine::Health::Healthy),
        "web was created before the engine said db is healthy"
    );
    running.stop().await;
}

/// The database lost (its directory removed) while the containers run: a
/// start is refused naming the previous instance and `--adopt`; adopting
/// takes the old instance's containers over, without a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_next_to_live_containers_is_refused_then_adopted_without_duplicates() {
    let (dir, store, fake, running) = converged_examples().await;
    let previous = store.instance_id().unwrap();
    let before: std::collections::BTreeSet<String> = fake.containers().into_iter().map(|c| c.id).collect();
    running.crash().await;
    drop(store);
    std::fs::remove_dir_all(dir.path().join("db")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.lost_instance().as_deref(), Some(previous.as_str()));
    let engine: Arc<dyn Engine> = Arc::new(fake.clone());
    let refused = berth::controller::check_lost_store(&store, &engine, "STATE/db", false).await.unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains(&previous) && message.contains("--adopt") && message.contains("Restore STATE/db"),
        "{message}"
    );
    assert_eq!(refused.containers, before.len());
    // With --adopt, the same containers are this store's again.
    apply(&store, examples());
    berth::controller::check_lost_store(&store, &engine, "STATE/db", true).await.unwrap();
    assert_eq!(store.instance_id().unwrap(), previous);
    let running = Running::start(&store, engine);
    eventually(WAIT, "every example Container ready", || async {
        (is_ready(&store, "Container/default/web") && is_ready(&store, "Container/default/api")).then_some(())
    })
    .await;
    let after: std::collections::BTreeSet<String> = fake.containers().into_iter().map(|c| c.id).collect();
    assert_eq!(after, before, "adopted, not duplicated or recreated");
    running.stop().await;
    // A database lost with nothing of the old instance left starts afresh.
    let empty = tempfile::tempdir().unwrap();
    Store::open(empty.path()).unwrap().instance_id().unwrap();
    std::fs::remove_dir_all(empty.path().join("db")).unwrap();
    let fresh = Store::open(empty.path()).unwrap();
    let nothing: Arc<dyn Engine> = Arc::new(FakeEngine::new());
    berth::controller::check_lost_store(&fresh, &nothing, "db", false).await.unwrap();
}

/// A secret's hash in the replica's labels is keyed by the state
/// directory: the label holds no plain SHA-256 of the secret (which would
/// let `docker inspect` confirm a guess offline), a restart on the same
/// state directory keeps the hash (nothing is recreated), and a changed
/// secret still recreates the replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_hashes_in_labels_are_keyed_by_the_state_directory() {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("password");
    std::fs::write(&secret, "hunter2\n").unwrap();
    let app = format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {{name: app}}\nspec:\n  image: busybox\n  command: [sleep, '3600']\n  stopGracePeriod: 1s\n  env:\n    - name: PASSWORD\n      valueFrom: {{secretFile: {}}}\n",
        secret.display()
    );
    let (_dir, store, fake, running) = started(&[&app], "Container/default/app").await;
    let replica = replicas_of(&fake, "app").remove(0);
    let labelled: String = replica.labels.values().cloned().collect::<Vec<_>>().join("\n");
    assert!(labelled.contains("PASSWORD"), "the spec label names the secret's variable: {labelled}");
    for unkeyed in [labels::sha256_hex(b"hunter2"), labels::sha256_hex(b"hunter2\n")] {
        assert!(!labelled.contains(&unkeyed), "a label carries the plain SHA-256 of the secret: {labelled}");
    }

    running.crash().await;
    let before = fake.mutating_calls().len();
    let running = Running::start(&store, Arc::new(fake.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = fake.mutating_calls().split_off(before);
    assert!(calls.is_empty(), "a restart changed the engine: {calls:?}");
    assert_eq!(replicas_of(&fake, "app")[0].id, replica.id);

    std::fs::write(&secret, "correct horse\n").unwrap();
    running.crash().await;
    let running = Running::start(&store, Arc::new(fake.clone()));
    eventually(WAIT, "the replica recreated for the new secret", || async {
        replicas_of(&fake, "app").iter().any(|c| c.id != replica.id && c.state == ContainerState::Running).then_some(())
    })
    .await;
    running.stop().await;
}

/// Network and volume removals come without labels (as on Docker and
/// Podman): the one object whose network went is woken and recreates it
/// at once (the periodic resync is minutes away), and a removal of someone
/// else's network wakes no reconcile at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_removed_by_hand_is_recreated_and_a_foreign_removal_wakes_nothing() {
    let (_dir, store, fake, running) = started(&[NET], "Network/default/net").await;
    let engine_id = |store: &Store| match store.get(&ObjectKey::parse("Network/default/net").unwrap()).unwrap()? {
        AnyObject::Network(network) => network.status.map(|s| s.engine_id).filter(|id| !id.is_empty()),
        _ => None,
    };
    let before = engine_id(&store).expect("the network's id in its status");
    let foreign =
        berth::engine::NetworkConfig { name: "someone-elses".into(), driver: "bridge".into(), ..Default::default() };
    fake.create_network(&foreign).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.clear_calls();
    fake.remove_network("someone-elses").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reads: Vec<_> = fake.calls().into_iter().filter(|c| c.op == "list_networks").collect();
    assert_eq!(reads, [], "a foreign network's removal woke a Network reconcile");

    fake.remove_network("berth-default-net").await.unwrap();
    eventually(Duration::from_secs(5), "the network recreated", || async {
        engine_id(&store).filter(|id| *id != before && fake.networks().iter().any(|n| n.id == *id)).map(|_| ())
    })
    .await;
    running.stop().await;
}
