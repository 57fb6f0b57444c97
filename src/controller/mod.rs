//! The controller: converges the engine to the store, forever.
//!
//! Modelled on kube-runtime's `Controller`: requests keyed by object flow
//! into the [`runtime`], which runs one reconcile per key at a time. They
//! come from
//! - the store's watch: an object changed (its own status writes excluded),
//!   and the objects related to one that changed ([`dependents`]);
//! - the engine reflector ([`Reflector`]): the owners whose engine objects
//!   changed (a container died, was removed, changed health; a network or
//!   volume went away), once its cache holds the change; and everything
//!   after each full list of the engine (the start, a reconnection after
//!   the engine was away, and every `resync_interval` as a safety net).
//!   Reconcilers read observed state from the same cache, so a reconcile
//!   with nothing to do makes no engine call;
//! - the DNS server's and the proxy's reports: a DnsRecord or Route whose
//!   served targets, backends or health changed (see [`Served`]);
//! - the first full observation of the engine, before which nothing
//!   reconciles: every stored object, and the owner of every labelled engine
//!   object (so orphans of deleted objects are found and removed).
//!
//! Reconcilers live one per kind in this module's files.
//!
//! The controller records into [`Metrics`] (given in [`ControllerConfig`]):
//! its runtime's queue and reconciles, labelled by kind, and every engine
//! call, through a [`MeteredEngine`] around the engine it is given.

mod action;
mod container;
mod container_spec;
mod context;
mod crash_loop;
mod dependents;
mod finalizer;
mod image;
mod image_steps;
mod lost_store;
mod network;
mod network_steps;
pub mod plan;
mod replica_steps;
pub mod runtime;
mod served;
mod teardown;
mod volume;
mod volume_steps;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};

use crate::api::{AnyObject, Kind, ObjectKey};
use crate::engine::Engine;
use crate::metrics::{MeteredEngine, Metrics, RuntimeMetrics};
use crate::store::{ChangeType, Event, Store, WriteBatch};

use crate::backoff::Reconnect;
use crate::engine::reflector::{Notice, Reflector};
pub use action::{Action, ReconcileError};
pub use context::Context;
use dependents::Dependents;
pub use lost_store::{check_lost_store, LostStore};
pub use network::{engine_name, NetworkDns};
use runtime::{Report, Request, Shutdown, Trigger};
pub use served::Served;

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Reconciles running at once.
    pub concurrency: usize,
    /// Longest a reconcile may run (image builds included).
    pub reconcile_timeout: Duration,
    /// Time between full resyncs.
    pub resync_interval: Duration,
    /// Where the controller records its metrics; pass the same handle to
    /// whatever serves `/metrics`.
    pub metrics: Metrics,
    /// What the DNS server and the proxy serve, for DnsRecord and Route status.
    pub served: Served,
    /// Set when berth's DNS server answers on the gateway of every berth
    /// network (`--dns-on-networks`).
    pub network_dns: Option<NetworkDns>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            concurrency: 8,
            reconcile_timeout: Duration::from_secs(600),
            resync_interval: Duration::from_secs(300),
            metrics: Metrics::new(),
            served: Served::default(),
            network_dns: None,
        }
    }
}

/// The controller of one store and one engine.
pub struct Controller {
    ctx: Context,
    config: ControllerConfig,
    observed: Arc<AtomicBool>,
}

/// The `controller` label of a kind's reconciles: the kind in lower case,
/// as controller-runtime names a controller after the kind it reconciles.
fn controller_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Container => "container",
        Kind::Volume => "volume",
        Kind::Network => "network",
        Kind::Image => "image",
        Kind::DnsRecord => "dnsrecord",
        Kind::Route => "route",
    }
}

impl Controller {
    /// A controller for `store` and `engine`; every call to `engine` is
    /// timed into the config's metrics, which also count the store's objects.
    pub fn new(store: Store, engine: Arc<dyn Engine>, config: ControllerConfig) -> crate::store::Result<Self> {
        let instance = store.instance_id()?;
        let secret_key = store.secret_hash_key()?;
        config.metrics.observe_store(&store);
        let engine = Arc::new(MeteredEngine::new(engine, config.metrics.clone()));
        let (served, network_dns) = (config.served.clone(), config.network_dns.clone());
        let reflector = Reflector::new(engine.clone(), &instance);
        let crash_loops = Default::default();
        Ok(Controller {
            ctx: Context { store, engine, reflector, instance, served, network_dns, secret_key, crash_loops },
            config,
            observed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The metrics this controller records into.
    pub fn metrics(&self) -> &Metrics {
        &self.config.metrics
    }

    /// This controller's instance id.
    pub fn instance(&self) -> &str {
        &self.ctx.instance
    }

    /// The store, engine and instance this controller works with.
    pub fn context(&self) -> Context {
        self.ctx.clone()
    }

    /// True once the engine has been observed in full (for readiness).
    pub fn observed(&self) -> Arc<AtomicBool> {
        self.observed.clone()
    }

    /// Runs until `shutdown` says drain (running reconciles finish) or force.
    pub async fn run(self, mut shutdown: watch::Receiver<Shutdown>) -> crate::store::Result<()> {
        let ctx = self.ctx.clone();
        // Wait for the engine.
        let mut reconnect = Reconnect::with("engine", crate::engine::subscribe::RECONNECT);
        loop {
            match ctx.engine.info().await {
                Ok(info) => {
                    tracing::info!(engine = %info.kind, version = %info.version, endpoint = %info.endpoint, instance = %ctx.instance, "engine reachable");
                    break;
                }
                Err(e) => {
                    let delay = reconnect.failed(&format_args!("{e:#}"));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
            }
        }
        let (requests, receiver) = mpsc::unbounded_channel();
        let dependents = Arc::new(Mutex::new(Dependents::default()));
        // Subscribe before the first listing, so no change falls in between.
        let changes = ctx.store.watch();
        let notices = ctx.reflector.subscribe();
        for object in ctx.store.list(None, None)? {
            dependents.lock().unwrap_or_else(|p| p.into_inner()).update(&object);
        }
        let mut helpers = tokio::task::JoinSet::new();
        helpers.spawn(ctx.reflector.clone().run(self.config.resync_interval));
        tokio::select! {
            () = ctx.reflector.observed() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        resync(&ctx, &requests, Trigger::Changed)?;
        self.observed.store(true, Ordering::SeqCst);
        helpers.spawn(follow_store(ctx.clone(), changes, requests.clone(), dependents.clone()));
        helpers.spawn(follow_reflector(ctx.clone(), notices, requests.clone()));
        helpers.spawn(served::follow_reports(ctx.served.clone(), requests.clone()));
        drop(requests);
        let reconcile_ctx = ctx.clone();
        let reconcile: runtime::ReconcileFn<ObjectKey> = Arc::new(move |key| {
            let ctx = reconcile_ctx.clone();
            Box::pin(async move { reconcile(&ctx, &key).await })
        });
        let runtime_config =
            runtime::RuntimeConfig { concurrency: self.config.concurrency, timeout: self.config.reconcile_timeout };
        let metrics = RuntimeMetrics::new(&self.config.metrics, |key: &ObjectKey| controller_name(key.kind));
        metrics.declare(&Kind::ALL.map(controller_name), runtime_config.concurrency.max(1));
        runtime::run(runtime_config, receiver, reconcile, reporter(ctx.clone()), metrics, shutdown).await;
        helpers.shutdown().await;
        Ok(())
    }
}

/// Reconciles one object, whatever its kind.
pub async fn reconcile(ctx: &Context, key: &ObjectKey) -> Result<Action, ReconcileError> {
    let desired = ctx.store.get(key)?;
    match (key.kind, desired) {
        (Kind::Network, Some(AnyObject::Network(o))) => network::reconcile(ctx, key, Some(o)).await,
        (Kind::Network, _) => network::reconcile(ctx, key, None).await,
        (Kind::Volume, Some(AnyObject::Volume(o))) => volume::reconcile(ctx, key, Some(o)).await,
        (Kind::Volume, _) => volume::reconcile(ctx, key, None).await,
        (Kind::Image, Some(AnyObject::Image(o))) => image::reconcile(ctx, key, Some(o)).await,
        (Kind::Image, _) => image::reconcile(ctx, key, None).await,
        (Kind::Container, Some(AnyObject::Container(o))) => container::reconcile(ctx, key, Some(o)).await,
        (Kind::Container, _) => container::reconcile(ctx, key, None).await,
        (Kind::DnsRecord, Some(AnyObject::DnsRecord(o))) => served::reconcile_dns(ctx, key, Some(o)),
        (Kind::DnsRecord, _) => served::reconcile_dns(ctx, key, None),
        (Kind::Route, Some(AnyObject::Route(o))) => served::reconcile_route(ctx, key, Some(o)),
        (Kind::Route, _) => served::reconcile_route(ctx, key, None),
    }
}

/// Requests every stored object and the owner of every engine object the
/// reflector holds (no engine call: the reflector lists the engine itself).
fn resync(
    ctx: &Context,
    requests: &mpsc::UnboundedSender<Request<ObjectKey>>,
    trigger: Trigger,
) -> crate::store::Result<()> {
    let mut keys: BTreeSet<ObjectKey> = ctx.store.list(None, None)?.iter().map(AnyObject::key).collect();
    keys.extend(ctx.reflector.owners());
    for key in keys {
        let _ = requests.send(Request::now(key, trigger));
    }
    Ok(())
}

/// Turns store changes into requests.
async fn follow_store(
    ctx: Context,
    mut changes: broadcast::Receiver<crate::store::Change>,
    requests: mpsc::UnboundedSender<Request<ObjectKey>>,
    dependents: Arc<Mutex<Dependents>>,
) {
    loop {
        match changes.recv().await {
            Ok(change) => {
                let key = change.object.key();
                let related = {
                    let mut graph = dependents.lock().unwrap_or_else(|p| p.into_inner());
                    let before = graph.related(&key);
                    match change.change {
                        ChangeType::Deleted => graph.forget(&key),
                        _ => graph.update(&change.object),
                    }
                    let mut related = before;
                    related.extend(graph.related(&key));
                    related
                };
                if !change.status_only {
                    let _ = requests.send(Request::now(key, Trigger::Changed));
                }
                for other in related {
                    let _ = requests.send(Request::now(other, Trigger::Other));
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "store watch fell behind; resyncing");
                if let Ok(objects) = ctx.store.list(None, None) {
                    let mut graph = dependents.lock().unwrap_or_else(|p| p.into_inner());
                    for object in &objects {
                        graph.update(object);
                    }
                }
                if let Err(e) = resync(&ctx, &requests, Trigger::Changed) {
                    tracing::warn!("resync failed: {e:#}");
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Turns the reflector's notices into requests: the owners whose engine
/// objects changed; everything after the reflector listed the engine again
/// (its start, a reconnection, the periodic resync) or after falling behind.
async fn follow_reflector(
    ctx: Context,
    mut notices: broadcast::Receiver<Notice>,
    requests: mpsc::UnboundedSender<Request<ObjectKey>>,
) {
    let mut first = true;
    loop {
        let everything = match notices.recv().await {
            Ok(Notice::Changed(owners)) => {
                for key in owners {
                    let _ = requests.send(Request::now(key, Trigger::Other));
                }
                false
            }
            // The reconcile that wrote it through already decided its next look.
            Ok(Notice::Event(_) | Notice::WrittenThrough(_)) => false,
            // The first is the list the controller started from.
            Ok(Notice::Resynced) => !std::mem::take(&mut first),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "engine notices fell behind; resyncing");
                true
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if everything {
            if let Err(e) = resync(&ctx, &requests, Trigger::Other) {
                tracing::warn!("resync failed: {e:#}");
            }
        }
    }
}

/// Logs every outcome; records failures in the event log, once per distinct message.
fn reporter(ctx: Context) -> runtime::ReportFn<ObjectKey> {
    let last_error: Mutex<HashMap<ObjectKey, String>> = Mutex::new(HashMap::new());
    Arc::new(move |key, report| {
        let mut last = last_error.lock().unwrap_or_else(|p| p.into_inner());
        let (message, reason) = match report {
            Report::Success { took } => {
                tracing::debug!(object = %key, ?took, "reconciled");
                last.remove(key);
                return;
            }
            Report::Retry { message, delay, attempt } => {
                tracing::warn!(object = %key, attempt, retry_in = ?delay, "reconcile failed: {message}");
                (message, "ReconcileError")
            }
            Report::Parked { message } => {
                tracing::error!(object = %key, "reconcile failed; waiting for the object to change: {message}");
                (message, "ReconcileFailed")
            }
        };
        if last.get(key) != Some(message) {
            last.insert(key.clone(), message.clone());
            let batch =
                WriteBatch::new().event(Event::about(key, "reconcile-error", reason, message.clone())).relaxed();
            if let Err(e) = ctx.store.commit(batch) {
                tracing::warn!("cannot record event: {e:#}");
            }
        }
    })
}
