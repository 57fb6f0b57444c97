//! The threads that serve the proxy's connections.
//!
//! Each worker is an OS thread running a single-threaded tokio runtime of
//! its own: it accepts from the shared listening socket, serves the
//! connections it accepted and keeps its own [`Pool`] of backend
//! connections.
//! A proxied request is a handful of task wakeups (the client connection,
//! the pooled backend connection, the response); on one thread they are
//! plain function calls, while on berth's shared multi-threaded runtime
//! each could be a wakeup across threads. Those context switches were the
//! top of the proxy's profile, above all of hyper. One worker per core,
//! as nginx does with its worker processes.
//!
//! On stop, a worker stops accepting, asks its connections to close once
//! their current exchange is done (idle keep-alive connections close at
//! once), and gives them [`DRAIN`] to do so.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::connections::{self, stopped, Connections, Ticket};

use super::forward::{self, Forwarder};
use super::pool::Pool;
use super::table::RouteTable;
use super::ProxyConfig;

/// Longest the connections of a stopping worker get to finish.
const DRAIN: Duration = Duration::from_secs(3);
/// How often idle backend connections are looked over.
const SWEEP: Duration = Duration::from_secs(30);

/// Starts `count` workers on `listener`, answering from `table`; they stop
/// when `stop` turns true, and the returned threads end once they drained.
pub(super) fn start(
    listener: std::net::TcpListener,
    table: Arc<ArcSwap<RouteTable>>,
    config: &ProxyConfig,
    count: usize,
    stop: watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let connections = Connections::new(config.limits.max_connections);
    (0..count.max(1))
        .map(|index| {
            let listener = listener.try_clone()?;
            let (table, config, stop) = (table.clone(), config.clone(), stop.clone());
            let connections = connections.clone();
            std::thread::Builder::new().name(format!("berth-proxy-{index}")).spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => return tracing::error!("proxy worker {index} cannot start: {e}"),
                };
                runtime.block_on(serve(listener, table, config, connections, stop));
            })
        })
        .collect()
}

/// Accepts and serves connections until `stop`, then drains them.
async fn serve(
    listener: std::net::TcpListener,
    table: Arc<ArcSwap<RouteTable>>,
    config: ProxyConfig,
    admitted: Connections,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => return tracing::error!("proxy worker cannot listen: {e}"),
    };
    let forwarder = Arc::new(Forwarder {
        table,
        pool: Pool::new(config.connect_timeout),
        timeout: config.timeout,
        trusted_peers: config.trusted_peers.clone().into(),
    });
    let mut connections = JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            _ = sweep.tick() => forwarder.pool.sweep(),
            // Cancel-safe: `accept` loses no connection when another arm wins.
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    let ticket = admitted.admit();
                    let header_timeout = config.limits.header_timeout;
                    connections.spawn(connection(stream, client, forwarder.clone(), header_timeout, ticket, stop.clone()));
                }
                Err(e) => {
                    tracing::warn!("proxy: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reaps finished connections, so the set stays the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!("proxy: closing {} connections still open after {DRAIN:?}", connections.len());
    }
}

/// Serves one client connection until it ends, or until `stop` and the
/// exchange in progress is done.
async fn connection(
    stream: tokio::net::TcpStream,
    client: SocketAddr,
    forwarder: Arc<Forwarder>,
    header_timeout: Duration,
    ticket: Ticket,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| forward::handle(forwarder.clone(), request, client));
    let connection = connections::http1(header_timeout).serve_connection(TokioIo::new(stream), service).with_upgrades();
    let ended = connections::serve_until(connection, &ticket, &mut stop).await;
    if let Err(e) = ended {
        tracing::debug!(%client, "proxy connection ended: {e}");
    }
}
