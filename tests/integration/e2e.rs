//! End to end: the `berth serve` binary on real Docker and real Podman,
//! driven only through its manifests directory and signals, observed through
//! the engine (and the store once berth has exited). The same scenarios run
//! on the fake engine in `controller`; these prove them on real engines,
//! with real health checks, events, timings and crashes.
//!
//! Each scenario is written once, as a function of the engine, and
//! [`e2e_scenarios!`] runs the whole list per engine (`e2e::podman::...`).
//! Each test serves its own copy of the examples in a namespace of its own
//! (see `support::serve`), so the tests run in parallel; each leaves nothing
//! behind, pass or fail. They run, skip or fail without their engine as
//! `BERTH_TEST_ENGINES` says (see `support::engines`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth::api::ObjectKey;
use berth::engine::{labels, ContainerState, Health};

use crate::support::controller::poll_until;
use crate::support::engines::EngineKind;
use crate::support::serve::{replica_key, write_atomically, Stack, CONVERGE};

/// One `#[tokio::test]` per scenario, in a module named after the engine.
macro_rules! e2e_scenarios {
    ($engine:ident, $kind:expr) => {
        mod $engine {
            use crate::support::engines::EngineKind;
            e2e_scenarios!(@tests $kind;
                the_examples_converge_with_ownership_labels_health_network_and_volume,
                a_changed_env_recreates_only_that_containers_replicas,
                deleted_files_remove_their_containers_and_retain_the_volume,
                a_replica_removed_by_hand_is_replaced_within_two_seconds,
                a_crash_while_converging_resumes_without_duplicates_or_orphans,
                an_invalid_file_tears_nothing_down_and_its_error_has_a_position,
                containers_on_berth_networks_resolve_names_through_berth,
                routes_and_dns_follow_the_replicas,
                renamed_and_moved_manifests_keep_every_container,
                a_deleted_stack_goes_dependents_first_and_resolves_names_when_applied_again,
            );
        }
    };
    (@tests $kind:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                super::$scenario($kind).await
            }
        )*
    };
}

e2e_scenarios!(docker, EngineKind::Docker);
e2e_scenarios!(podman, EngineKind::Podman);

/// Longest a change of manifest may take to show on the engine: a rescan, a
/// replacement replica passing its first health check (2 s interval), the
/// old one's stop grace (2 s).
const CHANGE: Duration = Duration::from_secs(30);

async fn the_examples_converge_with_ownership_labels_health_network_and_volume(kind: EngineKind) {
    let Some(mut stack) = Stack::examples(kind).await else { return };
    let started = Instant::now();
    stack.start();
    let containers = stack.converged().await;
    eprintln!("{}: converged in {:.1?}", stack.namespace, started.elapsed());
    let network = stack.engine_name("app");
    let instance = containers["api#0"].labels[labels::INSTANCE].clone();
    for (replica, container) in &containers {
        let (name, index) = replica.split_once('#').unwrap();
        let expected = [
            (labels::MANAGED_BY, "berth"),
            (labels::INSTANCE, instance.as_str()),
            (labels::KIND, "Container"),
            (labels::NAMESPACE, stack.namespace.as_str()),
            (labels::NAME, name),
            (labels::REPLICA, index),
            (labels::HASH_VERSION, labels::CURRENT_HASH_VERSION),
        ];
        for (label, value) in expected {
            assert_eq!(container.labels.get(label).map(String::as_str), Some(value), "{replica}: label {label}");
        }
        assert_eq!(container.labels[labels::SPEC_HASH].len(), 64, "{replica}: spec hash");
        assert!(container.ips.contains_key(&network), "{replica} is not on {network}: {:?}", container.ips);
    }
    let (volumes, networks) = stack.volumes_and_networks().await;
    assert_eq!(volumes, [stack.engine_name("api-data")]);
    assert_eq!(networks, [network]);
    // The api publishes 8081 on a host port the engine chose.
    assert!(containers["api#0"].host_ports.get("8081/tcp").is_some_and(|p| *p > 0), "{containers:#?}");

    assert!(stack.stop().success(), "berth exits 0 on SIGTERM");
    let store = stack.store();
    assert_eq!(store.instance_id().unwrap(), instance, "the containers carry the store's instance id");
    let web = ObjectKey::parse(&format!("Container/{}/web", stack.namespace)).unwrap();
    let created = store.events(Some(&web), 0, 100).unwrap().into_iter().filter(|e| e.action == "created").count();
    assert_eq!(created, 2, "one creation per web replica");
}

async fn a_changed_env_recreates_only_that_containers_replicas(kind: EngineKind) {
    let Some(mut stack) = Stack::examples(kind).await else { return };
    stack.start();
    let before = stack.converged().await;
    let web = stack.manifest("04-web.yaml");
    let text = std::fs::read_to_string(&web).unwrap();
    assert!(text.contains("\nspec:\n"), "04-web.yaml has a block `spec:`");
    write_atomically(&web, &text.replace("\nspec:\n", "\nspec:\n  env:\n    - name: MODE\n      value: blue\n"));
    let changed = Instant::now();

    let after = stack
        .eventually(CHANGE, "both web replicas replaced, running and healthy", || async {
            let now = stack.settled().await?;
            let replaced = ["web#0", "web#1"].iter().all(|r| now[*r].id != before[*r].id);
            replaced.then_some(now)
        })
        .await;
    eprintln!("{}: web replaced in {:.1?}", stack.namespace, changed.elapsed());
    assert_eq!(after["api#0"].id, before["api#0"].id, "api's container must not be touched");
    assert_ne!(after["web#0"].labels[labels::SPEC_HASH], before["web#0"].labels[labels::SPEC_HASH]);
    assert!(stack.log().contains("spec changed: env"), "the recreation names the field");
    assert!(stack.stop().success());
}

async fn deleted_files_remove_their_containers_and_retain_the_volume(kind: EngineKind) {
    let Some(mut stack) = Stack::examples(kind).await else { return };
    stack.start();
    let before = stack.converged().await;
    std::fs::remove_file(stack.manifest("03-api.yaml")).unwrap();
    stack
        .eventually(CHANGE, "api's container removed", || async {
            stack.replicas("api").await.is_empty().then_some(())
        })
        .await;
    let web: Vec<String> = stack.replicas("web").await.into_iter().map(|c| c.id).collect();
    assert_eq!(web, [before["web#0"].id.clone(), before["web#1"].id.clone()], "web is left running");

    std::fs::remove_file(stack.manifest("01-volume.yaml")).unwrap();
    let volume = stack.engine_name("api-data");
    let kept = format!("kept volume {volume} and its data");
    stack.eventually(CHANGE, "the Volume's teardown", || async { stack.log().contains(&kept).then_some(()) }).await;
    assert!(stack.stop().success());

    let (volumes, _) = stack.volumes_and_networks().await;
    assert_eq!(volumes, [volume], "reclaimPolicy Retain keeps the engine volume");
    let store = stack.store();
    for key in [format!("Container/{}/api", stack.namespace), format!("Volume/{}/api-data", stack.namespace)] {
        let key = ObjectKey::parse(&key).unwrap();
        assert!(store.get(&key).unwrap().is_none(), "{key} is no longer managed");
    }
}

async fn a_replica_removed_by_hand_is_replaced_within_two_seconds(kind: EngineKind) {
    let Some(mut stack) = Stack::examples(kind).await else { return };
    stack.start();
    let before = stack.converged().await;
    let victim = &before["web#1"];
    let logged = stack.log().len();
    let asked = Instant::now();
    stack.engine.remove_container(&victim.id).await.expect("rm -f");
    let removed = Instant::now();
    let replacement = stack
        .eventually(Duration::from_secs(10), "a replacement for web#1", || async {
            let replicas = stack.replicas("web").await;
            replicas.into_iter().find(|c| replica_key(c) == "web#1" && c.state == ContainerState::Running)
        })
        .await;
    let took = removed.elapsed();
    eprintln!(
        "{}: web#1 running again {took:.2?} after its removal ({:.2?} after `rm -f` was asked)",
        stack.namespace,
        asked.elapsed()
    );
    assert_ne!(replacement.id, victim.id);
    assert!(took < Duration::from_secs(2), "the replacement took {took:?}");
    // `rm -f` reports `die` before the removal ends; starting the dying
    // replica again is not a reconcile failure.
    let log = stack.log();
    let failures: Vec<&str> = log[logged..].lines().filter(|l| l.contains("reconcile failed")).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let now = stack.converged().await;
    assert_eq!(now["web#0"].id, before["web#0"].id, "the other replica is left alone");
    assert_eq!(now["api#0"].id, before["api#0"].id, "api is left alone");
    assert!(stack.stop().success());
}

async fn a_crash_while_converging_resumes_without_duplicates_or_orphans(kind: EngineKind) {
    let Some(mut stack) = Stack::examples(kind).await else { return };
    stack.start();
    // The first replica (api's: web waits for it to be healthy). Image
    // builds also show labelled containers (their intermediate steps), hence
    // the kind.
    let first = poll_until(CONVERGE, || async {
        let containers = stack.containers().await;
        containers.into_iter().find(|c| c.labels.get(labels::KIND).map(String::as_str) == Some("Container"))
    })
    .await;
    let Some(first) = first else {
        panic!("no replica within {CONVERGE:?}");
    };
    stack.kill();
    eprintln!("{}: SIGKILLed berth with {} {}", stack.namespace, replica_key(&first), first.state.as_str());

    stack.start();
    let containers = stack.converged().await;
    // Give a late duplicate the time to show up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut replicas: Vec<String> = stack.containers().await.iter().map(replica_key).collect();
    replicas.sort();
    assert_eq!(replicas, ["api#0", "web#0", "web#1"], "one container per replica, no orphan");
    assert_eq!(replica_key(&first), "api#0");
    assert_eq!(containers["api#0"].id, first.id, "the replica made before the crash is adopted, not duplicated");
    let instances: Vec<&String> = containers.values().map(|c| &c.labels[labels::INSTANCE]).collect();
    assert!(instances.iter().all(|i| *i == instances[0]), "one instance across the restart: {instances:?}");
    let (volumes, networks) = stack.volumes_and_networks().await;
    assert_eq!((volumes.len(), networks.len()), (1, 1), "volumes {volumes:?}, networks {networks:?}");
    assert!(stack.stop().success());
}

async fn an_invalid_file_tears_nothing_down_and_its_error_has_a_position(kind: EngineKind) {
    let Some(mut stack) = Stack::examples(kind).await else { return };
    stack.start();
    let before = stack.converged().await;
    let web = stack.manifest("04-web.yaml");
    let broken = std::fs::read_to_string(&web).unwrap().replace("containerPort: 8080", "containerPort: 70000");
    let (line, column) = position_of(&broken, "70000");
    write_atomically(&web, &broken);
    let expected = format!(
        "{}:{line}:{column}: Container/{}/web: spec.ports[0].containerPort: port 70000 is out of range",
        web.display(),
        stack.namespace
    );
    stack
        .eventually(Duration::from_secs(10), &format!("`{expected}` in the log"), || async {
            stack.log().contains(&expected).then_some(())
        })
        .await;
    let unchanged: BTreeMap<String, (String, ContainerState)> =
        before.iter().map(|(k, c)| (k.clone(), (c.id.clone(), ContainerState::Running))).collect();
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(4) {
        let now: BTreeMap<String, (String, ContainerState)> =
            stack.containers().await.into_iter().map(|c| (replica_key(&c), (c.id, c.state))).collect();
        assert_eq!(now, unchanged, "the invalid file must leave every container as it was");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let web_health: Vec<Option<Health>> = stack.replicas("web").await.iter().map(|c| c.health).collect();
    assert_eq!(web_health, [Some(Health::Healthy); 2]);
    assert!(stack.stop().success());
}

/// 1-based line and column of the first `needle` in `text`.
/// `--dns-on-networks`: a container on the stack's network asks the
/// resolver its engine gave it, which is berth on the network's gateway
/// (behind Docker's embedded DNS, directly on Podman, whose aardvark-dns is
/// then off): `api` is found through the search domain as the automatic
/// `api.<namespace>.berth.internal.`, and the declared `web.demo` record
/// names the web replicas. No other resolver knows either name.
async fn containers_on_berth_networks_resolve_names_through_berth(kind: EngineKind) {
    use futures::StreamExt;
    let Some(mut stack) = Stack::examples(kind).await else { return };
    let resolver = resolver(&stack.namespace, &[("api", "api"), ("web", "web.demo.berth.internal")]);
    write_atomically(&stack.manifest("07-resolver.yaml"), &resolver);
    stack.start_with(&["--dns-on-networks"]);
    let app = stack.engine_name("app");
    // The addresses of a Container's running replicas on the app network.
    let ips = |name: &'static str| {
        let (stack, app) = (&stack, &app);
        async move {
            let replicas = stack.replicas(name).await;
            let mut ips: Vec<String> = replicas
                .iter()
                .filter(|c| c.state == ContainerState::Running)
                .filter_map(|c| c.ips.get(app).cloned())
                .collect();
            ips.sort();
            ips
        }
    };
    let answers = stack
        .eventually(CONVERGE, "the resolver's lookups answered with the api and web addresses", || async {
            let resolver = stack.replicas("resolver").await.into_iter().next()?;
            let lines = stack.engine.stream_logs(&resolver.id, 200, false).await.ok()?;
            let lines: Vec<String> = lines.filter_map(|line| async { line.ok() }).collect().await;
            let round = last_lookup_round(&lines)?;
            let (api, web) = (ips("api").await, ips("web").await);
            (api.len() == 1 && web.len() == 2 && round["api"] == api && round["web"] == web).then_some(lines)
        })
        .await;
    eprintln!(
        "{}: the resolver's last lines:\n{}",
        stack.namespace,
        answers[answers.len().saturating_sub(12)..].join("\n")
    );
    assert!(stack.log().contains("DNS also on udp+tcp"), "berth says where it listens");
    assert!(stack.stop().success());
}

/// The addresses each `== NAME` section of the last complete round of the
/// resolver's lookups printed (busybox nslookup: `Address: IP` after the
/// server's own `Address:\tIP:53`).
/// Reorganising the manifests (a rename, a cut pasted into another file
/// saved before the cut, a cut saved before its paste) changes owners, not
/// containers: every container id stays, and no record names a file that
/// is gone.
async fn renamed_and_moved_manifests_keep_every_container(kind: EngineKind) {
    let Some(mut stack) = Stack::examples(kind).await else { return };
    stack.start();
    let before = stack.converged().await;
    // `mv 03-api.yaml 30-api-renamed.yaml`.
    std::fs::rename(stack.manifest("03-api.yaml"), stack.manifest("30-api-renamed.yaml")).unwrap();
    // The Network cut from 00-network.yaml into 01-volume.yaml: paste saved first.
    let network = std::fs::read_to_string(stack.manifest("00-network.yaml")).unwrap();
    let volume = std::fs::read_to_string(stack.manifest("01-volume.yaml")).unwrap();
    write_atomically(&stack.manifest("01-volume.yaml"), &format!("{volume}\n---\n{network}"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    write_atomically(&stack.manifest("00-network.yaml"), "# moved to 01-volume.yaml\n");
    // web cut from 04-web.yaml first, pasted into 05-dns.yaml a moment later.
    let web = std::fs::read_to_string(stack.manifest("04-web.yaml")).unwrap();
    let dns = std::fs::read_to_string(stack.manifest("05-dns.yaml")).unwrap();
    std::fs::write(stack.manifest("04-web.yaml"), "").unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    std::fs::write(stack.manifest("05-dns.yaml"), format!("{dns}\n---\n{web}")).unwrap();
    let owners = [
        ("Container", "api", "30-api-renamed.yaml"),
        ("Network", "app", "01-volume.yaml"),
        ("Container", "web", "05-dns.yaml"),
    ];
    let moved = owners.map(|(kind, name, file)| (format!("{kind}/{}/{name}", stack.namespace), file));
    stack
        .eventually(CHANGE, "the three moves applied", || async {
            let log = stack.log();
            let moves: usize = log
                .lines()
                .filter(|l| l.contains("manifests applied"))
                .filter_map(|l| l.split("moved=").nth(1)?.split_whitespace().next()?.parse::<usize>().ok())
                .sum();
            (moves >= 3).then_some(())
        })
        .await;
    // Long past the time a deletion would have waited for.
    tokio::time::sleep(berth::source::dir::STABLE_FOR * 3).await;
    let after = stack.converged().await;
    for (replica, container) in &before {
        assert_eq!(after[replica].id, container.id, "{replica} was replaced by a move");
    }
    assert!(stack.stop().success());
    let store = stack.store();
    for (key, file) in &moved {
        let object = store.get(&ObjectKey::parse(key).unwrap()).unwrap().expect(key);
        let owner = object.metadata().source.as_ref().and_then(|s| s.path.clone()).unwrap_or_default();
        assert!(owner.ends_with(file), "{key} is owned by {owner}, not {file}");
        assert!(object.metadata().deletion_timestamp.is_none(), "{key} is being deleted");
        assert_eq!(object.metadata().generation, Some(1), "{key}: a move is no spec change");
    }
    for record in store.sources().unwrap() {
        let path = record.source.path.clone().unwrap_or_default();
        assert!(std::path::Path::new(&path).exists(), "a record names {path}, which is gone");
        assert!(record.errors.is_empty(), "{path}: {:?}", record.errors);
    }
}

/// The whole stack deleted at once goes dependents first (every container
/// removed before its network and volume are touched), and applied again,
/// names resolve on the recreated network.
async fn a_deleted_stack_goes_dependents_first_and_resolves_names_when_applied_again(kind: EngineKind) {
    use futures::StreamExt;
    let Some(mut stack) = Stack::examples(kind).await else { return };
    let resolver = resolver(&stack.namespace, &[("api", "api.internal")]);
    write_atomically(&stack.manifest("07-resolver.yaml"), &resolver);
    // Volume reclaimPolicy Delete, so that the volume's removal is an event too.
    let volume = std::fs::read_to_string(stack.manifest("01-volume.yaml")).unwrap();
    let volume = volume.replace("reclaimPolicy: Retain", "reclaimPolicy: Delete");
    assert!(volume.contains("reclaimPolicy: Delete"), "01-volume.yaml names its reclaimPolicy");
    write_atomically(&stack.manifest("01-volume.yaml"), &volume);
    stack.start();
    let app = stack.engine_name("app");
    let resolves = || async {
        let resolver = stack.replicas("resolver").await.into_iter().find(|c| c.state == ContainerState::Running)?;
        let api = stack.replicas("api").await.into_iter().find(|c| c.state == ContainerState::Running)?;
        let lines = stack.engine.stream_logs(&resolver.id, 50, false).await.ok()?;
        let lines: Vec<String> = lines.filter_map(|line| async { line.ok() }).collect().await;
        let round = last_lookup_round(&lines)?;
        (round["api"] == vec![api.ips.get(&app)?.clone()]).then_some(())
    };
    stack.eventually(CONVERGE, "the resolver finding api.internal", resolves).await;
    stack
        .eventually(CONVERGE, "web ×2 running", || async {
            let web = stack.replicas("web").await;
            (web.iter().filter(|c| c.state == ContainerState::Running).count() == 2).then_some(())
        })
        .await;

    // Delete the whole stack: every file moved out of the directory.
    let aside = tempfile::tempdir().unwrap();
    let files: Vec<_> = std::fs::read_dir(stack.manifests()).unwrap().map(|e| e.unwrap().path()).collect();
    for file in &files {
        if file.is_file() {
            std::fs::rename(file, aside.path().join(file.file_name().unwrap())).unwrap();
        }
    }
    stack
        .eventually(CHANGE, "every container, the network and the volume gone", || async {
            let (volumes, networks) = stack.volumes_and_networks().await;
            (stack.containers().await.is_empty() && volumes.is_empty() && networks.is_empty()).then_some(())
        })
        .await;
    // Applied again: names resolve on the recreated network.
    for entry in std::fs::read_dir(aside.path()).unwrap() {
        let file = entry.unwrap().path();
        std::fs::rename(&file, stack.manifest(&file.file_name().unwrap().to_string_lossy())).unwrap();
    }
    stack.eventually(CONVERGE, "the resolver finding api.internal on the new network", resolves).await;
    assert!(stack.stop().success());

    // The event log: every replica removal came before the network's and
    // the volume's removal.
    let store = stack.store();
    let events = store.events(None, 0, 100_000).unwrap();
    let removed = |prefix: &str| -> Vec<u64> {
        events.iter().filter(|e| e.action == "removed" && e.message.starts_with(prefix)).map(|e| e.seq).collect()
    };
    let (replicas, networks, volumes) = (removed("replica "), removed("removed network"), removed("removed volume"));
    assert_eq!(replicas.len(), 4, "api, web ×2 and the resolver: {events:#?}");
    assert_eq!((networks.len(), volumes.len()), (1, 1), "{events:#?}");
    let last_replica = replicas.iter().max().unwrap();
    assert!(networks[0] > *last_replica, "network removed before a replica: {networks:?} {replicas:?}");
    // The volume is api's alone: it goes once api's replica has.
    let api = format!("Container/{}/api", stack.namespace);
    let api_removed = events.iter().find(|e| e.message.starts_with("replica ") && e.object.as_deref() == Some(&api));
    assert!(volumes[0] > api_removed.expect("api's replica removal").seq, "volume removed before api's replica");
}

/// A Container `resolver` on the app network that prints its resolv.conf,
/// then looks up each (section, name) every second, in rounds that
/// [`last_lookup_round`] reads.
fn resolver(namespace: &str, lookups: &[(&str, &str)]) -> String {
    let lookups: String = lookups
        .iter()
        .map(|(section, name)| format!("        echo \"== {section}\"; nslookup -type=a {name}\n"))
        .collect();
    format!(
        r#"apiVersion: berth.dev/v1alpha1
kind: Container
metadata:
  name: resolver
  namespace: {namespace}
spec:
  imageRef: busybox
  command: ["/bin/sh", "-c"]
  args:
    - |
      cat /etc/resolv.conf
      while true; do
{lookups}        echo "== end"; sleep 1
      done
  networks:
    - name: app
  stopGracePeriod: 1s
"#
    )
}

fn last_lookup_round(lines: &[String]) -> Option<BTreeMap<String, Vec<String>>> {
    let end = lines.iter().rposition(|l| l.trim() == "== end")?;
    let start = lines[..end].iter().rposition(|l| l.trim() == "== api")?;
    let mut round: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    let mut answered = false;
    for line in &lines[start..end] {
        if let Some(name) = line.trim().strip_prefix("== ") {
            (section, answered) = (name.to_string(), false);
            round.entry(section.clone()).or_default();
        } else if line.starts_with("Name:") {
            answered = true;
        } else if let Some(address) = line.strip_prefix("Address:").filter(|_| answered) {
            round.entry(section.clone()).or_default().push(address.trim().to_string());
        }
    }
    round.values_mut().for_each(|addresses| addresses.sort());
    Some(round)
}

fn position_of(text: &str, needle: &str) -> (usize, usize) {
    text.lines()
        .enumerate()
        .find_map(|(i, line)| line.find(needle).map(|c| (i + 1, c + 1)))
        .unwrap_or_else(|| panic!("`{needle}` not in the text"))
}

/// The examples followed from a git repository (`--git file://`) by the
/// real binary on Docker: they converge like a directory does, a commit
/// recreates only what it changes, and every object names the commit. The
/// git source's other behaviours are covered on the fake engine
/// (`git_source`); Docker alone keeps this one run short.
#[tokio::test]
async fn docker_follows_a_git_repository() {
    use crate::support::git::git;
    let Some(mut stack) = Stack::examples(EngineKind::Docker).await else { return };
    let repository = stack.manifests();
    git(&repository, &["init", "--quiet", "--initial-branch=main"]);
    git(&repository, &["add", "--all"]);
    git(&repository, &["commit", "--quiet", "-m", "the examples"]);
    stack.start_git(&format!("file://{}", repository.display()));
    let before = stack.converged().await;

    let api = stack.manifest("03-api.yaml");
    let text = std::fs::read_to_string(&api).unwrap();
    assert!(text.contains("value: hello from berth"), "03-api.yaml sets GREETING");
    std::fs::write(&api, text.replace("value: hello from berth", "value: hello from git")).unwrap();
    git(&repository, &["commit", "--quiet", "--all", "-m", "api greets from git"]);
    let commit = git(&repository, &["rev-parse", "HEAD"]);
    let after = stack
        .eventually(CHANGE, "api replaced, running and healthy", || async {
            let now = stack.settled().await?;
            (now["api#0"].id != before["api#0"].id).then_some(now)
        })
        .await;
    for replica in ["web#0", "web#1"] {
        assert_eq!(after[replica].id, before[replica].id, "{replica} must not be touched");
    }
    assert!(stack.stop().success());
    let store = stack.store();
    let key = ObjectKey::parse(&format!("Container/{}/api", stack.namespace)).unwrap();
    let source = store.get(&key).unwrap().unwrap().metadata().source.clone().unwrap();
    assert_eq!(source.commit.as_deref(), Some(commit.as_str()));
    let records = store.sources().unwrap();
    assert_eq!(records.len(), 1, "one source, the repository: {records:#?}");
    assert_eq!(records[0].applied_commit.as_deref(), Some(commit.as_str()));
}

/// The proxy and DNS on real busybox `httpd` replicas: both web
/// replicas get traffic, `/api` goes to the api, the automatic and declared
/// A records name the replicas; stopping one replica by hand loses no
/// request, and from the stop on traffic and DNS go to the other (the
/// endpoint set drops it at its `die` event, before any health interval)
/// until berth has it running and healthy again; the Route's and
/// DnsRecord's status say what is served.
async fn routes_and_dns_follow_the_replicas(kind: EngineKind) {
    use crate::support::served::{ask_udp, data, get};
    let Some(mut stack) = Stack::examples(kind).await else { return };
    stack.start();
    let before = stack.converged().await;
    let proxy = stack.proxy_address().await;
    let dns = stack.dns_address().await;
    let hostname = |id: &str| id[..12].to_string();
    let (web0, web1) = (hostname(&before["web#0"].id), hostname(&before["web#1"].id));
    let seen = stack
        .eventually(CONVERGE, "both web replicas answering through the proxy", || async {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..6 {
                let (status, body) = get(proxy, "demo.berth.test", "/").await;
                if status != 200 {
                    return None;
                }
                seen.insert(served_by(&body));
            }
            (seen.len() == 2).then_some(seen)
        })
        .await;
    assert_eq!(seen, [web0.clone(), web1.clone()].into_iter().collect());
    let (status, body) = get(proxy, "x.demo.berth.test", "/api/v1/status").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello from berth"), "/api goes to the api: {body}");
    let (status, _) = get(proxy, "unknown.test", "/").await;
    assert_eq!(status, 404);

    let app = stack.engine_name("app");
    let mut ips: Vec<String> = ["web#0", "web#1"].iter().map(|r| before[*r].ips[&app].clone()).collect();
    ips.sort();
    let automatic =
        ask_udp(dns, &format!("web.{}.berth.internal.", stack.namespace), hickory_proto::rr::RecordType::A).await;
    assert_eq!(data(&automatic), ips);
    let declared = ask_udp(dns, "web.demo.berth.internal.", hickory_proto::rr::RecordType::A).await;
    assert_eq!(data(&declared), ips);

    // Requests keep flowing while web#1 is stopped.
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load = {
        let running = running.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let (status, body) = get(proxy, "demo.berth.test", "/").await;
                answers.push(Answer { sent, at: Instant::now(), status, body });
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    // busybox httpd ignores SIGTERM: the stop runs out its 2 s grace.
    stack.engine.stop_container(&before["web#1"].id, Duration::from_secs(2)).await.expect("docker stop");
    let stopped = Instant::now();
    // Before berth has the replica running and healthy again (drift repair).
    let web_name = format!("web.{}.berth.internal.", stack.namespace);
    let only_web0 = [before["web#0"].ips[&app].clone()];
    let dropped = poll_until(Duration::from_secs(1), || async {
        let answer = ask_udp(dns, &web_name, hickory_proto::rr::RecordType::A).await;
        (data(&answer) == only_web0).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "DNS dropped the stopped replica within a second");
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(stopped.elapsed())).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let answers = load.await.expect("the load task");
    let failed: Vec<&Answer> = answers.iter().filter(|answer| answer.status != 200).collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    let after: Vec<String> = answers.iter().filter(|answer| answer.at > stopped).map(|a| served_by(&a.body)).collect();
    let timeline = Timeline(stopped, &answers);
    assert!(after.len() > 5, "requests after the stop: {}; answers:\n{timeline}", after.len());
    // berth starts the stopped replica again (drift), and once it passes its
    // health check it may serve again; until then only web#0 answers.
    let back = after.iter().position(|name| *name != web0).unwrap_or(after.len());
    assert!(back >= 5, "right after the stop only web#0 ({web0}) answers:\n{timeline}");
    assert!(after[back..].iter().all(|name| *name == web0 || *name == web1), "{timeline}");
    // Drained as soon as the stop was asked (Docker's `kill` event), not when
    // its grace ran out. Podman 4.3 sends no event when a stop begins, so
    // there the replica leaves when it exits; the passive retry covers the
    // requests its SIGKILL breaks.
    if kind == EngineKind::Docker {
        let drained = asked + Duration::from_millis(500);
        let grace: Vec<&str> = answers
            .iter()
            .filter(|answer| answer.at > drained && answer.at < stopped)
            .map(|answer| answer.body.as_str())
            .collect();
        assert!(grace.len() > 5, "requests during the grace period:\n{timeline}");
        let only_web0 = grace.iter().all(|body| served_by(body) == web0);
        assert!(only_web0, "during the grace only web#0 answers:\n{timeline}");
    }

    stack.converged().await;
    assert!(stack.stop().success());
    let store = stack.store();
    let route = store.get(&ObjectKey::new(berth::api::Kind::Route, &stack.namespace, "demo")).unwrap().unwrap();
    let ready = route.status_common().unwrap().condition("Ready").unwrap().clone();
    assert_eq!(ready.reason, "Served", "{ready:?}");
    let record = store.get(&ObjectKey::new(berth::api::Kind::DnsRecord, &stack.namespace, "web")).unwrap().unwrap();
    let ready = record.status_common().unwrap().condition("Ready").unwrap().clone();
    assert_eq!(ready.reason, "Served", "{ready:?}");
}

/// Which replica served a proxied request: the example web page names its
/// container's host name.
fn served_by(body: &str) -> String {
    body.trim().trim_start_matches("<h1>hello from ").trim_end_matches("</h1>").to_string()
}

/// One proxied request of a load loop: when it was sent and answered.
#[derive(Debug)]
struct Answer {
    sent: Instant,
    at: Instant,
    status: u16,
    body: String,
}

/// The answers around an instant in 100 ms buckets (by answer time): how
/// many each replica gave, and the slowest, so that a failure shows a stall
/// in a few dozen lines rather than a thousand.
struct Timeline<'a>(Instant, &'a [Answer]);

impl std::fmt::Display for Timeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Timeline(origin, answers) = *self;
        let offset = |at: Instant| match at.checked_duration_since(origin) {
            Some(after) => after.as_millis() as i64,
            None => -(origin.duration_since(at).as_millis() as i64),
        };
        let mut buckets: BTreeMap<i64, (BTreeMap<String, usize>, Duration)> = BTreeMap::new();
        for answer in answers {
            let bucket = buckets.entry(offset(answer.at).div_euclid(100) * 100).or_default();
            *bucket.0.entry(format!("{} {}", answer.status, served_by(&answer.body))).or_default() += 1;
            bucket.1 = bucket.1.max(answer.at - answer.sent);
        }
        for (start, (counts, slowest)) in buckets {
            let counts: Vec<String> = counts.iter().map(|(what, n)| format!("{what} x{n}")).collect();
            writeln!(f, "{start:+}ms: {}; slowest {slowest:.0?}", counts.join(", "))?;
        }
        Ok(())
    }
}

/// A network of the same name that berth did not make is refused, and the
/// refusal backs off: Docker (before API 1.44) would create a duplicate that
/// berth removes again, and the removal woke every Network object, this one
/// too, so the reconcile retried at once, forever (a create and a destroy
/// event twice a second). berth now asks before it creates.
#[tokio::test]
async fn a_foreign_network_of_the_same_name_is_refused_without_a_retry_storm() {
    let Some(mut stack) = Stack::examples(EngineKind::Docker).await else { return };
    let name = stack.engine_name("app");
    let made = std::process::Command::new("docker").args(["network", "create", &name]).output().expect("docker runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let stamp = || {
        let now = chrono::Utc::now();
        format!("{}.{:09}", now.timestamp(), now.timestamp_subsec_nanos())
    };
    let since = stamp();
    stack.start();
    let network_key = format!("Network/{}/app", stack.namespace);
    stack
        .eventually(CHANGE, "the Network to report the foreign network", || {
            let log = stack.log();
            let network_key = network_key.clone();
            async move { log.contains(&format!("object={network_key}")).then_some(()) }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let until = stamp();
    let events = std::process::Command::new("docker")
        .args(["events", "--since", &since, "--until", &until])
        .args(["--filter", "type=network", "--filter", &format!("network={name}"), "--format", "{{.Action}}"])
        .output()
        .expect("docker events");
    let _ = std::process::Command::new("docker").args(["network", "rm", &name]).output();
    let actions = String::from_utf8_lossy(&events.stdout).to_string();
    assert!(!actions.contains("create"), "berth created networks named {name}: {actions}");
    let attempts = stack.log().matches(&format!("object={network_key} attempt=")).count();
    assert!(attempts <= 12, "{attempts} attempts in about 5 s: the retries do not back off");
}
