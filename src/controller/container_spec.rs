//! From a Container object to the engine config of its replicas, and the
//! spec hash that decides which replicas must be recreated.
//!
//! Resolving references is where a Container waits: an Image, Volume,
//! Network or dependency that is not Ready yet makes [`resolve`] return
//! [`Resolution::Waiting`] with a reason, which the reconciler shows in the
//! status instead of failing.
//!
//! The hash covers the defaulted spec without the fields that do not change
//! what a replica is (`replicas`, `updateStrategy`, `dependsOn`), plus what
//! the spec points at: the image id, the content of secret files and host
//! environment values (hashed with the state directory's key, never stored),
//! the ids of the networks, and with `--dns-on-networks` the DNS servers and
//! search domain berth sets.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::container::{DependencyCondition, RestartPolicy};
use crate::api::{AnyObject, Container, ContainerSpec, HostPort, Kind, ObjectKey};
use crate::engine::{self, labels, ContainerConfig, HealthConfig, Mount, MountSource, NetworkAttachment, PortBinding};

use super::context::Context;
use super::network::engine_name;

/// The outcome of resolving a Container's references.
pub enum Resolution {
    /// Everything is there: the template of every replica.
    Ready(Box<Template>),
    /// Something is not ready; reason (CamelCase) and message.
    Waiting(&'static str, String),
    /// The engine lacks the image `image:` names: pull it, then resolve
    /// again (its id is part of the spec hash).
    MissingImage(String),
}

/// What every replica shares.
pub struct Template {
    /// Engine config, without name and replica labels.
    pub config: ContainerConfig,
    /// The spec hash.
    pub hash: String,
    /// What was hashed (goes in the `berth.dev/spec` label).
    pub hashed: Value,
}

/// Resolves references and builds the replica template of `container`.
/// Reads only: a missing image is reported, and pulling it is the caller's
/// step.
pub async fn resolve(ctx: &Context, container: &Container) -> Result<Resolution, super::ReconcileError> {
    let key = container.key();
    let spec = &container.spec;
    let lookup = |kind: Kind, name: &str| -> Result<Option<AnyObject>, super::ReconcileError> {
        Ok(ctx
            .store
            .get(&ObjectKey::new(kind, &key.namespace, name))?
            .filter(|o| o.metadata().deletion_timestamp.is_none()))
    };
    let is_ready = |object: &AnyObject| {
        object
            .status_common()
            .and_then(|s| s.condition("Ready"))
            .is_some_and(|c| c.status == crate::api::ConditionStatus::True)
    };

    // The host policy, again: the object may have been stored before it
    // was set, and a path may resolve elsewhere now than at admission.
    let policy = crate::manifest::policy::current();
    if let Some(refused) = crate::manifest::policy::refusal(&AnyObject::Container(container.clone())) {
        return Ok(Resolution::Waiting("PolicyDenied", refused));
    }

    // Image.
    let image_id = match (&spec.image_ref, &spec.image) {
        (Some(name), _) => match lookup(Kind::Image, name)? {
            Some(AnyObject::Image(image)) if is_ready(&AnyObject::Image(image.clone())) => {
                image.status.map(|s| s.image_id).unwrap_or_default()
            }
            Some(_) => return Ok(Resolution::Waiting("WaitingForImage", format!("Image {name} is not ready yet"))),
            None => return Ok(Resolution::Waiting("WaitingForImage", format!("Image {name} is not declared (yet)"))),
        },
        (None, Some(reference)) => match ctx.reflector.image(reference).await? {
            Some(info) => info.id,
            None => return Ok(Resolution::MissingImage(reference.clone())),
        },
        (None, None) => return Err(super::ReconcileError::terminal("a Container needs `image` or `imageRef`")),
    };

    // Volumes.
    let mut mounts = Vec::new();
    for mount in &spec.volume_mounts {
        let source = if let Some(name) = &mount.volume {
            match lookup(Kind::Volume, name)? {
                Some(volume) if is_ready(&volume) => MountSource::Volume(engine_name(&volume.key())),
                _ => return Ok(Resolution::Waiting("WaitingForVolume", format!("Volume {name} is not ready yet"))),
            }
        } else if let Some(path) = &mount.host_path {
            MountSource::Bind(path.clone())
        } else {
            let size = mount.tmpfs.as_ref().and_then(|t| t.size_limit.as_ref()).and_then(|s| s.bytes().ok());
            MountSource::Tmpfs(size)
        };
        mounts.push(Mount { target: mount.mount_path.clone(), source, read_only: mount.read_only });
    }

    // Networks.
    let mut networks = Vec::new();
    let mut network_ids = BTreeMap::new();
    let mut gateways: Vec<String> = Vec::new();
    for attachment in &spec.networks {
        match lookup(Kind::Network, &attachment.name)? {
            Some(AnyObject::Network(network)) if is_ready(&AnyObject::Network(network.clone())) => {
                let status = network.status.unwrap_or_default();
                if network.spec.gateway_dns() {
                    for gateway in status.gateways {
                        if !gateways.contains(&gateway) {
                            gateways.push(gateway);
                        }
                    }
                }
                network_ids.insert(attachment.name.clone(), status.engine_id);
                networks.push(NetworkAttachment {
                    network: engine_name(&network_key(&key, &attachment.name)),
                    aliases: attachment.aliases.clone(),
                });
            }
            _ => {
                return Ok(Resolution::Waiting(
                    "WaitingForNetwork",
                    format!("Network {} is not ready yet", attachment.name),
                ))
            }
        }
    }

    // Dependencies: the stored status says the dependency was reconciled,
    // the engine says whether its replicas really run (and are healthy)
    // now. After a restart the stored status can be stale: a replica
    // removed behind berth's back is not believed healthy.
    for dependency in &spec.depends_on {
        let condition = dependency.condition.unwrap_or(DependencyCondition::Started);
        let ready = match lookup(Kind::Container, &dependency.container)? {
            Some(AnyObject::Container(other)) => {
                let wanted = other.spec.replicas.unwrap_or(1).max(0) as usize;
                let status = other.status.clone().unwrap_or_default();
                let recorded = match condition {
                    DependencyCondition::Started => {
                        status.replicas.iter().filter(|r| r.state == "running").count() >= wanted
                    }
                    DependencyCondition::Healthy => {
                        status.ready_replicas as usize >= wanted
                            && is_ready(&AnyObject::Container(Container { status: Some(status), ..other.clone() }))
                    }
                };
                recorded && engine_has(ctx, &other.key(), condition, wanted).await?
            }
            _ => false,
        };
        if !ready {
            let what = if condition == DependencyCondition::Healthy { "healthy" } else { "started" };
            return Ok(Resolution::Waiting(
                "WaitingForDependency",
                format!("Container {} is not {what} yet", dependency.container),
            ));
        }
    }

    // Environment, with secrets read now.
    let mut env = Vec::new();
    let mut secret_hashes = BTreeMap::new();
    for var in &spec.env {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            (None, Some(from)) => {
                let read = match (&from.secret_file, &from.host_env) {
                    (Some(path), _) => policy
                        .map_or_else(|| Ok(path.into()), |policy| policy.secret_file(path))
                        .and_then(|file| std::fs::read_to_string(file).map_err(|e| format!("secret file {path}: {e}")))
                        .map(|v| v.trim_end_matches('\n').to_string()),
                    (None, Some(name)) => {
                        std::env::var(name).map_err(|_| format!("host environment variable {name} is not set"))
                    }
                    (None, None) => Err("valueFrom names no source".to_string()),
                };
                match read {
                    Ok(value) => {
                        secret_hashes
                            .insert(var.name.clone(), labels::keyed_hash_hex(&ctx.secret_key, value.as_bytes()));
                        value
                    }
                    Err(why) => {
                        return Ok(Resolution::Waiting("SecretUnavailable", format!("env {}: {why}", var.name)))
                    }
                }
            }
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }

    let mut hashed_spec = serde_json::to_value(spec).expect("specs serialize");
    if let Some(object) = hashed_spec.as_object_mut() {
        for field in ["replicas", "updateStrategy", "dependsOn"] {
            object.remove(field);
        }
    }
    let mut hashed =
        json!({ "spec": hashed_spec, "imageId": image_id, "secrets": secret_hashes, "networkIds": network_ids });
    // berth's DNS on the gateways of the container's networks: hashed only
    // when set, so the hash of a container without it is what it always was.
    let dns = match &ctx.network_dns {
        Some(network_dns) if !gateways.is_empty() => Some((gateways, vec![network_dns.search_domain(&key.namespace)])),
        _ => None,
    };
    if let Some((servers, search)) = &dns {
        hashed["dns"] = json!({ "servers": servers, "search": search });
    }
    // A restart of every replica on request: hashed only when asked for.
    if let Some(at) = container.metadata.annotations.get(crate::api::overrides::RESTARTED_AT) {
        hashed["restartedAt"] = json!(at);
    }
    let hash = labels::spec_hash(&hashed);
    let mut config = engine_config(spec, image_id, env, mounts, networks);
    if let Some((servers, search)) = dns {
        (config.dns, config.dns_search) = (servers, search);
    }
    Ok(Resolution::Ready(Box::new(Template { config, hash, hashed })))
}

fn network_key(container: &ObjectKey, name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Network, &container.namespace, name)
}

fn duration(value: &Option<crate::api::DurationSpec>, default: &str) -> Duration {
    value
        .as_ref()
        .and_then(|d| d.duration().ok())
        .unwrap_or_else(|| crate::api::DurationSpec(default.into()).duration().unwrap_or_default())
}

/// The engine config every replica shares.
fn engine_config(
    spec: &ContainerSpec,
    image_id: String,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    networks: Vec<NetworkAttachment>,
) -> ContainerConfig {
    use crate::api::defaults;
    let health = spec.health_check.as_ref().map(|check| {
        let command = if let Some(exec) = &check.exec {
            exec.command.clone()
        } else if let Some(http) = &check.http_get {
            let path = http.path.as_deref().unwrap_or("/");
            vec![
                "wget".into(),
                "-q".into(),
                "-O".into(),
                "/dev/null".into(),
                format!("http://127.0.0.1:{}{path}", http.port),
            ]
        } else if let Some(tcp) = &check.tcp_socket {
            // `nc -z` where netcat has it; busybox's lacks it, but connects
            // and exits 0 when stdin is empty and the port accepts.
            let port = tcp.port;
            let script =
                format!("nc -z 127.0.0.1 {port} 2>/dev/null || nc -w 2 127.0.0.1 {port} </dev/null >/dev/null 2>&1");
            vec!["sh".into(), "-c".into(), script]
        } else {
            Vec::new()
        };
        HealthConfig {
            command,
            interval: duration(&check.interval, defaults::HEALTH_INTERVAL),
            timeout: duration(&check.timeout, defaults::HEALTH_TIMEOUT),
            retries: check.retries.unwrap_or(defaults::HEALTH_RETRIES).clamp(1, 100) as u32,
            start_period: duration(&check.start_period, defaults::HEALTH_START_PERIOD),
        }
    });
    let resources = spec.resources.clone().unwrap_or_default();
    let security = spec.security_context.clone().unwrap_or_default();
    let capabilities = security.capabilities.unwrap_or_default();
    ContainerConfig {
        name: String::new(),
        image: image_id,
        entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
        command: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env,
        labels: spec.labels.clone(),
        ports: spec
            .ports
            .iter()
            .filter_map(|p| {
                let host_port = match p.host_port? {
                    HostPort::Fixed(port) => Some(port as u16),
                    HostPort::Auto => None,
                };
                let protocol = match p.protocol {
                    Some(crate::api::container::Protocol::UDP) => engine::Protocol::Udp,
                    _ => engine::Protocol::Tcp,
                };
                Some(PortBinding {
                    container_port: p.container_port as u16,
                    protocol,
                    host_ip: p.host_ip.clone(),
                    host_port,
                })
            })
            .collect(),
        mounts,
        networks,
        memory_bytes: resources.memory.and_then(|m| m.bytes().ok()),
        nano_cpus: resources.cpus.and_then(|c| c.nano_cpus().ok()),
        cpu_shares: resources.cpu_shares.map(|s| s as u64),
        pids_limit: resources.pids.map(|p| p as u64),
        health,
        restart: match spec.restart_policy.unwrap_or(RestartPolicy::Always) {
            RestartPolicy::Always => engine::RestartPolicy::Always,
            RestartPolicy::OnFailure => engine::RestartPolicy::OnFailure,
            RestartPolicy::Never => engine::RestartPolicy::No,
        },
        stop_timeout: duration(&spec.stop_grace_period, defaults::STOP_GRACE_PERIOD),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        privileged: security.privileged,
        read_only_rootfs: security.read_only_root_filesystem,
        no_new_privileges: security.no_new_privileges,
        cap_add: capabilities.add,
        cap_drop: capabilities.drop,
        dns: Vec::new(),
        dns_search: Vec::new(),
    }
}

/// Top-level fields that differ between two hashed specs, for the reason of
/// a recreate (`spec changed: env, ports`).
pub fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let mut changed = Vec::new();
    if let (Some(old_spec), Some(new_spec)) = (old["spec"].as_object(), new["spec"].as_object()) {
        let keys: std::collections::BTreeSet<&String> = old_spec.keys().chain(new_spec.keys()).collect();
        changed.extend(keys.into_iter().filter(|k| old_spec.get(*k) != new_spec.get(*k)).cloned());
    }
    for (field, label) in [
        ("imageId", "image"),
        ("secrets", "secrets"),
        ("networkIds", "networks"),
        ("dns", "dns"),
        ("restartedAt", "restart"),
    ] {
        if old[field] != new[field] && !changed.iter().any(|c| c == label) {
            changed.push(label.to_string());
        }
    }
    changed
}

/// Whether the engine runs at least `wanted` replicas of Container `key`
/// that meet `condition` (running; running and healthy, or without a check).
async fn engine_has(
    ctx: &Context,
    key: &ObjectKey,
    condition: DependencyCondition,
    wanted: usize,
) -> Result<bool, super::ReconcileError> {
    let replicas = ctx.reflector.containers_of(key).await?;
    let meeting = replicas
        .iter()
        .filter(|r| match condition {
            DependencyCondition::Started => r.state == engine::ContainerState::Running,
            DependencyCondition::Healthy => r.is_ready(),
        })
        .count();
    Ok(meeting >= wanted)
}
