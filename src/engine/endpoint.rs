//! Where the engine is: the endpoints `--engine docker|podman|auto` try,
//! and a Podman API service berth starts itself when asked to.
//!
//! `auto` follows the engines' own conventions: `DOCKER_HOST`, then
//! `CONTAINER_HOST` (Podman's remote client variable) when set; otherwise
//! the first socket that answers of `/var/run/docker.sock`,
//! `/run/podman/podman.sock` and `$XDG_RUNTIME_DIR/podman/podman.sock`.
//! Which one was chosen, and why, is logged by the caller.
//!
//! Podman has no daemon: its REST API is served by `podman system service`,
//! usually a systemd socket unit. Where nothing serves it,
//! [`PodmanService`] runs one as berth's child, for as long as berth runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::docker::DockerEngine;
use super::podman::{self, PodmanEngine};
use super::{Engine, EngineError, Result};

/// The socket Docker listens on by default.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// How long a started service may take to answer.
const SERVICE_START: Duration = Duration::from_secs(30);
/// How long a started service gets to exit after SIGTERM.
const SERVICE_STOP: Duration = Duration::from_secs(10);

/// Which engine to look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Whichever answers first (see the module doc).
    Auto,
    /// Docker only.
    Docker,
    /// Podman only.
    Podman,
}

/// An engine backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Docker's API, through bollard.
    Docker,
    /// Podman's libpod API.
    Podman,
}

impl Backend {
    /// `docker` or `podman`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Docker => "docker",
            Backend::Podman => "podman",
        }
    }
}

/// One place an engine may answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Which API it speaks.
    pub backend: Backend,
    /// `unix:///path` or `tcp://host:port`.
    pub endpoint: String,
    /// Why it is tried (`DOCKER_HOST`, `default socket`), for the log.
    pub reason: &'static str,
}

impl Candidate {
    fn new(backend: Backend, endpoint: impl Into<String>, reason: &'static str) -> Self {
        Candidate { backend, endpoint: endpoint.into(), reason }
    }

    /// The socket path, for a `unix://` endpoint.
    pub fn socket(&self) -> Option<PathBuf> {
        self.endpoint.strip_prefix("unix://").map(PathBuf::from)
    }

    /// Connects (and pings).
    ///
    /// # Errors
    ///
    /// The backend's connect error: [`EngineError::Unavailable`] when
    /// nothing answers.
    pub async fn connect(&self) -> Result<Arc<dyn Engine>> {
        Ok(match self.backend {
            Backend::Docker => Arc::new(DockerEngine::connect(Some(&self.endpoint)).await?),
            Backend::Podman => Arc::new(PodmanEngine::connect(Some(&self.endpoint)).await?),
        })
    }
}

/// The endpoints `selection` tries, in order, reading the environment
/// through `var` and Podman's user socket from `podman_socket`.
pub fn candidates(
    selection: Selection,
    var: impl Fn(&str) -> Option<String>,
    podman_socket: Option<PathBuf>,
) -> Vec<Candidate> {
    let var = |name: &str| var(name).filter(|value| !value.is_empty());
    let unix = |path: &Path| format!("unix://{}", path.display());
    let docker = || match var("DOCKER_HOST") {
        Some(host) => Candidate::new(Backend::Docker, host, "DOCKER_HOST"),
        None => Candidate::new(Backend::Docker, format!("unix://{DOCKER_SOCKET}"), "default Docker socket"),
    };
    let podman = || {
        let mut found = Vec::new();
        match var("CONTAINER_HOST") {
            Some(host) => found.push(Candidate::new(Backend::Podman, host, "CONTAINER_HOST")),
            None => {
                found.push(Candidate::new(
                    Backend::Podman,
                    unix(Path::new(podman::ROOT_SOCKET)),
                    "rootful Podman socket",
                ));
                if let Some(user) = podman_socket.clone().filter(|path| path != Path::new(podman::ROOT_SOCKET)) {
                    found.push(Candidate::new(Backend::Podman, unix(&user), "rootless Podman socket"));
                }
            }
        }
        found
    };
    match selection {
        Selection::Docker => vec![docker()],
        Selection::Podman => podman(),
        Selection::Auto => {
            let (docker_host, container_host) = (var("DOCKER_HOST").is_some(), var("CONTAINER_HOST").is_some());
            let mut found = Vec::new();
            if docker_host || !container_host {
                found.push(docker());
            }
            if container_host || !docker_host {
                found.extend(podman());
            }
            found
        }
    }
}

/// Whether a `podman` executable is on the `PATH`.
pub fn podman_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("podman").is_file()))
}

/// `podman system service` running as berth's child, serving the libpod
/// API on a socket until [`stop`](Self::stop) (or until berth's process
/// ends: the child is killed when this value is dropped).
#[derive(Debug)]
pub struct PodmanService {
    child: tokio::process::Child,
    socket: PathBuf,
}

impl PodmanService {
    /// Starts the service on `socket` and waits until it answers.
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] when it cannot be spawned, exits, or does not
    /// answer within 30 s (its output is in berth's log either way).
    pub async fn start(socket: &Path) -> Result<Self> {
        let failed = |message: String| EngineError::Failed { operation: "start podman system service".into(), message };
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
        }
        // A socket file left by a service that died would refuse the bind.
        if socket.exists() {
            let _ = std::fs::remove_file(socket);
        }
        let child = tokio::process::Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            // With these set, `podman` is a remote client, which cannot serve.
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("spawning podman: {e}")))?;
        let mut service = PodmanService { child, socket: socket.to_path_buf() };
        let started = Instant::now();
        loop {
            if podman::answers(socket).await {
                return Ok(service);
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                return Err(failed(format!("it exited with {status}")));
            }
            if started.elapsed() > SERVICE_START {
                let _ = service.child.kill().await;
                return Err(failed(format!("no answer on {} within {SERVICE_START:?}", socket.display())));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The socket it serves.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops the service: SIGTERM, then SIGKILL after 10 s. Containers keep
    /// running (they belong to conmon, not to the service).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
            // SAFETY: kill has no memory preconditions; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if tokio::time::timeout(SERVICE_STOP, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    fn endpoints(found: &[Candidate]) -> Vec<(&str, &str)> {
        found.iter().map(|c| (c.backend.as_str(), c.endpoint.as_str())).collect()
    }

    #[test]
    fn auto_tries_the_variables_then_the_default_sockets() {
        let rootless = Some(PathBuf::from("/run/user/1000/podman/podman.sock"));
        assert_eq!(
            endpoints(&candidates(Selection::Auto, env(&[]), rootless.clone())),
            [
                ("docker", "unix:///var/run/docker.sock"),
                ("podman", "unix:///run/podman/podman.sock"),
                ("podman", "unix:///run/user/1000/podman/podman.sock")
            ]
        );
        assert_eq!(
            endpoints(&candidates(Selection::Auto, env(&[("DOCKER_HOST", "tcp://h:2375")]), rootless.clone())),
            [("docker", "tcp://h:2375")]
        );
        assert_eq!(
            endpoints(&candidates(Selection::Auto, env(&[("CONTAINER_HOST", "unix:///p.sock")]), rootless.clone())),
            [("podman", "unix:///p.sock")]
        );
        assert_eq!(
            endpoints(&candidates(
                Selection::Podman,
                env(&[("DOCKER_HOST", "")]),
                Some(PathBuf::from(podman::ROOT_SOCKET))
            )),
            [("podman", "unix:///run/podman/podman.sock")]
        );
        assert_eq!(
            endpoints(&candidates(Selection::Docker, env(&[]), rootless)),
            [("docker", "unix:///var/run/docker.sock")]
        );
    }
}
