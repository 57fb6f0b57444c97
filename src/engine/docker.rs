//! Docker over bollard.
//!
//! [`DockerEngine`] translates the [`Engine`] trait to the Docker Engine API
//! (tested against Docker 20.10, API 1.41). It owns the behaviour that is
//! Docker's and not the model's: which status codes and messages mean
//! "not found" or "conflict" ([`engine_error`], the one place they are
//! decided), and the requests that need more than one API call. The
//! conversions between bollard's models and berth's types are pure functions
//! in [`convert`], unit-tested without an engine.
//!
//! Where Docker is more lenient than the trait promises, this module makes it
//! strict, so every engine behaves alike for the reconcilers:
//!
//! - creating a volume whose name exists succeeds in Docker (it returns the
//!   existing volume); here it is [`EngineError::Conflict`];
//! - creating a network whose name exists succeeds in Docker before API 1.44
//!   (a second network with the same name and a warning); here the duplicate
//!   is removed again and the answer is [`EngineError::Conflict`];
//! - a container is created on all its networks or not at all: API 1.41
//!   takes only one network at creation, the others are connected before
//!   `create_container` returns, and a failure removes the container;
//! - connecting a container that is already on the network, or
//!   disconnecting one that is not, succeeds (Docker answers 403 and 500).
//!
//! Events: Docker's `health_status: healthy` becomes
//! [`EventAction::Health`](super::EventAction::Health); a network's
//! `connect`/`disconnect` becomes a *container* event carrying the
//! container's id (what changed is the container's networks, and the
//! container is what a reconciler owns), with no labels, because Docker sends
//! none for it. See [`convert::event`].

mod convert;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{NetworkConnectRequest, NetworkDisconnectRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    InspectContainerOptions, InspectNetworkOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptions,
    RemoveVolumeOptions, StartContainerOptions, StopContainerOptionsBuilder,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::{
    BuildOutput, BuildRequest, ContainerConfig, ContainerInfo, Engine, EngineError, EngineEvent, EngineInfo,
    ExecOutput, ExecRequest, ExecSession, ImageInfo, Labels, NetworkConfig, NetworkInfo, Result, TerminalSize,
    VolumeConfig, VolumeInfo,
};

/// The socket Docker listens on when `DOCKER_HOST` is unset.
const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// Seconds a request may wait for the daemon's answer (bollard's default).
/// Stops wait longer: see [`DockerEngine::stop_container`].
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Build output lines kept in the error of a failed build.
const FAILED_BUILD_LINES: usize = 20;

/// A Docker daemon, reached over its unix socket or TCP.
///
/// Cheap to clone: the client is shared.
#[derive(Clone, Debug)]
pub struct DockerEngine {
    client: bollard::Docker,
    /// Where the daemon was reached, for [`EngineInfo`] and
    /// [`EngineError::Unavailable`].
    endpoint: String,
}

impl DockerEngine {
    /// Connects to `endpoint` (`unix:///path`, a bare socket path, or
    /// `tcp://host:port`), else to `DOCKER_HOST`, else to
    /// `/var/run/docker.sock`, and negotiates the API version.
    ///
    /// # Errors
    ///
    /// [`EngineError::Unavailable`] when the daemon does not answer;
    /// [`EngineError::Failed`] for an endpoint scheme bollard cannot use.
    pub async fn connect(endpoint: Option<&str>) -> Result<Self> {
        let endpoint = match endpoint {
            Some(endpoint) => endpoint.to_string(),
            None => {
                std::env::var("DOCKER_HOST").ok().filter(|host| !host.is_empty()).unwrap_or(DEFAULT_ENDPOINT.into())
            }
        };
        let version = bollard::API_DEFAULT_VERSION;
        let client = if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            bollard::Docker::connect_with_http(&endpoint, REQUEST_TIMEOUT_SECS, version)
        } else if endpoint.starts_with("unix://") || endpoint.starts_with('/') {
            bollard::Docker::connect_with_unix(&endpoint, REQUEST_TIMEOUT_SECS, version)
        } else {
            Err(BollardError::UnsupportedURISchemeError { uri: endpoint.clone() })
        };
        let connect = |error| engine_error(error, &endpoint, "connect to", "docker");
        // bollard 0.21 sends unversioned paths, which the daemon serves at its
        // own version (1.41 for Docker 20.10); negotiating keeps
        // `client_version()` truthful and protects against a bollard that
        // sends `/v1.53/...` to an older daemon.
        let client = client.map_err(connect)?.negotiate_version().await.map_err(connect)?;
        Ok(DockerEngine { client, endpoint })
    }

    /// Where the daemon was reached.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The mapping of bollard's errors for `verb` on `what` (`container web-0`).
    fn fail<'a>(&'a self, verb: &'a str, what: &'a str) -> impl FnOnce(BollardError) -> EngineError + 'a {
        move |error| engine_error(error, &self.endpoint, verb, what)
    }

    /// Whether `path` is on a tmpfs mount of the container. Docker's
    /// archive API reads and writes the container's own filesystem, under
    /// such a mount, where the running container never sees the files; the
    /// copy goes through `tar` in the container then, as `kubectl cp` does.
    async fn in_tmpfs(&self, container: &str, path: &str) -> Result<bool> {
        let what = format!("container {container}");
        let inspected = self
            .client
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(self.fail("inspect", &what))?;
        let mut targets: Vec<String> =
            inspected.host_config.and_then(|h| h.tmpfs).map(|t| t.into_keys().collect()).unwrap_or_default();
        targets.extend(
            inspected
                .mounts
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.typ.as_deref() == Some("tmpfs"))
                .filter_map(|m| m.destination),
        );
        let under = |target: &String| {
            let target = target.trim_end_matches('/');
            path == target || path.starts_with(&format!("{target}/"))
        };
        Ok(targets.iter().any(under))
    }

    /// Runs `tar` in the container: `input` (an archive) on its stdin, its
    /// stdout (an archive, for `-c`) as the stream. A failure (a missing
    /// path, no `tar` in the image) is the stream's error, with tar's words;
    /// a path tar cannot find is [`EngineError::NotFound`].
    async fn tar_by_exec(
        &self,
        container: &str,
        command: Vec<String>,
        input: Option<bytes::Bytes>,
        what: &str,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
        use tokio::io::AsyncWriteExt;
        let request = ExecRequest { command, tty: false, stdin: input.is_some(), size: None };
        let session = self.exec(container, &request).await?;
        if let Some(input) = input {
            let mut stdin = session.input;
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            });
        }
        let (engine, exec, what) = (self.clone(), session.id.clone(), what.to_string());
        let mut output = session.output;
        let stream = async_stream_of(move |sender| async move {
            let mut errors = Vec::new();
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(ExecOutput::Stdout(bytes)) => {
                        if sender.send(Ok(bytes)).await.is_err() {
                            return;
                        }
                    }
                    Ok(ExecOutput::Stderr(bytes)) if errors.len() < 4096 => errors.extend_from_slice(&bytes),
                    Ok(ExecOutput::Stderr(_)) => {}
                    Err(error) => return drop(sender.send(Err(error)).await),
                }
            }
            let code = super::exit_code_after_output(&engine, &exec).await;
            if code != Some(0) {
                let message = String::from_utf8_lossy(&errors).trim().to_string();
                let error =
                    if message.contains("No such file") || message.contains("can't") && message.contains("not found") {
                        EngineError::NotFound { what }
                    } else {
                        EngineError::Failed {
                            operation: format!("copy {what} with tar in the container (exit {code:?})"),
                            message,
                        }
                    };
                let _ = sender.send(Err(error)).await;
            }
        });
        // A missing path is an error now, not after the first bytes.
        let mut stream = stream.peekable();
        if let Some(Err(_)) = std::pin::Pin::new(&mut stream).peek().await {
            if let Some(Err(error)) = stream.next().await {
                return Err(error);
            }
        }
        Ok(stream.boxed())
    }

    async fn inspect_network(&self, name: &str) -> Result<NetworkInfo> {
        let what = format!("network {name}");
        let network = self
            .client
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
            .map_err(self.fail("inspect", &what))?;
        Ok(convert::network_info(network))
    }
}

/// A path's parent and last part: `/www/a` is `/www` and `a`.
fn split_path(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/".into(), name.into()),
        Some((parent, name)) => (parent.into(), name.into()),
        None => ("/".into(), trimmed.into()),
    }
}

/// The items `produce` sends, as a stream (a bounded channel between them).
fn async_stream_of<T, F, Fut>(produce: F) -> impl futures::Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    tokio::spawn(produce(sender));
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Label filters as the list endpoints take them: `label=key=value`.
fn label_filters(labels: &Labels) -> HashMap<String, Vec<String>> {
    let wanted: Vec<String> = labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
    HashMap::from([("label".to_string(), wanted)])
}

#[async_trait]
impl Engine for DockerEngine {
    async fn info(&self) -> Result<EngineInfo> {
        let version = self.client.version().await.map_err(self.fail("query", "docker version"))?;
        Ok(EngineInfo {
            kind: "docker".into(),
            version: version.version.unwrap_or_default(),
            endpoint: self.endpoint.clone(),
        })
    }

    async fn list_containers(&self, labels: &Labels) -> Result<Vec<ContainerInfo>> {
        let options = ListContainersOptionsBuilder::new().all(true).filters(&label_filters(labels)).build();
        let listed = self.client.list_containers(Some(options)).await.map_err(self.fail("list", "containers"))?;
        // The list lacks exit codes, restart counts and health on API 1.41.
        let ids = listed.into_iter().filter_map(|summary| summary.id).collect();
        super::inspect_each(ids, |id| async move { self.inspect_container(&id).await }).await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        let what = format!("container {id}");
        let inspected = self
            .client
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(self.fail("inspect", &what))?;
        Ok(convert::container_info(inspected))
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        let what = format!("container {}", config.name);
        let options = CreateContainerOptionsBuilder::new().name(&config.name).build();
        let created = self.client.create_container(Some(options), convert::create_body(config)).await.map_err(
            |error| match self.fail("create", &what)(error) {
                // A 404 is about what the container refers to, not about it.
                EngineError::NotFound { .. } => {
                    EngineError::NotFound { what: format!("image {} or a network of {what}", config.image) }
                }
                other => other,
            },
        )?;
        // API 1.41 attaches one network at creation; join the others now, so
        // the container starts on all of them.
        for attachment in config.networks.iter().skip(1) {
            if let Err(error) = self.connect_network(&attachment.network, &created.id, &attachment.aliases).await {
                // Half-made containers would read as "already exists" on the
                // next attempt; best effort, the connect error is the news.
                let _ = self.remove_container(&created.id).await;
                return Err(error);
            }
        }
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        // A running container answers 304, which bollard counts as success.
        let what = format!("container {id}");
        self.client.start_container(id, None::<StartContainerOptions>).await.map_err(self.fail("start", &what))
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let what = format!("container {id}");
        let seconds = convert::whole_seconds(grace);
        let options = StopContainerOptionsBuilder::new().t(i32::try_from(seconds).unwrap_or(i32::MAX)).build();
        // The daemon answers after the container is gone, up to the grace
        // period later: wait for that on top of the usual timeout.
        let client = self.client.clone().with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS + seconds));
        // A stopped container answers 304, which bollard counts as success.
        client.stop_container(id, Some(options)).await.map_err(self.fail("stop", &what))
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let what = format!("container {id}");
        // `v`: anonymous volumes (an image's VOLUME) go with the container;
        // named volumes never do.
        let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        self.client.remove_container(id, Some(options)).await.map_err(self.fail("remove", &what))
    }

    async fn container_logs(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        let what = format!("container {id}");
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).tail(&tail.to_string()).build();
        let chunks: Vec<_> =
            self.client.logs(id, Some(options)).try_collect().await.map_err(self.fail("read logs of", &what))?;
        let bytes: Vec<u8> = chunks.into_iter().flat_map(|chunk| chunk.into_bytes()).collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        // Frames are writes, not lines: trim again in case one held several.
        Ok(lines[lines.len().saturating_sub(tail)..].to_vec())
    }

    async fn stream_logs(&self, id: &str, tail: usize, follow: bool) -> Result<BoxStream<'static, Result<String>>> {
        let what = format!("container {id}");
        // Ask first: the logs stream reports a missing container only once polled.
        self.client.inspect_container(id, None).await.map_err(self.fail("read logs of", &what))?;
        let options =
            LogsOptionsBuilder::new().stdout(true).stderr(true).follow(follow).tail(&tail.to_string()).build();
        let endpoint = self.endpoint.clone();
        let chunks = self.client.logs(id, Some(options)).map(move |chunk| {
            chunk.map(|c| c.into_bytes()).map_err(|e| engine_error(e, &endpoint, "read logs of", &what))
        });
        Ok(super::lines_of(chunks))
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        let what = format!("image {reference}");
        match self.client.inspect_image(reference).await.map_err(self.fail("inspect", &what)) {
            Ok(image) => Ok(Some(convert::image_info(image))),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn build_image(&self, request: &BuildRequest) -> Result<BuildOutput> {
        let what = format!("image {}", request.tag);
        let dockerfile = if request.dockerfile.is_empty() { "Dockerfile" } else { &request.dockerfile };
        let mut options = BuildImageOptionsBuilder::new()
            .dockerfile(dockerfile)
            .t(&request.tag)
            .buildargs(&request.build_args.clone().into_iter().collect::<HashMap<_, _>>())
            .labels(&request.labels.clone().into_iter().collect::<HashMap<_, _>>())
            .rm(true)
            .forcerm(true);
        if let Some(target) = &request.target {
            options = options.target(target);
        }
        let body = bollard::body_full(request.context_tar.clone().into());
        let mut progress = self.client.build_image(options.build(), None, Some(body));
        let mut output = BuildOutput::default();
        while let Some(item) = progress.next().await {
            match item {
                Ok(info) => {
                    let text = info.stream.unwrap_or_default();
                    output.log.extend(text.lines().filter(|line| !line.trim().is_empty()).map(str::to_string));
                    if let Some(id) = info.aux.and_then(|aux| aux.id) {
                        output.image_id = id;
                    }
                }
                // bollard turns the stream's `errorDetail` item into an error.
                Err(error) => {
                    return Err(match self.fail("build", &what)(error) {
                        EngineError::Failed { operation, message } => {
                            let tail = &output.log[output.log.len().saturating_sub(FAILED_BUILD_LINES)..];
                            EngineError::Failed { operation, message: format!("{message}\n{}", tail.join("\n")) }
                        }
                        other => other,
                    });
                }
            }
        }
        if output.image_id.is_empty() {
            // Older daemons do not send the `aux` item; the tag says it.
            let image = self.inspect_image(&request.tag).await?;
            output.image_id = image.map(|image| image.id).ok_or_else(|| EngineError::Failed {
                operation: format!("build {what}"),
                message: "the build reported success but produced no image".into(),
            })?;
        }
        Ok(output)
    }

    async fn pull_image(&self, reference: &str) -> Result<()> {
        let what = format!("image {reference}");
        let (image, tag) = convert::split_reference(reference);
        let mut options = CreateImageOptionsBuilder::new().from_image(image);
        // Without a tag the daemon would pull every tag of the repository.
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        let progress = self.client.create_image(Some(options.build()), None, None);
        progress.try_for_each(|_| async { Ok(()) }).await.map_err(self.fail("pull", &what))
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        let what = format!("image {reference}");
        // Not forced: an image a container uses is a conflict, not a removal.
        self.client
            .remove_image(reference, None::<RemoveImageOptions>, None)
            .await
            .map_err(self.fail("remove", &what))?;
        Ok(())
    }

    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<VolumeInfo>> {
        let options = ListVolumesOptionsBuilder::new().filters(&label_filters(labels)).build();
        let listed = self.client.list_volumes(Some(options)).await.map_err(self.fail("list", "volumes"))?;
        Ok(listed.volumes.unwrap_or_default().into_iter().map(convert::volume_info).collect())
    }

    async fn create_volume(&self, config: &VolumeConfig) -> Result<VolumeInfo> {
        let what = format!("volume {}", config.name);
        // Docker answers a create of an existing volume with that volume;
        // the trait promises a conflict. Racy only against a concurrent
        // create of the same name, which the controller never runs.
        match self.client.inspect_volume(&config.name).await.map_err(self.fail("inspect", &what)) {
            Ok(_) => return Err(EngineError::Conflict { what, message: "a volume with this name exists".into() }),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
        let request = VolumeCreateRequest {
            name: Some(config.name.clone()),
            driver: Some(config.driver.clone()).filter(|driver| !driver.is_empty()),
            driver_opts: Some(config.driver_opts.clone().into_iter().collect()),
            labels: Some(config.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let volume = self.client.create_volume(request).await.map_err(self.fail("create", &what))?;
        Ok(convert::volume_info(volume))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let what = format!("volume {name}");
        self.client.remove_volume(name, None::<RemoveVolumeOptions>).await.map_err(self.fail("remove", &what))
    }

    async fn list_networks(&self, labels: &Labels) -> Result<Vec<NetworkInfo>> {
        let options = ListNetworksOptionsBuilder::new().filters(&label_filters(labels)).build();
        let listed = self.client.list_networks(Some(options)).await.map_err(self.fail("list", "networks"))?;
        // Only an inspect names the attached containers.
        let ids = listed.into_iter().filter_map(|network| network.id).collect();
        super::inspect_each(ids, |id| async move { self.inspect_network(&id).await }).await
    }

    async fn create_network(&self, config: &NetworkConfig) -> Result<NetworkInfo> {
        let what = format!("network {}", config.name);
        // Ask first: a create that Docker turns into a duplicate and berth
        // removes again emits a create and a destroy event, and a destroy
        // wakes every Network object, this one too: a foreign network of the
        // same name would have it retry at once, forever.
        match self.inspect_network(&config.name).await {
            Ok(existing) => {
                let message = format!("a network named {} exists already ({})", config.name, existing.id);
                return Err(EngineError::Conflict { what, message });
            }
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
        let created =
            self.client.create_network(convert::network_request(config)).await.map_err(self.fail("create", &what))?;
        // Before API 1.44 Docker creates a second network of the same name
        // and only warns (bollard's model has no `CheckDuplicate` to ask for
        // the error). Undo it: exactly one of two racing creates gets the
        // warning, so the first network survives.
        if created.warning.contains("already exists") {
            let _ = self.client.remove_network(&created.id).await;
            return Err(EngineError::Conflict { what, message: created.warning });
        }
        self.inspect_network(&created.id).await
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let what = format!("network {name}");
        self.client.remove_network(name).await.map_err(self.fail("remove", &what))
    }

    async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> Result<()> {
        let what = format!("network {network} or container {container}");
        let request = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(bollard::models::EndpointSettings {
                aliases: Some(aliases.to_vec()).filter(|aliases| !aliases.is_empty()),
                ..Default::default()
            }),
        };
        match self.client.connect_network(network, request).await.map_err(self.fail("connect", &what)) {
            // "endpoint with name … already exists in network …" (403). The
            // aliases of the existing endpoint are left as they are.
            Err(error) if error.is_conflict() => Ok(()),
            other => other,
        }
    }

    async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let what = format!("network {network} or container {container}");
        let request = NetworkDisconnectRequest { container: container.to_string(), force: Some(false) };
        match self.client.disconnect_network(network, request).await {
            // "container … is not connected to network …" (500 on 20.10).
            Err(BollardError::DockerResponseServerError { message, .. }) if message.contains("is not connected") => {
                Ok(())
            }
            other => other.map_err(self.fail("disconnect", &what)),
        }
    }

    async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecSession> {
        use bollard::exec::{StartExecOptions, StartExecResults};
        let what = format!("container {container}");
        let config = bollard::models::ExecConfig {
            attach_stdin: Some(request.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            cmd: Some(request.command.clone()),
            console_size: request.size.map(|size| vec![usize::from(size.rows), usize::from(size.cols)]),
            ..Default::default()
        };
        let created = self.client.create_exec(container, config).await.map_err(self.fail("exec in", &what))?;
        let options = StartExecOptions { detach: false, tty: request.tty, output_capacity: None };
        let started = self.client.start_exec(&created.id, Some(options)).await.map_err(self.fail("exec in", &what))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(EngineError::Failed { operation: format!("exec in {what}"), message: "not attached".into() });
        };
        // API 1.41 ignores the console size at creation: size the terminal
        // now, as the docker CLI does (the exec may take a moment to start).
        if let Some(size) = request.size.filter(|_| request.tty) {
            let mut delay = Duration::from_millis(10);
            while let Err(error) = self.resize_exec(&created.id, size).await {
                if delay > Duration::from_millis(500) {
                    tracing::debug!(exec = %created.id, %error, "the exec's terminal was not sized");
                    break;
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        let endpoint = self.endpoint.clone();
        let output = output.filter_map(move |chunk| {
            let mapped = match chunk {
                Ok(bollard::container::LogOutput::StdErr { message }) => Some(Ok(ExecOutput::Stderr(message))),
                Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                Ok(other) => Some(Ok(ExecOutput::Stdout(other.into_bytes()))),
                Err(e) => Some(Err(engine_error(e, &endpoint, "read the output of", &what))),
            };
            async move { mapped }
        });
        Ok(ExecSession { id: created.id, output: output.boxed(), input })
    }

    async fn resize_exec(&self, exec: &str, size: TerminalSize) -> Result<()> {
        let what = format!("exec {exec}");
        let options = bollard::exec::ResizeExecOptions { height: size.rows, width: size.cols };
        self.client.resize_exec(exec, options).await.map_err(self.fail("resize", &what))
    }

    async fn exec_exit_code(&self, exec: &str) -> Result<Option<i64>> {
        let what = format!("exec {exec}");
        let inspected = self.client.inspect_exec(exec).await.map_err(self.fail("inspect", &what))?;
        Ok(if inspected.running == Some(true) { None } else { inspected.exit_code })
    }

    async fn copy_from(&self, container: &str, path: &str) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
        let what = format!("{path} in container {container}");
        if self.in_tmpfs(container, path).await? {
            // tar reports a missing path after its (empty) archive: ask first.
            let exists = vec!["test".into(), "-e".into(), path.to_string()];
            let missing = |error| match error {
                EngineError::Failed { .. } => EngineError::NotFound { what: what.clone() },
                other => other,
            };
            let mut check = self.tar_by_exec(container, exists, None, &what).await.map_err(missing)?;
            while let Some(chunk) = check.next().await {
                chunk.map_err(missing)?;
            }
            let (parent, name) = split_path(path);
            return self
                .tar_by_exec(
                    container,
                    vec!["tar".into(), "-c".into(), "-f".into(), "-".into(), "-C".into(), parent, name],
                    None,
                    &what,
                )
                .await;
        }
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new().path(path).build();
        let mut archive = self.client.download_from_container(container, Some(options)).boxed();
        // The first chunk carries the answer's status: a missing path is an
        // error now, not in the middle of a download.
        let first = match archive.next().await {
            Some(chunk) => Some(chunk.map_err(self.fail("copy", &what))?),
            None => None,
        };
        let endpoint = self.endpoint.clone();
        let rest = archive.map(move |chunk| chunk.map_err(|e| engine_error(e, &endpoint, "copy", &what)));
        Ok(futures::stream::iter(first.map(Ok)).chain(rest).boxed())
    }

    async fn copy_to(&self, container: &str, directory: &str, tar: bytes::Bytes) -> Result<()> {
        let what = format!("{directory} in container {container}");
        if self.in_tmpfs(container, directory).await? {
            let command = vec!["tar".into(), "-x".into(), "-f".into(), "-".into(), "-C".into(), directory.to_string()];
            let mut output = self.tar_by_exec(container, command, Some(tar), &what).await?;
            while let Some(chunk) = output.next().await {
                chunk?;
            }
            return Ok(());
        }
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::new().path(directory).build();
        self.client
            .upload_to_container(container, Some(options), bollard::body_full(tar))
            .await
            .map_err(self.fail("copy into", &what))
    }

    async fn stats(&self, container: &str) -> Result<super::ContainerStats> {
        let what = format!("container {container}");
        // One sample, without the second one Docker waits a second for to
        // compute a CPU percentage berth does not use.
        let options = bollard::query_parameters::StatsOptions { stream: false, one_shot: true };
        let sample = self.client.stats(container, Some(options)).next().await;
        let sample = sample.ok_or_else(|| EngineError::Failed {
            operation: format!("read stats of {what}"),
            message: "no sample".into(),
        })?;
        Ok(convert::stats(sample.map_err(self.fail("read stats of", &what))?))
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<EngineEvent>>> {
        // The request goes out when the stream is first polled; `since` now
        // makes the daemon replay what happens in between, so the caller
        // sees everything after this call returns.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let since = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let types = vec!["container", "network", "volume", "image"];
        let options = EventsOptionsBuilder::new().since(&since).filters(&HashMap::from([("type", types)])).build();
        let endpoint = self.endpoint.clone();
        let events = self.client.events(Some(options)).filter_map(move |item| {
            let mapped = match item {
                Ok(message) => convert::event(message).map(Ok),
                Err(error) => Some(Err(engine_error(error, &endpoint, "watch", "events"))),
            };
            async move { mapped }
        });
        Ok(events.boxed())
    }
}

/// The one mapping of bollard's errors to [`EngineError`], for `verb` on
/// `what`.
///
/// - 404 is [`EngineError::NotFound`];
/// - 409, and Docker's in-use and already-exists refusals that come with
///   other codes (a network with endpoints is 403, a second endpoint of a
///   container on a network is 403), are [`EngineError::Conflict`];
/// - failing to reach the daemon, or losing it mid-answer, is
///   [`EngineError::Unavailable`];
/// - everything else is [`EngineError::Failed`] with the daemon's words.
fn engine_error(error: BollardError, endpoint: &str, verb: &str, what: &str) -> EngineError {
    const CONFLICTS: [&str; 4] = ["already exists", "already in use", "is in use", "has active endpoints"];
    match error {
        BollardError::DockerResponseServerError { status_code: 404, .. } => EngineError::NotFound { what: what.into() },
        BollardError::DockerResponseServerError { status_code, message }
            if status_code == 409 || CONFLICTS.iter().any(|words| message.contains(words)) =>
        {
            EngineError::Conflict { what: what.into(), message }
        }
        BollardError::DockerResponseServerError { message, .. } => {
            EngineError::Failed { operation: format!("{verb} {what}"), message }
        }
        // A failure reported inside a stream (a build step, a pull).
        BollardError::DockerStreamError { error } => {
            EngineError::Failed { operation: format!("{verb} {what}"), message: error }
        }
        BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }
        | BollardError::SocketNotFoundError(_)
        | BollardError::RequestTimeoutError => {
            EngineError::Unavailable { endpoint: endpoint.into(), source: Box::new(error) }
        }
        other => EngineError::Failed { operation: format!("{verb} {what}"), message: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_unavailable() {
        match DockerEngine::connect(Some("unix:///nonexistent/docker.sock")).await {
            Err(EngineError::Unavailable { endpoint, .. }) => assert_eq!(endpoint, "unix:///nonexistent/docker.sock"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_closed_tcp_port_is_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let endpoint = format!("tcp://127.0.0.1:{port}");
        match DockerEngine::connect(Some(&endpoint)).await {
            Err(EngineError::Unavailable { .. }) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn status_codes_and_messages_map_to_kinds() {
        let server = |status_code, message: &str| BollardError::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        let map = |error| engine_error(error, "unix:///d.sock", "remove", "network n");
        assert!(map(server(404, "network n not found")).is_not_found());
        assert!(map(server(409, "volume is in use")).is_conflict());
        assert!(map(server(403, "error while removing network: network n id 1 has active endpoints")).is_conflict());
        assert!(map(server(403, "endpoint with name c already exists in network n")).is_conflict());
        match map(server(500, "boom")) {
            EngineError::Failed { operation, message } => {
                assert_eq!((operation.as_str(), message.as_str()), ("remove network n", "boom"))
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        assert!(matches!(map(BollardError::RequestTimeoutError), EngineError::Unavailable { .. }));
    }
}
