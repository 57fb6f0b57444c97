//! Keep-alive connections to the backends, one pool per proxy worker.
//!
//! hyper-util's pooled client is built for a client shared across threads:
//! a locked pool keyed by absolute URIs, a task per response to bring its
//! connection back, idle reapers. A worker needs less: its own list of
//! hyper HTTP/1 senders per backend address. A sender goes back to the list
//! as soon as its response headers arrived and is taken again once hyper
//! says it is ready (its response body is done); closed ones and ones idle
//! for [`IDLE`] are dropped as the list is scanned.
//!
//! A request a pooled connection did not take (the backend closed it while
//! it was idle) comes back from hyper untouched and is sent on the next
//! connection, as a browser would. One the backend closed just as the
//! request was written comes back as an [`SendError::Exchange`], like a
//! refused or broken new connection: the caller's to retry elsewhere.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long a new connection may take when another backend could take
/// the request instead. Backends are containers on this host: one answers
/// a connect at once, and one that does not is gone (a replica killed on
/// Podman's networks leaves no RST, only silence until the full timeout).
pub(super) const QUICK_CONNECT: Duration = Duration::from_millis(500);

/// Bodies in both directions: streamed, never buffered.
pub type ProxyBody = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

/// How long an unused connection is kept.
const IDLE: Duration = Duration::from_secs(60);
/// Most connections kept per backend (more are closed after their exchange).
const MOST: usize = 1024;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    /// No connection to the backend (refused, unreachable, timed out).
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The exchange failed (the connection broke, the answer was not HTTP).
    #[error("{0}")]
    Exchange(#[from] hyper::Error),
    /// The backend's replica exited before it answered.
    #[error("its replica exited before answering")]
    Exited,
}

/// A worker's connections, by backend address.
pub(super) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Pooled>>>,
    connect_timeout: Duration,
}

struct Pooled {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

/// Drops closed connections and those idle for [`IDLE`]; one still busy
/// with a response (a long stream) counts as used now.
fn keep_live(list: &mut Vec<Pooled>) {
    let now = Instant::now();
    for pooled in list.iter_mut().filter(|pooled| !pooled.sender.is_ready()) {
        pooled.since = now;
    }
    list.retain(|pooled| !pooled.sender.is_closed() && now.duration_since(pooled.since) < IDLE);
}

impl Pool {
    /// An empty pool; connections time out after `connect_timeout`.
    pub(super) fn new(connect_timeout: Duration) -> Self {
        Pool { idle: Mutex::new(HashMap::new()), connect_timeout }
    }

    /// Sends `request` (origin-form URI, Host set) to `backend` and returns
    /// the response headers; the body streams on. `quick`: a new
    /// connection gets [`QUICK_CONNECT`] at most, for a request that
    /// another backend can take instead.
    pub(super) async fn send(
        &self,
        backend: SocketAddr,
        mut request: Request<ProxyBody>,
        quick: bool,
    ) -> Result<Response<Incoming>, SendError> {
        while let Some(mut sender) = self.take(backend) {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.give_back(backend, sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Exchange(error.into_error())),
                },
            }
        }
        let budget = if quick { self.connect_timeout.min(QUICK_CONNECT) } else { self.connect_timeout };
        let mut sender = self.connect(backend, budget).await?;
        let response = sender.send_request(request).await?;
        self.give_back(backend, sender);
        Ok(response)
    }

    /// A ready connection to `backend`, dropping closed and stale ones.
    fn take(&self, backend: SocketAddr) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let list = idle.get_mut(&backend)?;
        keep_live(list);
        let ready = list.iter().rposition(|pooled| pooled.sender.is_ready())?;
        Some(list.swap_remove(ready).sender)
    }

    fn give_back(&self, backend: SocketAddr, sender: SendRequest<ProxyBody>) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let list = idle.entry(backend).or_default();
        if list.len() < MOST {
            list.push(Pooled { sender, since: Instant::now() });
        }
    }

    /// Drops the connections idle for too long, and the backends left
    /// without any.
    pub(super) fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.values_mut().for_each(keep_live);
        idle.retain(|_, list| !list.is_empty());
    }

    /// A new connection, its driver spawned on this worker.
    async fn connect(&self, backend: SocketAddr, budget: Duration) -> Result<SendRequest<ProxyBody>, SendError> {
        let stream = match tokio::time::timeout(budget, TcpStream::connect(backend)).await {
            Ok(connected) => connected.map_err(SendError::Connect)?,
            Err(_) => {
                let message = format!("no connection within {budget:?}");
                return Err(SendError::Connect(std::io::Error::new(std::io::ErrorKind::TimedOut, message)));
            }
        };
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(%backend, "backend connection ended: {e}");
            }
        });
        Ok(sender)
    }
}
