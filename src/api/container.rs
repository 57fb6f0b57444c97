//! `Container`: one or more engine containers run from the same spec.
//!
//! The spec follows the Kubernetes container where the concept is the same
//! (env, ports, volumeMounts, securityContext) and Docker where berth runs on
//! a single host (restartPolicy, published host ports, stopGracePeriod).
//! References to other objects (Image, Volume, Network, Container) are by
//! name in the same namespace; a reference to an object not declared yet is
//! not an error: the reconciler waits for it.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::quantity::{ByteQuantity, CpuQuantity, DurationSpec, HostPort};
use super::validation::{FieldErrors, FieldPath};
use super::{CommonStatus, Kind, Spec};

/// Desired state of a Container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    /// Engine image reference to run, e.g. `docker.io/library/redis:7`.
    /// Exactly one of `image` and `imageRef` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Name of an `Image` object in the same namespace; the Container waits
    /// until it is Ready and runs the tag it produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Replaces the image's default arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Ports published on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// Volumes, host paths and tmpfs mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Networks to join, by Network object name. Empty: the engine's default network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    /// Number of identical engine containers to run. Default 1; 0 keeps the
    /// object but runs nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i64>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// How the engine decides the container is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Containers that must be started (or healthy) before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// When the engine restarts an exited container. Default `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// How replicas are replaced when the spec changes. Default `Recreate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
    /// Privileges and capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Time between the stop signal and SIGKILL. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<DurationSpec>,
    /// User (and group) to run as: `1000`, `1000:1000` or a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory inside the container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Hostname inside the container. Default: the engine container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Extra labels on the engine containers (berth's own `berth.dev/*` labels are reserved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// An environment variable: a literal `value` or one read from `valueFrom`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name; must not contain `=`.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Source of a secret value. Exactly one field is set. The value's content
/// hash is part of the spec hash, so changing a secret recreates the replicas.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVarSource {
    /// Absolute path of a file on the host whose content (without a trailing
    /// newline) is the value, e.g. `/var/lib/berth/secrets/db-password`; it
    /// must resolve into the secret directory (`berth serve --secret-dir`,
    /// default `secrets` in the state directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    /// Name of an environment variable of the berth process; only names
    /// granted by `berth serve --allow-host-env` are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_env: Option<String>,
}

/// A port published on the host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    /// Optional name, used by Routes and SRV records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port inside the container.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i64,
    /// Port on the host: a number, or `auto` for any free port. Omitted: not
    /// published on the host (still reachable on the container's networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<HostPort>,
    /// Host address to bind. Default `0.0.0.0` (all interfaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    /// `TCP` (default) or `UDP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// Transport protocol of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    /// TCP.
    TCP,
    /// UDP.
    UDP,
}

/// A mount into the container. Exactly one of `volume`, `hostPath` and `tmpfs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    /// Absolute path inside the container.
    pub mount_path: String,
    /// Name of a `Volume` object in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Absolute path on the host to bind-mount; it must resolve into a
    /// directory granted by `berth serve --allow-host-paths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// An in-memory filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsMount>,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Options of a tmpfs mount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TmpfsMount {
    /// Maximum size, e.g. `64Mi`. Default: the engine's (half the host's memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<ByteQuantity>,
}

/// Membership in a Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkAttachment {
    /// Name of a `Network` object in the same namespace.
    pub name: String,
    /// Extra DNS names of the container on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// Resource limits of each replica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Memory limit, e.g. `512Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteQuantity>,
    /// CPU limit, e.g. `"0.5"` or `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpuQuantity>,
    /// Relative CPU weight (2-262144; the engine's default is 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// Maximum number of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

/// Health check. Exactly one of `exec`, `httpGet` and `tcpSocket`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// Run a command inside the container; exit code 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// HTTP GET against the container; a 2xx or 3xx answer is healthy. Runs
    /// `wget` inside the container (busybox and most distributions have it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// TCP connect to the container; an accepted connection is healthy. Runs
    /// `nc` inside the container (busybox and most distributions have it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// Time between checks. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationSpec>,
    /// Time a check may take. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// Consecutive failures before the container is unhealthy. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Grace time after start during which failures do not count. Default `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<DurationSpec>,
}

/// A command health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecAction {
    /// Command and arguments, run without a shell.
    pub command: Vec<String>,
}

/// An HTTP health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    /// Request path. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Container port to query.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
}

/// A TCP health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSocketAction {
    /// Container port to connect to.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
}

/// A start-order dependency on another Container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dependency {
    /// Name of a `Container` object in the same namespace.
    pub container: String,
    /// What to wait for: `Started` (default) or `Healthy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<DependencyCondition>,
}

/// What a [`Dependency`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DependencyCondition {
    /// Every replica of the dependency is running.
    Started,
    /// Every replica of the dependency passes its health check.
    Healthy,
}

/// When the engine restarts a container that exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestartPolicy {
    /// Always restart it, whatever its exit code.
    Always,
    /// Restart it when it exits with a non-zero code.
    OnFailure,
    /// Leave it stopped.
    Never,
}

/// How replicas are replaced after a spec change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UpdateStrategy {
    /// Stop and remove the old replica, then create the new one.
    Recreate,
    /// Start the new replica, wait until it is healthy, then remove the old one.
    StartFirst,
}

/// Privileges of the container's processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// Run with all privileges (avoid); refused unless `berth serve
    /// --allow-privileged`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Mount the root filesystem read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_root_filesystem: bool,
    /// Forbid gaining privileges through setuid binaries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_new_privileges: bool,
    /// Linux capabilities to add or drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// Linux capabilities, named without the `CAP_` prefix (`NET_ADMIN`) or `ALL`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Capabilities to add. ALL, SYS_ADMIN, SYS_MODULE, SYS_RAWIO,
    /// SYS_PTRACE, DAC_READ_SEARCH, BPF, PERFMON, MAC_ADMIN, SYS_TIME and
    /// SYSLOG (in any case, with or without `CAP_`) amount to `privileged`
    /// and are refused unless `berth serve --allow-privileged`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    /// Capabilities to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// Observed state of a Container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Replicas running and passing their health check.
    #[serde(default)]
    pub ready_replicas: u32,
    /// One entry per engine container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
}

/// Observed state of one replica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Replica index, from 0.
    pub index: u32,
    /// Engine container id.
    pub container_id: String,
    /// Engine state: `created`, `running`, `exited`, ...
    pub state: String,
    /// `starting`, `healthy`, `unhealthy`, or empty without a health check.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health: String,
    /// IP address per network name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ips: BTreeMap<String, String>,
    /// Host port per container port (`8080/tcp` → `32768`), `auto` ports included.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_ports: BTreeMap<String, u16>,
    /// Times the engine restarted this replica.
    #[serde(default)]
    pub restarts: u32,
    /// Spec hash the replica was created from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spec_hash: String,
}

impl Spec for ContainerSpec {
    const KIND: Kind = Kind::Container;
    type Status = ContainerStatus;

    fn validate(&self, spec: &FieldPath, errors: &mut FieldErrors) {
        errors.exactly_one(spec, &[("image", self.image.is_some()), ("imageRef", self.image_ref.is_some())]);
        if let Some(image) = &self.image {
            if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
                errors.push(
                    &spec.key("image"),
                    format!("image reference `{image}` must be non-empty and contain no spaces"),
                );
            }
        }
        if let Some(name) = &self.image_ref {
            errors.dns_label(&spec.key("imageRef"), name, "Image name");
        }
        let mut env_names = BTreeSet::new();
        for (i, var) in self.env.iter().enumerate() {
            let at = spec.key("env").index(i);
            if var.name.is_empty() || var.name.contains('=') {
                errors.push(
                    &at.key("name"),
                    format!("variable name `{}` must be non-empty and contain no `=`", var.name),
                );
            } else if !env_names.insert(var.name.as_str()) {
                errors.push(&at.key("name"), format!("variable `{}` is set twice; keep one", var.name));
            }
            errors.exactly_one(&at, &[("value", var.value.is_some()), ("valueFrom", var.value_from.is_some())]);
            if let Some(source) = &var.value_from {
                let from = at.key("valueFrom");
                errors.exactly_one(
                    &from,
                    &[("secretFile", source.secret_file.is_some()), ("hostEnv", source.host_env.is_some())],
                );
                if let Some(path) = &source.secret_file {
                    errors.absolute_path(&from.key("secretFile"), path, "secret file");
                }
            }
        }
        let mut published = BTreeSet::new();
        for (i, port) in self.ports.iter().enumerate() {
            let at = spec.key("ports").index(i);
            errors.port(&at.key("containerPort"), port.container_port);
            if let Some(super::HostPort::Fixed(host)) = port.host_port {
                errors.port(&at.key("hostPort"), host);
                if !published.insert((host, port.protocol.unwrap_or(Protocol::TCP))) {
                    errors.push(&at.key("hostPort"), format!("host port {host} is published twice; use another port"));
                }
            }
            if let Some(ip) = &port.host_ip {
                errors.ip(&at.key("hostIP"), ip, None);
            }
            if let Some(name) = &port.name {
                errors.dns_label(&at.key("name"), name, "port name");
            }
        }
        let mut mount_paths = BTreeSet::new();
        for (i, mount) in self.volume_mounts.iter().enumerate() {
            let at = spec.key("volumeMounts").index(i);
            errors.absolute_path(&at.key("mountPath"), &mount.mount_path, "mountPath");
            if !mount_paths.insert(mount.mount_path.trim_end_matches('/')) {
                errors.push(
                    &at.key("mountPath"),
                    format!("`{}` is mounted twice; each mountPath may appear once", mount.mount_path),
                );
            }
            errors.exactly_one(
                &at,
                &[
                    ("volume", mount.volume.is_some()),
                    ("hostPath", mount.host_path.is_some()),
                    ("tmpfs", mount.tmpfs.is_some()),
                ],
            );
            if let Some(volume) = &mount.volume {
                errors.dns_label(&at.key("volume"), volume, "Volume name");
            }
            if let Some(host_path) = &mount.host_path {
                errors.absolute_path(&at.key("hostPath"), host_path, "hostPath");
            }
            if let Some(tmpfs) = &mount.tmpfs {
                errors.bytes(&at.key("tmpfs").key("sizeLimit"), tmpfs.size_limit.as_ref());
            }
        }
        let mut networks = BTreeSet::new();
        for (i, network) in self.networks.iter().enumerate() {
            let at = spec.key("networks").index(i);
            errors.dns_label(&at.key("name"), &network.name, "Network name");
            if !networks.insert(network.name.as_str()) {
                errors.push(&at.key("name"), format!("network `{}` is listed twice", network.name));
            }
            for (j, alias) in network.aliases.iter().enumerate() {
                errors.dns_name(&at.key("aliases").index(j), alias, "alias", false);
            }
        }
        if let Some(replicas) = self.replicas {
            errors.in_range(&spec.key("replicas"), replicas, 0..=1000, "replicas");
        }
        if let Some(resources) = &self.resources {
            let at = spec.key("resources");
            errors.bytes(&at.key("memory"), resources.memory.as_ref());
            errors.cpus(&at.key("cpus"), resources.cpus.as_ref());
            if let Some(shares) = resources.cpu_shares {
                errors.in_range(&at.key("cpuShares"), shares, 2..=262_144, "cpuShares");
            }
            if let Some(pids) = resources.pids {
                errors.in_range(&at.key("pids"), pids, 1..=4_194_304, "pids");
            }
        }
        if let Some(check) = &self.health_check {
            let at = spec.key("healthCheck");
            errors.exactly_one(
                &at,
                &[
                    ("exec", check.exec.is_some()),
                    ("httpGet", check.http_get.is_some()),
                    ("tcpSocket", check.tcp_socket.is_some()),
                ],
            );
            if let Some(exec) = &check.exec {
                if exec.command.is_empty() {
                    errors.push(&at.key("exec").key("command"), "command must not be empty");
                }
            }
            if let Some(http) = &check.http_get {
                errors.port(&at.key("httpGet").key("port"), http.port);
                if let Some(path) = http.path.as_deref().filter(|p| !p.starts_with('/')) {
                    errors.push(&at.key("httpGet").key("path"), format!("path `{path}` must start with /"));
                }
            }
            if let Some(tcp) = &check.tcp_socket {
                errors.port(&at.key("tcpSocket").key("port"), tcp.port);
            }
            for (field, value) in
                [("interval", &check.interval), ("timeout", &check.timeout), ("startPeriod", &check.start_period)]
            {
                errors.duration(&at.key(field), value.as_ref());
            }
            if let Some(retries) = check.retries {
                errors.in_range(&at.key("retries"), retries, 1..=100, "retries");
            }
        }
        for (i, dependency) in self.depends_on.iter().enumerate() {
            errors.dns_label(&spec.key("dependsOn").index(i).key("container"), &dependency.container, "Container name");
        }
        errors.duration(&spec.key("stopGracePeriod"), self.stop_grace_period.as_ref());
        if let Some(dir) = &self.working_dir {
            errors.absolute_path(&spec.key("workingDir"), dir, "workingDir");
        }
        if let Some(hostname) = &self.hostname {
            errors.dns_name(&spec.key("hostname"), hostname, "hostname", false);
        }
        errors.labels(&spec.key("labels"), &self.labels);
        for key in self.labels.keys().filter(|k| k.starts_with(super::RESERVED_LABEL_PREFIX)) {
            errors.push(
                &spec.key("labels").key(key),
                format!("label `{key}` is reserved: berth sets `{}*` labels itself", super::RESERVED_LABEL_PREFIX),
            );
        }
    }

    fn status_common(status: &Self::Status) -> &CommonStatus {
        &status.common
    }
}
