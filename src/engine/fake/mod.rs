//! The in-memory fake engine: Docker's semantics without Docker.
//!
//! It serves the controller's fast tests, fault injection and scale
//! benchmarks. It keeps Docker's rules (see [`state`]), publishes the same
//! events, and runs its containers' commands with a small documented
//! process model ([`process`], [`shell`]): output becomes logs, scripts
//! exit with their codes, health check commands decide `starting` →
//! `healthy` → `unhealthy`, servers answer clients that name them by
//! alias, a stop waits the grace period. Builds check their `RUN` steps
//! ([`build`]). Time is tokio's, so paused-time tests control it. It can be
//! scripted: fail the next calls of an operation, fail every mutation after
//! the first N (a crash at that point), add latency, or drop the event
//! streams. It records every call, so a test can assert that a resync made
//! no mutating call at all.
//!
//! A [`FakeEngine`] is a handle: clones share one world, which is how a test
//! "restarts berth" against the same engine.
//!
//! It never stands in for Docker or Podman in a test that claims real
//! behaviour; the engine conformance suite runs the same checks on all
//! three, and the fake passes them unchanged.

mod archive;
mod build;
mod process;
mod shell;
mod state;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;

use super::{
    BuildOutput, BuildRequest, ContainerConfig, ContainerInfo, Engine, EngineError, EngineEvent, EngineInfo,
    ExecOutput, ExecRequest, ExecSession, Health, ImageInfo, Labels, NetworkConfig, NetworkInfo, Result, TerminalSize,
    VolumeConfig, VolumeInfo,
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
    /// An outage: every call fails, and `events` answers a stream that
    /// fails on its first poll, as Docker's does with its socket gone.
    down: std::sync::atomic::AtomicBool,
    /// Exit codes of the latest execs, at most [`EXECS_KEPT`].
    execs: Mutex<VecDeque<(String, Option<i64>)>>,
}

/// How many execs' exit codes the fake remembers.
const EXECS_KEPT: usize = 256;

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
                down: Default::default(),
                execs: Mutex::default(),
            }),
        }
    }

    /// Makes an image available under `tag`, as if pulled earlier.
    pub fn preload_image(&self, tag: &str) {
        let id = format!("sha256:{}", super::labels::sha256_hex(tag.as_bytes()));
        let tagged = lock(&self.inner.world).tag_image(&id, tag, &Labels::new());
        self.publish(vec![tagged]);
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

    /// Starts or ends an outage (see `Inner::down`); starting one ends the
    /// open event streams.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
        if down {
            self.drop_event_streams();
        }
    }

    /// Ends every open event stream, as a dropped connection would.
    pub fn drop_event_streams(&self) {
        self.inner.stream_epoch.fetch_add(1, Ordering::SeqCst);
        // A stream sees the new epoch on its next item: send one, which no
        // open stream yields.
        let wake = super::EngineEvent {
            subject: super::EventSubject::Container,
            action: super::EventAction::Other("connection dropped".into()),
            id: String::new(),
            labels: Labels::new(),
        };
        let _ = self.inner.events.send(wake);
    }

    /// Every container, as `inspect` shows it.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        lock(&self.inner.world).list_containers(&Labels::new())
    }

    /// The config a container was created with.
    pub fn container_config(&self, id: &str) -> Result<ContainerConfig> {
        let world = lock(&self.inner.world);
        Ok(world.containers[&world.container_id(id)?].config.clone())
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
        let (id, run) = {
            let world = lock(&self.inner.world);
            let id = world.container_id(container)?;
            let run = world.containers[&id].run;
            (id, run)
        };
        self.process_exited(&id, run, code);
        Ok(())
    }

    fn publish(&self, events: Vec<EngineEvent>) {
        for event in events {
            // Nobody listening is fine.
            let _ = self.inner.events.send(event);
        }
    }

    /// Records a call, waits the configured latency and applies scripted faults.
    async fn enter(&self, op: &'static str, target: &str, mutating: bool) -> Result<()> {
        let latency = *lock(&self.inner.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        lock(&self.inner.calls).push(Call { op, target: target.to_string(), mutating });
        if self.inner.down.load(Ordering::SeqCst) && op != "events" {
            return Err(EngineError::Injected { operation: format!("{op} {target} (engine down)") });
        }
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
        let (resolved, run, events) = {
            let mut world = lock(&self.inner.world);
            let resolved = world.container_id(id)?;
            let (run, events) = world.start_container(&resolved)?;
            (resolved, run, events)
        };
        // No event: it was running already, its process too.
        let started = !events.is_empty();
        self.publish(events);
        if started {
            self.spawn_run(&resolved, run);
        }
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        self.enter("stop_container", id, true).await?;
        self.stop_run(id, grace).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.enter("remove_container", id, true).await?;
        self.mutate(|world| world.remove_container(id).map(|events| ((), events)))
    }

    async fn container_logs(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        self.enter("container_logs", id, false).await?;
        let world = lock(&self.inner.world);
        let logs = &world.containers[&world.container_id(id)?].logs;
        Ok(logs[logs.len().saturating_sub(tail)..].to_vec())
    }

    async fn stream_logs(&self, id: &str, tail: usize, follow: bool) -> Result<BoxStream<'static, Result<String>>> {
        let backlog = self.container_logs(id, tail).await?;
        if !follow {
            return Ok(futures::stream::iter(backlog.into_iter().map(Ok)).boxed());
        }
        // New lines as they come, until the container stops running (as on
        // Docker); lines are read by position, so none is lost or repeated.
        let (engine, id) = (self.clone(), lock(&self.inner.world).container_id(id)?);
        let seen = lock(&self.inner.world).containers.get(&id).map_or(0, |c| c.logs.len());
        let news = futures::stream::unfold(seen, move |seen| {
            let (engine, id) = (engine.clone(), id.clone());
            async move {
                loop {
                    let (lines, running) = {
                        let world = lock(&engine.inner.world);
                        let container = world.containers.get(&id)?;
                        let running = container.info.state == super::ContainerState::Running;
                        (container.logs[seen.min(container.logs.len())..].to_vec(), running)
                    };
                    if !lines.is_empty() {
                        let next = seen + lines.len();
                        return Some((futures::stream::iter(lines.into_iter().map(Ok)), next));
                    }
                    if !running {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Ok(futures::stream::iter(backlog.into_iter().map(Ok)).chain(news.flatten()).boxed())
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        self.enter("inspect_image", reference, false).await?;
        Ok(lock(&self.inner.world).inspect_image(reference))
    }

    async fn build_image(&self, request: &BuildRequest) -> Result<BuildOutput> {
        self.enter("build_image", &request.tag, true).await?;
        self.mutate(|world| world.build_image(request))
    }

    async fn pull_image(&self, reference: &str) -> Result<()> {
        self.enter("pull_image", reference, true).await?;
        self.preload_image(reference);
        Ok(())
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        self.enter("remove_image", reference, true).await?;
        self.mutate(|world| Ok(((), world.remove_image(reference)?)))
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

    /// Runs the command with the fake's shell, which reads no input: the
    /// whole output arrives when the command ends. A TTY merges stderr into
    /// stdout, as a terminal does; its size is accepted and not used.
    async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecSession> {
        self.enter("exec", container, false).await?;
        let exec_id = format!("exec-{}", uuid::Uuid::new_v4().simple());
        let running = self.start_exec(container, &request.command)?;
        {
            let mut execs = lock(&self.inner.execs);
            if execs.len() == EXECS_KEPT {
                execs.pop_front();
            }
            execs.push_back((exec_id.clone(), None));
        }
        let engine = self.clone();
        let id = exec_id.clone();
        let output = futures::stream::once(async move {
            let (code, output) = running.await.unwrap_or((137, Vec::new()));
            if let Some(entry) = lock(&engine.inner.execs).iter_mut().find(|(exec, _)| *exec == id) {
                entry.1 = Some(i64::from(code));
            }
            output
        })
        .filter(|output| std::future::ready(!output.is_empty()))
        .map(|output| Ok(ExecOutput::Stdout(output.into())));
        Ok(ExecSession { id: exec_id, output: output.boxed(), input: Box::pin(tokio::io::sink()) })
    }

    async fn resize_exec(&self, exec: &str, _size: TerminalSize) -> Result<()> {
        self.enter("resize_exec", exec, false).await?;
        self.exec_exit_code(exec).await.map(drop)
    }

    async fn exec_exit_code(&self, exec: &str) -> Result<Option<i64>> {
        let execs = lock(&self.inner.execs);
        let found = execs.iter().find(|(id, _)| id == exec);
        found.map(|(_, code)| *code).ok_or_else(|| EngineError::NotFound { what: format!("exec {exec}") })
    }

    async fn copy_from(&self, container: &str, path: &str) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
        self.enter("copy_from", container, false).await?;
        let archive = self.archive(container, path)?;
        Ok(futures::stream::iter([Ok(bytes::Bytes::from(archive))]).boxed())
    }

    async fn copy_to(&self, container: &str, directory: &str, tar: bytes::Bytes) -> Result<()> {
        self.enter("copy_to", container, true).await?;
        self.extract(container, directory, &tar)
    }

    /// The fake's processes use nothing: every figure is 0 but the memory
    /// limit, the container's or 1 GiB.
    async fn stats(&self, container: &str) -> Result<super::ContainerStats> {
        self.enter("stats", container, false).await?;
        let world = lock(&self.inner.world);
        let resolved = world.container_id(container)?;
        let limit = world.containers[&resolved].config.memory_bytes.filter(|l| *l > 0).unwrap_or(1 << 30);
        Ok(super::ContainerStats { memory_limit_bytes: limit, ..Default::default() })
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<EngineEvent>>> {
        self.enter("events", "", false).await?;
        if self.inner.down.load(Ordering::SeqCst) {
            let failure = EngineError::Injected { operation: "events (engine down)".into() };
            return Ok(futures::stream::once(futures::future::ready(Err(failure))).boxed());
        }
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
