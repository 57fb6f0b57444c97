//! Choosing and reaching the container engine: waiting for it as at boot,
//! starting a Podman service when asked, and saying how to get an engine
//! when none answers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::controller::runtime::Shutdown;
use crate::engine::endpoint::{self, PodmanService, Selection};
use crate::engine::fake::FakeEngine;
use crate::engine::Engine;
use crate::start_error::Doing as _;

/// Which engine the daemon drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EngineKind {
    /// A real engine, found as `selection` says.
    Real(Selection),
    /// The in-memory engine, for trying berth without containers.
    Fake,
}

/// The engine and what to do with the one found.
pub(crate) struct EngineConfig {
    pub kind: EngineKind,
    /// When Podman is installed but not served, run `podman system service`.
    pub start_podman_service: bool,
    /// Take over a lost store's engine objects instead of refusing to start.
    pub adopt: bool,
}

/// Connects to the chosen engine, waiting for it to come up; `None` when a
/// signal came first. With `start_podman_service`, a Podman that is
/// installed but not served is started (the service is returned, to stop on
/// exit); without it, that case is an error saying so.
pub(super) async fn connect(
    config: &EngineConfig,
    mut shutdown: watch::Receiver<Shutdown>,
) -> crate::start_error::Result<Option<(Arc<dyn Engine>, Option<PodmanService>)>> {
    let selection = match config.kind {
        EngineKind::Fake => {
            tracing::warn!("using the in-memory fake engine: nothing real will run");
            return Ok(Some((Arc::new(FakeEngine::new()), None)));
        }
        EngineKind::Real(selection) => selection,
    };
    let candidates =
        endpoint::candidates(selection, |name| std::env::var(name).ok(), crate::engine::podman::user_socket());
    let mut attempt = 0u32;
    loop {
        let mut failures = Vec::new();
        for candidate in &candidates {
            match candidate.connect().await {
                Ok(engine) => {
                    let (backend, reason) = (candidate.backend.as_str(), candidate.reason);
                    tracing::info!(engine = backend, endpoint = %candidate.endpoint, reason, "engine chosen");
                    return Ok(Some((engine, None)));
                }
                Err(e) => failures.push(format!("{} at {}: {e:#}", candidate.backend.as_str(), candidate.endpoint)),
            }
        }
        let failures = failures.join("; ");
        let podman_socket =
            candidates.iter().filter(|c| c.backend == endpoint::Backend::Podman).find_map(|c| c.socket());
        if let (Some(socket), true) = (podman_socket, endpoint::podman_installed()) {
            crate::start_error::ensure(config.start_podman_service, || {
                format!(
                    "no engine answers ({failures}). Podman is installed but its API service is not running: \
                     pass --podman-start-service to let berth start `podman system service` (and stop it on \
                     exit), or start it yourself: podman system service --time=0 unix://{}",
                    socket.display()
                )
            })?;
            tracing::info!(socket = %socket.display(), "starting podman system service");
            let service = PodmanService::start(&socket).await.doing(|| "--podman-start-service")?;
            let engine = crate::engine::podman::PodmanEngine::connect(Some(&format!("unix://{}", socket.display())))
                .await
                .doing(|| "connecting to the podman service berth started")?;
            tracing::info!(
                engine = "podman",
                endpoint = engine.endpoint(),
                reason = "started by berth",
                "engine chosen"
            );
            return Ok(Some((Arc::new(engine), Some(service))));
        }
        let delay = Duration::from_millis(800).saturating_mul(1 << attempt.min(5)).min(Duration::from_secs(30));
        attempt += 1;
        tracing::warn!(
            "no engine answers ({failures}); retrying in {delay:?}. Start Docker (systemctl start docker) or \
             Podman (systemctl start podman.socket), point DOCKER_HOST or CONTAINER_HOST at one, or try \
             --engine fake to run berth against an in-memory engine"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return Ok(None),
        }
    }
}
