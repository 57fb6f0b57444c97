//! berth's own vocabulary for engine objects.
//!
//! These types are what the reconcilers ask for and what every engine
//! answers with; each backend translates them to its API (bollard's models,
//! libpod's, or the fake's memory). Engine quirks (health names, event
//! vocabularies, port notation) are absorbed in the backends, never here.

use std::collections::BTreeMap;
use std::time::Duration;

/// Labels on an engine object.
pub type Labels = BTreeMap<String, String>;

/// Everything needed to create a container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerConfig {
    /// Engine name, unique on the host.
    pub name: String,
    /// Image reference or id.
    pub image: String,
    /// Entrypoint override.
    pub entrypoint: Option<Vec<String>>,
    /// Command (arguments) override.
    pub command: Option<Vec<String>>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// Labels, including berth's ownership labels.
    pub labels: Labels,
    /// Ports to publish on the host.
    pub ports: Vec<PortBinding>,
    /// Mounts.
    pub mounts: Vec<Mount>,
    /// Networks to join at creation, by engine network name.
    pub networks: Vec<NetworkAttachment>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: Option<u64>,
    /// Relative CPU weight.
    pub cpu_shares: Option<u64>,
    /// Process limit.
    pub pids_limit: Option<u64>,
    /// Health check run by the engine.
    pub health: Option<HealthConfig>,
    /// Restart policy applied by the engine.
    pub restart: RestartPolicy,
    /// Grace period between the stop signal and SIGKILL.
    pub stop_timeout: Duration,
    /// User to run as.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Run privileged.
    pub privileged: bool,
    /// Read-only root filesystem.
    pub read_only_rootfs: bool,
    /// Forbid privilege escalation.
    pub no_new_privileges: bool,
    /// Capabilities to add.
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// DNS servers for the container (empty: the engine's default).
    pub dns: Vec<String>,
    /// DNS search domains (empty: the engine's default).
    pub dns_search: Vec<String>,
}

/// A published port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBinding {
    /// Port inside the container.
    pub container_port: u16,
    /// Transport.
    pub protocol: Protocol,
    /// Host address to bind (`None`: all).
    pub host_ip: Option<String>,
    /// Host port (`None`: any free port).
    pub host_port: Option<u16>,
}

/// Transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as engines write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A mount into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Path inside the container.
    pub target: String,
    /// What is mounted.
    pub source: MountSource,
    /// Read-only.
    pub read_only: bool,
}

/// What a [`Mount`] mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountSource {
    /// A named engine volume.
    Volume(String),
    /// A host path.
    Bind(String),
    /// An in-memory filesystem, with an optional size limit in bytes.
    Tmpfs(Option<u64>),
}

/// Membership of a network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// Engine network name.
    pub network: String,
    /// DNS aliases on that network.
    pub aliases: Vec<String>,
}

/// A health check command run by the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Command, run without a shell; exit 0 is healthy.
    pub command: Vec<String>,
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Consecutive failures before unhealthy.
    pub retries: u32,
    /// Grace time after start.
    pub start_period: Duration,
}

/// When the engine restarts an exited container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never.
    #[default]
    No,
    /// Always.
    Always,
    /// On non-zero exit.
    OnFailure,
}

/// Lifecycle state of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being restarted by the engine.
    Restarting,
    /// Exited.
    Exited,
    /// Being removed.
    Removing,
    /// Dead (failed removal).
    Dead,
}

impl ContainerState {
    /// Lowercase name, as Docker writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Exited => "exited",
            ContainerState::Removing => "removing",
            ContainerState::Dead => "dead",
        }
    }

    /// Parses an engine's state name (Docker's and Podman's; Podman's
    /// `configured`/`initialized` count as created, `stopped` as exited,
    /// and `stopping` as running: its process runs until it exits, which is
    /// how Docker reports a container being stopped, and starting it fails).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "created" | "configured" | "initialized" => ContainerState::Created,
            "running" | "stopping" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "exited" | "stopped" => ContainerState::Exited,
            "removing" => ContainerState::Removing,
            "dead" => ContainerState::Dead,
            _ => return None,
        })
    }
}

/// Result of the engine's health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Within the start period, or no result yet.
    Starting,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
}

impl Health {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }

    /// Parses an engine's health name (`none` and empty mean no check).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "starting" => Some(Health::Starting),
            "healthy" => Some(Health::Healthy),
            "unhealthy" => Some(Health::Unhealthy),
            _ => None,
        }
    }
}

/// A container as the engine reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerInfo {
    /// Engine id.
    pub id: String,
    /// Engine name (without a leading `/`).
    pub name: String,
    /// Image id it runs.
    pub image_id: String,
    /// Labels.
    pub labels: Labels,
    /// Lifecycle state.
    pub state: ContainerState,
    /// A stop is under way (Podman's `stopping`): the container still runs
    /// (`state` says so) but waits to exit, so it gets no new traffic.
    pub stopping: bool,
    /// Health, when the container has a check.
    pub health: Option<Health>,
    /// Exit code of the last run, when exited.
    pub exit_code: Option<i64>,
    /// Times the engine restarted it.
    pub restart_count: u32,
    /// IP address per network name.
    pub ips: BTreeMap<String, String>,
    /// Host port per published container port (`8080/tcp`).
    pub host_ports: BTreeMap<String, u16>,
}

impl ContainerInfo {
    /// Running, not being stopped, and healthy when it has a check: a
    /// replica that may take traffic and satisfies `dependsOn: Healthy`.
    pub fn is_ready(&self) -> bool {
        self.state == ContainerState::Running && !self.stopping && matches!(self.health, None | Some(Health::Healthy))
    }
}

/// Everything needed to create a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeConfig {
    /// Engine name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Driver options.
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    pub labels: Labels,
}

/// A volume as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Engine name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Labels.
    pub labels: Labels,
    /// Where the data lives on the host.
    pub mountpoint: String,
}

/// Everything needed to create a network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Engine name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Subnet in CIDR form.
    pub subnet: Option<String>,
    /// Gateway address.
    pub gateway: Option<String>,
    /// No outside connectivity.
    pub internal: bool,
    /// IPv6 enabled.
    pub ipv6: bool,
    /// berth answers DNS on the gateway (`--dns-on-networks`): the engine's
    /// own DNS server is left off where it would hold that address
    /// (Podman's aardvark-dns). Docker's embedded DNS is not on the gateway
    /// and stays: it forwards what it does not know to berth.
    pub berth_dns: bool,
    /// Labels.
    pub labels: Labels,
}

/// A network as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Engine id.
    pub id: String,
    /// Engine name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Labels.
    pub labels: Labels,
    /// Subnets in CIDR form.
    pub subnets: Vec<String>,
    /// Gateways.
    pub gateways: Vec<String>,
    /// Whether it is internal.
    pub internal: bool,
    /// Ids of the containers attached.
    pub containers: Vec<String>,
}

/// An image build request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildRequest {
    /// The build context as an uncompressed tar.
    pub context_tar: Vec<u8>,
    /// Dockerfile path inside the context.
    pub dockerfile: String,
    /// Tag to give the result.
    pub tag: String,
    /// Build arguments.
    pub build_args: BTreeMap<String, String>,
    /// Stage to stop at.
    pub target: Option<String>,
    /// Labels on the resulting image.
    pub labels: Labels,
}

/// What a build produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildOutput {
    /// Id of the image built.
    pub image_id: String,
    /// The build's output lines.
    pub log: Vec<String>,
}

/// An image as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Engine id (`sha256:…`).
    pub id: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Labels.
    pub labels: Labels,
}

/// Kind of engine object an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventSubject {
    /// A container.
    Container,
    /// A network.
    Network,
    /// A volume.
    Volume,
    /// An image.
    Image,
}

/// What happened, in berth's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// Created.
    Create,
    /// Started.
    Start,
    /// Its process exited (or was killed).
    Die,
    /// Stopped.
    Stop,
    /// A signal was sent to its process (`docker kill`, the first step of
    /// `docker stop`), with its number when the engine says.
    Kill(Option<i32>),
    /// Removed.
    Destroy,
    /// Health changed.
    Health(Health),
    /// A container joined a network.
    Connect,
    /// A container left a network.
    Disconnect,
    /// Anything else, as the engine named it.
    Other(String),
}

/// One engine event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineEvent {
    /// What kind of object.
    pub subject: EventSubject,
    /// What happened.
    pub action: EventAction,
    /// Engine id (or name, for volumes) of the object.
    pub id: String,
    /// The object's labels, when the engine reports them.
    pub labels: Labels,
}

impl EngineEvent {
    /// The event of an engine's actor, normalized the same way for every
    /// engine: a network `connect`/`disconnect` becomes an event of the
    /// container its `container` attribute names (what a reconciler owns),
    /// without labels; any other event keeps the actor's attributes as its
    /// labels, less the engine's own keys (`engine_keys`).
    pub fn from_actor(
        subject: EventSubject,
        action: EventAction,
        id: String,
        mut attributes: Labels,
        engine_keys: &[&str],
    ) -> EngineEvent {
        if matches!(action, EventAction::Connect | EventAction::Disconnect) {
            let container = attributes.remove("container").unwrap_or_default();
            return EngineEvent { subject: EventSubject::Container, action, id: container, labels: Labels::new() };
        }
        for key in engine_keys {
            attributes.remove(*key);
        }
        EngineEvent { subject, action, id, labels: attributes }
    }
}

/// What an engine says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    /// `docker`, `podman` or `fake`.
    pub kind: String,
    /// Engine version.
    pub version: String,
    /// Where it was reached.
    pub endpoint: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_states_map_to_what_a_reconcile_may_do_with_them() {
        for (text, state) in [
            ("configured", ContainerState::Created),
            ("Running", ContainerState::Running),
            // Podman, while `stop` or `rm -f` waits for the process: starting
            // it would fail, as Docker's "running" would.
            ("stopping", ContainerState::Running),
            ("stopped", ContainerState::Exited),
            ("removing", ContainerState::Removing),
        ] {
            assert_eq!(ContainerState::parse(text), Some(state), "{text}");
        }
        assert_eq!(ContainerState::parse("weird"), None);
    }
}
