//! The fake engine's world: containers, images, volumes and networks in
//! memory, with Docker's rules (unique names, not-found and in-use errors,
//! networks that must exist, volumes created on first mount).
//!
//! Every method is synchronous and runs under the engine's lock; the
//! events it produces are returned for the handle to publish.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use super::super::{
    BuildOutput, BuildRequest, ContainerConfig, ContainerInfo, ContainerState, EngineError, EngineEvent, EventAction,
    EventSubject, Health, ImageInfo, Labels, MountSource, NetworkConfig, NetworkInfo, Result, VolumeConfig, VolumeInfo,
};

/// A container and the config it was created from.
#[derive(Clone, Debug)]
pub(super) struct FakeContainer {
    pub info: ContainerInfo,
    pub config: ContainerConfig,
    /// Networks joined, with their aliases.
    pub networks: BTreeMap<String, Vec<String>>,
    /// Bumped on every start, so that a health timer of an earlier run does
    /// not touch a later one.
    pub run: u64,
    /// Output lines, across runs (as `docker logs` keeps them).
    pub logs: Vec<String>,
    /// Output of the current run not yet ended by a newline.
    pub partial: Vec<u8>,
    /// Ports served by the current run, with the directory served.
    pub listeners: BTreeMap<u16, String>,
    /// The current run's process and health check tasks.
    pub tasks: Vec<tokio::task::AbortHandle>,
    /// A stop was asked for: the exit that follows is not restarted.
    pub stopping: bool,
    /// Consecutive failed health checks of the current run.
    pub failing_streak: u32,
}

/// Everything the fake engine holds.
#[derive(Debug, Default)]
pub(super) struct World {
    pub containers: BTreeMap<String, FakeContainer>,
    pub images: BTreeMap<String, ImageInfo>,
    pub volumes: BTreeMap<String, VolumeInfo>,
    pub networks: BTreeMap<String, NetworkInfo>,
    /// Files, per store: a volume's, a container's root filesystem, a tmpfs
    /// (see `process`).
    pub files: HashMap<String, BTreeMap<String, Vec<u8>>>,
    /// Ids of the containers carrying each label, keyed by a hash of the
    /// label's key and value: a filtered list visits the containers of its
    /// rarest label, not every container. Candidates are checked in full,
    /// so a hash collision costs time, never a wrong answer. Docker's own
    /// list is linear in all containers; the fake is indexed so that scale
    /// benchmarks measure berth rather than the fake. Labels never change
    /// after creation: the index changes on create and remove only.
    label_index: HashMap<u64, BTreeSet<String>>,
    /// Container id by name, as Docker's name registry.
    names: HashMap<String, String>,
    next_id: u64,
    next_host_port: u16,
}

fn has_labels(labels: &Labels, wanted: &Labels) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The key of one label in [`World::label_index`].
fn label_hash(key: &str, value: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (key, value).hash(&mut hasher);
    hasher.finish()
}

fn not_found(what: String) -> EngineError {
    EngineError::NotFound { what }
}

fn conflict(what: String, message: &str) -> EngineError {
    EngineError::Conflict { what, message: message.to_string() }
}

pub(super) fn event(subject: EventSubject, action: EventAction, id: &str, labels: &Labels) -> EngineEvent {
    EngineEvent { subject, action, id: id.to_string(), labels: labels.clone() }
}

impl World {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:016x}{:048x}", self.next_id.wrapping_mul(0x9e37_79b9_7f4a_7c15), self.next_id)
    }

    /// Finds a container by id, id prefix or name.
    pub fn container_id(&self, id_or_name: &str) -> Result<String> {
        if self.containers.contains_key(id_or_name) {
            return Ok(id_or_name.to_string());
        }
        if let Some(id) = self.names.get(id_or_name) {
            return Ok(id.clone());
        }
        self.containers
            .keys()
            .find(|id| id_or_name.len() >= 12 && id.starts_with(id_or_name))
            .cloned()
            .ok_or_else(|| not_found(format!("container {id_or_name}")))
    }

    fn image_id(&self, reference: &str) -> Option<String> {
        let tagged = if reference.contains(':') { reference.to_string() } else { format!("{reference}:latest") };
        self.images
            .iter()
            .find(|(id, image)| *id == reference || image.tags.iter().any(|t| *t == tagged || *t == reference))
            .map(|(id, _)| id.clone())
    }

    pub fn list_containers(&self, labels: &Labels) -> Vec<ContainerInfo> {
        let matching = |c: &&FakeContainer| has_labels(&c.info.labels, labels);
        // The ids under the wanted label that fewest containers carry.
        let rarest = labels
            .iter()
            .map(|(k, v)| self.label_index.get(&label_hash(k, v)))
            .min_by_key(|ids| ids.map_or(0, BTreeSet::len));
        match rarest {
            None => self.containers.values().filter(matching).map(|c| c.info.clone()).collect(),
            Some(None) => Vec::new(),
            Some(Some(ids)) => {
                ids.iter().filter_map(|id| self.containers.get(id)).filter(matching).map(|c| c.info.clone()).collect()
            }
        }
    }

    pub fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        Ok(self.containers[&self.container_id(id)?].info.clone())
    }

    pub fn create_container(&mut self, config: &ContainerConfig) -> Result<(String, Vec<EngineEvent>)> {
        if self.names.contains_key(&config.name) {
            return Err(conflict(format!("container {}", config.name), "name already in use"));
        }
        let image_id = self.image_id(&config.image).ok_or_else(|| not_found(format!("image {}", config.image)))?;
        for attachment in &config.networks {
            if !self.networks.contains_key(&attachment.network) {
                return Err(not_found(format!("network {}", attachment.network)));
            }
        }
        let mut events = Vec::new();
        for mount in &config.mounts {
            if let MountSource::Volume(name) = &mount.source {
                if !self.volumes.contains_key(name) {
                    let volume = VolumeConfig { name: name.clone(), driver: "local".into(), ..Default::default() };
                    events.extend(self.create_volume(&volume)?.1);
                }
            }
        }
        let id = self.new_id();
        let networks = config.networks.iter().map(|n| (n.network.clone(), n.aliases.clone())).collect();
        let info = ContainerInfo {
            id: id.clone(),
            name: config.name.clone(),
            image_id,
            labels: config.labels.clone(),
            state: ContainerState::Created,
            stopping: false,
            health: None,
            exit_code: None,
            restart_count: 0,
            ips: BTreeMap::new(),
            host_ports: BTreeMap::new(),
        };
        events.push(event(EventSubject::Container, EventAction::Create, &id, &info.labels));
        for (key, value) in &info.labels {
            self.label_index.entry(label_hash(key, value)).or_default().insert(id.clone());
        }
        self.names.insert(config.name.clone(), id.clone());
        let container = FakeContainer {
            info,
            config: config.clone(),
            networks,
            run: 0,
            logs: Vec::new(),
            partial: Vec::new(),
            listeners: BTreeMap::new(),
            tasks: Vec::new(),
            stopping: false,
            failing_streak: 0,
        };
        self.containers.insert(id.clone(), container);
        Ok((id, events))
    }

    /// Starts a container; returns the run number and events.
    pub fn start_container(&mut self, id: &str) -> Result<(u64, Vec<EngineEvent>)> {
        let id = self.container_id(id)?;
        let mut next_port = self.next_host_port.max(32768);
        let container = self.containers.get_mut(&id).expect("id resolved above");
        if container.info.state == ContainerState::Running {
            return Ok((container.run, Vec::new()));
        }
        container.run += 1;
        container.stopping = false;
        container.failing_streak = 0;
        container.listeners.clear();
        container.partial.clear();
        container.info.state = ContainerState::Running;
        container.info.exit_code = None;
        container.info.health = container.config.health.as_ref().map(|_| Health::Starting);
        container.info.host_ports = container
            .config
            .ports
            .iter()
            .map(|p| {
                let port = p.host_port.unwrap_or_else(|| {
                    next_port += 1;
                    next_port
                });
                (format!("{}/{}", p.container_port, p.protocol.as_str()), port)
            })
            .collect();
        let index = self.next_id;
        container.info.ips = container
            .networks
            .keys()
            .enumerate()
            .map(|(n, network)| (network.clone(), format!("10.{}.{}.{}", 88 + n, (index / 250) % 250, index % 250 + 2)))
            .collect();
        self.next_host_port = next_port;
        let run = container.run;
        let labels = container.info.labels.clone();
        // A tmpfs starts empty on every run.
        let tmpfs = format!("tmpfs:{id}:");
        self.files.retain(|store, _| !store.starts_with(&tmpfs));
        Ok((run, vec![event(EventSubject::Container, EventAction::Start, &id, &labels)]))
    }

    /// The process exits with `code` (a stop, a kill, or a crash).
    pub fn exit_container(&mut self, id: &str, code: i64) -> Result<Vec<EngineEvent>> {
        let id = self.container_id(id)?;
        let container = self.containers.get_mut(&id).expect("id resolved above");
        if container.info.state != ContainerState::Running {
            return Ok(Vec::new());
        }
        container.info.state = ContainerState::Exited;
        container.info.exit_code = Some(code);
        container.info.health = None;
        container.info.ips.clear();
        container.listeners.clear();
        for task in container.tasks.drain(..) {
            task.abort();
        }
        if !container.partial.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut container.partial)).into_owned();
            container.logs.push(line);
        }
        Ok(vec![event(EventSubject::Container, EventAction::Die, &id, &container.info.labels)])
    }

    pub fn remove_container(&mut self, id: &str) -> Result<Vec<EngineEvent>> {
        let id = self.container_id(id)?;
        let mut events = self.exit_container(&id, 137)?;
        let container = self.containers.remove(&id).expect("id resolved above");
        self.names.remove(&container.info.name);
        for (key, value) in &container.info.labels {
            let hash = label_hash(key, value);
            if let Some(ids) = self.label_index.get_mut(&hash) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.label_index.remove(&hash);
                }
            }
        }
        let own = [format!("root:{id}"), format!("tmpfs:{id}:")];
        self.files.retain(|store, _| !own.iter().any(|prefix| store.starts_with(prefix.as_str())));
        events.push(event(EventSubject::Container, EventAction::Destroy, &id, &container.info.labels));
        Ok(events)
    }

    /// Sets the health of a running container of run `run` (any run when `None`).
    pub fn set_health(&mut self, id: &str, run: Option<u64>, health: Health) -> Result<Vec<EngineEvent>> {
        let id = self.container_id(id)?;
        let container = self.containers.get_mut(&id).expect("id resolved above");
        let current_run = run.is_none_or(|r| r == container.run);
        if container.info.state != ContainerState::Running || !current_run || container.info.health == Some(health) {
            return Ok(Vec::new());
        }
        container.info.health = Some(health);
        Ok(vec![event(EventSubject::Container, EventAction::Health(health), &id, &container.info.labels)])
    }

    pub fn inspect_image(&self, reference: &str) -> Option<ImageInfo> {
        self.image_id(reference).map(|id| self.images[&id].clone())
    }

    pub fn build_image(&mut self, request: &BuildRequest) -> Result<(BuildOutput, Vec<EngineEvent>)> {
        if request.context_tar.is_empty() {
            return Err(EngineError::Failed {
                operation: format!("build {}", request.tag),
                message: "empty context".into(),
            });
        }
        let dockerfile = if request.dockerfile.is_empty() { "Dockerfile" } else { &request.dockerfile };
        if let Err(message) = super::build::check(&request.context_tar, dockerfile) {
            return Err(EngineError::Failed { operation: format!("build {}", request.tag), message });
        }
        let digest =
            super::super::labels::sha256_hex(&[&request.context_tar[..], request.dockerfile.as_bytes()].concat());
        let id = format!("sha256:{digest}");
        let tagged = self.tag_image(&id, &request.tag, &request.labels);
        let log = vec![format!("fake build of {} from {} bytes of context", request.tag, request.context_tar.len())];
        Ok((BuildOutput { image_id: id, log }, vec![tagged]))
    }

    /// Points `tag` at image `id`, creating the image if needed; its event.
    pub fn tag_image(&mut self, id: &str, tag: &str, labels: &Labels) -> EngineEvent {
        for image in self.images.values_mut() {
            image.tags.retain(|t| t != tag);
        }
        let image = self.images.entry(id.to_string()).or_insert_with(|| ImageInfo {
            id: id.to_string(),
            tags: Vec::new(),
            labels: labels.clone(),
        });
        image.tags.push(tag.to_string());
        event(EventSubject::Image, EventAction::Other("tag".into()), id, labels)
    }

    pub fn remove_image(&mut self, reference: &str) -> Result<Vec<EngineEvent>> {
        let id = self.image_id(reference).ok_or_else(|| not_found(format!("image {reference}")))?;
        let image = self.images.get_mut(&id).expect("id resolved above");
        image.tags.retain(|t| t != reference);
        if image.tags.is_empty() {
            if self.containers.values().any(|c| c.info.image_id == id) {
                return Err(conflict(format!("image {reference}"), "image is being used by a container"));
            }
            let image = self.images.remove(&id).expect("id resolved above");
            return Ok(vec![event(EventSubject::Image, EventAction::Destroy, &id, &image.labels)]);
        }
        Ok(vec![event(EventSubject::Image, EventAction::Other("untag".into()), &id, &self.images[&id].labels)])
    }

    pub fn list_volumes(&self, labels: &Labels) -> Vec<VolumeInfo> {
        self.volumes.values().filter(|v| has_labels(&v.labels, labels)).cloned().collect()
    }

    pub fn create_volume(&mut self, config: &VolumeConfig) -> Result<(VolumeInfo, Vec<EngineEvent>)> {
        if self.volumes.contains_key(&config.name) {
            return Err(conflict(format!("volume {}", config.name), "volume already exists"));
        }
        let info = VolumeInfo {
            name: config.name.clone(),
            driver: config.driver.clone(),
            labels: config.labels.clone(),
            mountpoint: format!("/var/lib/fake/volumes/{}/_data", config.name),
        };
        self.volumes.insert(config.name.clone(), info.clone());
        let created = event(EventSubject::Volume, EventAction::Create, &config.name, &config.labels);
        Ok((info, vec![created]))
    }

    pub fn remove_volume(&mut self, name: &str) -> Result<Vec<EngineEvent>> {
        if !self.volumes.contains_key(name) {
            return Err(not_found(format!("volume {name}")));
        }
        let in_use = self
            .containers
            .values()
            .any(|c| c.config.mounts.iter().any(|m| m.source == MountSource::Volume(name.to_string())));
        if in_use {
            return Err(conflict(format!("volume {name}"), "volume is in use"));
        }
        // Docker's and Podman's removal events of volumes and networks carry
        // no labels (their actors have only a name, a driver, a type).
        self.volumes.remove(name);
        Ok(vec![event(EventSubject::Volume, EventAction::Destroy, name, &Labels::new())])
    }

    pub fn list_networks(&self, labels: &Labels) -> Vec<NetworkInfo> {
        self.networks.values().filter(|n| has_labels(&n.labels, labels)).map(|n| self.with_members(n)).collect()
    }

    fn with_members(&self, network: &NetworkInfo) -> NetworkInfo {
        let mut info = network.clone();
        info.containers = self
            .containers
            .iter()
            .filter(|(_, c)| c.networks.contains_key(&network.name))
            .map(|(id, _)| id.clone())
            .collect();
        info
    }

    pub fn create_network(&mut self, config: &NetworkConfig) -> Result<(NetworkInfo, Vec<EngineEvent>)> {
        if self.networks.contains_key(&config.name) {
            return Err(conflict(format!("network {}", config.name), "network already exists"));
        }
        let id = self.new_id();
        let n = self.networks.len() + 1;
        // As the engines do: a subnet and gateway of their own unless given.
        let (subnet, gateway) = match (&config.subnet, &config.gateway) {
            (None, _) => (format!("10.{}.0.0/16", 100 + n % 100), format!("10.{}.0.1", 100 + n % 100)),
            (Some(subnet), Some(gateway)) => (subnet.clone(), gateway.clone()),
            (Some(subnet), None) => (subnet.clone(), first_host(subnet)),
        };
        let info = NetworkInfo {
            id: id.clone(),
            name: config.name.clone(),
            driver: config.driver.clone(),
            labels: config.labels.clone(),
            subnets: vec![subnet],
            gateways: [gateway].into_iter().filter(|g| !g.is_empty()).collect(),
            internal: config.internal,
            containers: Vec::new(),
        };
        self.networks.insert(config.name.clone(), info.clone());
        Ok((info, vec![event(EventSubject::Network, EventAction::Create, &id, &config.labels)]))
    }

    pub fn remove_network(&mut self, name: &str) -> Result<Vec<EngineEvent>> {
        let Some(network) = self.networks.get(name) else { return Err(not_found(format!("network {name}"))) };
        if self.containers.values().any(|c| c.networks.contains_key(name)) {
            return Err(conflict(format!("network {name}"), "network has active endpoints"));
        }
        let id = network.id.clone();
        self.networks.remove(name);
        Ok(vec![event(EventSubject::Network, EventAction::Destroy, &id, &Labels::new())])
    }

    pub fn connect_network(&mut self, network: &str, container: &str, aliases: &[String]) -> Result<Vec<EngineEvent>> {
        if !self.networks.contains_key(network) {
            return Err(not_found(format!("network {network}")));
        }
        let id = self.container_id(container)?;
        self.next_id += 1;
        let index = self.next_id;
        let c = self.containers.get_mut(&id).expect("id resolved above");
        if c.networks.insert(network.to_string(), aliases.to_vec()).is_some() {
            return Ok(Vec::new());
        }
        // A running container gets an address on the network at once, as in Docker.
        if c.info.state == ContainerState::Running {
            let ip = format!("10.{}.{}.{}", 88 + c.networks.len(), (index / 250) % 250, index % 250 + 2);
            c.info.ips.insert(network.to_string(), ip);
        }
        Ok(vec![event(EventSubject::Network, EventAction::Connect, &id, &c.info.labels)])
    }

    pub fn disconnect_network(&mut self, network: &str, container: &str) -> Result<Vec<EngineEvent>> {
        if !self.networks.contains_key(network) {
            return Err(not_found(format!("network {network}")));
        }
        let id = self.container_id(container)?;
        let c = self.containers.get_mut(&id).expect("id resolved above");
        if c.networks.remove(network).is_none() {
            return Ok(Vec::new());
        }
        c.info.ips.remove(network);
        Ok(vec![event(EventSubject::Network, EventAction::Disconnect, &id, &c.info.labels)])
    }
}

/// The first host address of an IPv4 subnet (`10.1.0.0/16` → `10.1.0.1`);
/// other subnets get none.
fn first_host(subnet: &str) -> String {
    let base = subnet.split('/').next().and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok());
    base.map(|ip| std::net::Ipv4Addr::from(u32::from(ip) + 1).to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, labels: &[(&str, &str)]) -> ContainerConfig {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ContainerConfig { name: name.into(), image: "busybox".into(), labels, ..Default::default() }
    }

    fn names(world: &World, wanted: &[(&str, &str)]) -> Vec<String> {
        let wanted: Labels = wanted.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut names: Vec<String> = world.list_containers(&wanted).into_iter().map(|c| c.name).collect();
        names.sort();
        names
    }

    #[test]
    fn labels_and_names_stay_indexed_through_creates_and_removes() {
        let mut world = World::default();
        world.tag_image("sha256:1", "busybox:latest", &Labels::new());
        let a = world.create_container(&config("a", &[("app", "web"), ("tier", "front")])).expect("create").0;
        world.create_container(&config("b", &[("app", "web"), ("tier", "back")])).expect("create");
        world.create_container(&config("c", &[("app", "db")])).expect("create");
        assert_eq!(names(&world, &[]), ["a", "b", "c"]);
        assert_eq!(names(&world, &[("app", "web")]), ["a", "b"]);
        assert_eq!(names(&world, &[("app", "web"), ("tier", "back")]), ["b"]);
        assert_eq!(names(&world, &[("app", "db"), ("tier", "back")]), Vec::<String>::new());
        assert_eq!(names(&world, &[("app", "cache")]), Vec::<String>::new());
        world.remove_container(&a).expect("remove");
        assert_eq!(names(&world, &[("tier", "front")]), Vec::<String>::new());
        assert_eq!(names(&world, &[("app", "web")]), ["b"]);
        assert!(world.create_container(&config("b", &[])).is_err_and(|e| e.is_conflict()), "names are unique");
        let again = world.create_container(&config("a", &[("app", "web"), ("tier", "front")])).expect("name free").0;
        assert_eq!(names(&world, &[("tier", "front")]), ["a"]);
        assert_eq!(world.container_id("a").expect("by name"), again);
        assert_eq!(world.container_id(&again[..12]).expect("by id prefix"), again);
        assert!(world.container_id(&a).is_err(), "the removed container is gone");
    }
}
