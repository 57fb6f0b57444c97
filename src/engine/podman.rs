//! Podman over its libpod REST API.
//!
//! [`PodmanEngine`] translates the [`Engine`] trait to libpod (tested
//! against Podman 4.3 with `podman system service`). It uses podman-api
//! 0.11 for what that crate does right, and raw requests ([`libpod`]) for
//! the three calls it cannot make: a build from an in-memory tar, a create
//! with `no_new_privileges`, and events with their health results. The
//! conversions are pure functions in [`convert`]; the mapping of libpod's
//! errors is [`engine_error`], the one place it is decided.
//!
//! Podman differs from Docker in ways the reconcilers must not see; this
//! module absorbs them:
//!
//! - **health checks** do not run by themselves without systemd: the
//!   engine runs them ([`health`]);
//! - **events** say `died` and `remove`, and report every health check run
//!   rather than each change: only changes are passed on, as Docker does;
//! - **removing** a running container with force waits for its whole stop
//!   timeout first: a removal kills at once instead (`timeout=0`), as
//!   Docker's does;
//! - **networks**: one created through the API has no DNS unless asked
//!   (aliases would not resolve); connecting twice or disconnecting a
//!   container that is not connected are errors in libpod and successes
//!   here; a network in use "is being used", which is a conflict; libpod's
//!   network does not list its containers, so a list asks the containers;
//! - **images**: ids are bare hex in libpod and `sha256:<hex>` here;
//! - **starting** a running container or stopping a stopped one answers
//!   304, which is success.

mod convert;
mod health;
mod libpod;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use podman_api::opts::{
    ContainerDeleteOpts, ContainerListFilter, ContainerListOpts, ContainerLogsOpts, ContainerStopOpts,
    NetworkConnectOpts, NetworkCreateOpts, NetworkListFilter, NetworkListOpts, PullOpts, VolumeCreateOpts,
    VolumeListFilter, VolumeListOpts,
};

use self::libpod::{query_escape, Libpod, LibpodError};
use super::{
    BuildOutput, BuildRequest, ContainerConfig, ContainerInfo, ContainerState, Engine, EngineError, EngineEvent,
    EngineInfo, EventAction, EventSubject, ExecOutput, ExecRequest, ExecSession, Health, ImageInfo, Labels,
    NetworkConfig, NetworkInfo, Result, TerminalSize, VolumeConfig, VolumeInfo,
};

/// The rootful service's socket.
pub const ROOT_SOCKET: &str = "/run/podman/podman.sock";

/// Build output lines kept in the error of a failed build.
const FAILED_BUILD_LINES: usize = 20;

/// The socket of the current user's service: [`ROOT_SOCKET`] for root,
/// else `$XDG_RUNTIME_DIR/podman/podman.sock` (if that variable is set).
pub fn user_socket() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from(ROOT_SOCKET));
    }
    std::env::var_os("XDG_RUNTIME_DIR").map(|dir| PathBuf::from(dir).join("podman/podman.sock"))
}

/// A Podman service, reached over its unix socket.
///
/// Cheap to clone: clones share the clients and the health checks.
#[derive(Clone)]
pub struct PodmanEngine {
    client: podman_api::Podman,
    raw: Libpod,
    /// `unix:///path`, for [`EngineInfo`] and [`EngineError::Unavailable`].
    endpoint: String,
    /// `None` for an observer that leaves the checks to another engine.
    health: Option<Arc<health::HealthRunner>>,
}

impl std::fmt::Debug for PodmanEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodmanEngine").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl PodmanEngine {
    /// Connects to `endpoint` (`unix:///path` or a bare path), else to
    /// `CONTAINER_HOST`, else to [`user_socket`], and pings it.
    ///
    /// # Errors
    ///
    /// [`EngineError::Unavailable`] when the service does not answer;
    /// [`EngineError::Failed`] for an endpoint that is not a unix socket
    /// (the raw requests need one).
    pub async fn connect(endpoint: Option<&str>) -> Result<Self> {
        let endpoint = match endpoint {
            Some(endpoint) => endpoint.to_string(),
            None => match std::env::var("CONTAINER_HOST").ok().filter(|host| !host.is_empty()) {
                Some(host) => host,
                None => user_socket().map(|path| format!("unix://{}", path.display())).unwrap_or_default(),
            },
        };
        let Some(path) = socket_path(&endpoint) else {
            return Err(EngineError::Failed {
                operation: "connect to podman".into(),
                message: format!("`{endpoint}` is not a unix socket (unix:///path); berth reaches Podman only so"),
            });
        };
        let endpoint = format!("unix://{}", path.display());
        if !path.exists() {
            return Err(EngineError::Unavailable {
                endpoint,
                source: "the socket does not exist (is `podman system service` running?)".into(),
            });
        }
        let engine = PodmanEngine {
            client: podman_api::Podman::unix(&path),
            raw: Libpod::new(&path),
            endpoint,
            health: Some(Arc::default()),
        };
        engine.client.ping().await.map_err(engine.fail("ping", "podman"))?;
        Ok(engine)
    }

    /// The same service, without running health checks: for a second
    /// engine on the same containers (a test watching a berth), so that
    /// checks do not run twice as often.
    pub fn observer(&self) -> Self {
        PodmanEngine { health: None, ..self.clone() }
    }

    /// Where the service was reached.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The mapping of podman-api's errors for `verb` on `what`.
    fn fail<'a>(&'a self, verb: &'a str, what: &'a str) -> impl FnOnce(podman_api::Error) -> EngineError + 'a {
        move |error| engine_error(status_of(&error), error.to_string(), error.into(), &self.endpoint, verb, what)
    }

    /// The mapping of raw requests' errors for `verb` on `what`.
    fn fail_raw<'a>(&'a self, verb: &'a str, what: &'a str) -> impl FnOnce(LibpodError) -> EngineError + 'a {
        move |error| match error {
            LibpodError::Status { status, message } => {
                let source = message.clone().into();
                engine_error(Some(status.as_u16()), message, source, &self.endpoint, verb, what)
            }
            LibpodError::Transport(source) => EngineError::Unavailable { endpoint: self.endpoint.clone(), source },
        }
    }

    /// Starts running the container's health check, if it has one and
    /// runs (see [`health`]).
    fn supervise_health(&self, inspected: &podman_api::models::ContainerInspectResponseLibpod, info: &ContainerInfo) {
        let Some(runner) = &self.health else { return };
        if info.state != ContainerState::Running {
            return;
        }
        let check = inspected.config.as_ref().and_then(|config| config.healthcheck.as_ref());
        let has_test =
            check.and_then(|check| check.test.as_ref()).is_some_and(|test| test.first().is_some_and(|t| t != "NONE"));
        if has_test {
            let interval = check.and_then(|check| check.interval).and_then(|ns| u64::try_from(ns).ok());
            // libpod's default interval is 30 s, as Docker's.
            let interval = interval.filter(|ns| *ns > 0).map_or(Duration::from_secs(30), Duration::from_nanos);
            runner.supervise(&self.client, &info.id, interval);
        }
    }

    /// The ids of the containers on each network, by network name.
    async fn network_members(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let options = ContainerListOpts::builder().all(true).build();
        let listed = self.client.containers().list(&options).await.map_err(self.fail("list", "containers"))?;
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for container in listed {
            let Some(id) = container.id else { continue };
            for network in container.networks.unwrap_or_default() {
                members.entry(network).or_default().push(id.clone());
            }
        }
        members.values_mut().for_each(|ids| ids.sort());
        Ok(members)
    }
}

/// The path of a `unix://` endpoint or a bare absolute path.
fn socket_path(endpoint: &str) -> Option<PathBuf> {
    match endpoint.strip_prefix("unix://") {
        Some(path) => Some(PathBuf::from(path)),
        None if endpoint.starts_with('/') => Some(PathBuf::from(endpoint)),
        None => None,
    }
}

/// The HTTP status of a podman-api error, when the service answered.
fn status_of(error: &podman_api::Error) -> Option<u16> {
    match error {
        podman_api::Error::Fault { code, .. } => Some(code.as_u16()),
        podman_api::Error::Error(podman_api::conn::Error::Fault { code, .. }) => Some(code.as_u16()),
        _ => None,
    }
}

/// The one mapping of libpod's answers to [`EngineError`], for `verb` on
/// `what`: `status` is the HTTP status when the service answered (`None`:
/// it could not be reached or broke off), `message` its words.
///
/// - 404 is [`EngineError::NotFound`];
/// - 409, and libpod's in-use and already-exists refusals that come with
///   other codes (a network in use is a 500 "is being used"), are
///   [`EngineError::Conflict`];
/// - no status at all is [`EngineError::Unavailable`];
/// - everything else is [`EngineError::Failed`].
fn engine_error(
    status: Option<u16>,
    message: String,
    source: Box<dyn std::error::Error + Send + Sync>,
    endpoint: &str,
    verb: &str,
    what: &str,
) -> EngineError {
    const CONFLICTS: [&str; 5] = ["already exists", "already in use", "is being used", "already used", "in use by"];
    // A create naming a missing image answers 500 "...: image not known".
    const MISSING: [&str; 2] = ["image not known", "no such"];
    match status {
        Some(404) => EngineError::NotFound { what: what.into() },
        Some(_) if MISSING.iter().any(|words| message.contains(words)) => EngineError::NotFound { what: what.into() },
        Some(status) if status == 409 || CONFLICTS.iter().any(|words| message.contains(words)) => {
            EngineError::Conflict { what: what.into(), message }
        }
        // Starting a container that is being stopped or removed, or an exec in
        // one that is not running: Docker's 409.
        Some(_) if (verb == "start" || verb == "exec in") && message.contains("state improper") => {
            EngineError::Conflict { what: what.into(), message }
        }
        Some(_) => EngineError::Failed { operation: format!("{verb} {what}"), message },
        None => EngineError::Unavailable { endpoint: endpoint.into(), source },
    }
}

/// Whether `have` carries every label of `wanted`.
fn has_labels(have: &Labels, wanted: &Labels) -> bool {
    wanted.iter().all(|(key, value)| have.get(key) == Some(value))
}

/// `Ok` for libpod's 304 "nothing to do" (start a running container, stop
/// a stopped one).
fn not_modified_is_ok(result: Result<(), podman_api::Error>) -> Result<(), podman_api::Error> {
    match result {
        Err(error) if status_of(&error) == Some(304) => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Engine for PodmanEngine {
    async fn info(&self) -> Result<EngineInfo> {
        let version = self.client.version().await.map_err(self.fail("query", "podman version"))?;
        Ok(EngineInfo {
            kind: "podman".into(),
            version: version.version.unwrap_or_default(),
            endpoint: self.endpoint.clone(),
        })
    }

    async fn list_containers(&self, labels: &Labels) -> Result<Vec<ContainerInfo>> {
        let filters = labels.iter().map(|(k, v)| ContainerListFilter::LabelKeyVal(k.clone(), v.clone()));
        let options = ContainerListOpts::builder().all(true).filter(filters).build();
        let listed = self.client.containers().list(&options).await.map_err(self.fail("list", "containers"))?;
        let ids = listed.into_iter().filter_map(|container| container.id).collect();
        super::inspect_each(ids, |id| async move { self.inspect_container(&id).await }).await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        let what = format!("container {id}");
        let inspected = self.client.containers().get(id).inspect().await.map_err(self.fail("inspect", &what))?;
        let info = convert::container_info(inspected.clone());
        self.supervise_health(&inspected, &info);
        Ok(info)
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        let what = format!("container {}", config.name);
        let created =
            self.raw.post_json("containers/create", &convert::create_body(config)).await.map_err(|error| {
                match self.fail_raw("create", &what)(error) {
                    // A 404 is about what the container refers to, not about it.
                    EngineError::NotFound { .. } => {
                        EngineError::NotFound { what: format!("image {} or a network of {what}", config.image) }
                    }
                    other => other,
                }
            })?;
        created.get("Id").and_then(|id| id.as_str()).map(str::to_string).ok_or_else(|| EngineError::Failed {
            operation: format!("create {what}"),
            message: format!("the answer has no Id: {created}"),
        })
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let what = format!("container {id}");
        not_modified_is_ok(self.client.containers().get(id).start(None).await).map_err(self.fail("start", &what))?;
        // Begin the health checks now, not at the next inspect.
        self.inspect_container(id).await.map(|_| ())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let what = format!("container {id}");
        let seconds = usize::try_from(convert::whole_seconds(grace)).unwrap_or(usize::MAX);
        let options = ContainerStopOpts::builder().timeout(seconds).build();
        not_modified_is_ok(self.client.containers().get(id).stop(&options).await).map_err(self.fail("stop", &what))
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let what = format!("container {id}");
        // `timeout(0)`: kill at once, as Docker's forced removal does,
        // instead of waiting for the container's stop timeout. `volumes`:
        // anonymous volumes go with the container; named ones never do.
        let options = ContainerDeleteOpts::builder().force(true).volumes(true).timeout(0).build();
        self.client.containers().get(id).delete(&options).await.map_err(self.fail("remove", &what))
    }

    async fn container_logs(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        let lines: Vec<String> = self.stream_logs(id, tail, false).await?.try_collect().await?;
        Ok(lines[lines.len().saturating_sub(tail)..].to_vec())
    }

    async fn stream_logs(&self, id: &str, tail: usize, follow: bool) -> Result<BoxStream<'static, Result<String>>> {
        let what = format!("container {id}");
        // Ask first: the logs stream reports a missing container only once polled.
        self.client.containers().get(id).inspect().await.map_err(self.fail("read logs of", &what))?;
        // podman-api's stream borrows its client; a task owns a clone and
        // forwards the chunks, and stops when the receiver is dropped.
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>>>(64);
        let (client, id, endpoint) = (self.client.clone(), id.to_string(), self.endpoint.clone());
        tokio::spawn(async move {
            let options =
                ContainerLogsOpts::builder().stdout(true).stderr(true).follow(follow).tail(tail.to_string()).build();
            let container = client.containers().get(&id);
            let mut chunks = container.logs(&options);
            while let Some(chunk) = chunks.next().await {
                let item = chunk.map(Vec::from).map_err(|error| {
                    engine_error(status_of(&error), error.to_string(), error.into(), &endpoint, "read logs of", &id)
                });
                let failed = item.is_err();
                if sender.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(super::lines_of(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        let what = format!("image {reference}");
        match self.client.images().get(reference).inspect().await.map_err(self.fail("inspect", &what)) {
            Ok(image) => Ok(Some(convert::image_info(image))),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn build_image(&self, request: &BuildRequest) -> Result<BuildOutput> {
        let what = format!("image {}", request.tag);
        let dockerfile = if request.dockerfile.is_empty() { "Dockerfile" } else { &request.dockerfile };
        let json = |map: &BTreeMap<String, String>| query_escape(&serde_json::to_string(map).unwrap_or_default());
        let mut query = format!(
            "build?t={}&dockerfile={}&labels={}&buildargs={}&rm=true&forcerm=true",
            query_escape(&request.tag),
            query_escape(dockerfile),
            json(&request.labels),
            json(&request.build_args),
        );
        if let Some(target) = &request.target {
            query.push_str(&format!("&target={}", query_escape(target)));
        }
        let body = self
            .raw
            .call(hyper::Method::POST, &query, "application/x-tar", request.context_tar.clone())
            .await
            .map_err(self.fail_raw("build", &what))?;
        // A series of JSON objects: `{"stream": "..."}`, and on failure one
        // with `error` (the status stays 200).
        let mut output = BuildOutput::default();
        for message in serde_json::Deserializer::from_slice(&body).into_iter::<serde_json::Value>() {
            let message = message.map_err(|error| EngineError::Failed {
                operation: format!("build {what}"),
                message: format!("unreadable build output: {error}"),
            })?;
            if let Some(text) = message.get("stream").and_then(|s| s.as_str()) {
                output.log.extend(text.lines().filter(|line| !line.trim().is_empty()).map(str::to_string));
            }
            if let Some(error) = message.get("error") {
                let tail = &output.log[output.log.len().saturating_sub(FAILED_BUILD_LINES)..];
                let error = error.as_str().map_or_else(|| error.to_string(), str::to_string);
                return Err(EngineError::Failed {
                    operation: format!("build {what}"),
                    message: format!("{error}\n{}", tail.join("\n")),
                });
            }
        }
        output.image_id = match convert::built_image_id(&output.log) {
            Some(id) => id,
            None => {
                self.inspect_image(&request.tag).await?.map(|image| image.id).ok_or_else(|| EngineError::Failed {
                    operation: format!("build {what}"),
                    message: "the build reported success but produced no image".into(),
                })?
            }
        };
        Ok(output)
    }

    async fn pull_image(&self, reference: &str) -> Result<()> {
        let what = format!("image {reference}");
        let options = PullOpts::builder().reference(reference).build();
        let images = self.client.images();
        let mut progress = images.pull(&options);
        while let Some(report) = progress.next().await {
            let report = report.map_err(self.fail("pull", &what))?;
            if let Some(error) = report.error.filter(|error| !error.is_empty()) {
                return Err(EngineError::Failed { operation: format!("pull {what}"), message: error });
            }
        }
        Ok(())
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        let what = format!("image {reference}");
        // Not forced: an image a container uses is a conflict, not a removal.
        self.client.images().get(reference).remove().await.map_err(self.fail("remove", &what))
    }

    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<VolumeInfo>> {
        let filters = labels.iter().map(|(k, v)| VolumeListFilter::LabelKeyVal(k.clone(), v.clone()));
        let options = VolumeListOpts::builder().filter(filters).build();
        let listed = self.client.volumes().list(&options).await.map_err(self.fail("list", "volumes"))?;
        // libpod 4.3 ORs a volume list's label filters: keep those with all.
        Ok(listed.into_iter().map(convert::volume_info).filter(|volume| has_labels(&volume.labels, labels)).collect())
    }

    async fn create_volume(&self, config: &VolumeConfig) -> Result<VolumeInfo> {
        let what = format!("volume {}", config.name);
        let mut options =
            VolumeCreateOpts::builder().name(&config.name).labels(&config.labels).options(&config.driver_opts);
        if !config.driver.is_empty() {
            options = options.driver(&config.driver);
        }
        let created = self.client.volumes().create(&options.build()).await.map_err(self.fail("create", &what))?;
        Ok(convert::created_volume_info(created))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let what = format!("volume {name}");
        self.client.volumes().get(name).remove().await.map_err(self.fail("remove", &what))
    }

    async fn list_networks(&self, labels: &Labels) -> Result<Vec<NetworkInfo>> {
        let filters = labels.iter().map(|(k, v)| NetworkListFilter::LabelKeyVal(k.clone(), v.clone()));
        let options = NetworkListOpts::builder().filter(filters).build();
        let mut listed = self.client.networks().list(&options).await.map_err(self.fail("list", "networks"))?;
        // As for volumes, in case a libpod ORs these filters too.
        listed.retain(|network| has_labels(&network.labels.clone().unwrap_or_default().into_iter().collect(), labels));
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let mut members = self.network_members().await?;
        Ok(listed
            .into_iter()
            .map(|network| {
                let containers = network.name.as_ref().and_then(|name| members.remove(name)).unwrap_or_default();
                convert::network_info(network, containers)
            })
            .collect())
    }

    async fn create_network(&self, config: &NetworkConfig) -> Result<NetworkInfo> {
        let what = format!("network {}", config.name);
        let mut options = NetworkCreateOpts::builder()
            .name(&config.name)
            .internal(config.internal)
            .ipv6_enabled(config.ipv6)
            // Without it, libpod's networks resolve neither names nor aliases;
            // but aardvark-dns takes the gateway's port 53, where berth
            // answers when asked to.
            .dns_enabled(!config.berth_dns)
            .labels(&config.labels);
        if !config.driver.is_empty() {
            options = options.driver(&config.driver);
        }
        if config.subnet.is_some() || config.gateway.is_some() {
            options = options.subnets([podman_api::models::Subnet {
                subnet: config.subnet.clone(),
                gateway: config.gateway.clone(),
                lease_range: None,
            }]);
        }
        let created = self.client.networks().create(&options.build()).await.map_err(self.fail("create", &what))?;
        Ok(convert::network_info(created, Vec::new()))
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let what = format!("network {name}");
        self.client.networks().get(name).remove().await.map(|_| ()).map_err(self.fail("remove", &what))
    }

    async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> Result<()> {
        let what = format!("network {network} or container {container}");
        let mut options = NetworkConnectOpts::builder();
        if !aliases.is_empty() {
            options = options.aliases(aliases);
        }
        let connected = self.client.containers().get(container).connect(network, &options.build()).await;
        match connected.map_err(self.fail("connect", &what)) {
            // libpod: "container ... is already connected to network ...".
            Err(EngineError::Failed { message, .. } | EngineError::Conflict { message, .. })
                if message.contains("already connected") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let what = format!("network {network} or container {container}");
        let disconnected = self.client.containers().get(container).disconnect(network, false).await;
        match disconnected.map_err(self.fail("disconnect", &what)) {
            // libpod: "container ... is not connected to network ...".
            Err(EngineError::Failed { message, .. } | EngineError::Conflict { message, .. })
                if message.contains("not connected") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecSession> {
        use podman_api::opts::{ExecCreateOpts, ExecStartOpts};
        use tokio_util::compat::FuturesAsyncWriteCompatExt;
        let what = format!("container {container}");
        let options = ExecCreateOpts::builder()
            .command(request.command.clone())
            .attach_stdin(request.stdin)
            .attach_stdout(true)
            .attach_stderr(true)
            .tty(request.tty)
            .build();
        let exec =
            self.client.containers().get(container).create_exec(&options).await.map_err(self.fail("exec in", &what))?;
        let mut start = ExecStartOpts::builder().tty(request.tty);
        if let Some(size) = request.size.filter(|_| request.tty) {
            start = start.width(usize::from(size.cols)).height(usize::from(size.rows));
        }
        let attached = exec.start(&start.build()).await.map_err(self.fail("exec in", &what))?;
        let Some(attached) = attached else {
            return Err(EngineError::Failed { operation: format!("exec in {what}"), message: "not attached".into() });
        };
        let (output, input) = attached.split();
        let endpoint = self.endpoint.clone();
        let output = output.filter_map(move |chunk| {
            use podman_api::conn::TtyChunk;
            let mapped = match chunk {
                Ok(TtyChunk::StdOut(bytes)) => Some(Ok(ExecOutput::Stdout(bytes.into()))),
                Ok(TtyChunk::StdErr(bytes)) => Some(Ok(ExecOutput::Stderr(bytes.into()))),
                Ok(TtyChunk::StdIn(_)) => None,
                Err(e) => Some(Err(EngineError::Unavailable { endpoint: endpoint.clone(), source: Box::new(e) })),
            };
            async move { mapped }
        });
        Ok(ExecSession { id: exec.id().to_string(), output: output.boxed(), input: Box::pin(input.compat_write()) })
    }

    async fn resize_exec(&self, exec: &str, size: TerminalSize) -> Result<()> {
        let what = format!("exec {exec}");
        let resize = self.client.execs().get(exec).resize(usize::from(size.cols), usize::from(size.rows)).await;
        resize.map_err(self.fail("resize", &what))
    }

    async fn exec_exit_code(&self, exec: &str) -> Result<Option<i64>> {
        let what = format!("exec {exec}");
        let inspected = self.client.execs().get(exec).inspect().await.map_err(self.fail("inspect", &what))?;
        if inspected.get("Running").and_then(serde_json::Value::as_bool) == Some(true) {
            return Ok(None);
        }
        Ok(inspected.get("ExitCode").and_then(serde_json::Value::as_i64))
    }

    async fn copy_from(&self, container: &str, path: &str) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
        let what = format!("{path} in container {container}");
        let query = format!("containers/{}/archive?path={}", query_escape(container), query_escape(path));
        let archive = self.raw.stream(&query).await.map_err(self.fail_raw("copy", &what))?;
        let endpoint = self.endpoint.clone();
        Ok(archive
            .map(move |chunk| {
                chunk.map_err(|error| match error {
                    LibpodError::Transport(source) => EngineError::Unavailable { endpoint: endpoint.clone(), source },
                    LibpodError::Status { message, .. } => {
                        EngineError::Failed { operation: format!("copy {what}"), message }
                    }
                })
            })
            .boxed())
    }

    async fn copy_to(&self, container: &str, directory: &str, tar: bytes::Bytes) -> Result<()> {
        let what = format!("{directory} in container {container}");
        let query = format!("containers/{}/archive?path={}", query_escape(container), query_escape(directory));
        let put = self.raw.call(hyper::Method::PUT, &query, "application/x-tar", tar.to_vec()).await;
        put.map(drop).map_err(self.fail_raw("copy into", &what))
    }

    async fn stats(&self, container: &str) -> Result<super::ContainerStats> {
        let what = format!("container {container}");
        let query = format!("containers/stats?containers={}&stream=false", query_escape(container));
        let answer = self.raw.call(hyper::Method::GET, &query, "application/json", Vec::new()).await;
        let answer = answer.map_err(self.fail_raw("read stats of", &what))?;
        let answer: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| EngineError::Failed {
            operation: format!("read stats of {what}"),
            message: format!("libpod answered what does not decode: {e}"),
        })?;
        if let Some(error) = answer.get("Error").filter(|e| !e.is_null()) {
            let message = error.as_str().map_or_else(|| error.to_string(), str::to_string);
            return Err(engine_error(
                Some(500),
                message.clone(),
                message.into(),
                &self.endpoint,
                "read stats of",
                &what,
            ));
        }
        let sample = answer["Stats"].get(0).cloned().unwrap_or_default();
        let number = |field: &str| sample.get(field).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Ok(super::ContainerStats {
            cpu_seconds: number("CPUNano") as f64 / 1e9,
            memory_bytes: number("MemUsage"),
            memory_limit_bytes: number("MemLimit"),
            network_receive_bytes: number("NetInput"),
            network_transmit_bytes: number("NetOutput"),
            block_read_bytes: number("BlockInput"),
            block_write_bytes: number("BlockOutput"),
        })
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<EngineEvent>>> {
        // `since` now: libpod replays what happens before the stream is
        // read, so the caller sees everything after this call returns.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let filters = r#"{"type":["container","network","volume","image"]}"#;
        let query = format!(
            "events?stream=true&since={}.{:09}&filters={}",
            now.as_secs(),
            now.subsec_nanos(),
            query_escape(filters)
        );
        let chunks = self.raw.stream(&query).await.map_err(self.fail_raw("watch", "events"))?;
        let endpoint = self.endpoint.clone();
        let chunks = chunks.map(move |chunk| {
            chunk.map_err(|error| EngineError::Unavailable { endpoint: endpoint.clone(), source: Box::new(error) })
        });
        // libpod reports every health check run; pass on changes only.
        let mut health: BTreeMap<String, Health> = BTreeMap::new();
        let events = super::lines_of(chunks).filter_map(move |line| {
            let event = match line {
                Ok(line) => {
                    serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| convert::event(&v)).map(Ok)
                }
                Err(error) => Some(Err(error)),
            };
            let event = match event {
                Some(Ok(event)) if event.subject == EventSubject::Container => match event.action {
                    EventAction::Health(now) if health.insert(event.id.clone(), now) == Some(now) => None,
                    EventAction::Destroy => {
                        health.remove(&event.id);
                        Some(Ok(event))
                    }
                    _ => Some(Ok(event)),
                },
                other => other,
            };
            std::future::ready(event)
        });
        Ok(events.boxed())
    }
}

/// Whether `path` is a socket some service answers on (a quick ping).
pub async fn answers(path: &Path) -> bool {
    PodmanEngine::connect(Some(&format!("unix://{}", path.display()))).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_unavailable() {
        match PodmanEngine::connect(Some("unix:///nonexistent/podman.sock")).await {
            Err(EngineError::Unavailable { endpoint, .. }) => assert_eq!(endpoint, "unix:///nonexistent/podman.sock"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(matches!(PodmanEngine::connect(Some("tcp://h:1")).await, Err(EngineError::Failed { .. })));
    }

    #[test]
    fn statuses_and_messages_map_to_kinds() {
        let map = |status, message: &str| {
            engine_error(status, message.into(), message.into(), "unix:///p", "remove", "network n")
        };
        assert!(map(Some(404), "no such network").is_not_found());
        assert!(map(Some(409), "volume with name v already exists").is_conflict());
        assert!(map(Some(500), "network is being used").is_conflict());
        let improper = "must be in Created or Stopped state to be started: container state improper";
        let start = engine_error(Some(500), improper.into(), improper.into(), "unix:///p", "start", "container c");
        assert!(start.is_conflict(), "a start refused while the container stops");
        assert!(matches!(map(Some(500), improper), EngineError::Failed { .. }), "other operations keep it a failure");
        assert!(matches!(map(Some(500), "boom"), EngineError::Failed { .. }));
        assert!(matches!(map(None, "broken pipe"), EngineError::Unavailable { .. }));
    }
}
