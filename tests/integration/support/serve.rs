//! A real `berth serve` process on a real engine (Docker or Podman), for
//! the end-to-end tests.
//!
//! [`Stack`] copies `examples/` into a private manifests directory, moving
//! every object into a namespace of its own (`e2e-<suffix>`) and the image's
//! tag with it. Engine object names are `berth-<namespace>-<name>...` and
//! the examples pin one tag, so without this, tests running in parallel
//! would fight over the same network, volume, containers and image. Each
//! stack also has its own state directory, hence its own instance id.
//!
//! berth runs as the built binary (`--engine docker` or `podman`), its
//! output appended to a log file whose tail is printed when a test fails
//! (the file and the state directory are then kept). The engine is observed
//! through berth's own [`Engine`] trait, filtered by the namespace label
//! (on Podman as an observer, which leaves the health checks to the berth
//! under test); the store only once berth has exited (it holds the state
//! directory's lock).
//!
//! Dropping a `Stack` stops berth and removes every engine object carrying
//! its namespace or instance label, whether the test passed or not.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth::api::AnyObject;
use berth::engine::docker::DockerEngine;
use berth::engine::podman::PodmanEngine;
use berth::engine::{labels, ContainerInfo, ContainerState, Engine, Health, Labels};
use berth::store::Store;

use super::controller::poll_until;
use super::engines::{berth_docker, berth_podman, unique_suffix, EngineKind};
use super::repo_path;

/// Longest a stack may take to converge (an image build on a busy machine
/// included); it normally takes under ten seconds.
pub const CONVERGE: Duration = Duration::from_secs(60);
/// How long berth gets to drain after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// Lines of berth's log quoted in a failure message.
const LOG_TAIL: usize = 80;

/// The examples in a namespace of their own, served by a `berth` process.
pub struct Stack {
    /// The engine, through berth's own trait.
    pub engine: Arc<dyn Engine>,
    /// Which engine berth drives.
    kind: EngineKind,
    /// `e2e-<suffix>`, written into every copied manifest.
    pub namespace: String,
    /// Holds `manifests/`, `state/` and `berth.log`; removed on drop
    /// unless the test failed.
    root: tempfile::TempDir,
    /// Canonical path of `root`, as berth prints the paths under it.
    dir: PathBuf,
    /// The running berth, if any.
    berth: Option<Child>,
    /// The instance label seen on engine objects, for the cleanup (the store
    /// that knows it is locked while berth runs).
    instance: Mutex<Option<String>>,
}

impl Stack {
    /// A private copy of the examples, or `None` when the engine's tests
    /// are skipped (`BERTH_TEST_ENGINES`; see `support::engines`).
    pub async fn examples(kind: EngineKind) -> Option<Stack> {
        let engine: Arc<dyn Engine> = match kind {
            EngineKind::Docker => Arc::new(berth_docker().await?),
            EngineKind::Podman => Arc::new(berth_podman().await?.observer()),
        };
        let root = tempfile::tempdir().expect("temporary directory");
        let dir = fs::canonicalize(root.path()).expect("canonical temporary directory");
        let stack = Stack {
            engine,
            kind,
            namespace: format!("e2e-{}", unique_suffix()),
            root,
            dir,
            berth: None,
            instance: Mutex::new(None),
        };
        fs::create_dir(stack.manifests()).expect("manifests directory");
        copy_into_namespace(&repo_path("examples"), &stack.manifests(), &stack.namespace);
        stack.check_copy();
        Some(stack)
    }

    /// The directory berth follows.
    pub fn manifests(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    /// A file in the manifests directory.
    pub fn manifest(&self, name: &str) -> PathBuf {
        self.manifests().join(name)
    }

    /// berth's state directory (its store, lock and API token).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The REST API's address, once berth has logged it (this start's line).
    pub async fn server_url(&self) -> String {
        self.logged_address("REST API on ").await
    }

    /// The HTTP proxy's `address:port`, once berth has logged it.
    pub async fn proxy_address(&self) -> std::net::SocketAddr {
        let url = self.logged_address("HTTP proxy on ").await;
        url.trim_start_matches("http://").parse().expect("the proxy's address")
    }

    /// The DNS server's `address:port`, once berth has logged it.
    pub async fn dns_address(&self) -> std::net::SocketAddr {
        self.logged_address("DNS on udp+tcp ").await.parse().expect("the DNS server's address")
    }

    /// The word after `prefix` on this start's log line that has it.
    async fn logged_address(&self, prefix: &str) -> String {
        self.eventually(CONVERGE, prefix.trim(), || async {
            let log = self.log();
            let start = log.rfind("=== berth serve started by the test ===")?;
            let line = log[start..].lines().find(|l| l.contains(prefix))?;
            let url = line.split(prefix).nth(1)?.split_whitespace().next()?;
            Some(url.to_string())
        })
        .await
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("berth.log")
    }

    /// The engine name of a Network or Volume of the stack.
    pub fn engine_name(&self, name: &str) -> String {
        format!("berth-{}-{name}", self.namespace)
    }

    /// The tag the stack's Image builds.
    pub fn image_tag(&self) -> String {
        format!("berth.local/{}/busybox:latest", self.namespace)
    }

    /// Every object of the copy is in our namespace, and the image tag moved
    /// with it: the rewrite must not silently miss a document.
    fn check_copy(&self) {
        let loaded = berth::manifest::load_paths(&[self.manifests()]).expect("the copied examples load");
        assert_eq!(loaded.objects.len(), 8, "the examples declare 8 objects");
        for object in loaded.objects.iter().map(|o| &o.object) {
            assert_eq!(object.key().namespace, self.namespace, "{} escaped the rewrite", object.key());
            if let AnyObject::Image(image) = object {
                assert_eq!(image.spec.tag.as_deref(), Some(self.image_tag().as_str()));
            }
        }
    }

    /// Starts `berth serve` on the manifests and state directories.
    pub fn start(&mut self) {
        self.spawn(vec!["--manifests".into(), self.manifests().into()]);
    }

    /// Starts `berth serve` on the manifests and state directories, with
    /// more flags.
    pub fn start_with(&mut self, flags: &[&str]) {
        let mut arguments: Vec<std::ffi::OsString> = vec!["--manifests".into(), self.manifests().into()];
        arguments.extend(flags.iter().map(Into::into));
        self.spawn(arguments);
    }

    /// Starts `berth serve` without a manifest directory: objects come
    /// through the REST API only. The manifests directory is a granted host
    /// path: `berth apply` sends the Image's build context as a path there.
    pub fn start_api_only(&mut self) {
        self.start_api_only_with(&[]);
    }

    /// Like [`Stack::start_api_only`], with more flags (a transport's).
    pub fn start_api_only_with(&mut self, flags: &[&str]) {
        let mut arguments: Vec<std::ffi::OsString> = vec!["--allow-host-paths".into(), self.manifests().into()];
        arguments.extend(flags.iter().map(Into::into));
        self.spawn(arguments);
    }

    /// The stack's manifests as one text a message can carry, the build
    /// context made absolute.
    pub fn as_one_manifest(&self) -> String {
        let mut files: Vec<PathBuf> = fs::read_dir(self.manifests())
            .expect("manifests")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        let context = format!("context: {}", self.manifests().join("busybox").display());
        files
            .iter()
            .map(|f| fs::read_to_string(f).expect("manifest").replace("context: ./busybox", &context))
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// Starts `berth serve` following the git repository at `url`
    /// (polled every second) instead of the manifests directory.
    pub fn start_git(&mut self, url: &str) {
        // The examples' busybox is a symlink to the host's: a link out of a
        // checkout is written only into a granted host path.
        let grant = ["--allow-host-paths", "/bin/busybox"].map(Into::into);
        self.spawn([vec!["--git".into(), url.into(), "--git-interval".into(), "1s".into()], grant.to_vec()].concat());
    }

    /// Spawns `berth serve` with `sources`, the arguments that say where
    /// objects come from.
    fn spawn(&mut self, sources: Vec<std::ffi::OsString>) {
        assert!(self.berth.is_none(), "berth is already running");
        let mut log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        writeln!(log, "=== berth serve started by the test ===").expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("serve")
            .args(sources)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--engine", self.kind.name(), "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .args(["--dns-listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--dns-upstream", "off"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("BERTH_STATE_DIR")
            .env_remove("BERTH_ENGINE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawning berth");
        self.berth = Some(child);
    }

    /// Stops berth with SIGTERM (a graceful drain); returns how it exited.
    /// Blocks the test's thread while berth drains, which is fine: nothing
    /// else of the test runs meanwhile.
    pub fn stop(&mut self) -> ExitStatus {
        let child = self.berth.take().expect("berth is running");
        let (status, forced) = terminate(child);
        assert!(!forced, "berth did not stop within {STOP_GRACE:?} of SIGTERM");
        status
    }

    /// Kills berth with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let mut child = self.berth.take().expect("berth is running");
        child.kill().expect("SIGKILL berth");
        child.wait().expect("reaping berth");
    }

    /// Everything berth logged so far, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
        format!("--- last {LOG_TAIL} lines of berth's log ---\n{tail}")
    }

    /// The store; only while berth is not running.
    pub fn store(&self) -> Store {
        assert!(self.berth.is_none(), "the store is locked while berth runs");
        Store::open(&self.state_dir()).expect("opening the store berth left")
    }

    /// The labels that select the stack's engine objects.
    fn selector(&self) -> Labels {
        Labels::from([(labels::MANAGED_BY.into(), "berth".into()), (labels::NAMESPACE.into(), self.namespace.clone())])
    }

    /// The stack's containers (running or not).
    pub async fn containers(&self) -> Vec<ContainerInfo> {
        let containers = self.engine.list_containers(&self.selector()).await.expect("listing containers");
        if let Some(instance) = containers.iter().find_map(|c| c.labels.get(labels::INSTANCE)) {
            self.instance.lock().unwrap().get_or_insert_with(|| instance.clone());
        }
        containers
    }

    /// The replicas of the Container `name`, by replica index.
    pub async fn replicas(&self, name: &str) -> Vec<ContainerInfo> {
        let mut replicas: Vec<ContainerInfo> = self
            .containers()
            .await
            .into_iter()
            .filter(|c| c.labels.get(labels::NAME).map(String::as_str) == Some(name))
            .collect();
        replicas.sort_by_key(|c| (c.labels.get(labels::REPLICA).cloned(), c.id.clone()));
        replicas
    }

    /// The stack's engine volumes and networks, by name.
    pub async fn volumes_and_networks(&self) -> (Vec<String>, Vec<String>) {
        let volumes = self.engine.list_volumes(&self.selector()).await.expect("listing volumes");
        let networks = self.engine.list_networks(&self.selector()).await.expect("listing networks");
        (volumes.into_iter().map(|v| v.name).collect(), networks.into_iter().map(|n| n.name).collect())
    }

    /// Polls `check` until it returns `Some`; on timeout, fails with `what`
    /// and the stack's containers (berth's log follows, from `drop`).
    pub async fn eventually<T, F, Fut>(&self, timeout: Duration, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        if let Some(value) = poll_until(timeout, check).await {
            return value;
        }
        let containers: Vec<String> = self.containers().await.iter().map(describe).collect();
        panic!("timed out after {timeout:?} waiting for {what}\ncontainers: {containers:#?}");
    }

    /// The stack's containers by `name#replica` if they are exactly api ×1
    /// and web ×2, all running and healthy.
    pub async fn settled(&self) -> Option<BTreeMap<String, ContainerInfo>> {
        let by_replica: BTreeMap<String, ContainerInfo> =
            self.containers().await.into_iter().map(|c| (replica_key(&c), c)).collect();
        let keys: Vec<&str> = by_replica.keys().map(String::as_str).collect();
        let settled = keys == ["api#0", "web#0", "web#1"]
            && by_replica.values().all(|c| c.state == ContainerState::Running && c.health == Some(Health::Healthy));
        settled.then_some(by_replica)
    }

    /// Waits until the stack is [`settled`](Self::settled).
    pub async fn converged(&self) -> BTreeMap<String, ContainerInfo> {
        self.eventually(CONVERGE, "api ×1 and web ×2 running and healthy, nothing else", || self.settled()).await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(child) = self.berth.take() {
            terminate(child);
        }
        if std::thread::panicking() {
            // Every failure of a test ends here, so its message need not
            // quote the log itself. The directory stays, for a closer look.
            self.root.disable_cleanup(true);
            eprintln!("berth's log: {} (namespace {})\n{}", self.log_path().display(), self.namespace, self.log_tail());
        }
        let namespace = self.namespace.clone();
        let instance = self.instance.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let tag = self.image_tag();
        let kind = self.kind;
        // A thread with its own runtime: async cleanup cannot run inside the
        // test's runtime from `drop`, and the engine's client is bound to it.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(remove_engine_objects(kind, &namespace, instance.as_deref(), &tag))
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("cleanup of {}: {error:#}", self.namespace),
            Err(_) => eprintln!("cleanup of {} panicked", self.namespace),
        }
    }
}

/// `web#0`: a container's owner name and replica index.
pub fn replica_key(container: &ContainerInfo) -> String {
    let label = |key: &str| container.labels.get(key).map_or("?", String::as_str);
    format!("{}#{}", label(labels::NAME), label(labels::REPLICA))
}

/// One line about a container, for failure messages.
fn describe(container: &ContainerInfo) -> String {
    let health = container.health.map_or("-", Health::as_str);
    format!("{} {} {} health={health}", container.name, &container.id[..12], container.state.as_str())
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; returns the exit status and
/// whether it had to be forced.
fn terminate(mut child: Child) -> (ExitStatus, bool) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill has no memory preconditions; `pid` is our unreaped child,
    // so it cannot have been reused by another process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("waiting for berth") {
            return (status, false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    (child.wait().expect("reaping berth"), true)
}

/// Removes the containers, networks and volumes labelled with `namespace`
/// or `instance`, and the image `tag`. Best effort: carries on past
/// failures and reports them together.
async fn remove_engine_objects(
    kind: EngineKind,
    namespace: &str,
    instance: Option<&str>,
    tag: &str,
) -> anyhow::Result<()> {
    let engine: Arc<dyn Engine> = match kind {
        EngineKind::Docker => Arc::new(DockerEngine::connect(None).await?),
        EngineKind::Podman => Arc::new(PodmanEngine::connect(None).await?.observer()),
    };
    let mut selectors =
        vec![Labels::from([(labels::MANAGED_BY.into(), "berth".into()), (labels::NAMESPACE.into(), namespace.into())])];
    selectors.extend(instance.map(labels::instance_labels));
    let mut failures = Vec::new();
    for selector in &selectors {
        for container in engine.list_containers(selector).await? {
            if let Err(e) = engine.remove_container(&container.id).await.or_else(ignore_not_found) {
                failures.push(format!("container {}: {e}", container.name));
            }
        }
    }
    for selector in &selectors {
        for network in engine.list_networks(selector).await? {
            if let Err(e) = engine.remove_network(&network.name).await.or_else(ignore_not_found) {
                failures.push(format!("network {}: {e}", network.name));
            }
        }
        for volume in engine.list_volumes(selector).await? {
            if let Err(e) = engine.remove_volume(&volume.name).await.or_else(ignore_not_found) {
                failures.push(format!("volume {}: {e}", volume.name));
            }
        }
    }
    if let Err(e) = engine.remove_image(tag).await.or_else(ignore_not_found) {
        failures.push(format!("image {tag}: {e}"));
    }
    anyhow::ensure!(failures.is_empty(), "could not remove: {}", failures.join("; "));
    Ok(())
}

fn ignore_not_found(error: berth::engine::EngineError) -> Result<(), berth::engine::EngineError> {
    if error.is_not_found() {
        Ok(())
    } else {
        Err(error)
    }
}

/// Copies the directory `from` to `to`: YAML files moved into `namespace`
/// (a `namespace:` line under each `metadata:`, and the image tag
/// `berth.local/demo/...` renamed after it), symlinks recreated pointing at
/// what they resolve to (the busybox build context links to
/// `/bin/busybox`), other files as they are.
fn copy_into_namespace(from: &Path, to: &Path, namespace: &str) {
    for entry in fs::read_dir(from).expect("reading the examples") {
        let entry = entry.expect("reading the examples");
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let file_type = entry.file_type().expect("file type");
        if file_type.is_dir() {
            fs::create_dir(&target).expect("copying a directory");
            copy_into_namespace(&source, &target, namespace);
        } else if file_type.is_symlink() {
            let resolved = fs::canonicalize(&source).expect("resolving a symlink of the examples");
            std::os::unix::fs::symlink(resolved, &target).expect("copying a symlink");
        } else if source.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = fs::read_to_string(&source).expect("reading an example");
            fs::write(&target, into_namespace(&text, namespace)).expect("writing an example");
        } else {
            fs::copy(&source, &target).expect("copying a file");
        }
    }
}

/// Moves the documents of a manifest into `namespace`.
fn into_namespace(text: &str, namespace: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        out.push_str(&line.replace("berth.local/demo/", &format!("berth.local/{namespace}/")));
        out.push('\n');
        if line.trim_end() == "metadata:" {
            out.push_str(&format!("  namespace: {namespace}\n"));
        }
    }
    out
}

/// Replaces `path` the way editors do (write a temporary file, rename it
/// over), so berth never reads a half-written file.
pub fn write_atomically(path: &Path, text: &str) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    // A dotfile: berth skips those, so the temporary file is never loaded.
    let temporary = path.with_file_name(format!(".{name}.new"));
    fs::write(&temporary, text).expect("writing a manifest");
    fs::rename(&temporary, path).expect("replacing a manifest");
}
