//! Budgets for client connections: how many a listener keeps open, what
//! happens when it is full, and how long a client may take.
//!
//! Without a budget, idle connections (20,000 that never send a byte) use
//! up the process's file descriptors, and then nothing works: not the API,
//! not DNS, not the engine's socket. So every listener berth serves has
//! - a header-read timeout (hyper's, which also runs while a kept-alive
//!   connection waits for its next request: an idle client is closed
//!   after it, [`Limits::header_timeout`]);
//! - a connection limit ([`Connections`]): when full, the oldest open
//!   connection is asked to close (it finishes the exchange in progress,
//!   an idle one closes at once) so that a new client is always served;
//! - and the proxy's limit is set below the descriptor limit, which is
//!   raised to its hard maximum at start ([`raise_nofile_limit`]), so the
//!   API, DNS and engine connections keep a reserve.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::server::conn::http1::{Builder, UpgradeableConnection};
use hyper_util::rt::TokioTimer;
use tokio::sync::{watch, Notify};

/// How long a client has to send a request's headers, from connect or from
/// the end of its previous exchange.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The budgets of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { header_timeout: HEADER_TIMEOUT, max_connections: 10_000 }
    }
}

/// The open connections of one listener (shared by its acceptors).
#[derive(Clone, Debug)]
pub struct Connections {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    open: AtomicUsize,
    /// Open connections, oldest first, each with the bell that asks it to
    /// close. Entries of closed connections are dropped lazily.
    by_age: Mutex<VecDeque<Weak<Notify>>>,
}

/// An admitted connection: counts as open until dropped.
#[derive(Debug)]
pub struct Ticket {
    inner: Arc<Inner>,
    close: Arc<Notify>,
}

impl Connections {
    /// At most `limit` open connections (at least one).
    pub fn new(limit: usize) -> Self {
        let inner = Inner { limit: limit.max(1), open: AtomicUsize::new(0), by_age: Mutex::new(VecDeque::new()) };
        Connections { inner: Arc::new(inner) }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::SeqCst)
    }

    /// Admits a connection just accepted. When that goes over the limit,
    /// the oldest open connection is asked to close.
    pub fn admit(&self) -> Ticket {
        let open = self.inner.open.fetch_add(1, Ordering::SeqCst) + 1;
        let close = Arc::new(Notify::new());
        let mut by_age = self.inner.by_age.lock().unwrap_or_else(|p| p.into_inner());
        if open > self.inner.limit {
            while let Some(oldest) = by_age.pop_front() {
                if let Some(bell) = oldest.upgrade() {
                    // A stored permit: it closes even if not yet listening.
                    bell.notify_one();
                    break;
                }
            }
        }
        // Keep the queue proportional to what is open.
        if by_age.len() > 2 * open + 64 {
            by_age.retain(|bell| bell.strong_count() > 0);
        }
        by_age.push_back(Arc::downgrade(&close));
        Ticket { inner: self.inner.clone(), close }
    }
}

impl Ticket {
    /// Resolves when the connection is asked to make room. Cancel-safe.
    pub async fn evicted(&self) {
        self.close.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.inner.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An HTTP/1 connection builder that closes a client not sending a
/// request's headers within `header_timeout` (idle kept-alive ones too).
pub(crate) fn http1(header_timeout: Duration) -> Builder {
    let mut builder = Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder
}

/// Serves `connection` to its end; when `ticket` is evicted or `stop`
/// turns true, asks it to close after the exchange in progress.
pub(crate) async fn serve_until<I, S, B>(
    connection: UpgradeableConnection<I, S>,
    ticket: &Ticket,
    stop: &mut watch::Receiver<bool>,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    // Cancel-safe: the pinned connection is polled to its end in every arm;
    // the others only wait.
    tokio::select! {
        ended = connection.as_mut() => ended,
        () = stopped(stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = ticket.evicted() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone). Send, unlike a
/// held `watch::Ref`.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Raises the soft limit of open files to the hard limit and returns it,
/// so that the budgets above have room; `None` when it cannot be read.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// The proxy's connection limit for `nofile` descriptors: what was asked,
/// but never more than three quarters of them (each proxied exchange may
/// hold a backend connection too, which the pool bounds separately).
pub fn proxy_share(asked: usize, nofile: u64) -> usize {
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    let reserve = (nofile / 4).max(128);
    asked.min(nofile.saturating_sub(reserve)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_listener_asks_its_oldest_connection_to_close() {
        let connections = Connections::new(2);
        let first = connections.admit();
        let _second = connections.admit();
        assert_eq!(connections.open(), 2);
        let third = connections.admit();
        // The first is asked, at once; the others are not.
        tokio::time::timeout(Duration::from_millis(100), first.evicted()).await.expect("the oldest is asked");
        assert!(tokio::time::timeout(Duration::from_millis(50), third.evicted()).await.is_err());
        drop(first);
        assert_eq!(connections.open(), 2);
    }

    #[test]
    fn closed_connections_do_not_pile_up_in_the_queue() {
        let connections = Connections::new(10);
        for _ in 0..10_000 {
            drop(connections.admit());
        }
        assert!(connections.inner.by_age.lock().unwrap().len() < 200);
        assert_eq!(connections.open(), 0);
    }

    #[test]
    fn the_proxy_leaves_a_reserve_of_descriptors() {
        assert_eq!(proxy_share(100_000, 20_000), 15_000);
        assert_eq!(proxy_share(4_096, 1_024), 768);
        assert_eq!(proxy_share(500, 1 << 20), 500);
    }
}
