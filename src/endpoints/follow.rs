//! Keeps an [`EndpointSet`] current from the store and the engine.
//!
//! A replica leaves the set as soon as it is asked to stop, not when it has
//! exited: Docker's `kill` event with a terminating signal (the first step
//! of `docker stop`) marks it draining, and Podman reports it `stopping`.
//! Requests then drain away during its stop grace period instead of
//! failing at the SIGKILL that ends it. Images whose stop signal is another
//! one (nginx's SIGQUIT) leave at exit. A mark that no exit follows (a
//! SIGTERM the process ignored, sent by `docker kill`) lapses after
//! [`DRAIN_MARK`], seen at the next event or relist. An exit takes the
//! replica out as soon as its event arrives, before the container is
//! inspected: on Podman that can take a second, during which connections
//! to the vanished address would hang.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::api::{AnyObject, Container, Kind, ObjectKey};
use crate::engine::reflector::{Notice, Reflector};
use crate::engine::{labels, ContainerInfo, ContainerState, EngineEvent, EventAction};
use crate::store::{ChangeType, Store};

use super::{Endpoint, EndpointSet};

/// How long a replica sent a terminating signal stays out while it runs.
pub const DRAIN_MARK: Duration = Duration::from_secs(30);

/// Signals that end a process unless it handles them: SIGINT, SIGKILL,
/// SIGTERM (SIGQUIT is left out: the JVM, for one, dumps threads on it).
const TERMINATING: [i32; 3] = [2, 9, 15];

/// What the set is built from.
#[derive(Default)]
struct Sources {
    /// What the set needs of each Container object, by key.
    containers: HashMap<ObjectKey, Declared>,
    /// This instance's engine containers by id.
    replicas: HashMap<String, ContainerInfo>,
    /// Their ids by owning Container: one owner's replicas are replaced
    /// without a pass over everyone's (10,000 Containers starting would
    /// make that quadratic).
    by_owner: HashMap<ObjectKey, Vec<String>>,
    /// Replicas sent a terminating signal, and when.
    draining: HashMap<String, Instant>,
}

/// What an endpoint takes from its Container object: the labels routes
/// and records select by, and the engine names of its networks in the
/// order the spec lists them (the first is its address in DNS). A whole
/// object per Container would be a second copy of the store.
struct Declared {
    labels: BTreeMap<String, String>,
    networks: Vec<(String, String)>,
}

impl Declared {
    fn of(container: &Container) -> Self {
        let key = container.key();
        let networks = container
            .spec
            .networks
            .iter()
            .map(|attachment| {
                let network = ObjectKey::new(Kind::Network, &key.namespace, &attachment.name);
                (attachment.name.clone(), crate::controller::engine_name(&network))
            })
            .collect();
        Declared { labels: container.metadata.labels.clone(), networks }
    }
}

impl Sources {
    fn build(&self) -> EndpointSet {
        let endpoints = self.replicas.values().filter_map(|info| self.endpoint(info)).collect();
        EndpointSet::new(endpoints)
    }

    fn endpoint(&self, info: &ContainerInfo) -> Option<Endpoint> {
        let key = ObjectKey::new(Kind::Container, info.labels.get(labels::NAMESPACE)?, info.labels.get(labels::NAME)?);
        let replica = info.labels.get(labels::REPLICA)?.parse().ok()?;
        let object = self.containers.get(&key);
        let mut remaining: BTreeMap<&String, IpAddr> =
            info.ips.iter().filter_map(|(network, ip)| Some((network, ip.parse().ok()?))).collect();
        let mut addresses = Vec::new();
        for (name, engine_name) in object.map(|o| o.networks.as_slice()).unwrap_or_default() {
            if let Some(ip) = remaining.remove(engine_name) {
                addresses.push((name.clone(), ip));
            }
        }
        addresses.extend(remaining.into_iter().map(|(network, ip)| (network.clone(), ip)));
        Some(Endpoint {
            labels: object.map(|o| o.labels.clone()).unwrap_or_default(),
            container: key,
            replica,
            container_id: info.id.clone(),
            addresses,
            host_ports: info.host_ports.clone(),
            running: info.state == ContainerState::Running && !info.stopping && !self.is_draining(&info.id),
            exited: !matches!(info.state, ContainerState::Running | ContainerState::Paused),
            health: info.health,
        })
    }

    /// Replaces `owner`'s replicas with `replicas`.
    fn set_replicas_of(&mut self, owner: &ObjectKey, replicas: Vec<ContainerInfo>) {
        for id in self.by_owner.remove(owner).unwrap_or_default() {
            self.replicas.remove(&id);
        }
        if !replicas.is_empty() {
            self.by_owner.insert(owner.clone(), replicas.iter().map(|r| r.id.clone()).collect());
        }
        self.replicas.extend(replicas.into_iter().map(|r| (r.id.clone(), r)));
    }

    /// Replaces every replica with `grouped`, the reflector's by owner.
    fn set_all_replicas(&mut self, grouped: Vec<(ObjectKey, Vec<ContainerInfo>)>) {
        self.replicas.clear();
        self.by_owner.clear();
        for (owner, replicas) in grouped {
            self.set_replicas_of(&owner, replicas);
        }
    }

    fn is_draining(&self, id: &str) -> bool {
        self.draining.get(id).is_some_and(|since| since.elapsed() < DRAIN_MARK)
    }

    /// Notes what an event says before the container is inspected (which
    /// Podman can hold up for a second while it cleans up after an exit): a
    /// terminating signal marks the replica draining, an exit takes it out
    /// at once, a start (again) clears the mark. `true` when the set may
    /// have changed.
    fn note(&mut self, event: &EngineEvent) -> bool {
        match event.action {
            EventAction::Kill(Some(signal)) if TERMINATING.contains(&signal) => {
                self.draining.insert(event.id.clone(), Instant::now());
                true
            }
            EventAction::Die => {
                self.draining.remove(&event.id);
                if let Some(replica) = self.replicas.get_mut(&event.id) {
                    replica.state = ContainerState::Exited;
                }
                true
            }
            EventAction::Start | EventAction::Destroy => self.draining.remove(&event.id).is_some(),
            _ => false,
        }
    }

    fn load_containers(&mut self, store: &Store) {
        match store.list(Some(Kind::Container), None) {
            Ok(objects) => {
                self.containers = objects
                    .into_iter()
                    .filter_map(|o| match o {
                        AnyObject::Container(c) => Some((c.key(), Declared::of(&c))),
                        _ => None,
                    })
                    .collect();
            }
            Err(e) => tracing::warn!("endpoints: listing Containers failed: {e:#}"),
        }
    }
}

/// Follows the store and the engine (through `reflector`, which must be
/// running) forever, publishing a new snapshot on `publish` whenever the
/// set changes. Meant to be spawned; it ends only when every receiver is
/// gone.
pub async fn follow(store: Store, reflector: Reflector, publish: watch::Sender<Arc<EndpointSet>>) {
    // Subscribe before reading, so no change falls in between.
    let mut changes = store.watch();
    let mut notices = reflector.subscribe();
    let mut sources = Sources::default();
    sources.load_containers(&store);
    sources.set_all_replicas(reflector.cached_containers_by_owner());
    let mut pace = Pace::default();
    pace.publish(&publish, &sources);
    let mut batch = Batch::default();
    loop {
        let wait = pace.wait();
        tokio::select! {
            // Whatever is ready is taken before the set is built again
            // (the last arm), so a burst of events, a stack starting,
            // costs one build rather than one per event.
            biased;
            // Cancel-safe: only observes the channel.
            _ = publish.closed() => return,
            // Cancel-safe: broadcast `recv` keeps its place when another arm wins.
            notice = notices.recv() => match notice {
                Ok(Notice::Event(event)) => {
                    tracing::debug!(id = %event.id, action = ?event.action, "endpoints: engine event");
                    if !sources.note(&event) {
                        continue;
                    }
                }
                Ok(Notice::Changed(owners)) => {
                    for owner in owners.iter().filter(|o| o.kind == Kind::Container) {
                        sources.set_replicas_of(owner, reflector.cached_containers_of(owner));
                    }
                }
                Ok(Notice::WrittenThrough(owner)) => {
                    sources.set_replicas_of(&owner, reflector.cached_containers_of(&owner));
                }
                Ok(Notice::Resynced) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    sources.draining.retain(|_, since| since.elapsed() < DRAIN_MARK);
                    sources.set_all_replicas(reflector.cached_containers_by_owner());
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // Cancel-safe: broadcast `recv` keeps its place when another arm wins.
            change = changes.recv() => match change {
                Ok(change) if change.object.kind() == Kind::Container && !change.status_only => {
                    let key = change.object.key();
                    match (change.change, change.object) {
                        (ChangeType::Deleted, _) => { sources.containers.remove(&key); }
                        (_, AnyObject::Container(c)) => { sources.containers.insert(key, Declared::of(&c)); }
                        _ => {}
                    }
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => sources.load_containers(&store),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // Nothing else is ready: publish what was taken (once the
            // last build's pause is over).
            () = async move { if let Some(wait) = wait { tokio::time::sleep(wait).await } }, if batch.pending() => {
                pace.publish(&publish, &sources);
                batch = Batch::default();
                continue;
            }
        }
        if batch.taken() && wait.is_none() {
            pace.publish(&publish, &sources);
            batch = Batch::default();
        }
    }
}

/// Changes taken since the set was last published. A batch is published
/// once nothing else is ready, or once it is [`MAX_BATCH`] changes or
/// [`MAX_BATCH_AGE`] old, so a steady flood still gets through.
#[derive(Default)]
struct Batch {
    changes: usize,
    since: Option<Instant>,
}

/// Most changes taken before the set is published anyway.
const MAX_BATCH: usize = 512;
/// Longest a change waits to be published while others keep coming.
const MAX_BATCH_AGE: Duration = Duration::from_millis(50);

impl Batch {
    fn pending(&self) -> bool {
        self.changes > 0
    }

    /// Counts one more change; `true` when the batch should go now.
    fn taken(&mut self) -> bool {
        self.changes += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        self.changes >= MAX_BATCH || since.elapsed() >= MAX_BATCH_AGE
    }
}

/// A build is followed by a pause of `PACE - 1` times its cost, so building
/// takes at most `1/PACE` of the follower's time: a build is a pass over
/// every replica, and a flood of changes at 10,000 replicas would otherwise
/// cost a pass per change (quadratic). A small set builds in microseconds
/// and is published at once; 10,000 replicas wait tens of milliseconds.
const PACE: u32 = 10;

/// When the next build may go.
#[derive(Default)]
struct Pace {
    next: Option<Instant>,
}

impl Pace {
    /// How long until a build may go, or `None` when it may now.
    fn wait(&self) -> Option<Duration> {
        let left = self.next?.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Builds the set, publishes it when it changed, and puts the next
    /// build off by `PACE - 1` times this one's cost.
    fn publish(&mut self, publish: &watch::Sender<Arc<EndpointSet>>, sources: &Sources) {
        let started = Instant::now();
        super::publish(publish, sources.build());
        let cost = started.elapsed();
        self.next = Some(Instant::now() + cost * (PACE - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ContainerSpec, IntoAny, Object};
    use crate::engine::fake::FakeEngine;
    use crate::engine::{ContainerConfig, Engine, Health, NetworkAttachment, NetworkConfig};
    use crate::store::WriteBatch;

    /// Waits for a snapshot that satisfies `check`, at most a second.
    async fn within_a_second(receiver: &mut watch::Receiver<Arc<EndpointSet>>, check: impl Fn(&EndpointSet) -> bool) {
        tokio::time::timeout(Duration::from_secs(1), receiver.wait_for(|set| check(set)))
            .await
            .expect("the endpoint set follows within a second")
            .expect("the follower runs");
    }

    #[tokio::test]
    async fn replicas_enter_and_leave_with_engine_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut web = Object::new("web", ContainerSpec { image: Some("busybox".into()), ..ContainerSpec::default() });
        web.metadata.labels.insert("app".into(), "web".into());
        web.spec.networks.push(crate::api::container::NetworkAttachment { name: "app".into(), ..Default::default() });
        store.commit(WriteBatch::new().put(web.clone().into_any())).unwrap();
        let fake = Arc::new(FakeEngine::new());
        fake.preload_image("busybox");
        let labels = labels::owner_labels("test", &web.key());
        fake.create_network(&NetworkConfig {
            name: "berth-default-app".into(),
            driver: "bridge".into(),
            labels: labels.clone(),
            ..NetworkConfig::default()
        })
        .await
        .unwrap();
        let mut container_labels = labels;
        container_labels.insert(labels::REPLICA.into(), "0".into());
        let config = ContainerConfig {
            name: "berth-default-web-0".into(),
            image: "busybox".into(),
            command: Some(vec!["sleep".into(), "1000".into()]),
            labels: container_labels,
            networks: vec![NetworkAttachment { network: "berth-default-app".into(), aliases: Vec::new() }],
            ..ContainerConfig::default()
        };
        let (tx, mut endpoints) = watch::channel(Arc::new(EndpointSet::default()));
        let reflector = Reflector::new(fake.clone(), "test");
        tokio::spawn(reflector.clone().run(Duration::from_secs(3600)));
        reflector.observed().await;
        tokio::spawn(follow(store, reflector, tx));
        let id = fake.create_container(&config).await.unwrap();
        fake.start_container(&id).await.unwrap();
        within_a_second(&mut endpoints, |set| set.endpoints.iter().any(Endpoint::ready)).await;
        let endpoint = endpoints.borrow().endpoints[0].clone();
        assert_eq!(endpoint.target_name(), "Container/default/web#0");
        assert_eq!(endpoint.labels.get("app").map(String::as_str), Some("web"), "the Container's labels");
        assert_eq!(endpoint.addresses.first().map(|(n, _)| n.as_str()), Some("app"), "by Network object name");
        fake.set_health(&id, Health::Unhealthy).unwrap();
        within_a_second(&mut endpoints, |set| set.endpoints.iter().all(|e| !e.ready())).await;
        fake.set_health(&id, Health::Healthy).unwrap();
        within_a_second(&mut endpoints, |set| set.endpoints.iter().any(Endpoint::ready)).await;
        // A stop drains the replica at once, while it runs out its grace.
        let stop = {
            let (fake, id) = (fake.clone(), id.clone());
            tokio::spawn(async move { fake.stop_container(&id, Duration::from_millis(1500)).await })
        };
        within_a_second(&mut endpoints, |set| set.endpoints.iter().all(|e| !e.running)).await;
        assert_eq!(fake.inspect_container(&id).await.unwrap().state, ContainerState::Running, "in its grace");
        assert!(endpoints.borrow().endpoints.iter().all(|e| !e.exited), "draining, not exited: it finishes requests");
        stop.await.unwrap().unwrap();
        fake.start_container(&id).await.unwrap();
        fake.set_health(&id, Health::Healthy).unwrap();
        within_a_second(&mut endpoints, |set| set.endpoints.iter().any(Endpoint::ready)).await;
        fake.crash_container(&id, 1).unwrap();
        within_a_second(&mut endpoints, |set| set.endpoints.iter().all(|e| !e.running && e.exited)).await;
        fake.remove_container(&id).await.unwrap();
        within_a_second(&mut endpoints, |set| set.endpoints.is_empty()).await;
    }
}
