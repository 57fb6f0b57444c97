//! The berth daemon: sources, store, controller, endpoint set, DNS, proxy,
//! the API and the message transports, wired into one process.
//!
//! `berth serve` only parses its flags into a [`ServeConfig`] (every value
//! checked, files read) and hands it to [`run`] with a shutdown channel it
//! drives from signals; nothing here knows about clap or signals.
//!
//! The order of the start is the promise the daemon keeps:
//! - every listener is bound before anything runs, so a taken port fails
//!   the start at once;
//! - the API, the sources, DNS and the proxy work from the store (and the
//!   endpoint set, empty until the engine answers) and start at once;
//! - the engine side (controller, endpoint set) joins when the engine
//!   answers; meanwhile `/readyz` says 503;
//! - on the way out the servers get 5 s to drain, then the tasks stop, and
//!   a Podman service berth started is stopped.

mod engine;
mod prune;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::connections::Limits;
use crate::controller::runtime::Shutdown;
use crate::controller::{Controller, ControllerConfig, NetworkDns, Served};
use crate::dns::{check_network_dns, DnsConfig, DnsServer};
use crate::endpoints::EndpointSet;
use crate::ingress::dbus::Bus;
use crate::ingress::mq::MqConfig;
use crate::ingress::mqtt::MqttConfig;
use crate::ingress::Security;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxyConfig};
use crate::server::tls::ServingTls;
use crate::server::{Bound, Connected, EngineSlot, Listen, ServerState, Token};
use crate::source::dir::DirSource;
use crate::source::git::{Credentials, GitHooks, GitSource, GitSpec};
use crate::start_error::{Doing as _, StartError};
use crate::store::{Retention, Store};

pub(crate) use engine::{EngineConfig, EngineKind};

/// Everything the daemon runs with, checked.
pub(crate) struct ServeConfig {
    /// The state directory (its store is open in `store`).
    pub state_dir: PathBuf,
    pub store: Store,
    /// The API's bearer token.
    pub token: Token,
    pub api: ApiConfig,
    pub sources: SourcesConfig,
    pub engine: EngineConfig,
    pub controller: ControllerSettings,
    /// The DNS server, or `None` when off.
    pub dns: Option<DnsConfig>,
    /// DNS on berth's networks (needs `dns`).
    pub network_dns: Option<NetworkDns>,
    /// The HTTP proxy, or `None` when off.
    pub proxy: Option<ProxyConfig>,
    pub ingress: IngressConfig,
    /// How long the event log keeps events.
    pub retention: Retention,
}

/// The REST and Kubernetes API.
pub(crate) struct ApiConfig {
    pub listen: Listen,
    /// The TLS listener for kubectl, its certificate ready.
    pub tls: Option<(SocketAddr, ServingTls)>,
    pub limits: Limits,
}

/// Where manifests come from besides the API.
pub(crate) struct SourcesConfig {
    /// Directories followed recursively.
    pub manifests: Vec<PathBuf>,
    pub git: GitConfig,
}

/// The followed git repositories.
pub(crate) struct GitConfig {
    pub specs: Vec<GitSpec>,
    pub credentials: Credentials,
    /// Webhooks, which poll a repository at once.
    pub hooks: GitHooks,
    /// Time between polls of each repository.
    pub interval: Duration,
    /// Whether what a new commit no longer declares is deleted.
    pub prune: bool,
}

/// How the controller runs.
pub(crate) struct ControllerSettings {
    pub concurrency: usize,
    pub resync_interval: Duration,
}

/// The message transports and what they accept.
pub(crate) struct IngressConfig {
    pub security: Security,
    pub mqtt: Option<MqttConfig>,
    pub mq: Option<MqConfig>,
    pub dbus: Option<Bus>,
}

/// Runs the daemon until `shutdown` leaves [`Shutdown::Running`] (a drain
/// lets running reconciles finish; a force cuts them).
pub(crate) async fn run(config: ServeConfig, shutdown: watch::Receiver<Shutdown>) -> crate::start_error::Result<()> {
    let ServeConfig {
        state_dir,
        store,
        token,
        api,
        sources,
        engine,
        controller,
        dns,
        network_dns,
        proxy,
        ingress,
        retention,
    } = config;
    let stopping = |mut shutdown: watch::Receiver<Shutdown>| async move {
        let _ = shutdown.wait_for(|phase| *phase != Shutdown::Running).await;
    };
    if network_dns.is_some() && dns.is_none() {
        return Err(StartError::Refused(
            "--dns-on-networks needs the DNS server: drop `--dns-listen off` or --dns-on-networks".into(),
        ));
    }
    // Every listener is bound before anything runs: a taken port fails the start at once.
    let listener = api.listen.bind().await?;
    let tls_listener = match api.tls {
        Some((address, tls)) => Some(Bound::tls(address, tls).await?),
        None => None,
    };
    let zone = dns.as_ref().map(|config| config.zone.clone()).unwrap_or_default();
    let dns = match &dns {
        Some(config) => Some(DnsServer::bind(config).await.doing(|| "--dns-listen")?),
        None => None,
    };
    let proxy = match proxy {
        Some(config) => Some(Proxy::bind(&limit_proxy_connections(config)).await.doing(|| "--proxy-listen")?),
        None => None,
    };
    let mq = ingress.mq.as_ref().map(crate::ingress::mq::listen).transpose().map_err(StartError::Refused)?;

    let metrics = Metrics::new();
    let engine_slot = EngineSlot::default();
    let mut tasks = tokio::task::JoinSet::new();
    let GitConfig { specs, credentials, mut hooks, interval, prune } = sources.git;
    for spec in specs {
        let trigger = hooks.follow(spec.clone());
        tracing::info!(source = %spec.id(), ?interval, prune, "following");
        let source = GitSource::new(store.clone(), &state_dir, spec, prune, credentials.clone());
        tasks.spawn(source.run(interval, trigger, shutdown.clone()));
    }
    if !sources.manifests.is_empty() {
        let source = DirSource::new(store.clone(), &sources.manifests).doing(|| "--manifests")?;
        let source_shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = source.run(source_shutdown).await {
                tracing::error!("manifest directories: {e:#}");
            }
        });
    }
    tasks.spawn(prune::prune_events(store.clone(), retention, stopping(shutdown.clone())));
    let (dns_reports, dns_served) = watch::channel(Arc::default());
    let (route_reports, routes_served) = watch::channel(Arc::default());
    let served = Served { dns: dns.is_some().then_some(dns_served), routes: proxy.is_some().then_some(routes_served) };
    let (endpoints_tx, endpoints) = watch::channel(Arc::new(EndpointSet::default()));
    // Awaited on the way out, so that they drain rather than being cut.
    let mut servers = Vec::new();
    if let Some(dns) = dns {
        tracing::info!(zone = %zone, "DNS on udp+tcp {}", dns.local_addr());
        servers.push(tokio::spawn(dns.run(store.clone(), endpoints.clone(), dns_reports, stopping(shutdown.clone()))));
    }
    if let Some(proxy) = proxy {
        tracing::info!("HTTP proxy on http://{}", proxy.local_addr());
        let run = proxy.run(store.clone(), endpoints.clone(), route_reports, stopping(shutdown.clone()));
        servers.push(tokio::spawn(run));
    }
    let state = Arc::new(ServerState {
        store: store.clone(),
        metrics: metrics.clone(),
        engine: engine_slot.clone(),
        git_hooks: hooks,
        ingress: ingress.security,
        exec_sessions: Default::default(),
        dashboard: Default::default(),
    });
    let executor = crate::ingress::Ingress::new(state.clone());
    if let Some(mqtt) = ingress.mqtt {
        let run = crate::ingress::mqtt::run(mqtt, executor.clone(), store.clone(), stopping(shutdown.clone()));
        servers.push(tokio::spawn(run));
    }
    if let Some(mq) = mq {
        servers.push(tokio::spawn(mq.run(executor.clone(), stopping(shutdown.clone()))));
    }
    if let Some(bus) = ingress.dbus {
        let connection = crate::ingress::dbus::connect(&bus, executor.clone()).await.map_err(StartError::Refused)?;
        let run =
            crate::ingress::dbus::run(bus, connection, executor.clone(), store.clone(), stopping(shutdown.clone()));
        servers.push(tokio::spawn(run));
    }
    let app = crate::server::app(state, token);
    match listener.local_addr() {
        Some(address) => tracing::info!("REST API on http://{address}"),
        None => tracing::info!("REST API on {}", api.listen),
    }
    if let Some(tls_listener) = tls_listener {
        if let Some(address) = tls_listener.local_addr() {
            crate::server::tls::write_url(&state_dir, address)?;
            tracing::info!("Kubernetes API (TLS) on https://{address}; `berth kubeconfig` writes a kubeconfig for it");
        }
        let (app, shutdown) = (app.clone().layer(axum::Extension(crate::server::OverTls)), shutdown.clone());
        servers.push(tokio::spawn(async move {
            if let Err(e) = tls_listener.serve(app, api.limits, stopping(shutdown)).await {
                tracing::error!("TLS listener: {e:#}");
            }
        }));
    }
    let api = tokio::spawn(listener.serve(app, api.limits, stopping(shutdown.clone())));

    let (outcome, service) = match engine::connect(&engine, shutdown.clone()).await? {
        None => (Ok(()), None),
        Some((engine_handle, service)) => {
            let run = async {
                if network_dns.is_some() {
                    let endpoint = engine_handle.info().await.map(|info| info.endpoint).unwrap_or_default();
                    check_network_dns(&endpoint).map_err(|problem| StartError::Refused(problem.to_string()))?;
                }
                let config = ControllerConfig {
                    concurrency: controller.concurrency.max(1),
                    resync_interval: controller.resync_interval,
                    metrics,
                    served,
                    network_dns,
                    ..ControllerConfig::default()
                };
                let db_dir = state_dir.join("db").display().to_string();
                // The check waits for the engine to list; a signal ends the wait.
                tokio::select! {
                    checked = crate::controller::check_lost_store(&store, &engine_handle, &db_dir, engine.adopt) => checked?,
                    () = stopping(shutdown.clone()) => return Ok(()),
                }
                let controller = Controller::new(store.clone(), engine_handle, config)?;
                let ctx = controller.context();
                tasks.spawn(crate::endpoints::follow(ctx.store.clone(), ctx.reflector.clone(), endpoints_tx));
                engine_slot.set(Connected { ctx, observed: controller.observed() });
                controller.run(shutdown).await?;
                Ok::<(), StartError>(())
            };
            (run.await, service)
        }
    };
    // The proxy's workers give connections in flight up to 3 s.
    let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(servers)).await;
    tasks.shutdown().await;
    let served = api.await;
    if let Some(service) = service {
        tracing::info!(socket = %service.socket().display(), "stopping the podman service berth started");
        service.stop().await;
    }
    outcome?;
    match served {
        Ok(result) => result?,
        Err(e) => tracing::error!("the API server stopped: {e}"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// `config` with its connection limit cut to three quarters of the
/// open-file limit (raised as far as allowed first), so the API, DNS and
/// the engine always have descriptors.
fn limit_proxy_connections(mut config: ProxyConfig) -> ProxyConfig {
    let nofile = crate::connections::raise_nofile_limit().unwrap_or(1024);
    let wanted = config.limits.max_connections;
    config.limits.max_connections = crate::connections::proxy_share(wanted, nofile);
    if config.limits.max_connections < wanted {
        tracing::info!(
            max_connections = config.limits.max_connections,
            open_file_limit = nofile,
            "proxy connections limited to three quarters of the open-file limit"
        );
    }
    config
}
