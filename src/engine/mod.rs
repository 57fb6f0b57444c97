//! Container engines, behind one trait.
//!
//! The controller never talks to Docker or Podman directly: it asks an
//! [`Engine`] in berth's own terms ([`types`]), and each backend translates.
//! That keeps engine quirks out of the reconcilers, and lets the in-memory
//! [`fake`] engine stand in for fast tests, fault injection and benchmarks.
//!
//! - [`docker`]: Docker over bollard (unix socket or `DOCKER_HOST`).
//! - [`podman`]: Podman over its libpod REST API (podman-api, plus raw
//!   requests where it falls short), running the health checks Podman
//!   leaves to systemd.
//! - [`endpoint`]: which engine `--engine auto` picks.
//! - [`fake`]: in memory, with the same semantics, scripted failures and latency.
//! - [`build_context`]: the in-memory tar an image build sends.
//! - [`labels`]: berth's ownership labels and the spec hash.
//! - [`lines_of`]: engine output chunks cut into lines.
//! - [`reflector`]: one event stream and cache of berth's engine objects,
//!   shared by the controller and the endpoint set.

pub mod build_context;
pub mod docker;
pub mod endpoint;
mod error;
mod exec;
pub mod fake;
pub mod labels;
mod log_lines;
pub mod podman;
pub mod reflector;
mod stats;
pub mod subscribe;
pub mod types;

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

pub use error::{EngineError, Result};
pub use exec::{exit_code_after_output, ExecOutput, ExecRequest, ExecSession, TerminalSize};
pub use log_lines::lines_of;
pub use stats::ContainerStats;
pub use types::*;

/// What berth needs from a container engine.
///
/// Implementations must be safe to call concurrently. "Not found" and
/// "conflict" are reported as [`EngineError::NotFound`] and
/// [`EngineError::Conflict`], whatever the engine's own words, because
/// reconcilers rely on them to stay idempotent (removing a container that is
/// gone is success; creating one that exists means a previous attempt got
/// further than it knew).
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Who the engine is; fails when it cannot be reached.
    async fn info(&self) -> Result<EngineInfo>;

    /// Containers carrying every label of `labels` (running or not).
    async fn list_containers(&self, labels: &Labels) -> Result<Vec<ContainerInfo>>;
    /// One container by id or name.
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo>;
    /// Creates a container (not started); returns its id.
    async fn create_container(&self, config: &ContainerConfig) -> Result<String>;
    /// Starts a container; starting a running one succeeds.
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Stops a container, waiting `grace` before SIGKILL; stopping a stopped one succeeds.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    /// Removes a container (killing it if running).
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// The last `tail` lines of a container's output (stdout and stderr).
    async fn container_logs(&self, id: &str, tail: usize) -> Result<Vec<String>>;
    /// A container's output as a stream of lines: the last `tail` lines,
    /// then, with `follow`, each new line until the container stops.
    async fn stream_logs(&self, id: &str, tail: usize, follow: bool) -> Result<BoxStream<'static, Result<String>>>;

    /// An image by reference or id, `None` when absent.
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>>;
    /// Builds an image from a tar context.
    async fn build_image(&self, request: &BuildRequest) -> Result<BuildOutput>;
    /// Pulls an image from its registry.
    async fn pull_image(&self, reference: &str) -> Result<()>;
    /// Removes an image tag.
    async fn remove_image(&self, reference: &str) -> Result<()>;

    /// Volumes carrying every label of `labels`.
    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<VolumeInfo>>;
    /// Creates a volume; returns what the engine made.
    async fn create_volume(&self, config: &VolumeConfig) -> Result<VolumeInfo>;
    /// Removes a volume and its data.
    async fn remove_volume(&self, name: &str) -> Result<()>;

    /// Networks carrying every label of `labels`.
    async fn list_networks(&self, labels: &Labels) -> Result<Vec<NetworkInfo>>;
    /// Creates a network; returns what the engine made.
    async fn create_network(&self, config: &NetworkConfig) -> Result<NetworkInfo>;
    /// Removes a network.
    async fn remove_network(&self, name: &str) -> Result<()>;
    /// Attaches a container to a network.
    async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> Result<()>;
    /// Detaches a container from a network.
    async fn disconnect_network(&self, network: &str, container: &str) -> Result<()>;

    /// Starts `request` in a running container, attached.
    async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecSession>;
    /// Resizes an exec's terminal.
    async fn resize_exec(&self, exec: &str, size: TerminalSize) -> Result<()>;
    /// An exec's exit code: `None` while it runs.
    async fn exec_exit_code(&self, exec: &str) -> Result<Option<i64>>;

    /// A tar archive of `path` in a container, as `docker cp` reads one: a
    /// file as one entry, a directory as its name and everything under it.
    async fn copy_from(&self, container: &str, path: &str) -> Result<BoxStream<'static, Result<bytes::Bytes>>>;
    /// Extracts the tar archive `tar` into the directory `directory` of a
    /// container, which must exist.
    async fn copy_to(&self, container: &str, directory: &str, tar: bytes::Bytes) -> Result<()>;

    /// A running container's resource use now.
    async fn stats(&self, container: &str) -> Result<ContainerStats>;

    /// Engine events from now on. The stream ends (or yields an error) when
    /// the connection drops; the caller reconnects and resyncs.
    async fn events(&self) -> Result<BoxStream<'static, Result<EngineEvent>>>;
}

/// How many inspects a list runs at once (engines' lists answer with less
/// than [`ContainerInfo`] and [`NetworkInfo`] need).
const INSPECT_CONCURRENCY: usize = 8;

/// Inspects each listed object with `inspect`, at most
/// [`INSPECT_CONCURRENCY`] at once, skipping those removed since the list.
pub(crate) async fn inspect_each<T, F>(ids: Vec<String>, inspect: impl Fn(String) -> F) -> Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T>>,
{
    let found: Vec<Option<T>> = stream::iter(ids)
        .map(|id| {
            let inspecting = inspect(id);
            async move {
                match inspecting.await {
                    Ok(info) => Ok(Some(info)),
                    Err(error) if error.is_not_found() => Ok(None),
                    Err(error) => Err(error),
                }
            }
        })
        .buffered(INSPECT_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}
