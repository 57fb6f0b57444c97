//! Conversions between libpod's shapes and berth's engine types.
//!
//! Pure functions, pinned by unit tests without a service. Like Docker's,
//! libpod's answers are partial: every missing field becomes its default.
//! What differs from Docker is absorbed here:
//!
//! - ids: libpod writes image ids as bare hex; berth uses Docker's
//!   `sha256:<hex>` everywhere ([`image_id`]), so a spec hash does not
//!   depend on the engine;
//! - events: `died` is [`EventAction::Die`], `remove` is
//!   [`EventAction::Destroy`], the health result rides in a top-level
//!   `HealthStatus` field; an event's attributes mix the container's labels
//!   with libpod's own keys ([`EVENT_ATTRIBUTES`]), which are dropped;
//! - the create request is libpod's SpecGenerator, not Docker's
//!   `HostConfig`: ports with host port 0 for "any", named volumes apart
//!   from other mounts, networks with their aliases all at creation.

use std::collections::BTreeMap;
use std::time::Duration;

use podman_api::models;
use serde_json::{json, Map, Value};

use crate::engine::{
    ContainerConfig, ContainerInfo, ContainerState, EngineEvent, EventAction, EventSubject, Health, ImageInfo, Labels,
    MountSource, NetworkInfo, RestartPolicy, VolumeInfo,
};

/// Attributes libpod adds to an event's actor besides the object's labels.
const EVENT_ATTRIBUTES: [&str; 6] = ["containerExitCode", "image", "name", "podId", "driver", "network"];

/// `duration` in whole seconds, rounded up (a grace period must not shrink).
pub(super) fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `sha256:<hex>` for a bare or prefixed id; empty stays empty.
pub(super) fn image_id(id: &str) -> String {
    if id.is_empty() || id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

fn labels(map: Option<std::collections::HashMap<String, String>>) -> Labels {
    map.unwrap_or_default().into_iter().collect()
}

/// libpod's SpecGenerator for `config`: the body of
/// `POST /libpod/containers/create`.
pub(super) fn create_body(config: &ContainerConfig) -> Value {
    let mut spec = Map::new();
    let mut put = |key: &str, value: Value| {
        spec.insert(key.to_string(), value);
    };
    put("name", json!(config.name));
    // libpod resolves `sha256:<hex>` like a name; the bare hex is its id.
    put("image", json!(config.image.strip_prefix("sha256:").unwrap_or(&config.image)));
    if let Some(entrypoint) = &config.entrypoint {
        put("entrypoint", json!(entrypoint));
    }
    if let Some(command) = &config.command {
        put("command", json!(command));
    }
    put("env", Value::Object(config.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect()));
    put("labels", json!(config.labels));
    let ports: Vec<Value> = config
        .ports
        .iter()
        .map(|port| {
            json!({
                "container_port": port.container_port,
                // 0 lets libpod pick a free port, like Docker's empty one.
                "host_port": port.host_port.unwrap_or(0),
                "host_ip": port.host_ip.clone().unwrap_or_default(),
                "protocol": port.protocol.as_str(),
            })
        })
        .collect();
    put("portmappings", Value::Array(ports));
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    for mount in &config.mounts {
        let mut options: Vec<String> = Vec::new();
        if mount.read_only {
            options.push("ro".into());
        }
        match &mount.source {
            MountSource::Volume(name) => {
                volumes.push(json!({"Name": name, "Dest": mount.target, "Options": options}));
            }
            MountSource::Bind(path) => {
                options.push("rbind".into());
                mounts.push(json!({"destination": mount.target, "type": "bind", "source": path, "options": options}));
            }
            MountSource::Tmpfs(size) => {
                options.extend(size.map(|bytes| format!("size={bytes}")));
                mounts
                    .push(json!({"destination": mount.target, "type": "tmpfs", "source": "tmpfs", "options": options}));
            }
        }
    }
    put("volumes", Value::Array(volumes));
    put("mounts", Value::Array(mounts));
    // Docker's default: a bridge, on the engine's default network unless named.
    put("netns", json!({"nsmode": "bridge"}));
    if !config.networks.is_empty() {
        let networks: Map<String, Value> = config
            .networks
            .iter()
            .map(|attachment| (attachment.network.clone(), json!({"aliases": attachment.aliases})))
            .collect();
        put("Networks", Value::Object(networks));
    }
    if let Some(health) = &config.health {
        put(
            "healthconfig",
            json!({
                "Test": std::iter::once("CMD".to_string()).chain(health.command.iter().cloned()).collect::<Vec<_>>(),
                "Interval": nanos(health.interval),
                "Timeout": nanos(health.timeout),
                "Retries": health.retries,
                "StartPeriod": nanos(health.start_period),
            }),
        );
    }
    let mut resources = Map::new();
    if let Some(bytes) = config.memory_bytes {
        resources.insert("memory".into(), json!({"limit": bytes}));
    }
    let mut cpu = Map::new();
    if let Some(nano_cpus) = config.nano_cpus {
        // Docker's NanoCPUs as a CFS quota over a 100 ms period.
        cpu.insert("period".into(), json!(100_000u64));
        cpu.insert("quota".into(), json!(nano_cpus / 10_000));
    }
    if let Some(shares) = config.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if !cpu.is_empty() {
        resources.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = config.pids_limit {
        resources.insert("pids".into(), json!({"limit": limit}));
    }
    if !resources.is_empty() {
        put("resource_limits", Value::Object(resources));
    }
    let restart = match config.restart {
        RestartPolicy::No => "no",
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
    };
    put("restart_policy", json!(restart));
    put("stop_timeout", json!(whole_seconds(config.stop_timeout)));
    if let Some(user) = &config.user {
        put("user", json!(user));
    }
    if let Some(dir) = &config.working_dir {
        put("work_dir", json!(dir));
        // Docker creates a missing working directory.
        put("create_working_dir", json!(true));
    }
    if let Some(hostname) = &config.hostname {
        put("hostname", json!(hostname));
    }
    put("privileged", json!(config.privileged));
    put("read_only_filesystem", json!(config.read_only_rootfs));
    put("no_new_privileges", json!(config.no_new_privileges));
    if !config.cap_add.is_empty() {
        put("cap_add", json!(config.cap_add));
    }
    if !config.cap_drop.is_empty() {
        put("cap_drop", json!(config.cap_drop));
    }
    if !config.dns.is_empty() {
        put("dns_server", json!(config.dns));
    }
    if !config.dns_search.is_empty() {
        put("dns_search", json!(config.dns_search));
    }
    Value::Object(spec)
}

/// berth's view of an inspected container.
pub(super) fn container_info(inspected: models::ContainerInspectResponseLibpod) -> ContainerInfo {
    let state = inspected.state.as_ref();
    let status = state.and_then(|state| state.status.as_deref());
    let running = state.and_then(|state| state.running);
    let lifecycle = status.and_then(ContainerState::parse).unwrap_or(match running {
        Some(true) => ContainerState::Running,
        _ => ContainerState::Exited,
    });
    // libpod keeps the last result of a stopped container; Docker reports
    // health only while it runs.
    let health = state
        .and_then(|state| state.health.as_ref())
        .and_then(|health| health.status.as_deref())
        .and_then(Health::parse)
        .filter(|_| lifecycle == ContainerState::Running);
    let exit_code = match lifecycle {
        ContainerState::Exited | ContainerState::Dead => state.and_then(|state| state.exit_code).map(i64::from),
        _ => None,
    };
    let settings = inspected.network_settings;
    let ips = settings
        .as_ref()
        .and_then(|settings| settings.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(network, endpoint)| Some((network, endpoint.ip_address.filter(|ip| !ip.is_empty())?)))
        .collect();
    let host_ports = settings
        .and_then(|settings| settings.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(port, bindings)| {
            let host_port = bindings?.into_iter().find_map(|binding| binding.host_port?.parse().ok())?;
            Some((port, host_port))
        })
        .collect();
    ContainerInfo {
        id: inspected.id.unwrap_or_default(),
        name: inspected.name.unwrap_or_default(),
        image_id: image_id(&inspected.image.unwrap_or_default()),
        labels: labels(inspected.config.and_then(|config| config.labels)),
        state: lifecycle,
        stopping: status.is_some_and(|status| status.eq_ignore_ascii_case("stopping")),
        health,
        exit_code,
        restart_count: inspected.restart_count.and_then(|count| u32::try_from(count).ok()).unwrap_or(0),
        ips,
        host_ports,
    }
}

/// berth's view of a listed volume.
pub(super) fn volume_info(volume: models::Volume) -> VolumeInfo {
    VolumeInfo {
        name: volume.name,
        driver: volume.driver,
        labels: volume.labels.into_iter().collect(),
        mountpoint: volume.mountpoint,
    }
}

/// berth's view of a created volume.
pub(super) fn created_volume_info(volume: models::VolumeCreateResponse) -> VolumeInfo {
    VolumeInfo {
        name: volume.name.unwrap_or_default(),
        driver: volume.driver.unwrap_or_default(),
        labels: labels(volume.labels),
        mountpoint: volume.mountpoint.unwrap_or_default(),
    }
}

/// berth's view of a network; libpod's network does not list its
/// containers, the caller finds them.
pub(super) fn network_info(network: models::Network, containers: Vec<String>) -> NetworkInfo {
    let subnets = network.subnets.unwrap_or_default();
    NetworkInfo {
        id: network.id.unwrap_or_default(),
        name: network.name.unwrap_or_default(),
        driver: network.driver.unwrap_or_default(),
        labels: labels(network.labels),
        subnets: subnets.iter().filter_map(|s| s.subnet.clone()).filter(|s| !s.is_empty()).collect(),
        gateways: subnets.iter().filter_map(|s| s.gateway.clone()).filter(|g| !g.is_empty()).collect(),
        internal: network.internal.unwrap_or(false),
        containers,
    }
}

/// berth's view of an inspected image.
pub(super) fn image_info(image: models::InspectImageResponseLibpod) -> ImageInfo {
    let labels = image.labels.or_else(|| image.config.and_then(|config| config.labels));
    ImageInfo {
        id: image_id(&image.id.unwrap_or_default()),
        tags: image.repo_tags.unwrap_or_default(),
        labels: self::labels(labels),
    }
}

/// The image id a libpod build reports: its output ends with the full id
/// on a line of its own.
pub(super) fn built_image_id(log: &[String]) -> Option<String> {
    let last = log.iter().rev().map(|line| line.trim()).find(|line| !line.is_empty())?;
    (last.len() == 64 && last.bytes().all(|b| b.is_ascii_hexdigit())).then(|| image_id(last))
}

/// berth's view of a libpod event (one line of `/libpod/events`); `None`
/// for kinds berth does not watch.
///
/// Health results come as `health_status` with the result in
/// `HealthStatus`, once per check run, changed or not: the caller keeps
/// only changes. Network `connect`/`disconnect` name the container in
/// their `Actor.Attributes` (`container`) like Docker's, and become
/// container events with its id, as on Docker.
pub(super) fn event(message: &Value) -> Option<EngineEvent> {
    let subject = match message.get("Type")?.as_str()? {
        "container" => EventSubject::Container,
        "network" => EventSubject::Network,
        "volume" => EventSubject::Volume,
        "image" => EventSubject::Image,
        _ => return None,
    };
    let action_text = message.get("Action").and_then(Value::as_str).unwrap_or_default();
    let actor = message.get("Actor").cloned().unwrap_or_default();
    let attributes: BTreeMap<String, String> = actor
        .get("Attributes")
        .and_then(Value::as_object)
        .map(|map| map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let id = actor.get("ID").and_then(Value::as_str).unwrap_or_default().to_string();
    let action = match action_text {
        "create" => EventAction::Create,
        "start" => EventAction::Start,
        "died" | "die" => EventAction::Die,
        "stop" => EventAction::Stop,
        "kill" => EventAction::Kill(attributes.get("signal").and_then(|signal| signal.parse().ok())),
        "remove" | "destroy" => EventAction::Destroy,
        "health_status" => {
            let status = message.get("HealthStatus").and_then(Value::as_str).unwrap_or_default();
            match Health::parse(status) {
                Some(health) => EventAction::Health(health),
                None => EventAction::Other(action_text.to_string()),
            }
        }
        "connect" if subject == EventSubject::Network => EventAction::Connect,
        "disconnect" if subject == EventSubject::Network => EventAction::Disconnect,
        other => EventAction::Other(other.to_string()),
    };
    Some(EngineEvent::from_actor(subject, action, id, attributes, &EVENT_ATTRIBUTES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{HealthConfig, Mount, NetworkAttachment, PortBinding, Protocol};

    fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).expect("valid model JSON")
    }

    #[test]
    fn create_body_is_a_spec_generator() {
        let config = ContainerConfig {
            name: "web-0".into(),
            image: "sha256:abc".into(),
            env: vec![("A".into(), "1".into())],
            ports: vec![
                PortBinding { container_port: 80, protocol: Protocol::Tcp, host_ip: None, host_port: Some(8080) },
                PortBinding { container_port: 53, protocol: Protocol::Udp, host_ip: None, host_port: None },
            ],
            mounts: vec![
                Mount { target: "/tmp".into(), source: MountSource::Tmpfs(Some(1024)), read_only: false },
                Mount { target: "/data".into(), source: MountSource::Volume("vol".into()), read_only: true },
            ],
            networks: vec![
                NetworkAttachment { network: "front".into(), aliases: vec!["web".into()] },
                NetworkAttachment { network: "back".into(), aliases: vec![] },
            ],
            health: Some(HealthConfig {
                command: vec!["test".into(), "-f".into(), "/ok".into()],
                interval: Duration::from_millis(500),
                timeout: Duration::from_secs(1),
                retries: 1,
                start_period: Duration::ZERO,
            }),
            nano_cpus: Some(500_000_000),
            stop_timeout: Duration::from_millis(1500),
            no_new_privileges: true,
            ..Default::default()
        };
        let body = create_body(&config);
        assert_eq!(body["image"], "abc");
        assert_eq!(body["env"], json!({"A": "1"}));
        assert_eq!(
            body["portmappings"][1],
            json!({"container_port": 53, "host_port": 0, "host_ip": "", "protocol": "udp"})
        );
        assert_eq!(body["mounts"][0]["options"], json!(["size=1024"]));
        assert_eq!(body["volumes"][0], json!({"Name": "vol", "Dest": "/data", "Options": ["ro"]}));
        assert_eq!(body["Networks"], json!({"front": {"aliases": ["web"]}, "back": {"aliases": []}}));
        assert_eq!(body["healthconfig"]["Test"], json!(["CMD", "test", "-f", "/ok"]));
        assert_eq!(body["resource_limits"]["cpu"], json!({"period": 100_000, "quota": 50_000}));
        assert_eq!((body["stop_timeout"].clone(), body["no_new_privileges"].clone()), (json!(2), json!(true)));
    }

    #[test]
    fn container_info_reads_state_health_ips_and_ports() {
        let info = container_info(from_json(json!({
            "Id": "abc", "Name": "web-0", "Image": "0123", "RestartCount": 1,
            "State": {"Status": "running", "Running": true, "ExitCode": 0, "Health": {"Status": "starting"}},
            "Config": {"Labels": {"a": "b"}},
            "NetworkSettings": {
                "Ports": {"8080/tcp": [{"HostIp": "", "HostPort": "46259"}]},
                "Networks": {"front": {"IPAddress": "10.89.0.2", "Aliases": ["svc"]}}
            }
        })));
        assert_eq!((info.name.as_str(), info.image_id.as_str()), ("web-0", "sha256:0123"));
        assert_eq!((info.state, info.health, info.restart_count), (ContainerState::Running, Some(Health::Starting), 1));
        assert_eq!(info.host_ports.get("8080/tcp"), Some(&46259));
        assert_eq!(info.ips.get("front").map(String::as_str), Some("10.89.0.2"));
        let stopped = container_info(from_json(json!({
            "State": {"Status": "exited", "ExitCode": 137, "Health": {"Status": "unhealthy"}}
        })));
        assert_eq!((stopped.state, stopped.exit_code, stopped.health), (ContainerState::Exited, Some(137), None));
    }

    #[test]
    fn build_output_ends_with_the_id() {
        let log = ["STEP 1/2: FROM scratch".to_string(), "--> 29564c5350c".into(), "a".repeat(64)];
        assert_eq!(built_image_id(&log), Some(format!("sha256:{}", "a".repeat(64))));
        assert_eq!(built_image_id(&log[..2]), None);
    }

    #[test]
    fn events_map_libpod_words() {
        let event_of = |action: &str, extra: Value| {
            let mut message = json!({"Type": "container", "Action": action,
                "Actor": {"ID": "c1", "Attributes": {"containerExitCode": "0", "image": "x", "name": "n", "podId": "", "app": "web"}}});
            if let (Some(map), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
                map.extend(extra.clone());
            }
            event(&message).expect("container events are watched")
        };
        let died = event_of("died", json!({}));
        assert_eq!((died.action, died.id.as_str()), (EventAction::Die, "c1"));
        assert_eq!(died.labels, Labels::from([("app".into(), "web".into())]));
        assert_eq!(event_of("remove", json!({})).action, EventAction::Destroy);
        assert_eq!(
            event_of("health_status", json!({"HealthStatus": "unhealthy"})).action,
            EventAction::Health(Health::Unhealthy)
        );
        assert_eq!(event_of("exec_died", json!({})).action, EventAction::Other("exec_died".into()));
        let connect = event(&json!({"Type": "network", "Action": "connect",
            "Actor": {"ID": "n1", "Attributes": {"container": "c1", "name": "front"}}}))
        .expect("watched");
        assert_eq!(
            (connect.subject, connect.action, connect.id.as_str()),
            (EventSubject::Container, EventAction::Connect, "c1")
        );
        assert_eq!(event(&json!({"Type": "pod", "Action": "create"})), None);
    }
}
