//! Reaching the real Docker and Podman engines from integration tests.
//!
//! Tests that need an engine call [`docker`] or [`podman`], which decide
//! whether the test runs, is skipped, or fails, from `BERTH_TEST_ENGINES`:
//!
//! - unset: run against every engine that answers a ping; for one that does
//!   not, print `skipped: ...` to stderr and let the test pass, so
//!   `cargo test` works on a laptop without engines;
//! - a comma list such as `docker,podman`: an engine it names is required
//!   (unreachable means the test fails, pointing at
//!   `scripts/setup-engines.sh`), an engine it does not name is skipped. CI
//!   sets it so a dead engine can never turn into a green run of skips.
//!
//! [`started`] applies the same policy to an engine a test starts itself
//! (the outage test's private dockerd).
//!
//! Sockets: Docker at `DOCKER_HOST` (`unix://...`) or `/var/run/docker.sock`;
//! Podman at `CONTAINER_HOST` or `/run/podman/podman.sock`.
//!
//! [`TestEngine`] is the handful of engine steps tests need (build from a tar,
//! create, start, wait, logs, remove) over each engine's own client, so a
//! test is written once and run against both.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptions, StartContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use podman_api::opts::{ContainerCreateOpts, ContainerDeleteOpts, ContainerLogsOpts, ContainerWaitOpts};

/// The variable that lists the engines a run requires.
pub const ENGINES_VAR: &str = "BERTH_TEST_ENGINES";

/// The static busybox the test images are built from (installed by
/// `scripts/setup-engines.sh`).
pub const BUSYBOX: &str = "/bin/busybox";

/// How long a ping may take before the engine counts as unreachable; a
/// socket whose server hangs should not hang the test run.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Label put on everything the tests create, so leftovers of an interrupted
/// run can be found: `docker ps -a --filter label=berth.dev/test`.
pub const TEST_LABEL: &str = "berth.dev/test";

/// A container engine the tests know how to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// dockerd's API.
    Docker,
    /// Podman's libpod REST API (`podman system service`).
    Podman,
}

impl EngineKind {
    const ALL: [EngineKind; 2] = [EngineKind::Docker, EngineKind::Podman];

    /// The name used in `BERTH_TEST_ENGINES`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }

    /// The variable that overrides the socket, as the engine's own CLI reads it.
    fn host_var(self) -> &'static str {
        match self {
            EngineKind::Docker => "DOCKER_HOST",
            EngineKind::Podman => "CONTAINER_HOST",
        }
    }

    fn default_socket(self) -> &'static str {
        match self {
            EngineKind::Docker => "/var/run/docker.sock",
            EngineKind::Podman => "/run/podman/podman.sock",
        }
    }

    /// Where the engine is expected: the host variable's `unix://` path, or
    /// the default socket. `Err` (carrying the variable's value) for any other
    /// scheme, which these tests do not support.
    fn socket(self) -> Result<PathBuf, String> {
        match std::env::var(self.host_var()) {
            Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
                Some(path) => Ok(PathBuf::from(path)),
                None if host.starts_with('/') => Ok(PathBuf::from(host)),
                None => Err(host),
            },
            _ => Ok(PathBuf::from(self.default_socket())),
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `BERTH_TEST_ENGINES` says about one engine.
enum Wanted {
    /// Named in the variable (its value): unreachable is a failure.
    Required(String),
    /// The variable is unset: run if reachable, else skip.
    IfReachable,
    /// The variable is set and does not name the engine (its value).
    NotListed(String),
}

fn wanted(kind: EngineKind) -> Wanted {
    let list = match std::env::var(ENGINES_VAR) {
        Ok(list) => list,
        Err(std::env::VarError::NotPresent) => return Wanted::IfReachable,
        Err(std::env::VarError::NotUnicode(raw)) => panic!("{ENGINES_VAR}={raw:?} is not UTF-8"),
    };
    let mut names = list.split(',').map(str::trim).filter(|name| !name.is_empty());
    // A typo such as `dokcer` must not silently turn into a skip.
    if let Some(unknown) = names.clone().find(|name| !EngineKind::ALL.iter().any(|k| k.name() == *name)) {
        panic!("{ENGINES_VAR}={list} names unknown engine `{unknown}`; known engines are docker, podman");
    }
    if names.any(|name| name == kind.name()) {
        Wanted::Required(list)
    } else {
        Wanted::NotListed(list)
    }
}

/// Connects to `kind` with `connect` (which must also ping) and applies the
/// `BERTH_TEST_ENGINES` policy: `None` means the caller returns early
/// (skipped, reason printed); a required engine that does not answer panics.
async fn reach<C, F>(kind: EngineKind, connect: impl FnOnce(PathBuf) -> F) -> Option<C>
where
    F: Future<Output = anyhow::Result<C>>,
{
    let wanted = wanted(kind);
    if let Wanted::NotListed(list) = &wanted {
        eprintln!("skipped: {kind} not named in {ENGINES_VAR}={list}");
        return None;
    }
    let (location, outcome) = match kind.socket() {
        Ok(socket) => {
            let location = socket.display().to_string();
            let outcome = tokio::time::timeout(PING_TIMEOUT, connect(socket))
                .await
                .unwrap_or_else(|_| Err(anyhow!("no answer to ping within {PING_TIMEOUT:?}")));
            (location, outcome)
        }
        Err(host) => {
            (format!("{}={host}", kind.host_var()), Err(anyhow!("only unix:// sockets are supported by the tests")))
        }
    };
    match (outcome, wanted) {
        (Ok(client), _) => Some(client),
        (Err(error), Wanted::Required(list)) => panic!(
            "{kind} is required by {ENGINES_VAR}={list} but not reachable at {location}: {error:#}\n\
             start the engines with scripts/setup-engines.sh (or fix {}), \
             or drop `{kind}` from {ENGINES_VAR} to skip its tests",
            kind.host_var()
        ),
        (Err(error), _) => {
            eprintln!("skipped: {kind} not reachable at {location} (set {ENGINES_VAR}={kind} to require it)");
            eprintln!("  cause: {error:#}");
            None
        }
    }
}

/// The same policy for an engine the test starts itself (a private daemon
/// of its own, which no socket variable points at): `start` runs only when
/// the engine's tests run; `None` means the caller returns early (skipped,
/// reason printed); a required engine that does not start panics.
pub fn started<T>(kind: EngineKind, what: &str, start: impl FnOnce() -> anyhow::Result<T>) -> Option<T> {
    let wanted = wanted(kind);
    if let Wanted::NotListed(list) = &wanted {
        eprintln!("skipped: {kind} not named in {ENGINES_VAR}={list}");
        return None;
    }
    match (start(), wanted) {
        (Ok(started), _) => Some(started),
        (Err(error), Wanted::Required(list)) => panic!(
            "{kind} is required by {ENGINES_VAR}={list} but {what} did not start: {error:#}\n\
             install it with scripts/setup-engines.sh (the test must run as root), \
             or drop `{kind}` from {ENGINES_VAR} to skip its tests"
        ),
        (Err(error), _) => {
            eprintln!("skipped: {what} did not start (set {ENGINES_VAR}={kind} to require it)");
            eprintln!("  cause: {error:#}");
            None
        }
    }
}

/// A unique suffix for names and tags (12 hex digits), so parallel and
/// repeated runs never collide.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The label map every test object carries: `berth.dev/test=<value>`.
pub fn test_labels(value: &str) -> HashMap<String, String> {
    HashMap::from([(TEST_LABEL.to_string(), value.to_string())])
}

/// The busybox image's build context as tar bytes, from [`BUSYBOX`].
pub fn busybox_tar() -> Vec<u8> {
    berth::engine::build_context::busybox_context(Path::new(BUSYBOX))
        .and_then(|context| context.to_tar())
        .unwrap_or_else(|error| {
            panic!("busybox build context: {:#} (scripts/setup-engines.sh installs it)", anyhow::Error::new(error))
        })
}

/// What a test asks of a container to create.
pub struct ContainerSpec<'a> {
    /// Container name (unique per run).
    pub name: &'a str,
    /// Image reference.
    pub image: &'a str,
    /// The command, replacing the image's.
    pub cmd: &'a [&'a str],
    /// Labels.
    pub labels: &'a HashMap<String, String>,
}

/// The engine steps tests use, over each engine's own client.
///
/// Every method returns an error rather than panicking, so a test can run
/// its cleanup before it fails. The real `Engine` trait of the library will
/// replace this once it exists.
pub trait TestEngine {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// Builds `tar` (a build context with a `Dockerfile` at its root) and tags
    /// it `tag`, labelled `labels`; returns the build output. A failed build's
    /// error contains the output.
    async fn build_image(&self, tag: &str, tar: Vec<u8>, labels: &HashMap<String, String>) -> anyhow::Result<String>;

    /// Creates a container (not started); returns its id.
    async fn create_container(&self, spec: &ContainerSpec<'_>) -> anyhow::Result<String>;

    /// Starts a created container.
    async fn start_container(&self, id: &str) -> anyhow::Result<()>;

    /// Waits until the container has exited; returns its exit code.
    async fn wait_container(&self, id: &str) -> anyhow::Result<i64>;

    /// The container's stdout and stderr so far, interleaved as the engine
    /// returns them.
    async fn container_logs(&self, id: &str) -> anyhow::Result<String>;

    /// Removes the container, running or not.
    async fn remove_container(&self, id: &str) -> anyhow::Result<()>;

    /// Removes the image reference; the image itself goes with its last
    /// reference. Not forced: with force, Podman would also remove containers
    /// of a parallel run whose build produced the same image.
    async fn remove_image(&self, reference: &str) -> anyhow::Result<()>;
}

/// Docker through bollard.
pub struct DockerEngine {
    /// The client, version-negotiated down to the daemon's API version.
    pub client: bollard::Docker,
}

/// Docker, if the policy lets the calling test run (see the module doc).
pub async fn docker() -> Option<DockerEngine> {
    reach(EngineKind::Docker, |socket| async move {
        let path = socket.to_str().context("socket path is not UTF-8")?;
        let client = bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)?;
        client.ping().await.context("ping")?;
        // bollard 0.21 defaults to API 1.53 and dockerd 20.10 stops at 1.41.
        // bollard 0.21.1 in fact sends unversioned paths (`POST /build`),
        // which the daemon serves at its own version, so this only makes
        // `client_version()` truthful; kept so a bollard that does send
        // `/v1.53/...` keeps working.
        let client = client.negotiate_version().await.context("API version negotiation")?;
        Ok(DockerEngine { client })
    })
    .await
}

/// berth's own Docker engine, if the policy lets the calling test run (see
/// the module doc). Its `connect` asks the daemon's version, which is the
/// ping.
pub async fn berth_docker() -> Option<berth::engine::docker::DockerEngine> {
    reach(EngineKind::Docker, |socket| async move {
        let endpoint = format!("unix://{}", socket.display());
        Ok(berth::engine::docker::DockerEngine::connect(Some(&endpoint)).await?)
    })
    .await
}

/// berth's own Podman engine, if the policy lets the calling test run (see
/// the module doc). Its `connect` pings the service.
pub async fn berth_podman() -> Option<berth::engine::podman::PodmanEngine> {
    reach(EngineKind::Podman, |socket| async move {
        let endpoint = format!("unix://{}", socket.display());
        Ok(berth::engine::podman::PodmanEngine::connect(Some(&endpoint)).await?)
    })
    .await
}

impl TestEngine for DockerEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Docker
    }

    async fn build_image(&self, tag: &str, tar: Vec<u8>, labels: &HashMap<String, String>) -> anyhow::Result<String> {
        let options = BuildImageOptionsBuilder::new().t(tag).rm(true).forcerm(true).labels(labels).build();
        let mut stream = self.client.build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut output = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => output.extend(info.stream),
                // bollard turns the stream's `errorDetail` into this error.
                Err(error) => bail!("docker build of {tag} failed: {error}\n--- build output ---\n{output}"),
            }
        }
        Ok(output)
    }

    async fn create_container(&self, spec: &ContainerSpec<'_>) -> anyhow::Result<String> {
        let options = CreateContainerOptionsBuilder::new().name(spec.name).build();
        let body = bollard::models::ContainerCreateBody {
            image: Some(spec.image.to_string()),
            cmd: Some(spec.cmd.iter().map(|arg| arg.to_string()).collect()),
            labels: Some(spec.labels.clone()),
            ..Default::default()
        };
        Ok(self.client.create_container(Some(options), body).await?.id)
    }

    async fn start_container(&self, id: &str) -> anyhow::Result<()> {
        Ok(self.client.start_container(id, None::<StartContainerOptions>).await?)
    }

    async fn wait_container(&self, id: &str) -> anyhow::Result<i64> {
        let mut stream = self.client.wait_container(id, None::<WaitContainerOptions>);
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(error)) => Err(error.into()),
            None => bail!("wait for {id} ended without a status"),
        }
    }

    async fn container_logs(&self, id: &str) -> anyhow::Result<String> {
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut stream = self.client.logs(id, Some(options));
        let mut logs = String::new();
        while let Some(chunk) = stream.next().await {
            logs.push_str(&chunk?.to_string());
        }
        Ok(logs)
    }

    async fn remove_container(&self, id: &str) -> anyhow::Result<()> {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        Ok(self.client.remove_container(id, Some(options)).await?)
    }

    async fn remove_image(&self, reference: &str) -> anyhow::Result<()> {
        self.client.remove_image(reference, None::<RemoveImageOptions>, None).await?;
        Ok(())
    }
}

/// Podman through podman-api, except for builds (berth's engine; see
/// [`PodmanEngine::build_image`]).
pub struct PodmanEngine {
    /// The libpod client.
    pub client: podman_api::Podman,
    /// The service's socket, for berth's engine to build through.
    pub socket: PathBuf,
}

/// Podman, if the policy lets the calling test run (see the module doc).
pub async fn podman() -> Option<PodmanEngine> {
    reach(EngineKind::Podman, |socket| async move {
        // podman-api does not check the socket; fail with a clear cause.
        if !socket.exists() {
            bail!("socket not found");
        }
        let client = podman_api::Podman::unix(&socket);
        client.ping().await.context("ping")?;
        Ok(PodmanEngine { client, socket })
    })
    .await
}

impl TestEngine for PodmanEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Podman
    }

    /// Builds with berth's own Podman engine, which sends the tar to
    /// libpod's `/build` itself (podman-api 0.11's `Images::build` only
    /// accepts a directory path).
    async fn build_image(&self, tag: &str, tar: Vec<u8>, labels: &HashMap<String, String>) -> anyhow::Result<String> {
        let engine = berth::engine::podman::PodmanEngine::connect(Some(&format!("unix://{}", self.socket.display())))
            .await?
            .observer();
        let request = berth::engine::BuildRequest {
            context_tar: tar,
            dockerfile: "Dockerfile".into(),
            tag: tag.to_string(),
            labels: labels.clone().into_iter().collect(),
            ..Default::default()
        };
        let output = berth::engine::Engine::build_image(&engine, &request)
            .await
            .with_context(|| format!("podman build of {tag}"))?;
        Ok(output.log.join("\n"))
    }

    async fn create_container(&self, spec: &ContainerSpec<'_>) -> anyhow::Result<String> {
        let options = ContainerCreateOpts::builder()
            .name(spec.name)
            .image(spec.image)
            .command(spec.cmd.iter().copied())
            .labels(spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .build();
        Ok(self.client.containers().create(&options).await?.id)
    }

    async fn start_container(&self, id: &str) -> anyhow::Result<()> {
        Ok(self.client.containers().get(id).start(None).await?)
    }

    async fn wait_container(&self, id: &str) -> anyhow::Result<i64> {
        let container = self.client.containers().get(id);
        let options = ContainerWaitOpts::builder()
            .conditions([podman_api::models::ContainerStatus::Exited])
            .interval("100ms")
            .build();
        container.wait(&options).await?;
        let state = container.inspect().await?.state.context("inspect has no state")?;
        state.exit_code.map(i64::from).context("inspect has no exit code")
    }

    async fn container_logs(&self, id: &str) -> anyhow::Result<String> {
        let container = self.client.containers().get(id);
        let options = ContainerLogsOpts::builder().stdout(true).stderr(true).build();
        let mut stream = container.logs(&options);
        let mut logs = String::new();
        while let Some(chunk) = stream.next().await {
            logs.push_str(&String::from_utf8_lossy(&chunk?));
        }
        Ok(logs)
    }

    async fn remove_container(&self, id: &str) -> anyhow::Result<()> {
        let options = ContainerDeleteOpts::builder().force(true).build();
        Ok(self.client.containers().get(id).delete(&options).await?)
    }

    async fn remove_image(&self, reference: &str) -> anyhow::Result<()> {
        Ok(self.client.images().get(reference).delete().await?)
    }
}
