//! Conversions between bollard's models and berth's engine types.
//!
//! Pure functions, so Docker's shapes are pinned by unit tests without a
//! daemon. Engines answer with partial JSON (a created container has no
//! health, a network without IPAM config has no subnets, fields come and go
//! between API versions): every missing field becomes its default, never a
//! panic.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, EventMessage, EventMessageTypeEnum, HostConfig,
    ImageInspect, Ipam, IpamConfig, MountTmpfsOptions, MountType, NetworkCreateRequest, NetworkInspect,
    NetworkingConfig, RestartPolicyNameEnum, Volume,
};

use crate::engine::{
    ContainerConfig, ContainerInfo, ContainerState, EngineEvent, EventAction, EventSubject, Health, ImageInfo, Labels,
    MountSource, NetworkConfig, NetworkInfo, RestartPolicy, VolumeInfo,
};

/// Attributes Docker adds to an event's actor besides the object's labels
/// (container events carry the container's labels among these).
const EVENT_ATTRIBUTES: [&str; 11] = [
    "image",
    "name",
    "exitCode",
    "signal",
    "execID",
    "container",
    "type",
    "driver",
    "destination",
    "propagation",
    "read/write",
];

/// A `u64` for Docker's signed fields; values beyond `i64::MAX` mean "no
/// practical limit" anyway.
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Nanoseconds, as Docker's health-check durations are written.
fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// `duration` in whole seconds, rounded up: Docker's stop timeouts are
/// seconds, and a grace period must not shrink.
pub(super) fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A `Some` of a non-empty list, else `None` (the engine's default).
fn non_empty<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    Some(items.to_vec()).filter(|items| !items.is_empty())
}

fn hash_map(labels: &Labels) -> HashMap<String, String> {
    labels.clone().into_iter().collect()
}

fn labels(map: Option<HashMap<String, String>>) -> Labels {
    map.unwrap_or_default().into_iter().collect()
}

/// The create request for `config`, with its first network only (API 1.41
/// takes one; the caller connects the rest).
pub(super) fn create_body(config: &ContainerConfig) -> ContainerCreateBody {
    let mut port_bindings: HashMap<String, Option<Vec<bollard::models::PortBinding>>> = HashMap::new();
    for port in &config.ports {
        let binding = bollard::models::PortBinding {
            host_ip: port.host_ip.clone(),
            // An empty host port lets the daemon pick a free one.
            host_port: Some(port.host_port.map(|port| port.to_string()).unwrap_or_default()),
        };
        let key = format!("{}/{}", port.container_port, port.protocol.as_str());
        port_bindings.entry(key).or_default().get_or_insert_with(Vec::new).push(binding);
    }
    let mounts = config
        .mounts
        .iter()
        .map(|mount| {
            let (typ, source, tmpfs_options) = match &mount.source {
                MountSource::Volume(name) => (MountType::VOLUME, Some(name.clone()), None),
                MountSource::Bind(path) => (MountType::BIND, Some(path.clone()), None),
                MountSource::Tmpfs(size) => (
                    MountType::TMPFS,
                    None,
                    Some(MountTmpfsOptions { size_bytes: size.map(signed), ..Default::default() }),
                ),
            };
            bollard::models::Mount {
                target: Some(mount.target.clone()),
                source,
                typ: Some(typ),
                read_only: Some(mount.read_only),
                tmpfs_options,
                ..Default::default()
            }
        })
        .collect();
    let first_network = config.networks.first();
    let restart = match config.restart {
        RestartPolicy::No => RestartPolicyNameEnum::NO,
        RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
        RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
    };
    let host_config = HostConfig {
        memory: config.memory_bytes.map(signed),
        nano_cpus: config.nano_cpus.map(signed),
        cpu_shares: config.cpu_shares.map(signed),
        pids_limit: config.pids_limit.map(signed),
        port_bindings: Some(port_bindings),
        mounts: Some(mounts),
        network_mode: first_network.map(|attachment| attachment.network.clone()),
        restart_policy: Some(bollard::models::RestartPolicy { name: Some(restart), maximum_retry_count: None }),
        privileged: Some(config.privileged),
        readonly_rootfs: Some(config.read_only_rootfs),
        security_opt: config.no_new_privileges.then(|| vec!["no-new-privileges".to_string()]),
        cap_add: non_empty(&config.cap_add),
        cap_drop: non_empty(&config.cap_drop),
        dns: non_empty(&config.dns),
        dns_search: non_empty(&config.dns_search),
        ..Default::default()
    };
    let networking_config = first_network.map(|attachment| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            attachment.network.clone(),
            EndpointSettings { aliases: non_empty(&attachment.aliases), ..Default::default() },
        )])),
    });
    ContainerCreateBody {
        image: Some(config.image.clone()),
        entrypoint: config.entrypoint.clone(),
        cmd: config.command.clone(),
        env: Some(config.env.iter().map(|(name, value)| format!("{name}={value}")).collect()),
        labels: Some(hash_map(&config.labels)),
        exposed_ports: Some(port_bindings_keys(&config.ports)),
        healthcheck: config.health.as_ref().map(|health| bollard::models::HealthConfig {
            test: Some(std::iter::once("CMD".to_string()).chain(health.command.iter().cloned()).collect()),
            interval: Some(nanos(health.interval)),
            timeout: Some(nanos(health.timeout)),
            retries: Some(i64::from(health.retries)),
            start_period: Some(nanos(health.start_period)),
            ..Default::default()
        }),
        stop_timeout: Some(signed(whole_seconds(config.stop_timeout))),
        user: config.user.clone(),
        working_dir: config.working_dir.clone(),
        hostname: config.hostname.clone(),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// `8080/tcp` keys of the published ports, each once.
fn port_bindings_keys(ports: &[crate::engine::PortBinding]) -> Vec<String> {
    let mut keys: Vec<String> =
        ports.iter().map(|port| format!("{}/{}", port.container_port, port.protocol.as_str())).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// berth's view of an inspected container.
pub(super) fn container_info(inspected: ContainerInspectResponse) -> ContainerInfo {
    let state = inspected.state.unwrap_or_default();
    let status = state.status.as_ref().map_or("", |status| status.as_ref());
    let lifecycle = ContainerState::parse(status).unwrap_or(match state.running {
        Some(true) => ContainerState::Running,
        // An empty or unknown status on a container that is not running:
        // treat it as exited, which makes the reconciler look again.
        _ => ContainerState::Exited,
    });
    let health = state.health.and_then(|health| health.status).and_then(|status| Health::parse(status.as_ref()));
    let exit_code = match lifecycle {
        ContainerState::Exited | ContainerState::Dead => state.exit_code,
        _ => None,
    };
    let settings = inspected.network_settings.unwrap_or_default();
    let ips = settings
        .networks
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(network, endpoint)| Some((network, endpoint.ip_address.filter(|ip| !ip.is_empty())?)))
        .collect();
    let host_ports = settings
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(port, bindings)| {
            // IPv4 and IPv6 bindings of one port share the host port.
            let host_port = bindings?.into_iter().find_map(|binding| binding.host_port?.parse().ok())?;
            Some((port, host_port))
        })
        .collect();
    ContainerInfo {
        id: inspected.id.unwrap_or_default(),
        name: inspected.name.unwrap_or_default().trim_start_matches('/').to_string(),
        image_id: inspected.image.unwrap_or_default(),
        labels: labels(inspected.config.and_then(|config| config.labels)),
        state: lifecycle,
        stopping: false,
        health,
        exit_code,
        restart_count: inspected.restart_count.and_then(|count| u32::try_from(count).ok()).unwrap_or(0),
        ips,
        host_ports,
    }
}

/// berth's view of a volume.
pub(super) fn volume_info(volume: Volume) -> VolumeInfo {
    VolumeInfo {
        name: volume.name,
        driver: volume.driver,
        labels: volume.labels.into_iter().collect(),
        mountpoint: volume.mountpoint,
    }
}

/// The create request for `config`.
pub(super) fn network_request(config: &NetworkConfig) -> NetworkCreateRequest {
    let ipam = (config.subnet.is_some() || config.gateway.is_some()).then(|| Ipam {
        config: Some(vec![IpamConfig {
            subnet: config.subnet.clone(),
            gateway: config.gateway.clone(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    NetworkCreateRequest {
        name: config.name.clone(),
        driver: Some(config.driver.clone()).filter(|driver| !driver.is_empty()),
        internal: Some(config.internal),
        enable_ipv6: Some(config.ipv6),
        ipam,
        labels: Some(hash_map(&config.labels)),
        ..Default::default()
    }
}

/// berth's view of an inspected network.
pub(super) fn network_info(network: NetworkInspect) -> NetworkInfo {
    let ipam = network.ipam.and_then(|ipam| ipam.config).unwrap_or_default();
    let mut containers: Vec<String> = network.containers.unwrap_or_default().into_keys().collect();
    containers.sort();
    NetworkInfo {
        id: network.id.unwrap_or_default(),
        name: network.name.unwrap_or_default(),
        driver: network.driver.unwrap_or_default(),
        labels: labels(network.labels),
        subnets: ipam.iter().filter_map(|config| config.subnet.clone()).filter(|s| !s.is_empty()).collect(),
        gateways: ipam.iter().filter_map(|config| config.gateway.clone()).filter(|g| !g.is_empty()).collect(),
        internal: network.internal.unwrap_or(false),
        containers,
    }
}

/// berth's view of an inspected image.
pub(super) fn image_info(image: ImageInspect) -> ImageInfo {
    ImageInfo {
        id: image.id.unwrap_or_default(),
        tags: image.repo_tags.unwrap_or_default(),
        labels: labels(image.config.and_then(|config| config.labels)),
    }
}

/// Splits a reference into what `fromImage` and `tag` take: a digest
/// reference goes whole, an untagged one gets `latest` (an empty tag would
/// pull every tag of the repository).
pub(super) fn split_reference(reference: &str) -> (&str, Option<&str>) {
    if reference.contains('@') {
        return (reference, None);
    }
    // A `:` after the last `/` is a tag; before it, a registry port.
    let name_start = reference.rfind('/').map_or(0, |slash| slash + 1);
    match reference[name_start..].rfind(':') {
        Some(colon) => (&reference[..name_start + colon], Some(&reference[name_start + colon + 1..])),
        None => (reference, Some("latest")),
    }
}

/// berth's view of a Docker event; `None` for kinds berth does not watch.
///
/// Network `connect`/`disconnect` events are reported as
/// [`EventSubject::Container`] events with the container's id: they say a
/// container's networks changed, and the container is what a reconciler
/// owns. Their labels are empty (Docker sends the network's name and type,
/// not the container's labels); the controller finds the owner by id.
/// Health changes (`health_status: healthy`) become [`EventAction::Health`].
/// Every other action is kept by name in [`EventAction::Other`].
pub(super) fn event(message: EventMessage) -> Option<EngineEvent> {
    let subject = match message.typ? {
        EventMessageTypeEnum::CONTAINER => EventSubject::Container,
        EventMessageTypeEnum::NETWORK => EventSubject::Network,
        EventMessageTypeEnum::VOLUME => EventSubject::Volume,
        EventMessageTypeEnum::IMAGE => EventSubject::Image,
        _ => return None,
    };
    let actor = message.actor.unwrap_or_default();
    let attributes = actor.attributes.unwrap_or_default();
    let action = message.action.unwrap_or_default();
    let (verb, detail) = match action.split_once(':') {
        Some((verb, detail)) => (verb, detail.trim()),
        None => (action.as_str(), ""),
    };
    let action = match verb {
        "create" => EventAction::Create,
        "start" => EventAction::Start,
        "die" => EventAction::Die,
        "stop" => EventAction::Stop,
        "kill" => EventAction::Kill(attributes.get("signal").and_then(|signal| signal.parse().ok())),
        "destroy" | "delete" | "remove" => EventAction::Destroy,
        "health_status" => match Health::parse(detail) {
            Some(health) => EventAction::Health(health),
            None => EventAction::Other(action.clone()),
        },
        "connect" if subject == EventSubject::Network => EventAction::Connect,
        "disconnect" if subject == EventSubject::Network => EventAction::Disconnect,
        _ => EventAction::Other(action.clone()),
    };
    let attributes = attributes.into_iter().collect();
    Some(EngineEvent::from_actor(subject, action, actor.id.unwrap_or_default(), attributes, &EVENT_ATTRIBUTES))
}

/// berth's [`ContainerStats`](crate::engine::ContainerStats) from Docker's.
pub(super) fn stats(sample: bollard::models::ContainerStatsResponse) -> crate::engine::ContainerStats {
    let cpu = sample.cpu_stats.and_then(|c| c.cpu_usage).and_then(|u| u.total_usage).unwrap_or(0);
    let memory = sample.memory_stats.unwrap_or_default();
    let networks = sample.networks.unwrap_or_default();
    let block = sample.blkio_stats.and_then(|b| b.io_service_bytes_recursive).unwrap_or_default();
    let block_op = |op: &str| {
        block
            .iter()
            .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
            .filter_map(|e| e.value)
            .sum()
    };
    crate::engine::ContainerStats {
        cpu_seconds: cpu as f64 / 1e9,
        memory_bytes: memory.usage.unwrap_or(0),
        memory_limit_bytes: memory.limit.unwrap_or(0),
        network_receive_bytes: networks.values().filter_map(|n| n.rx_bytes).sum(),
        network_transmit_bytes: networks.values().filter_map(|n| n.tx_bytes).sum(),
        block_read_bytes: block_op("read"),
        block_write_bytes: block_op("write"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{HealthConfig, Mount, NetworkAttachment, PortBinding, Protocol};

    fn from_json<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
        serde_json::from_value(json).expect("valid model JSON")
    }

    #[test]
    fn create_body_carries_ports_mounts_first_network_and_health() {
        let config = ContainerConfig {
            name: "web-0".into(),
            image: "busybox".into(),
            env: vec![("A".into(), "1".into())],
            ports: vec![
                PortBinding { container_port: 80, protocol: Protocol::Tcp, host_ip: None, host_port: Some(8080) },
                PortBinding { container_port: 53, protocol: Protocol::Udp, host_ip: None, host_port: None },
            ],
            mounts: vec![Mount { target: "/tmp".into(), source: MountSource::Tmpfs(Some(1024)), read_only: false }],
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
            stop_timeout: Duration::from_millis(1500),
            no_new_privileges: true,
            ..Default::default()
        };
        let body = serde_json::to_value(create_body(&config)).expect("serializable");
        assert_eq!(body["Env"], serde_json::json!(["A=1"]));
        assert_eq!(body["ExposedPorts"], serde_json::json!({"53/udp": {}, "80/tcp": {}}));
        let host = &body["HostConfig"];
        assert_eq!(host["PortBindings"]["80/tcp"], serde_json::json!([{"HostPort": "8080"}]));
        assert_eq!(host["PortBindings"]["53/udp"], serde_json::json!([{"HostPort": ""}]));
        assert_eq!(host["Mounts"][0]["Type"], "tmpfs");
        assert_eq!(host["Mounts"][0]["TmpfsOptions"]["SizeBytes"], 1024);
        assert_eq!(host["NetworkMode"], "front");
        assert_eq!(host["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
        assert_eq!(body["NetworkingConfig"]["EndpointsConfig"]["front"]["Aliases"], serde_json::json!(["web"]));
        assert!(body["NetworkingConfig"]["EndpointsConfig"].get("back").is_none(), "one network at creation");
        assert_eq!(body["Healthcheck"]["Test"], serde_json::json!(["CMD", "test", "-f", "/ok"]));
        assert_eq!(body["Healthcheck"]["Interval"], 500_000_000);
        assert_eq!(body["StopTimeout"], 2, "rounded up");
    }

    #[test]
    fn container_info_reads_state_health_ips_and_ports() {
        let inspected: ContainerInspectResponse = from_json(serde_json::json!({
            "Id": "abc", "Name": "/web-0", "Image": "sha256:1", "RestartCount": 2,
            "State": {"Status": "running", "Running": true, "ExitCode": 0, "Health": {"Status": "healthy"}},
            "Config": {"Labels": {"a": "b"}},
            "NetworkSettings": {
                "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}, {"HostIp": "::", "HostPort": "49153"}],
                          "81/tcp": null},
                "Networks": {"front": {"IPAddress": "172.18.0.2"}, "none": {"IPAddress": ""}}
            }
        }));
        let info = container_info(inspected);
        assert_eq!((info.id.as_str(), info.name.as_str(), info.image_id.as_str()), ("abc", "web-0", "sha256:1"));
        assert_eq!(
            (info.state, info.health, info.exit_code, info.restart_count),
            (ContainerState::Running, Some(Health::Healthy), None, 2)
        );
        assert_eq!(info.labels, Labels::from([("a".into(), "b".into())]));
        assert_eq!(info.ips.into_iter().collect::<Vec<_>>(), [("front".to_string(), "172.18.0.2".to_string())]);
        assert_eq!(info.host_ports.into_iter().collect::<Vec<_>>(), [("80/tcp".to_string(), 49153)]);
    }

    #[test]
    fn container_info_survives_an_almost_empty_answer() {
        let info = container_info(from_json(serde_json::json!({"State": {"Status": "exited", "ExitCode": 3}})));
        assert_eq!((info.state, info.exit_code, info.health), (ContainerState::Exited, Some(3), None));
        assert!(info.id.is_empty() && info.labels.is_empty() && info.ips.is_empty());
        assert_eq!(container_info(ContainerInspectResponse::default()).state, ContainerState::Exited);
    }

    #[test]
    fn references_split_into_image_and_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(split_reference("localhost:5000/a/b"), ("localhost:5000/a/b", Some("latest")));
        assert_eq!(split_reference("localhost:5000/a/b:v1"), ("localhost:5000/a/b", Some("v1")));
        assert_eq!(split_reference("busybox@sha256:00"), ("busybox@sha256:00", None));
    }

    fn docker_event(typ: &str, action: &str, id: &str, attributes: serde_json::Value) -> EventMessage {
        from_json(serde_json::json!({"Type": typ, "Action": action, "Actor": {"ID": id, "Attributes": attributes}}))
    }

    #[test]
    fn events_map_actions_and_keep_only_labels() {
        let died = event(docker_event(
            "container",
            "die",
            "c1",
            serde_json::json!({"exitCode": "0", "name": "web", "image": "bb", "app": "web"}),
        ))
        .expect("container events are watched");
        assert_eq!(
            died,
            EngineEvent {
                subject: EventSubject::Container,
                action: EventAction::Die,
                id: "c1".into(),
                labels: Labels::from([("app".into(), "web".into())])
            }
        );
        let health =
            event(docker_event("container", "health_status: unhealthy", "c1", serde_json::json!({}))).expect("watched");
        assert_eq!(health.action, EventAction::Health(Health::Unhealthy));
        let exec =
            event(docker_event("container", "exec_create: sh -c true", "c1", serde_json::json!({}))).expect("watched");
        assert_eq!(exec.action, EventAction::Other("exec_create: sh -c true".into()));
        assert_eq!(event(docker_event("daemon", "reload", "d", serde_json::json!({}))), None);
    }

    #[test]
    fn network_connect_events_name_the_container() {
        let attributes = serde_json::json!({"container": "c1", "name": "front", "type": "bridge"});
        let connect = event(docker_event("network", "connect", "n1", attributes)).expect("watched");
        assert_eq!(
            connect,
            EngineEvent {
                subject: EventSubject::Container,
                action: EventAction::Connect,
                id: "c1".into(),
                labels: Labels::new()
            }
        );
        let created =
            event(docker_event("network", "create", "n1", serde_json::json!({"name": "front", "type": "bridge"})))
                .expect("watched");
        assert_eq!(
            (created.subject, created.action, created.id.as_str()),
            (EventSubject::Network, EventAction::Create, "n1")
        );
        assert!(created.labels.is_empty());
    }
}
