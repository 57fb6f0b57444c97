//! The embedded HTTP reverse proxy: Routes send requests to the ready
//! replicas of the Containers their backends select.
//!
//! - [`table`]: Routes and the endpoint set turned into host → rules →
//!   weighted backends; conflicts; the per-Route report for status.
//! - [`health`]: active checks and passive marks, kept across tables.
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
pub mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
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
}

/// A bound proxy, not serving yet.
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<forward::Shared>,
}

impl Proxy {
    /// Binds the listening socket.
    pub async fn bind(config: &ProxyConfig) -> Result<Proxy, ProxyError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ProxyError::Bind { address: config.listen, source })?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector);
        let shared = Arc::new(forward::Shared {
            table: ArcSwap::from_pointee(table::RouteTable::default()),
            client,
            timeout: config.timeout,
        });
        Ok(Proxy { listener, shared })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `stopping` completes (connections open then finish on
    /// their own), rebuilding the table on every change and publishing what
    /// each Route serves on `reports`.
    pub async fn run(
        self,
        store: Store,
        endpoints: Endpoints,
        reports: watch::Sender<Arc<RoutesReport>>,
        stopping: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(stopping);
        let Proxy { listener, shared } = self;
        let builder = tokio::spawn(maintain_table(store, endpoints, shared.clone(), reports));
        loop {
            tokio::select! {
                // Cancel-safe: `accept` loses no connection when another arm wins.
                accepted = listener.accept() => {
                    let (stream, client) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!("proxy: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| forward::handle(shared.clone(), request, client));
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades();
                        if let Err(e) = connection.await {
                            tracing::debug!(%client, "proxy connection ended: {e}");
                        }
                    });
                }
                // Cancel-safe: a pinned future polled again resumes.
                _ = &mut stopping => break,
            }
        }
        builder.abort();
    }
}

/// Rebuilds the table whenever a Route, the endpoint set or a backend's
/// health changes.
async fn maintain_table(
    store: Store,
    endpoints: Endpoints,
    shared: Arc<forward::Shared>,
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
        shared.table.store(Arc::new(table));
        publish(&reports, report);
        tokio::select! {
            // Cancel-safe: see `Inputs::changed`.
            more = inputs.changed() => if !more { return },
            // Cancel-safe: a permit is kept until taken.
            _ = health_changed.notified() => {}
        }
    }
}
