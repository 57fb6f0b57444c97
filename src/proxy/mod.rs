//! The embedded HTTP reverse proxy: Routes send requests to the ready
//! replicas of the Containers their backends select.
//!
//! - [`table`]: Routes and the endpoint set turned into host → rules →
//!   weighted backends; conflicts; the per-Route report for status.
//! - [`health`]: active checks and passive marks, kept across tables.
//! - [`worker`]: the threads that accept and serve connections, each with
//!   a single-threaded runtime and a backend connection pool of its own.
//! - [`forward`]: one request: lookup, backend choice, headers
//!   (hop-by-hop stripped, `X-Forwarded-*` set, Host kept), the retry on
//!   a refused connection, WebSocket and other upgrades.
//!
//! The table is rebuilt by one task whenever a Route, the endpoint set or a
//! backend's health changes, and swapped in whole ([`ArcSwap`]): requests
//! in flight keep the table they started with and never wait on a rebuild.
//! Bodies stream in both directions; nothing is buffered.

mod forward;
pub mod health;
mod pool;
pub mod table;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::api::{AnyObject, Kind, Route};
use crate::endpoints::{publish, Endpoints, Inputs};
use crate::store::Store;

pub use table::{RouteReport, RoutesReport};

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The address could not be bound.
    #[error("cannot listen for HTTP on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Settings of the proxy.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Longest wait for a backend's response headers (then 504).
    pub timeout: Duration,
    /// Longest wait for a connection to a backend (then the retry, or 502).
    pub connect_timeout: Duration,
    /// Threads serving connections ([`default_workers`]).
    pub workers: usize,
    /// Header-read timeout and connection limit (shared by the workers).
    pub limits: crate::connections::Limits,
    /// Peers whose `X-Forwarded-For` is extended rather than replaced (and
    /// whose `X-Real-IP`, `Forwarded`, `X-Forwarded-Host/Proto` are kept).
    pub trusted_peers: Vec<ipnet::IpNet>,
}

/// One worker per core, up to 8.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// A bound proxy, not serving yet.
pub struct Proxy {
    address: SocketAddr,
    table: Arc<ArcSwap<table::RouteTable>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Dropping it stops the workers too.
    stop_workers: watch::Sender<bool>,
}

impl Proxy {
    /// Binds the listening socket and starts the workers (they answer 404
    /// until [`run`](Self::run) builds the first table).
    pub async fn bind(config: &ProxyConfig) -> Result<Proxy, ProxyError> {
        let failed = |source| ProxyError::Bind { address: config.listen, source };
        let listener = TcpListener::bind(config.listen).await.map_err(failed)?;
        let address = listener.local_addr().map_err(failed)?;
        let table = Arc::new(ArcSwap::from_pointee(table::RouteTable::default()));
        let (stop_workers, stop) = watch::channel(false);
        let workers = listener
            .into_std()
            .and_then(|listener| worker::start(listener, table.clone(), config, config.workers, stop))
            .map_err(failed)?;
        Ok(Proxy { address, table, workers, stop_workers })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `stopping` completes (then the workers drain their
    /// connections), rebuilding the table on every change and publishing
    /// what each Route serves on `reports`.
    pub async fn run(
        self,
        store: Store,
        endpoints: Endpoints,
        reports: watch::Sender<Arc<RoutesReport>>,
        stopping: impl std::future::Future<Output = ()> + Send,
    ) {
        let Proxy { table, workers, stop_workers, .. } = self;
        let builder = tokio::spawn(maintain_table(store, endpoints, table, reports));
        stopping.await;
        let _ = stop_workers.send(true);
        builder.abort();
        let _ = tokio::task::spawn_blocking(move || workers.into_iter().for_each(|worker| drop(worker.join()))).await;
    }
}

/// Rebuilds the table whenever a Route, the endpoint set or a backend's
/// health changes.
async fn maintain_table(
    store: Store,
    endpoints: Endpoints,
    current: Arc<ArcSwap<table::RouteTable>>,
    reports: watch::Sender<Arc<RoutesReport>>,
) {
    let health_changed = Arc::new(Notify::new());
    let mut registry = health::Registry::new(health_changed.clone());
    let mut inputs = Inputs::new(store, Kind::Route, endpoints);
    loop {
        let (objects, set) = inputs.current();
        let routes: Vec<Route> =
            objects.into_iter().filter_map(|o| if let AnyObject::Route(r) = o { Some(r) } else { None }).collect();
        let (table, report) = table::build(&routes, &set, &mut registry);
        current.store(Arc::new(table));
        publish(&reports, report);
        tokio::select! {
            // Cancel-safe: see `Inputs::changed`.
            more = inputs.changed() => if !more { return },
            // Cancel-safe: a permit is kept until taken.
            _ = health_changed.notified() => {}
        }
    }
}
