//! The in-memory fake engine: Docker's semantics without Docker.
//!
//! It serves the controller's fast tests, fault injection and scale
//! benchmarks. It keeps Docker's rules (see [`state`]), publishes the same
//! events, moves health from `starting` to `healthy` after the check
//! interval (in tokio time, so paused-time tests control it), and can be
//! scripted: fail the next calls of an operation, fail every mutation after
//! the first N (a crash at that point), add latency, or drop the event
//! streams. It records every call, so a test can assert that a resync made
//! no mutating call at all.
//!
//! A [`FakeEngine`] is a handle: clones share one world, which is how a test
//! "restarts berth" against the same engine.
//!
//! It never stands in for Docker or Podman in a test that claims real
//! behaviour; the engine conformance suite runs the same checks on all three.

mod state;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;

use super::{
    BuildOutput, BuildRequest, ContainerConfig, ContainerInfo, Engine, EngineError, EngineEvent, EngineInfo, Health,
    ImageInfo, Labels, NetworkConfig, NetworkInfo, RestartPolicy, Result, VolumeConfig, VolumeInfo,
};
use state::World;

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Trait method name, e.g. `create_container`.
    pub op: &'static str,
    /// What it was called on.
    pub target: String,
    /// Whether it changes the engine.
    pub mutating: bool,
}

/// Scripted failures.
#[derive(Debug, Default)]
struct Faults {
    /// Operation name (or `*`) and how many more calls of it fail.
    next: VecDeque<(String, usize)>,
    /// Mutating calls still allowed before every mutation fails.
    mutations_left: Option<usize>,
}

struct Inner {
    /// A std mutex: never held across an await.
    world: Mutex<World>,
    events: broadcast::Sender<EngineEvent>,
    faults: Mutex<Faults>,
    calls: Mutex<Vec<Call>>,
    latency: Mutex<Duration>,
    /// Bumped to end every open event stream.
    stream_epoch: AtomicU64,
}

/// A handle on an in-memory engine.
#[derive(Clone)]
pub struct FakeEngine {
    inner: Arc<Inner>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeEngine {
    /// An empty engine.
    pub fn new() -> Self {
        FakeEngine {
            inner: Arc::new(Inner {
                world: Mutex::new(World::default()),
                events: broadcast::channel(65_536).0,
                faults: Mutex::new(Faults::default()),
                calls: Mutex::new(Vec::new()),
                latency: Mutex::new(Duration::ZERO),
                stream_epoch: AtomicU64::new(0),
            }),
        }
    }

    /// Makes an image available under `tag`, as if pulled earlier.
    pub fn preload_image(&self, tag: &str) {
        let id = format!("sha256:{}", super::labels::sha256_hex(tag.as_bytes()));
        lock(&self.inner.world).tag_image(&id, tag, &Labels::new());
    }

    /// The next `times` calls of `op` (a trait method name, or `*` for any)
    /// fail with [`EngineError::Injected`].
    pub fn fail_next(&self, op: &str, times: usize) {
        lock(&self.inner.faults).next.push_back((op.to_string(), times));
    }

    /// After `n` more successful mutating calls, every mutating call fails:
    /// the engine as a crashed controller last saw it.
    pub fn fail_mutations_after(&self, n: usize) {
        lock(&self.inner.faults).mutations_left = Some(n);
    }

    /// Removes every scripted failure.
    pub fn clear_faults(&self) {
        *lock(&self.inner.faults) = Faults::default();
    }

    /// Adds `latency` to every call.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.inner.latency) = latency;
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner.calls).clone()
    }

    /// The mutating calls so far.
    pub fn mutating_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.mutating).collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        lock(&self.inner.calls).clear();
    }

    /// Ends every open event stream, as a dropped connection would.
    pub fn drop_event_streams(&self) {
        self.inner.stream_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Every container, as `inspect` shows it.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        lock(&self.inner.world).list_containers(&Labels::new())
    }

    /// Every volume.
    pub fn volumes(&self) -> Vec<VolumeInfo> {
        lock(&self.inner.world).list_volumes(&Labels::new())
    }

    /// Every network.
    pub fn networks(&self) -> Vec<NetworkInfo> {
        lock(&self.inner.world).list_networks(&Labels::new())
    }

    /// Sets a running container's health, as its check would.
    pub fn set_health(&self, container: &str, health: Health) -> Result<()> {
        let events = lock(&self.inner.world).set_health(container, None, health)?;
        self.publish(events);
        Ok(())
    }

    /// The container's process exits with `code` by itself; the engine
    /// applies the restart policy, as Docker does for a crash.
    pub fn crash_container(&self, container: &str, code: i64) -> Result<()> {
        let (events, restart) = {
            let mut world = lock(&self.inner.world);
            let id = world.container_id(container)?;
            let events = world.exit_container(&id, code)?;
            let policy = world.containers[&id].config.restart;
            let restart = policy == RestartPolicy::Always || (policy == RestartPolicy::OnFailure && code != 0);
            (events, restart.then_some(id))
        };
        self.publish(events);
        if let Some(id) = restart {
            let (run, events) = {
                let mut world = lock(&self.inner.world);
                if let Some(c) = world.containers.get_mut(&id) {
                    c.info.restart_count += 1;
                }
                world.start_container(&id)?
            };
            self.publish(events);
            self.schedule_health(&id, run);
        }
        Ok(())
    }

    fn publish(&self, events: Vec<EngineEvent>) {
        for event in events {
            // Nobody listening is fine.
            let _ = self.inner.events.send(event);
        }
    }

    /// Marks a fresh run healthy once its first check interval has passed.
    fn schedule_health(&self, id: &str, run: u64) {
        let health = lock(&self.inner.world).containers.get(id).and_then(|c| c.config.health.clone());
        let Some(health) = health else { return };
        let engine = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(health.start_period.max(health.interval).max(Duration::from_millis(1))).await;
            let events = lock(&engine.inner.world).set_health(&id, Some(run), Health::Healthy).unwrap_or_default();
            engine.publish(events);
        });
    }

    /// Records a call, waits the configured latency and applies scripted faults.
    async fn enter(&self, op: &'static str, target: &str, mutating: bool) -> Result<()> {
        let latency = *lock(&self.inner.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        lock(&self.inner.calls).push(Call { op, target: target.to_string(), mutating });
        let mut faults = lock(&self.inner.faults);
        if let Some((_, left)) = faults.next.iter_mut().find(|(name, left)| (name == op || name == "*") && *left > 0) {
            *left -= 1;
            return Err(EngineError::Injected { operation: format!("{op} {target}") });
        }
        if mutating {
            match faults.mutations_left {
                Some(0) => return Err(EngineError::Injected { operation: format!("{op} {target}") }),
                Some(ref mut left) => *left -= 1,
                None => {}
            }
        }
        Ok(())
    }

    /// Runs a world operation that yields events, then publishes them.
    fn mutate<T>(&self, f: impl FnOnce(&mut World) -> Result<(T, Vec<super::EngineEvent>)>) -> Result<T> {
        let (value, events) = f(&mut lock(&self.inner.world))?;
        self.publish(events);
        Ok(value)
    }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn info(&self) -> Result<EngineInfo> {
        self.enter("info", "", false).await?;
        Ok(EngineInfo { kind: "fake".into(), version: env!("CARGO_PKG_VERSION").into(), endpoint: "memory".into() })
    }

    async fn list_containers(&self, labels: &Labels) -> Result<Vec<ContainerInfo>> {
        self.enter("list_containers", "", false).await?;
        Ok(lock(&self.inner.world).list_containers(labels))
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        self.enter("inspect_container", id, false).await?;
        lock(&self.inner.world).inspect_container(id)
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        self.enter("create_container", &config.name, true).await?;
        self.mutate(|world| world.create_container(config))
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.enter("start_container", id, true).await?;
        let run = self.mutate(|world| world.start_container(id))?;
        // Resolve the id in its own statement: the guard must be gone before
        // `schedule_health` locks the world again.
        let resolved = lock(&self.inner.world).container_id(id)?;
        self.schedule_health(&resolved, run);
        Ok(())
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> Result<()> {
        self.enter("stop_container", id, true).await?;
        self.mutate(|world| world.exit_container(id, 0).map(|events| ((), events)))
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.enter("remove_container", id, true).await?;
        self.mutate(|world| world.remove_container(id).map(|events| ((), events)))
    }

    async fn container_logs(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        self.enter("container_logs", id, false).await?;
        let info = lock(&self.inner.world).inspect_container(id)?;
        let lines = vec![format!("fake engine: container {} is {}", info.name, info.state.as_str())];
        Ok(lines.into_iter().rev().take(tail).collect())
    }

    async fn stream_logs(&self, id: &str, tail: usize, follow: bool) -> Result<BoxStream<'static, Result<String>>> {
        let lines = self.container_logs(id, tail).await?;
        let backlog = futures::stream::iter(lines.into_iter().map(Ok));
        if !follow {
            return Ok(backlog.boxed());
        }
        // Following ends when the container stops running, as on Docker.
        let (engine, id) = (self.clone(), id.to_string());
        let until_stopped = futures::stream::unfold((), move |()| {
            let (engine, id) = (engine.clone(), id.clone());
            async move {
                loop {
                    let running = lock(&engine.inner.world)
                        .inspect_container(&id)
                        .is_ok_and(|c| c.state == super::ContainerState::Running);
                    if !running {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Ok(backlog.chain(until_stopped.map(Ok::<String, EngineError>)).boxed())
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        self.enter("inspect_image", reference, false).await?;
        Ok(lock(&self.inner.world).inspect_image(reference))
    }

    async fn build_image(&self, request: &BuildRequest) -> Result<BuildOutput> {
        self.enter("build_image", &request.tag, true).await?;
        lock(&self.inner.world).build_image(request)
    }

    async fn pull_image(&self, reference: &str) -> Result<()> {
        self.enter("pull_image", reference, true).await?;
        self.preload_image(reference);
        Ok(())
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        self.enter("remove_image", reference, true).await?;
        lock(&self.inner.world).remove_image(reference)
    }

    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<VolumeInfo>> {
        self.enter("list_volumes", "", false).await?;
        Ok(lock(&self.inner.world).list_volumes(labels))
    }

    async fn create_volume(&self, config: &VolumeConfig) -> Result<VolumeInfo> {
        self.enter("create_volume", &config.name, true).await?;
        self.mutate(|world| world.create_volume(config))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.enter("remove_volume", name, true).await?;
        self.mutate(|world| world.remove_volume(name).map(|events| ((), events)))
    }

    async fn list_networks(&self, labels: &Labels) -> Result<Vec<NetworkInfo>> {
        self.enter("list_networks", "", false).await?;
        Ok(lock(&self.inner.world).list_networks(labels))
    }

    async fn create_network(&self, config: &NetworkConfig) -> Result<NetworkInfo> {
        self.enter("create_network", &config.name, true).await?;
        self.mutate(|world| world.create_network(config))
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        self.enter("remove_network", name, true).await?;
        self.mutate(|world| world.remove_network(name).map(|events| ((), events)))
    }

    async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> Result<()> {
        self.enter("connect_network", &format!("{network}/{container}"), true).await?;
        self.mutate(|world| world.connect_network(network, container, aliases).map(|events| ((), events)))
    }

    async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        self.enter("disconnect_network", &format!("{network}/{container}"), true).await?;
        self.mutate(|world| world.disconnect_network(network, container).map(|events| ((), events)))
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<EngineEvent>>> {
        self.enter("events", "", false).await?;
        let epoch = self.inner.stream_epoch.load(Ordering::SeqCst);
        let inner = self.inner.clone();
        let receiver = self.inner.events.subscribe();
        let stream = tokio_stream::wrappers::BroadcastStream::new(receiver)
            .take_while(move |_| futures::future::ready(inner.stream_epoch.load(Ordering::SeqCst) == epoch))
            .map(|item| {
                item.map_err(|lagged| EngineError::Failed { operation: "events".into(), message: lagged.to_string() })
            });
        Ok(stream.boxed())
    }
}
