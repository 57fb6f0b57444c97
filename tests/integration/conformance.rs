//! The engine conformance suite: what every [`Engine`] must do, written once.
//!
//! Reconcilers are written against the trait, not against Docker, so every
//! backend must give the same answers: the same errors for missing and
//! existing objects, labels that round-trip and select, containers that
//! really run with what they were created with, health and lifecycle events,
//! idempotent starts, stops, connects and disconnects. Each check below is a
//! `pub async fn check(engine: &dyn Engine, prefix: &str)`;
//! [`conformance_suite!`] turns the whole list into one `#[tokio::test]` per
//! check for one engine (`conformance::docker::stop_waits_for_grace`).
//!
//! Every object a check makes is named after its `prefix` (unique per test
//! run) and labelled `berth.dev/test=<prefix>`, so parallel checks never see
//! each other's objects, and leftovers of an interrupted run are easy to
//! find. A [`Scratch`] removes them all at the end of the check, also when it
//! fails. Containers use a 1 s stop grace; the whole suite takes seconds.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth::engine::{
    BuildOutput, BuildRequest, ContainerConfig, ContainerState, Engine, EngineError, EngineEvent, EventAction,
    ExecOutput, ExecRequest, ExecSession, Health, HealthConfig, Labels, Mount, MountSource, NetworkAttachment,
    NetworkConfig, NetworkInfo, PortBinding, Protocol, Result, TerminalSize, VolumeConfig, VolumeInfo,
};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use crate::support::engines::{busybox_tar, unique_suffix, TEST_LABEL};

/// Instantiates every check as a `#[tokio::test]` in a module named after
/// the engine. `$connect` is an expression of type
/// `impl Future<Output = Option<Arc<dyn Engine>>>`; `None` means the engine
/// is skipped (the connect function has said why).
macro_rules! conformance_suite {
    ($engine:ident, $connect:expr $(, also: $($extra:ident),*)?) => {
        conformance_suite!(@tests $engine, $connect;
            info_answers,
            missing_objects_are_not_found,
            existing_names_conflict,
            labels_round_trip_and_select,
            builds_image_from_memory_context,
            broken_build_fails,
            runs_container_with_env_mounts_and_ports,
            applies_every_container_option,
            aliases_reach_across_networks,
            health_goes_starting_healthy_unhealthy,
            events_report_lifecycle,
            stop_waits_for_grace,
            connect_and_disconnect_are_idempotent,
            streams_logs_and_follows,
            exec_runs_commands_and_reports_exit_codes,
            copies_files_in_and_out,
            $($($extra,)*)?
        );
    };
    (@tests $engine:ident, $connect:expr; $($check:ident),* $(,)?) => {
        mod $engine {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let connected: Option<Arc<dyn Engine>> = $connect.await;
                    let Some(engine) = connected else { return };
                    let prefix = prefix(stringify!($check));
                    let started = Instant::now();
                    super::$check(&*engine, &prefix).await;
                    eprintln!("{}: {} took {:.2?}", stringify!($engine), stringify!($check), started.elapsed());
                }
            )*
        }
    };
}

// The real engines also run interactive terminals; the fake's shell reads
// no input.
conformance_suite!(docker, async {
    crate::support::engines::berth_docker().await.map(|engine| Arc::new(engine) as Arc<dyn Engine>)
}, also: exec_with_a_tty_is_interactive_and_resizes);
conformance_suite!(podman, async {
    crate::support::engines::berth_podman().await.map(|engine| Arc::new(engine) as Arc<dyn Engine>)
}, also: exec_with_a_tty_is_interactive_and_resizes);
// The fake runs the suite's containers with its process model (a small
// shell over in-memory files and its networks; see `engine::fake`).
conformance_suite!(fake, async { Some(Arc::new(berth::engine::fake::FakeEngine::new()) as Arc<dyn Engine>) });

/// A name prefix unique to one run of one check.
fn prefix(check: &str) -> String {
    format!("bc-{}-{}", check.replace('_', "-"), unique_suffix())
}

/// How long anything asynchronous may take before a check gives up.
const DEADLINE: Duration = Duration::from_secs(15);

/// Builds and image removals one at a time: removing a built image also
/// removes its untagged parent layers, which a concurrent build of the same
/// context may have just picked from the cache.
static IMAGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a check created, removed at its end however it ended.
///
/// Names are recorded before the create call, so an object whose creation
/// failed halfway is removed too; removal also sweeps by the test label.
pub struct Scratch<'a> {
    engine: &'a dyn Engine,
    prefix: String,
    containers: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
    volumes: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
}

impl<'a> Scratch<'a> {
    fn new(engine: &'a dyn Engine, prefix: &str) -> Self {
        Scratch {
            engine,
            prefix: prefix.to_string(),
            containers: Mutex::default(),
            networks: Mutex::default(),
            volumes: Mutex::default(),
            images: Mutex::default(),
        }
    }

    /// Runs `body`, then removes everything, then re-raises the body's panic
    /// (a `Drop` guard cannot run async cleanup).
    async fn run(&self, body: impl Future<Output = ()>) {
        let outcome = AssertUnwindSafe(body).catch_unwind().await;
        let leftovers = self.cleanup().await;
        if let Err(panic) = outcome {
            if !leftovers.is_empty() {
                eprintln!("cleanup after the failure also failed: {leftovers:#?}");
            }
            std::panic::resume_unwind(panic);
        }
        assert!(leftovers.is_empty(), "cleanup failed: {leftovers:#?}");
    }

    /// `<prefix>-<part>`.
    fn name(&self, part: &str) -> String {
        format!("{}-{part}", self.prefix)
    }

    /// The test label, which selects exactly this check's objects.
    fn labels(&self) -> Labels {
        Labels::from([(TEST_LABEL.to_string(), self.prefix.clone())])
    }

    /// The test label plus `extra`.
    fn labels_with(&self, extra: &[(&str, &str)]) -> Labels {
        let mut labels = self.labels();
        labels.extend(extra.iter().map(|(key, value)| (key.to_string(), value.to_string())));
        labels
    }

    /// Builds `request`, recording its tag for removal.
    async fn build(&self, request: &BuildRequest) -> Result<BuildOutput> {
        self.images.lock().unwrap().push(request.tag.clone());
        let _one_at_a_time = IMAGES.lock().await;
        self.engine.build_image(request).await
    }

    /// The busybox image, built for this check, labelled `labels`; returns its tag.
    async fn busybox(&self, labels: Labels) -> String {
        let tag = format!("{}:img", self.prefix);
        let request = BuildRequest {
            context_tar: busybox_tar(),
            dockerfile: "Dockerfile".into(),
            tag: tag.clone(),
            labels,
            ..Default::default()
        };
        self.build(&request).await.unwrap_or_else(|error| panic!("build busybox: {error:#}"));
        tag
    }

    /// A container config running `script` under `sh -c`, with the test
    /// label and a 1 s stop grace.
    fn config(&self, part: &str, image: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            name: self.name(part),
            image: image.to_string(),
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
            labels: self.labels(),
            stop_timeout: Duration::from_secs(1),
            ..Default::default()
        }
    }

    /// Creates a container, recording it for removal; returns its id.
    async fn create(&self, config: &ContainerConfig) -> Result<String> {
        self.containers.lock().unwrap().push(config.name.clone());
        self.engine.create_container(config).await
    }

    /// Creates and starts a container; returns its id.
    async fn run_container(&self, config: &ContainerConfig) -> String {
        let id = self.create(config).await.unwrap_or_else(|error| panic!("create {}: {error:#}", config.name));
        self.engine.start_container(&id).await.unwrap_or_else(|error| panic!("start {}: {error:#}", config.name));
        id
    }

    /// Creates a volume, recording it for removal.
    async fn volume(&self, config: &VolumeConfig) -> Result<VolumeInfo> {
        self.volumes.lock().unwrap().push(config.name.clone());
        self.engine.create_volume(config).await
    }

    /// Creates a network, recording it for removal.
    async fn network(&self, config: &NetworkConfig) -> Result<NetworkInfo> {
        self.networks.lock().unwrap().push(config.name.clone());
        self.engine.create_network(config).await
    }

    /// Removes everything this check made; returns what could not be removed.
    async fn cleanup(&self) -> Vec<String> {
        let engine = self.engine;
        let mut failures = Vec::new();
        let mut note = |what: String, result: Result<()>| match result {
            Ok(()) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => failures.push(format!("{what}: {error:#}")),
        };
        let take = |list: &Mutex<Vec<String>>| std::mem::take(&mut *list.lock().unwrap());
        let labels = self.labels();

        let mut containers = take(&self.containers);
        if let Ok(found) = engine.list_containers(&labels).await {
            containers.extend(found.into_iter().map(|container| container.id));
        }
        for container in containers {
            note(format!("container {container}"), engine.remove_container(&container).await);
        }
        let mut networks = take(&self.networks);
        if let Ok(found) = engine.list_networks(&labels).await {
            networks.extend(found.into_iter().map(|network| network.id));
        }
        for network in networks {
            note(format!("network {network}"), engine.remove_network(&network).await);
        }
        let mut volumes = take(&self.volumes);
        if let Ok(found) = engine.list_volumes(&labels).await {
            volumes.extend(found.into_iter().map(|volume| volume.name));
        }
        for volume in volumes {
            note(format!("volume {volume}"), engine.remove_volume(&volume).await);
        }
        let images = take(&self.images);
        if !images.is_empty() {
            let _one_at_a_time = IMAGES.lock().await;
            for image in images {
                note(format!("image {image}"), engine.remove_image(&image).await);
            }
        }
        failures
    }
}

/// Asserts `result` is [`EngineError::NotFound`].
fn assert_not_found<T: std::fmt::Debug>(what: &str, result: Result<T>) {
    match result {
        Err(EngineError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Asserts `result` is [`EngineError::Conflict`].
fn assert_conflict<T: std::fmt::Debug>(what: &str, result: Result<T>) {
    match result {
        Err(EngineError::Conflict { .. }) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// Polls `probe` every 100 ms until it returns `Some`, for at most
/// [`DEADLINE`]; panics with `what` (and the last observation) after that.
async fn eventually<T, O: std::fmt::Debug, F: Future<Output = (Option<T>, O)>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (found, observed) = probe().await;
        if let Some(found) = found {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {DEADLINE:?}; last seen: {observed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `events` until one about `id` satisfies `last`; returns the events
/// about `id` seen so far. Panics after [`DEADLINE`] or if the stream ends.
async fn events_until(
    events: &mut BoxStream<'static, Result<EngineEvent>>,
    id: &str,
    last: impl Fn(&EngineEvent) -> bool,
) -> Vec<EngineEvent> {
    let mut seen = Vec::new();
    let reading = async {
        while let Some(event) = events.next().await {
            let event = event.unwrap_or_else(|error| panic!("event stream failed: {error:#}"));
            if event.id == id {
                let done = last(&event);
                seen.push(event);
                if done {
                    return true;
                }
            }
        }
        false
    };
    let finished = tokio::time::timeout(DEADLINE, reading).await;
    assert_eq!(finished, Ok(true), "events of {id}: stream ended or timed out; seen: {seen:#?}");
    seen
}

/// A TCP port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------
// The checks.

/// `info` names the engine and its version.
pub async fn info_answers(engine: &dyn Engine, _prefix: &str) {
    let info = engine.info().await.expect("info");
    assert!(!info.kind.is_empty() && !info.version.is_empty(), "{info:?}");
}

/// Every operation on a missing object says NotFound (reconcilers treat it
/// as "already done" for removals); a missing image inspects as `None`.
pub async fn missing_objects_are_not_found(engine: &dyn Engine, prefix: &str) {
    let missing = format!("{prefix}-missing");
    assert_not_found("inspect container", engine.inspect_container(&missing).await);
    assert_not_found("start container", engine.start_container(&missing).await);
    assert_not_found("stop container", engine.stop_container(&missing, Duration::from_secs(1)).await);
    assert_not_found("remove container", engine.remove_container(&missing).await);
    assert_not_found("container logs", engine.container_logs(&missing, 10).await);
    assert_not_found("remove volume", engine.remove_volume(&missing).await);
    assert_not_found("remove network", engine.remove_network(&missing).await);
    assert_not_found("remove image", engine.remove_image(&format!("{missing}:none")).await);
    let from_missing_image =
        ContainerConfig { name: missing.clone(), image: format!("{missing}:none"), ..Default::default() };
    assert_not_found("create from a missing image", engine.create_container(&from_missing_image).await);
    assert_eq!(engine.inspect_image(&format!("{missing}:none")).await.expect("inspect image"), None);
}

/// Creating a container, volume or network whose name exists is a
/// Conflict, and leaves exactly one object of that name.
pub async fn existing_names_conflict(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let volume = VolumeConfig { name: scratch.name("vol"), labels: scratch.labels(), ..Default::default() };
            scratch.volume(&volume).await.expect("first volume");
            assert_conflict("second volume", scratch.volume(&volume).await);
            assert_eq!(engine.list_volumes(&scratch.labels()).await.expect("list volumes").len(), 1);

            let network = NetworkConfig { name: scratch.name("net"), labels: scratch.labels(), ..Default::default() };
            scratch.network(&network).await.expect("first network");
            assert_conflict("second network", scratch.network(&network).await);
            let networks = engine.list_networks(&scratch.labels()).await.expect("list networks");
            assert_eq!(networks.len(), 1, "{networks:#?}");

            let image = scratch.busybox(scratch.labels()).await;
            let container = scratch.config("ctr", &image, "sleep 600");
            scratch.create(&container).await.expect("first container");
            assert_conflict("second container", scratch.create(&container).await);
            assert_eq!(engine.list_containers(&scratch.labels()).await.expect("list containers").len(), 1);
        })
        .await;
}

/// Labels come back as given, and a list by labels returns exactly the
/// objects carrying all of them. Network settings round-trip too.
pub async fn labels_round_trip_and_select(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            // A subnet unlikely to collide with a parallel run's.
            let suffix = u32::from_str_radix(&prefix[prefix.len() - 4..], 16).unwrap_or(0);
            let (second, third) = (200 + suffix % 50, (suffix >> 8) % 256);
            for role in ["a", "b"] {
                let labels = scratch.labels_with(&[("role", role), ("berth.dev/name", "web")]);
                let volume = VolumeConfig {
                    name: scratch.name(&format!("vol-{role}")),
                    driver: "local".into(),
                    labels: labels.clone(),
                    ..Default::default()
                };
                let created = scratch.volume(&volume).await.expect("create volume");
                assert_eq!((&created.name, &created.driver, &created.labels), (&volume.name, &volume.driver, &labels));

                let subnet = format!("10.{second}.{}.0/24", (third + u32::from(role == "b")) % 256);
                let gateway = subnet.replace(".0/24", ".1");
                let network = NetworkConfig {
                    name: scratch.name(&format!("net-{role}")),
                    driver: "bridge".into(),
                    subnet: Some(subnet.clone()),
                    gateway: Some(gateway.clone()),
                    internal: role == "a",
                    labels: labels.clone(),
                    ..Default::default()
                };
                let created = scratch.network(&network).await.expect("create network");
                assert_eq!(
                    (&created.name, &created.driver, &created.labels),
                    (&network.name, &network.driver, &labels)
                );
                assert_eq!(
                    (created.subnets, created.gateways, created.internal),
                    (vec![subnet], vec![gateway], role == "a")
                );

                let mut container = scratch.config(&format!("ctr-{role}"), &image, "sleep 600");
                container.labels = labels.clone();
                let id = scratch.create(&container).await.expect("create container");
                let inspected = engine.inspect_container(&id).await.expect("inspect container");
                // An engine may add the image's labels; ours must all be there.
                assert!(labels.iter().all(|(k, v)| inspected.labels.get(k) == Some(v)), "{:?}", inspected.labels);
                assert_eq!((inspected.name, inspected.state), (container.name, ContainerState::Created));
            }

            let names = |names: Vec<String>| names.into_iter().collect::<BTreeSet<_>>();
            let expected = |kind: &str, roles: &[&str]| {
                names(roles.iter().map(|r| scratch.name(&format!("{kind}-{r}"))).collect())
            };
            for (selector, roles) in
                [(scratch.labels(), &["a", "b"][..]), (scratch.labels_with(&[("role", "a")]), &["a"][..])]
            {
                let volumes = engine.list_volumes(&selector).await.expect("list volumes");
                assert_eq!(
                    names(volumes.into_iter().map(|v| v.name).collect()),
                    expected("vol", roles),
                    "{selector:?}"
                );
                let networks = engine.list_networks(&selector).await.expect("list networks");
                assert_eq!(
                    names(networks.into_iter().map(|n| n.name).collect()),
                    expected("net", roles),
                    "{selector:?}"
                );
                let containers = engine.list_containers(&selector).await.expect("list containers");
                assert_eq!(
                    names(containers.into_iter().map(|c| c.name).collect()),
                    expected("ctr", roles),
                    "{selector:?}"
                );
            }
        })
        .await;
}

/// The busybox context builds from memory; the image inspects by tag with
/// the build's id and labels.
pub async fn builds_image_from_memory_context(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let labels = scratch.labels_with(&[("berth.dev/spec-hash", "abc123")]);
            let request = BuildRequest {
                context_tar: busybox_tar(),
                dockerfile: "Dockerfile".into(),
                tag: format!("{prefix}:built"),
                labels: labels.clone(),
                ..Default::default()
            };
            let output = scratch.build(&request).await.unwrap_or_else(|error| panic!("build: {error:#}"));
            assert!(!output.image_id.is_empty() && !output.log.is_empty(), "{output:?}");
            let image = engine.inspect_image(&request.tag).await.expect("inspect image").expect("image exists");
            assert_eq!(image.id, output.image_id);
            assert!(image.tags.iter().any(|tag| tag.ends_with(&request.tag)), "{:?}", image.tags);
            assert!(labels.iter().all(|(k, v)| image.labels.get(k) == Some(v)), "{:?}", image.labels);
        })
        .await;
}

/// A build whose step fails is `Failed`, not a success or a missing object.
pub async fn broken_build_fails(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let context = berth::engine::build_context::BuildContext::new()
                .file("Dockerfile", "FROM scratch\nRUN [\"/no-such-program\"]\n", 0o644)
                .and_then(|context| context.to_tar())
                .expect("context");
            let request = BuildRequest {
                context_tar: context,
                dockerfile: "Dockerfile".into(),
                tag: format!("{prefix}:broken"),
                labels: scratch.labels(),
                ..Default::default()
            };
            match scratch.build(&request).await {
                Err(EngineError::Failed { .. }) => {}
                other => panic!("expected Failed, got {other:?}"),
            }
        })
        .await;
}

/// A container with env, a volume, a tmpfs, a fixed and an automatic host
/// port runs, reports both host ports, and sees its environment.
pub async fn runs_container_with_env_mounts_and_ports(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let volume = VolumeConfig { name: scratch.name("data"), labels: scratch.labels(), ..Default::default() };
            scratch.volume(&volume).await.expect("create volume");
            let fixed = free_port();
            let greeting = format!("hello-{prefix}");
            let mut config = scratch.config(
                "web",
                &image,
                "echo \"greeting=$GREETING\"; echo x > /data/f && echo volume-ok; \
                 grep -q ' /scratch tmpfs ' /proc/mounts && echo tmpfs-ok; sleep 600",
            );
            config.env = vec![("GREETING".into(), greeting.clone()), ("OTHER".into(), "1".into())];
            config.mounts = vec![
                Mount { target: "/data".into(), source: MountSource::Volume(volume.name.clone()), read_only: false },
                Mount { target: "/scratch".into(), source: MountSource::Tmpfs(Some(1 << 20)), read_only: false },
            ];
            config.ports = vec![
                PortBinding { container_port: 8080, protocol: Protocol::Tcp, host_ip: None, host_port: Some(fixed) },
                PortBinding { container_port: 8081, protocol: Protocol::Tcp, host_ip: None, host_port: None },
            ];
            let id = scratch.run_container(&config).await;

            let info = engine.inspect_container(&id).await.expect("inspect");
            assert_eq!(info.state, ContainerState::Running, "{info:?}");
            assert_eq!(info.host_ports.get("8080/tcp"), Some(&fixed), "{info:?}");
            assert!(info.host_ports.get("8081/tcp").is_some_and(|port| *port > 0), "{info:?}");
            let expected = format!("greeting={greeting}");
            let (id, expected) = (&id, &expected);
            let logs = eventually("the greeting in the logs", move || async move {
                let logs = engine.container_logs(id, 50).await.expect("logs");
                (logs.iter().any(|line| line == expected).then(|| logs.clone()), logs)
            })
            .await;
            eprintln!("logs: {logs:?}");
        })
        .await;
}

/// Resources, identity, security and DNS settings are accepted and take
/// effect inside the container.
pub async fn applies_every_container_option(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let mut config = scratch.config("options", &image, "");
            config.entrypoint = Some(vec!["sh".into(), "-c".into()]);
            config.command = Some(vec![concat!(
                "echo user=$(id -u):$(id -g) dir=$(pwd) host=$(hostname); ",
                "touch /rootfs-probe 2>/dev/null || echo rootfs=read-only; ",
                "grep -q '^nameserver 192.0.2.53' /etc/resolv.conf && echo dns=set; ",
                // A tab between the field and its value, as the kernel writes it.
                "grep -q '^NoNewPrivs:\t1' /proc/self/status && echo no-new-privileges=set; ",
                "sleep 600"
            )
            .into()]);
            config.memory_bytes = Some(64 << 20);
            config.nano_cpus = Some(500_000_000);
            config.cpu_shares = Some(512);
            config.pids_limit = Some(64);
            config.user = Some("1234:5678".into());
            config.working_dir = Some("/tmp".into());
            config.hostname = Some("optioned".into());
            config.read_only_rootfs = true;
            config.no_new_privileges = true;
            config.cap_drop = vec!["NET_RAW".into()];
            config.cap_add = vec!["NET_ADMIN".into()];
            config.dns = vec!["192.0.2.53".into()];
            config.restart = berth::engine::RestartPolicy::OnFailure;
            config.mounts = vec![Mount { target: "/tmp".into(), source: MountSource::Tmpfs(None), read_only: false }];
            let id = scratch.run_container(&config).await;
            let expected =
                ["user=1234:5678 dir=/tmp host=optioned", "rootfs=read-only", "dns=set", "no-new-privileges=set"];
            let id = &id;
            eventually("every option in the logs", move || async move {
                let logs = engine.container_logs(id, 50).await.expect("logs");
                (expected.iter().all(|line| logs.iter().any(|seen| seen == line)).then_some(()), logs)
            })
            .await;
        })
        .await;
}

/// Container A joins two networks with an alias on the second; container B,
/// on the second network only, reaches A's web server by that alias (once
/// A's health check says it serves).
pub async fn aliases_reach_across_networks(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let mut networks = Vec::new();
            for part in ["front", "back"] {
                let config = NetworkConfig { name: scratch.name(part), labels: scratch.labels(), ..Default::default() };
                networks.push(scratch.network(&config).await.expect("create network").name);
            }
            let mut server = scratch.config(
                "a",
                &image,
                "mkdir -p /www && echo served-by-a > /www/index.html && exec httpd -f -p 8080 -h /www",
            );
            server.mounts = vec![Mount { target: "/www".into(), source: MountSource::Tmpfs(None), read_only: false }];
            server.networks = vec![
                NetworkAttachment { network: networks[0].clone(), aliases: vec!["front-a".into()] },
                NetworkAttachment { network: networks[1].clone(), aliases: vec!["svc".into()] },
            ];
            // Healthy once it serves: the client then needs no retry loop.
            server.health = Some(HealthConfig {
                command: ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"].map(String::from).to_vec(),
                interval: Duration::from_millis(300),
                timeout: Duration::from_secs(2),
                retries: 3,
                start_period: Duration::ZERO,
            });
            let server_id = scratch.run_container(&server).await;
            let info = engine.inspect_container(&server_id).await.expect("inspect server");
            assert_eq!(
                info.ips.keys().cloned().collect::<Vec<_>>(),
                {
                    let mut n = networks.clone();
                    n.sort();
                    n
                },
                "{info:?}"
            );
            let server_ref = &server_id;
            eventually("the server to be healthy", move || async move {
                let info = engine.inspect_container(server_ref).await.expect("inspect server");
                ((info.health == Some(Health::Healthy)).then_some(()), info.health)
            })
            .await;

            let mut client = scratch.config("b", &image, "wget -q -O- http://svc:8080/");
            client.networks = vec![NetworkAttachment { network: networks[1].clone(), aliases: vec![] }];
            let client_id = scratch.run_container(&client).await;
            let client_ref = &client_id;
            let exited = eventually("the client to exit", move || async move {
                let info = engine.inspect_container(client_ref).await.expect("inspect client");
                ((info.state == ContainerState::Exited).then(|| info.clone()), info)
            })
            .await;
            let logs = engine.container_logs(&client_id, 20).await.expect("client logs");
            assert_eq!(exited.exit_code, Some(0), "client logs: {logs:?}");
            assert!(logs.iter().any(|line| line == "served-by-a"), "{logs:?}");
        })
        .await;
}

/// A health check passes while a file exists and fails once the container
/// removes it: inspect shows starting, healthy, unhealthy, and the event
/// stream reports the changes.
///
/// The times leave room for a loaded machine, where one Podman check (an
/// exec) can take a second: the first check comes a whole interval after
/// the start, so the first inspect sees `starting`, and the file stays 5 s,
/// so a check that ran late still finds it.
pub async fn health_goes_starting_healthy_unhealthy(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let mut events = engine.events().await.expect("subscribe to events");
            let mut config = scratch.config("checked", &image, "touch /tmp/ok; sleep 5; rm /tmp/ok; sleep 600");
            config.mounts = vec![Mount { target: "/tmp".into(), source: MountSource::Tmpfs(None), read_only: false }];
            config.health = Some(HealthConfig {
                command: vec!["test".into(), "-f".into(), "/tmp/ok".into()],
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(2),
                retries: 1,
                start_period: Duration::ZERO,
            });
            let id = scratch.run_container(&config).await;
            let first = engine.inspect_container(&id).await.expect("inspect");
            assert_eq!(first.health, Some(Health::Starting), "{first:?}");
            let id_ref = &id;
            for wanted in [Health::Healthy, Health::Unhealthy] {
                eventually(&format!("health {}", wanted.as_str()), move || async move {
                    let info = engine.inspect_container(id_ref).await.expect("inspect");
                    ((info.health == Some(wanted)).then_some(()), info.health)
                })
                .await;
            }
            let seen = events_until(&mut events, &id, |event| event.action == EventAction::Health(Health::Unhealthy)).await;
            let health: Vec<_> = seen.iter().filter(|event| matches!(event.action, EventAction::Health(_))).collect();
            assert!(
                matches!(health[..], [.., a, b] if a.action == EventAction::Health(Health::Healthy) && b.action == EventAction::Health(Health::Unhealthy)),
                "{health:#?}"
            );
        })
        .await;
}

/// The event stream reports a container's create, start, die and destroy,
/// in order, with its labels.
pub async fn events_report_lifecycle(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let mut events = engine.events().await.expect("subscribe to events");
            let id = scratch.run_container(&scratch.config("short", &image, "sleep 600")).await;
            engine.remove_container(&id).await.expect("remove running container");
            let seen = events_until(&mut events, &id, |event| event.action == EventAction::Destroy).await;
            let actions: Vec<_> = seen.iter().map(|event| event.action.clone()).collect();
            let position = |wanted: EventAction| {
                actions
                    .iter()
                    .position(|action| *action == wanted)
                    .unwrap_or_else(|| panic!("no {wanted:?} in {actions:?}"))
            };
            let order = [EventAction::Create, EventAction::Start, EventAction::Die, EventAction::Destroy].map(position);
            assert!(order.is_sorted(), "{actions:?}");
            let start = &seen[order[1]];
            assert_eq!(start.labels.get(TEST_LABEL), Some(&prefix.to_string()), "{start:?}");
        })
        .await;
}

/// A container whose PID 1 ignores SIGTERM is killed after the grace
/// period. Starts and stops are idempotent.
pub async fn stop_waits_for_grace(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let mut config = scratch.config("stubborn", &image, "");
            // busybox `sleep` as PID 1 has no SIGTERM handler, so the signal is ignored.
            config.command = Some(vec!["sleep".into(), "600".into()]);
            let id = scratch.run_container(&config).await;
            engine.start_container(&id).await.expect("starting a running container succeeds");

            let started = Instant::now();
            engine.stop_container(&id, Duration::from_secs(1)).await.expect("stop");
            let took = started.elapsed();
            assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "stop took {took:?}");
            let info = engine.inspect_container(&id).await.expect("inspect");
            assert_eq!(info.state, ContainerState::Exited, "{info:?}");
            assert!(info.exit_code.is_some(), "{info:?}");
            engine.stop_container(&id, Duration::from_secs(1)).await.expect("stopping a stopped container succeeds");
        })
        .await;
}

/// Connecting twice and disconnecting twice succeed; the network and the
/// container agree on the membership in between.
pub async fn connect_and_disconnect_are_idempotent(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let network = NetworkConfig { name: scratch.name("net"), labels: scratch.labels(), ..Default::default() };
            let network = scratch.network(&network).await.expect("create network");
            let id = scratch.run_container(&scratch.config("member", &image, "sleep 600")).await;
            let aliases = ["member-alias".to_string()];
            for _ in 0..2 {
                engine.connect_network(&network.name, &id, &aliases).await.expect("connect");
            }
            let info = engine.inspect_container(&id).await.expect("inspect");
            assert!(info.ips.contains_key(&network.name), "{info:?}");
            let listed = engine.list_networks(&scratch.labels()).await.expect("list networks");
            assert_eq!(listed.iter().map(|n| n.containers.clone()).collect::<Vec<_>>(), [vec![id.clone()]]);
            for _ in 0..2 {
                engine.disconnect_network(&network.name, &id).await.expect("disconnect");
            }
            let info = engine.inspect_container(&id).await.expect("inspect");
            assert!(!info.ips.contains_key(&network.name), "{info:?}");
        })
        .await;
}

/// Logs come back as lines, the last `tail` of them; a followed stream
/// delivers new lines and ends when the container stops; the exit code is
/// the script's. Logs of a missing container are NotFound.
pub async fn streams_logs_and_follows(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let script = "echo one; echo two; sleep 2; echo three; exit 3";
            let id = scratch.run_container(&scratch.config("talker", &image, script)).await;
            let id_ref = &id;
            eventually("two lines in the logs", move || async move {
                let logs = engine.container_logs(id_ref, 10).await.expect("logs");
                ((logs.len() >= 2).then_some(()), logs)
            })
            .await;
            let followed: Vec<String> = engine
                .stream_logs(&id, 1, true)
                .await
                .expect("follow logs")
                .map(|line| line.expect("a line"))
                .collect()
                .await;
            assert_eq!(followed, ["two", "three"], "the last line, then the new one, then the end");
            let all: Vec<String> = engine
                .stream_logs(&id, 10, false)
                .await
                .expect("logs")
                .map(|line| line.expect("a line"))
                .collect()
                .await;
            assert_eq!(all, ["one", "two", "three"]);
            let info = engine.inspect_container(&id).await.expect("inspect");
            assert_eq!((info.state, info.exit_code), (ContainerState::Exited, Some(3)), "{info:?}");
            let missing = format!("{prefix}-missing");
            assert_not_found("stream logs", engine.stream_logs(&missing, 10, false).await.map(|_| ()));
        })
        .await;
}

/// Reads an exec's output until it contains `wanted` (or the deadline).
async fn read_until(session: &mut ExecSession, seen: &mut String, wanted: &str) {
    let reading = async {
        while !seen.contains(wanted) {
            match session.output.next().await {
                Some(Ok(ExecOutput::Stdout(bytes) | ExecOutput::Stderr(bytes))) => {
                    seen.push_str(&String::from_utf8_lossy(&bytes));
                }
                Some(Err(error)) => panic!("exec output failed: {error:#}"),
                None => panic!("the exec ended before {wanted:?}; output: {seen:?}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, reading).await.unwrap_or_else(|_| panic!("no {wanted:?} in {seen:?}"));
}

/// Runs `command` in container `id` without a TTY; its stdout and the
/// exec's id, once the output has ended.
async fn stdout_of(engine: &dyn Engine, id: &str, command: &[&str]) -> (String, String) {
    let request = ExecRequest { command: command.iter().map(|a| a.to_string()).collect(), ..Default::default() };
    let session = engine.exec(id, &request).await.expect("exec");
    let mut stdout = Vec::new();
    let mut output = session.output;
    while let Some(chunk) = tokio::time::timeout(DEADLINE, output.next()).await.expect("exec output") {
        if let ExecOutput::Stdout(bytes) = chunk.expect("exec output") {
            stdout.extend_from_slice(&bytes);
        }
    }
    (String::from_utf8_lossy(&stdout).to_string(), session.id)
}

/// The exit code of an exec whose output has ended: engines record it a
/// moment after the stream closes.
async fn exit_code_of(engine: &dyn Engine, exec: &str) -> i64 {
    eventually("the exec's exit code", || async {
        let code = engine.exec_exit_code(exec).await.expect("exec exit code");
        (code, code)
    })
    .await
}

pub async fn exec_runs_commands_and_reports_exit_codes(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let id = scratch.run_container(&scratch.config("shell", &image, "sleep 600")).await;
            let (stdout, exec) = stdout_of(engine, &id, &["sh", "-c", "echo out $HOSTNAME; exit 7"]).await;
            let request = ExecRequest { command: vec!["true".into()], ..Default::default() };
            let hostname = engine.inspect_container(&id).await.expect("inspect").id[..12].to_string();
            assert_eq!(stdout, format!("out {hostname}\n"));
            assert_eq!(exit_code_of(engine, &exec).await, 7);
            assert_not_found("exec in a missing container", engine.exec(&format!("{prefix}-missing"), &request).await);
            engine.stop_container(&id, Duration::from_secs(1)).await.expect("stop");
            assert_conflict("exec in a stopped container", engine.exec(&id, &request).await);
        })
        .await;
}

pub async fn exec_with_a_tty_is_interactive_and_resizes(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let id = scratch.run_container(&scratch.config("shell", &image, "sleep 600")).await;
            let request = ExecRequest {
                command: vec!["sh".into()],
                tty: true,
                stdin: true,
                size: Some(TerminalSize { cols: 91, rows: 27 }),
            };
            let mut session = engine.exec(&id, &request).await.expect("exec");
            let mut seen = String::new();
            use tokio::io::AsyncWriteExt;
            session.input.write_all(b"echo $((6*7))\n").await.expect("type");
            read_until(&mut session, &mut seen, "42").await;
            session.input.write_all(b"stty size\n").await.expect("type");
            read_until(&mut session, &mut seen, "27 91").await;
            engine.resize_exec(&session.id, TerminalSize { cols: 120, rows: 33 }).await.expect("resize");
            session.input.write_all(b"stty size\n").await.expect("type");
            read_until(&mut session, &mut seen, "33 120").await;
            assert_eq!(engine.exec_exit_code(&session.id).await.expect("exit code"), None, "still running");
            session.input.write_all(b"exit 5\n").await.expect("type");
            let rest = tokio::time::timeout(DEADLINE, session.output.count()).await.expect("the shell exits");
            eprintln!("{rest} chunks after exit; output: {seen:?}");
            assert_eq!(exit_code_of(engine, &session.id).await, 5);
        })
        .await;
}

/// The files of a tar archive: path and content, directories left out.
fn tar_files(tar: &[u8]) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(tar);
    let mut files = Vec::new();
    for entry in archive.entries().expect("a tar archive") {
        let mut entry = entry.expect("an entry");
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().to_string();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            files.push((path, text));
        }
    }
    files.sort();
    files
}

async fn archive_of(engine: &dyn Engine, id: &str, path: &str) -> Result<Vec<u8>> {
    let mut archive = engine.copy_from(id, path).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = archive.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

pub async fn copies_files_in_and_out(engine: &dyn Engine, prefix: &str) {
    let scratch = Scratch::new(engine, prefix);
    scratch
        .run(async {
            let image = scratch.busybox(scratch.labels()).await;
            let id = scratch.run_container(&scratch.config("files", &image, "sleep 600")).await;
            let mut tar = tar::Builder::new(Vec::new());
            for (path, text) in [("bc/a.txt", "alpha\n"), ("b.txt", "beta\n")] {
                let mut header = tar::Header::new_gnu();
                header.set_size(text.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                tar.append_data(&mut header, path, text.as_bytes()).unwrap();
            }
            engine.copy_to(&id, "/", tar.into_inner().unwrap().into()).await.expect("copy in");
            let (read, _) = stdout_of(engine, &id, &["cat", "/bc/a.txt"]).await;
            assert_eq!(read, "alpha\n", "the copied file, read in the container");
            let file = archive_of(engine, &id, "/b.txt").await.expect("copy a file out");
            assert_eq!(tar_files(&file), [("b.txt".to_string(), "beta\n".to_string())]);
            let directory = archive_of(engine, &id, "/bc").await.expect("copy a directory out");
            assert_eq!(tar_files(&directory), [("bc/a.txt".to_string(), "alpha\n".to_string())]);
            assert_not_found("copy a missing path", archive_of(engine, &id, "/no-such-file").await);
        })
        .await;
}
