//! Where the API listens: a TCP address (default `127.0.0.1:7777`,
//! loopback only) or `unix:/path` for a socket that file permissions guard.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::connections::{self, Connections, Limits, Ticket};
use crate::start_error::{ensure, Doing as _};

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
    /// TCP with TLS ([`super::tls`]).
    Tls(tokio::net::TcpListener, tokio_rustls::TlsAcceptor),
}

impl Listen {
    /// Binds, so that a taken port fails the start before anything runs.
    pub async fn bind(&self) -> crate::start_error::Result<Bound> {
        match self {
            Listen::Tcp(address) => {
                let listener = tokio::net::TcpListener::bind(address).await.doing(|| {
                    format!("cannot listen on {address}; is another berth running? choose another with --listen")
                })?;
                Ok(Bound::Tcp(listener))
            }
            Listen::Unix(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    ensure(meta.file_type().is_socket(), || {
                        format!("{} exists and is not a socket; remove it or choose another path", path.display())
                    })?;
                    ensure(std::os::unix::net::UnixStream::connect(path).is_err(), || {
                        format!("{} is in use by a running server; stop it or choose another path", path.display())
                    })?;
                    std::fs::remove_file(path)
                        .doing(|| format!("cannot remove the stale socket {}", path.display()))?;
                }
                let listener =
                    tokio::net::UnixListener::bind(path).doing(|| format!("cannot listen on {}", path.display()))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .doing(|| format!("cannot restrict {} to mode 0600", path.display()))?;
                Ok(Bound::Unix(listener, path.clone()))
            }
        }
    }
}

impl Bound {
    /// Binds the TLS listener.
    pub async fn tls(address: SocketAddr, tls: super::tls::ServingTls) -> crate::start_error::Result<Bound> {
        let listener = tokio::net::TcpListener::bind(address).await.doing(|| {
            format!("cannot listen on {address}; is another berth running? choose another with --tls-listen (or off)")
        })?;
        Ok(Bound::Tls(listener, tls.acceptor))
    }

    /// The TCP address actually bound (port 0 picks one).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Bound::Tcp(listener) | Bound::Tls(listener, _) => listener.local_addr().ok(),
            Bound::Unix(..) => None,
        }
    }

    /// Serves `app` until `shutdown` resolves, within `limits`; open
    /// streams get [`SHUTDOWN_GRACE`] to finish.
    pub async fn serve(
        self,
        app: axum::Router,
        limits: Limits,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> crate::start_error::Result<()> {
        let connections = Connections::new(limits.max_connections);
        let (stop, stopped) = watch::channel(false);
        let mut open = JoinSet::new();
        let mut last_accept_error: Option<Instant> = None;
        tokio::pin!(shutdown);
        loop {
            // Cancel safety: `accept` loses no connection when another arm
            // wins; `join_next` only reaps; `shutdown` is pinned.
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.accept() => match accepted {
                    Ok(stream) => {
                        let ticket = connections.admit();
                        open.spawn(connection(stream, app.clone(), limits.header_timeout, ticket, stopped.clone()));
                    }
                    Err(e) => {
                        // Out of descriptors, typically: wait, and say so
                        // once in a while, not on every attempt.
                        if last_accept_error.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                            tracing::warn!("API: accepting a connection failed: {e}");
                            last_accept_error = Some(Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = open.join_next(), if !open.is_empty() => {}
            }
        }
        let _ = stop.send(true);
        if let Bound::Unix(_, path) = &self {
            let _ = std::fs::remove_file(path);
        }
        drop(self);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while open.join_next().await.is_some() {} }).await;
        Ok(())
    }

    async fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Bound::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok(Stream::Tcp(stream))
            }
            Bound::Unix(listener, _) => Ok(Stream::Unix(listener.accept().await?.0)),
            Bound::Tls(listener, acceptor) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok(Stream::Tls(stream, acceptor.clone()))
            }
        }
    }
}

/// An accepted connection.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    /// Not yet through the handshake: that happens on the connection's own
    /// task, within the header timeout, so a silent client holds up nobody.
    Tls(tokio::net::TcpStream, tokio_rustls::TlsAcceptor),
}

/// Serves one connection: HTTP/1.1 with upgrades, the header-read timeout
/// (which also closes it once idle that long), until it ends, is evicted
/// to make room, or the server stops (after the exchange in progress).
async fn connection(
    stream: Stream,
    app: axum::Router,
    header_timeout: Duration,
    ticket: Ticket,
    mut stopped: watch::Receiver<bool>,
) {
    let service = TowerToHyperService::new(app);
    let builder = connections::http1(header_timeout);
    let ended = match stream {
        Stream::Tcp(stream) => {
            let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            connections::serve_until(connection, &ticket, &mut stopped).await
        }
        Stream::Unix(stream) => {
            let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            connections::serve_until(connection, &ticket, &mut stopped).await
        }
        Stream::Tls(stream, acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
                connections::serve_until(connection, &ticket, &mut stopped).await
            }
            Ok(Err(e)) => {
                tracing::debug!("API: TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!("API: TLS handshake timed out");
                return;
            }
        },
    };
    if let Err(e) = ended {
        tracing::debug!("API connection ended: {e}");
    }
}
