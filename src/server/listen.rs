//! Where the API listens: a TCP address (default `127.0.0.1:7777`,
//! loopback only) or `unix:/path` for a socket that file permissions guard.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;

/// How long open streams (watches, log follows) may hold up a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A listen address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// TCP.
    Tcp(SocketAddr),
    /// A unix socket at this path.
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            return if path.is_empty() {
                Err("`unix:` needs a path, e.g. unix:/run/berth.sock".into())
            } else {
                Ok(Listen::Unix(path.into()))
            };
        }
        text.parse()
            .map(Listen::Tcp)
            .map_err(|_| format!("`{text}` is neither ADDRESS:PORT (e.g. 127.0.0.1:7777) nor unix:/PATH"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(address) => write!(f, "http://{address}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A bound listener, ready to serve.
pub enum Bound {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// A unix socket.
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listen {
    /// Binds, so that a taken port fails the start before anything runs.
    pub async fn bind(&self) -> anyhow::Result<Bound> {
        match self {
            Listen::Tcp(address) => {
                let listener = tokio::net::TcpListener::bind(address).await.with_context(|| {
                    format!("cannot listen on {address}; is another berth running? choose another with --listen")
                })?;
                Ok(Bound::Tcp(listener))
            }
            Listen::Unix(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    anyhow::ensure!(
                        meta.file_type().is_socket(),
                        "{} exists and is not a socket; remove it or choose another path",
                        path.display()
                    );
                    anyhow::ensure!(
                        std::os::unix::net::UnixStream::connect(path).is_err(),
                        "{} is in use by a running server; stop it or choose another path",
                        path.display()
                    );
                    std::fs::remove_file(path)
                        .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
                }
                let listener = tokio::net::UnixListener::bind(path)
                    .with_context(|| format!("cannot listen on {}", path.display()))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot restrict {} to mode 0600", path.display()))?;
                Ok(Bound::Unix(listener, path.clone()))
            }
        }
    }
}

impl Bound {
    /// The TCP address actually bound (port 0 picks one).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Bound::Tcp(listener) => listener.local_addr().ok(),
            Bound::Unix(..) => None,
        }
    }

    /// Serves `app` until `shutdown` resolves; open streams get
    /// [`SHUTDOWN_GRACE`] to finish.
    pub async fn serve(
        self,
        app: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopping.send(());
        };
        let grace = async move {
            let _ = stopped.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let served = match self {
            Bound::Tcp(listener) => {
                let server = axum::serve(listener, app).with_graceful_shutdown(signal);
                tokio::select! { result = server => result, () = grace => Ok(()) }
            }
            Bound::Unix(listener, path) => {
                let server = axum::serve(listener, app).with_graceful_shutdown(signal);
                let result = tokio::select! { result = server => result, () = grace => Ok(()) };
                let _ = std::fs::remove_file(path);
                result
            }
        };
        served.context("the API server failed")
    }
}
