//! The fake engine's processes: each run of a container is a task that
//! interprets its command with [`shell`](super::shell), over an in-memory
//! filesystem and the fake networks.
//!
//! - **Command**: entrypoint then command, as the engines join them; none
//!   at all (an image's default, which the fake does not know) runs until
//!   stopped, like a server.
//! - **Files**: paths resolve through the container's mounts, longest
//!   target first: a volume's files are shared by every container that
//!   mounts it and outlive them; a tmpfs starts empty on every run; a bind
//!   mount is a store of its own per host path (the host's disk is never
//!   touched); the rest is the container's root filesystem, kept across
//!   restarts. Read-only mounts and a read-only root refuse writes.
//!   `/proc/mounts`, `/proc/self/status` (`NoNewPrivs`), `/etc/resolv.conf`
//!   and `/etc/hostname` are made up from the config.
//! - **Names**: a client reaches `127.0.0.1`/`localhost` (itself), or a
//!   running container on a network they share by its name or one of its
//!   aliases there, as Docker's and Podman's DNS resolve them.
//! - **Exit**: the exit code is the script's; the restart policy restarts
//!   it after a delay (100 ms, doubling per restart up to 6.4 s), unless
//!   the exit was a stop.
//! - **Health**: the check command runs in the container like an exec, every
//!   interval from the start; `retries` failures in a row (failures within
//!   the start period do not count) make it unhealthy, one success healthy.
//! - **Stop**: nothing handles SIGTERM (see the shell), so a stop waits the
//!   grace period for the process to end by itself, then kills it (137).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::shell::{Host, Shell};
use super::state::{event, World};
use super::{lock, FakeEngine};
use crate::engine::{ContainerState, EventAction, EventSubject, Health, MountSource, RestartPolicy};

/// The first restart delay; it doubles per restart, at most six times.
const RESTART_DELAY: Duration = Duration::from_millis(100);

/// Where a path of a container lives: a store and the path inside it.
pub(super) struct Located {
    pub store: String,
    pub path: String,
    pub writable: bool,
}

impl World {
    /// Resolves `path` in container `id` through its mounts.
    pub(super) fn locate(&self, id: &str, path: &str) -> Option<Located> {
        let container = self.containers.get(id)?;
        let under = |target: &str| path == target || path.starts_with(&format!("{}/", target.trim_end_matches('/')));
        let mount =
            container.config.mounts.iter().filter(|mount| under(&mount.target)).max_by_key(|mount| mount.target.len());
        Some(match mount {
            Some(mount) => {
                let store = match &mount.source {
                    MountSource::Volume(name) => format!("volume:{name}"),
                    MountSource::Bind(host) => format!("bind:{host}"),
                    MountSource::Tmpfs(_) => format!("tmpfs:{id}:{}", mount.target),
                };
                let inner = path[mount.target.trim_end_matches('/').len()..].to_string();
                Located { store, path: inner, writable: !mount.read_only }
            }
            None => Located {
                store: format!("root:{id}"),
                path: path.to_string(),
                writable: !container.config.read_only_rootfs
                    && !["/proc/", "/sys/", "/dev/"].iter().any(|p| path.starts_with(p)),
            },
        })
    }

    /// The files the fake makes up from a container's config.
    fn synthetic(&self, id: &str, path: &str) -> Option<Vec<u8>> {
        let container = self.containers.get(id)?;
        let config = &container.config;
        let text = match path {
            "/proc/mounts" => {
                let mut lines = vec!["overlay / overlay rw 0 0".to_string()];
                for mount in &config.mounts {
                    let kind = if matches!(mount.source, MountSource::Tmpfs(_)) { "tmpfs" } else { "ext4" };
                    let mode = if mount.read_only { "ro" } else { "rw" };
                    lines.push(format!("{kind} {} {kind} {mode} 0 0", mount.target));
                }
                lines.join("\n") + "\n"
            }
            "/proc/self/status" => format!("Name:\tsh\nNoNewPrivs:\t{}\n", u8::from(config.no_new_privileges)),
            "/etc/resolv.conf" if !config.dns.is_empty() => {
                config.dns.iter().map(|server| format!("nameserver {server}\n")).collect()
            }
            "/etc/resolv.conf" => "nameserver 10.88.0.1\n".into(),
            "/etc/hostname" => format!("{}\n", hostname(&container.config.hostname, id)),
            _ => return None,
        };
        Some(text.into_bytes())
    }

    /// The running container `host` names, seen from container `from`.
    fn resolve(&self, from: &str, host: &str) -> Option<String> {
        if host == "127.0.0.1" || host == "localhost" {
            return Some(from.to_string());
        }
        let client = self.containers.get(from)?;
        self.containers
            .iter()
            .filter(|(_, c)| c.info.state == ContainerState::Running)
            .find(|(id, c)| {
                c.networks.iter().any(|(network, aliases)| {
                    client.networks.contains_key(network)
                        && (c.info.name == host
                            || id.starts_with(host) && host.len() >= 12
                            || aliases.iter().any(|a| a == host))
                })
            })
            .map(|(id, _)| id.clone())
    }
}

/// The host name of a container: its own, or the first 12 digits of its id.
fn hostname(configured: &Option<String>, id: &str) -> String {
    configured.clone().unwrap_or_else(|| id[..12.min(id.len())].to_string())
}

/// The world as one run of one container sees it.
pub(super) struct RunHost {
    engine: FakeEngine,
    id: String,
    run: u64,
}

impl RunHost {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        lock(&self.engine.inner.world)
    }
}

#[async_trait]
impl Host for RunHost {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let world = self.world();
        if let Some(bytes) = world.synthetic(&self.id, path) {
            return Some(bytes);
        }
        let at = world.locate(&self.id, path)?;
        world.files.get(&at.store)?.get(&at.path).cloned()
    }

    fn write(&self, path: &str, data: &[u8], append: bool) -> Result<(), String> {
        let mut world = self.world();
        let at = world.locate(&self.id, path).ok_or("No such container")?;
        if !at.writable {
            return Err("Read-only file system".into());
        }
        let file = world.files.entry(at.store).or_default().entry(at.path).or_default();
        if !append {
            file.clear();
        }
        file.extend_from_slice(data);
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<bool, String> {
        let mut world = self.world();
        let at = world.locate(&self.id, path).ok_or("No such container")?;
        let existed = world.files.get(&at.store).is_some_and(|files| files.contains_key(&at.path));
        if existed && !at.writable {
            return Err("Read-only file system".into());
        }
        Ok(world.files.get_mut(&at.store).and_then(|files| files.remove(&at.path)).is_some())
    }

    fn mkdir(&self, path: &str) -> Result<(), String> {
        // Directories are implied by the files in them; only the mode matters.
        match self.world().locate(&self.id, path) {
            Some(at) if at.writable => Ok(()),
            Some(_) => Err("Read-only file system".into()),
            None => Err("No such container".into()),
        }
    }

    fn ids(&self) -> (String, String) {
        let user = self.world().containers.get(&self.id).and_then(|c| c.config.user.clone());
        let user = user.unwrap_or_else(|| "0".into());
        let (uid, gid) = user.split_once(':').unwrap_or((&user, "0"));
        let numeric =
            |id: &str| if id == "root" || id.parse::<u32>().is_err() { "0".to_string() } else { id.to_string() };
        (numeric(uid), numeric(gid))
    }

    fn hostname(&self) -> String {
        let configured = self.world().containers.get(&self.id).and_then(|c| c.config.hostname.clone());
        hostname(&configured, &self.id)
    }

    fn output(&self, bytes: &[u8]) {
        let mut world = self.world();
        let Some(container) = world.containers.get_mut(&self.id).filter(|c| c.run == self.run) else { return };
        container.partial.extend_from_slice(bytes);
        while let Some(end) = container.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = container.partial.drain(..=end).collect();
            container.logs.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
    }

    fn listen(&self, port: u16, root: &str) {
        let mut world = self.world();
        if let Some(container) = world.containers.get_mut(&self.id).filter(|c| c.run == self.run) {
            container.listeners.insert(port, root.to_string());
        }
    }

    fn reachable(&self, host: &str, port: u16) -> bool {
        let world = self.world();
        let target = world.resolve(&self.id, host);
        target.and_then(|id| world.containers.get(&id)).is_some_and(|c| c.listeners.contains_key(&port))
    }

    fn fetch(&self, host: &str, port: u16, path: &str) -> Option<Option<Vec<u8>>> {
        let (server, root) = {
            let world = self.world();
            let server = world.resolve(&self.id, host)?;
            let root = world.containers.get(&server)?.listeners.get(&port)?.clone();
            (server, root)
        };
        let file = if path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
        let full = format!("{}{file}", root.trim_end_matches('/'));
        // The server reads its own files.
        let host = RunHost { engine: self.engine.clone(), id: server, run: 0 };
        Some(host.read(&full))
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

impl FakeEngine {
    /// Starts the process (and the health checks) of run `run` of `id`.
    pub(super) fn spawn_run(&self, id: &str, run: u64) {
        let (config, env) = {
            let world = lock(&self.inner.world);
            let Some(container) = world.containers.get(id) else { return };
            let env: BTreeMap<String, String> = container.config.env.iter().cloned().collect();
            (container.config.clone(), env)
        };
        let argv: Vec<String> =
            config.entrypoint.iter().flatten().chain(config.command.iter().flatten()).cloned().collect();
        let engine = self.clone();
        let id_owned = id.to_string();
        let working_dir = config.working_dir.clone();
        let process = tokio::spawn(async move {
            let host = RunHost { engine: engine.clone(), id: id_owned.clone(), run };
            let code = if argv.is_empty() {
                std::future::pending::<i32>().await
            } else {
                let mut env = env;
                env.entry("PATH".into()).or_insert_with(|| "/bin".into());
                env.entry("HOSTNAME".into()).or_insert_with(|| host.hostname());
                Shell::new(&host, env, working_dir.as_deref()).run_argv(&argv).await
            };
            engine.process_exited(&id_owned, run, i64::from(code));
        });
        let mut tasks = vec![process.abort_handle()];
        if let Some(health) = config.health.clone() {
            // Checks run like `docker exec`: with the container's environment.
            let env: BTreeMap<String, String> = config.env.iter().cloned().collect();
            let engine = self.clone();
            let id_owned = id.to_string();
            let working_dir = config.working_dir.clone();
            let checks = tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let interval = health.interval.max(Duration::from_millis(1));
                loop {
                    tokio::time::sleep(interval).await;
                    let host = RunHost { engine: engine.clone(), id: id_owned.clone(), run };
                    // An exec's output is not the container's.
                    let quiet = ExecHost { host: &host, captured: None };
                    let mut shell = Shell::new(&quiet, env.clone(), working_dir.as_deref());
                    let passed =
                        matches!(tokio::time::timeout(health.timeout, shell.run_argv(&health.command)).await, Ok(0));
                    let in_start_period = started.elapsed() < health.start_period;
                    engine.health_result(&id_owned, run, passed, in_start_period, health.retries);
                }
            });
            tasks.push(checks.abort_handle());
        }
        let mut world = lock(&self.inner.world);
        match world.containers.get_mut(id).filter(|c| c.run == run && c.info.state == ContainerState::Running) {
            Some(container) => container.tasks.extend(tasks),
            // Stopped in between: nothing may keep running.
            None => tasks.iter().for_each(|task| task.abort()),
        }
    }

    /// Starts `argv` in the running container `id` as an exec runs: with the
    /// container's environment and working directory, its output kept apart
    /// from the container's log. The task answers the exit code and the
    /// output; it ends with the container's run.
    pub(super) fn start_exec(
        &self,
        id: &str,
        argv: &[String],
    ) -> crate::engine::Result<tokio::task::JoinHandle<(i32, Vec<u8>)>> {
        let mut world = lock(&self.inner.world);
        let resolved = world.container_id(id)?;
        let container = world.containers.get_mut(&resolved).expect("resolved ids exist");
        if container.info.state != ContainerState::Running {
            return Err(crate::engine::EngineError::Conflict {
                what: format!("container {id}"),
                message: "the container is not running".into(),
            });
        }
        let (run, config) = (container.run, container.config.clone());
        let (engine, argv) = (self.clone(), argv.to_vec());
        let task = tokio::spawn(async move {
            let host = RunHost { engine, id: resolved, run };
            let exec = ExecHost { host: &host, captured: Some(Default::default()) };
            let mut env: BTreeMap<String, String> = config.env.iter().cloned().collect();
            env.entry("PATH".into()).or_insert_with(|| "/bin".into());
            env.entry("HOSTNAME".into()).or_insert_with(|| host.hostname());
            let code = Shell::new(&exec, env, config.working_dir.as_deref()).run_argv(&argv).await;
            let output = exec.captured.map(|c| c.into_inner().unwrap_or_else(|p| p.into_inner())).unwrap_or_default();
            (code, output)
        });
        container.tasks.retain(|task| !task.is_finished());
        container.tasks.push(task.abort_handle());
        Ok(task)
    }

    /// Records a health check's outcome and publishes a change.
    fn health_result(&self, id: &str, run: u64, passed: bool, in_start_period: bool, retries: u32) {
        let events = {
            let mut world = lock(&self.inner.world);
            let Some(container) = world.containers.get_mut(id).filter(|c| c.run == run) else { return };
            let next = if passed {
                container.failing_streak = 0;
                Some(Health::Healthy)
            } else if in_start_period {
                None
            } else {
                container.failing_streak += 1;
                (container.failing_streak >= retries.max(1)).then_some(Health::Unhealthy)
            };
            match next {
                Some(health) => world.set_health(id, Some(run), health).unwrap_or_default(),
                None => Vec::new(),
            }
        };
        self.publish(events);
    }

    /// The process of run `run` ended with `code`: the container exits, and
    /// the restart policy may start it again.
    pub(super) fn process_exited(&self, id: &str, run: u64, code: i64) {
        let (events, restart) = {
            let mut world = lock(&self.inner.world);
            let Some(container) = world.containers.get(id).filter(|c| c.run == run) else { return };
            let policy = container.config.restart;
            let stopping = container.stopping;
            let restarts = container.info.restart_count;
            let events = world.exit_container(id, code).unwrap_or_default();
            let restart =
                !stopping && (policy == RestartPolicy::Always || (policy == RestartPolicy::OnFailure && code != 0));
            (events, restart.then(|| RESTART_DELAY * 2u32.pow(restarts.min(6))))
        };
        self.publish(events);
        if let Some(delay) = restart {
            let (engine, id) = (self.clone(), id.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                engine.restart(&id, run);
            });
        }
    }

    /// The engine restarts an exited container (its restart policy), unless
    /// something else started, stopped or removed it meanwhile.
    pub(super) fn restart(&self, id: &str, after_run: u64) {
        let started = {
            let mut world = lock(&self.inner.world);
            let Some(container) = world.containers.get_mut(id) else { return };
            if container.run != after_run || container.info.state != ContainerState::Exited || container.stopping {
                return;
            }
            container.info.restart_count += 1;
            world.start_container(id)
        };
        if let Ok((run, events)) = started {
            self.publish(events);
            self.spawn_run(id, run);
        }
    }

    /// Stops `id`: signals it (a `kill` event with SIGTERM, as Docker's
    /// stop), waits up to `grace` for its process to end by itself, then
    /// kills it.
    pub(super) async fn stop_run(&self, id: &str, grace: Duration) -> crate::engine::Result<()> {
        let (run, signalled) = {
            let mut world = lock(&self.inner.world);
            let id = world.container_id(id)?;
            let container = world.containers.get_mut(&id).expect("id resolved above");
            container.stopping = true;
            if container.info.state != ContainerState::Running {
                return Ok(());
            }
            let kill = EventAction::Kill(Some(15));
            (container.run, event(EventSubject::Container, kill, &id, &container.info.labels))
        };
        self.publish(vec![signalled]);
        let ended = |engine: &FakeEngine| {
            let world = lock(&engine.inner.world);
            world.container_id(id).ok().and_then(|id| world.containers.get(&id).map(|c| (c.run, c.info.state)))
                != Some((run, ContainerState::Running))
        };
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && !ended(self) {
            tokio::time::sleep(Duration::from_millis(20).min(grace)).await;
        }
        let events = {
            let mut world = lock(&self.inner.world);
            match world.container_id(id) {
                Ok(id) if world.containers.get(&id).is_some_and(|c| c.run == run) => {
                    world.exit_container(&id, 137).unwrap_or_default()
                }
                _ => Vec::new(),
            }
        };
        self.publish(events);
        Ok(())
    }
}

/// A host for a command run like `docker exec`: its output is not the
/// container's log. A health check's goes nowhere; an exec's is kept for
/// its caller.
struct ExecHost<'a> {
    host: &'a RunHost,
    captured: Option<std::sync::Mutex<Vec<u8>>>,
}

#[async_trait]
impl Host for ExecHost<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.host.read(path)
    }
    fn write(&self, path: &str, data: &[u8], append: bool) -> Result<(), String> {
        self.host.write(path, data, append)
    }
    fn remove(&self, path: &str) -> Result<bool, String> {
        self.host.remove(path)
    }
    fn mkdir(&self, path: &str) -> Result<(), String> {
        self.host.mkdir(path)
    }
    fn ids(&self) -> (String, String) {
        self.host.ids()
    }
    fn hostname(&self) -> String {
        self.host.hostname()
    }
    fn output(&self, bytes: &[u8]) {
        if let Some(captured) = &self.captured {
            lock(captured).extend_from_slice(bytes);
        }
    }
    fn listen(&self, port: u16, root: &str) {
        self.host.listen(port, root)
    }
    fn reachable(&self, host: &str, port: u16) -> bool {
        self.host.reachable(host, port)
    }
    fn fetch(&self, host: &str, port: u16, path: &str) -> Option<Option<Vec<u8>>> {
        self.host.fetch(host, port, path)
    }
    async fn sleep(&self, duration: Duration) {
        self.host.sleep(duration).await
    }
}
