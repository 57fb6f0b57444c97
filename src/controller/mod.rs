//! The controller: converges the engine to the store, forever.
//!
//! Modelled on kube-runtime's `Controller`: requests keyed by object flow
//! into the [`runtime`], which runs one reconcile per key at a time. They
//! come from
//! - the store's watch: an object changed (its own status writes excluded),
//!   and the objects related to one that changed ([`dependents`]);
//! - engine events: a container died, was removed, changed health; a
//!   network or volume went away. After the stream drops, the engine is
//!   pinged with jittered backoff (800 ms to 2 s) until it answers; then the
//!   stream reopens and a full resync follows;
//! - a full resync every few minutes, as a safety net;
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
mod lost_store;
mod network;
pub mod plan;
mod replica_steps;
pub mod runtime;
mod served;
mod volume;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::{AnyObject, Kind, ObjectKey};
use crate::engine::{labels, Engine, EventAction, EventSubject};
use crate::metrics::{MeteredEngine, Metrics, RuntimeMetrics};
use crate::store::{ChangeType, Event, Store, WriteBatch};

use crate::backoff::Reconnect;
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
        Ok(Controller {
            ctx: Context { store, engine, instance, served, network_dns, secret_key, crash_loops: Default::default() },
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
    pub async fn run(self, mut shutdown: watch::Receiver<Shutdown>) -> anyhow::Result<()> {
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
        for object in ctx.store.list(None, None)? {
            dependents.lock().unwrap_or_else(|p| p.into_inner()).update(&object);
        }
        resync(&ctx, &requests, Trigger::Changed).await?;
        self.observed.store(true, Ordering::SeqCst);
        let mut helpers = tokio::task::JoinSet::new();
        helpers.spawn(follow_store(ctx.clone(), changes, requests.clone(), dependents.clone()));
        helpers.spawn(follow_engine(ctx.clone(), requests.clone()));
        helpers.spawn(periodic_resync(ctx.clone(), requests.clone(), self.config.resync_interval));
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

/// Requests every stored object and the owner of every labelled engine object.
async fn resync(
    ctx: &Context,
    requests: &mpsc::UnboundedSender<Request<ObjectKey>>,
    trigger: Trigger,
) -> anyhow::Result<()> {
    let ours = labels::instance_labels(&ctx.instance);
    let mut keys: BTreeSet<ObjectKey> = ctx.store.list(None, None)?.iter().map(AnyObject::key).collect();
    let containers = ctx.engine.list_containers(&ours).await?;
    let volumes = ctx.engine.list_volumes(&ours).await?;
    let networks = ctx.engine.list_networks(&ours).await?;
    let owners = containers
        .iter()
        .map(|c| &c.labels)
        .chain(volumes.iter().map(|v| &v.labels))
        .chain(networks.iter().map(|n| &n.labels));
    keys.extend(owners.filter_map(|l| labels::owner_of(l, &ctx.instance)));
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
                if let Err(e) = resync(&ctx, &requests, Trigger::Changed).await {
                    tracing::warn!("resync failed: {e:#}");
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Turns engine events into requests; reconnects and resyncs when the stream drops.
async fn follow_engine(ctx: Context, requests: mpsc::UnboundedSender<Request<ObjectKey>>) {
    let mut reconnect = Reconnect::with("engine events", crate::engine::subscribe::RECONNECT);
    let mut connected_before = false;
    loop {
        let mut stream = crate::engine::subscribe::subscribe(&*ctx.engine, &mut reconnect, connected_before).await;
        if connected_before {
            tracing::info!("engine events reconnected; resyncing");
            if let Err(e) = resync(&ctx, &requests, Trigger::Other).await {
                tracing::warn!("resync after reconnect failed: {e:#}");
            }
        }
        connected_before = true;
        let (opened, mut delivered) = (std::time::Instant::now(), false);
        while let Some(item) = stream.next().await {
            let Ok(event) = item else { break };
            if !delivered {
                reconnect.succeeded();
                delivered = true;
            }
            let relevant = matches!(
                event.action,
                EventAction::Die
                    | EventAction::Destroy
                    | EventAction::Stop
                    | EventAction::Start
                    | EventAction::Health(_)
                    | EventAction::Disconnect
            );
            if !relevant {
                continue;
            }
            match labels::owner_of(&event.labels, &ctx.instance) {
                Some(key) => {
                    let _ = requests.send(Request::now(key, Trigger::Other));
                }
                // Network and volume removals may come without labels: wake
                // the object that names that engine object.
                None if event.action == EventAction::Destroy && event.subject != EventSubject::Container => {
                    let objects = ctx.store.list(Some(event_kind(event.subject)), None).unwrap_or_default();
                    for key in owners_of_removed(&objects, &event.id) {
                        let _ = requests.send(Request::now(key, Trigger::Other));
                    }
                }
                None => {}
            }
        }
        if let Some(delay) = reconnect.stream_ended(delivered, opened.elapsed()) {
            tokio::time::sleep(delay).await;
        }
    }
}

fn event_kind(subject: EventSubject) -> Kind {
    if subject == EventSubject::Network {
        Kind::Network
    } else {
        Kind::Volume
    }
}

/// The Networks or Volumes among `objects` whose engine object `id` (a
/// network's id, a volume's name) was removed, from their names and
/// statuses. A Network whose status does not name its network yet (it is
/// being created) may be the one, so it is woken too; a removal of
/// someone else's network or volume wakes nothing, so it cannot drive
/// berth's objects past their backoff.
fn owners_of_removed(objects: &[AnyObject], id: &str) -> Vec<ObjectKey> {
    let owns = |object: &AnyObject| match object {
        AnyObject::Network(n) => {
            let engine_id = n.status.as_ref().map_or("", |s| s.engine_id.as_str());
            engine_id.is_empty() || engine_id == id || engine_name(&object.key()) == id
        }
        AnyObject::Volume(v) => {
            engine_name(&object.key()) == id || v.status.as_ref().is_some_and(|s| s.engine_name == id)
        }
        _ => false,
    };
    objects.iter().filter(|o| owns(o)).map(AnyObject::key).collect()
}

async fn periodic_resync(ctx: Context, requests: mpsc::UnboundedSender<Request<ObjectKey>>, every: Duration) {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        timer.tick().await;
        if let Err(e) = resync(&ctx, &requests, Trigger::Other).await {
            tracing::warn!("periodic resync failed: {e:#}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IntoAny, Network, NetworkSpec, NetworkStatus, Volume, VolumeSpec, VolumeStatus};

    #[test]
    fn a_removal_without_labels_wakes_only_the_object_it_names() {
        let mut app = Network::new("app", NetworkSpec::default());
        app.status = Some(NetworkStatus { engine_id: "n-app".into(), ..Default::default() });
        let mut db = Network::new("db", NetworkSpec::default());
        db.status = Some(NetworkStatus { engine_id: "n-db".into(), ..Default::default() });
        let creating = Network::new("new", NetworkSpec::default());
        let mut data = Volume::new("data", VolumeSpec::default());
        data.status = Some(VolumeStatus { engine_name: "berth-default-data".into(), ..Default::default() });
        let logs = Volume::new("logs", VolumeSpec::default());
        let networks = [app.into_any(), db.into_any(), creating.into_any()];
        let volumes = [data.into_any(), logs.into_any()];
        let names = |objects: &[AnyObject], id: &str| -> Vec<String> {
            owners_of_removed(objects, id).iter().map(|k| k.name.clone()).collect()
        };
        assert_eq!(names(&networks, "n-db"), ["db", "new"]);
        assert_eq!(names(&networks, "someone-elses"), ["new"]);
        assert_eq!(names(&volumes, "berth-default-data"), ["data"]);
        assert_eq!(names(&volumes, "berth-default-logs"), ["logs"]);
        assert_eq!(names(&volumes, "someone-elses"), Vec::<String>::new());
    }
}
