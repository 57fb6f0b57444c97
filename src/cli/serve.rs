//! `berth serve`: the controller process.
//!
//! Opens (and locks) the state directory, serves the REST API and follows
//! the manifest directories and git repositories into the store at once,
//! connects to the engine (waiting for it if it is not up yet, as at boot;
//! `/readyz` says 503 meanwhile), then runs the controller until SIGTERM or
//! Ctrl-C. The first signal drains (running reconciles finish); a second
//! one forces the exit. Either way a restart resumes from the store and the
//! engine's labels.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::sync::watch;

use crate::connections::Limits;
use crate::controller::runtime::Shutdown;
use crate::controller::{Controller, ControllerConfig, NetworkDns, Served};
use crate::dns::{check_network_dns, DnsConfig, DnsServer, Upstream, DNS_PORT};
use crate::endpoints::EndpointSet;
use crate::engine::endpoint::{self, PodmanService, Selection};
use crate::engine::fake::FakeEngine;
use crate::engine::Engine;
use crate::manifest::policy::HostPolicy;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxyConfig};
use crate::server::{Bound, Connected, EngineSlot, Listen, ServerState, Token};
use crate::source::dir::DirSource;
use crate::source::git::{Credentials, GitHooks, GitSource, GitSpec};
use crate::store::Store;
use crate::store::{Retention, PRUNE_EVERY};

/// Arguments of `berth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of manifests to follow (recursively). Repeatable.
    #[arg(long = "manifests", value_name = "DIR")]
    pub manifests: Vec<PathBuf>,
    /// Git repository to follow: `URL[#BRANCH[:PATH]]`, where URL is
    /// `https://`, `ssh://`, `user@host:path`, `git://`, `file://` or a
    /// path. BRANCH and PATH default to --git-branch and --git-path.
    /// Repeatable.
    #[arg(long = "git", value_name = "URL[#BRANCH[:PATH]]")]
    pub git: Vec<String>,
    /// Branch followed for --git URLs that name none.
    #[arg(long, value_name = "BRANCH", default_value = crate::source::git::DEFAULT_BRANCH)]
    pub git_branch: String,
    /// Directory of manifests in the repository, for --git URLs that name
    /// none. Default: the repository's root.
    #[arg(long, value_name = "DIR", default_value = "")]
    pub git_path: String,
    /// Time between polls of each repository (webhooks poll at once).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub git_interval: Duration,
    /// Delete what the previous commit declared and a new one does not;
    /// `--git-prune=false` keeps it.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub git_prune: bool,
    /// File holding the secret of `POST /hooks/git` (GitHub's signature,
    /// GitLab's token). Without it, webhooks are refused.
    #[arg(long, value_name = "FILE")]
    pub git_webhook_secret_file: Option<PathBuf>,
    /// SSH private key for ssh:// repositories (used by `ssh -i`, which
    /// must be installed; host keys are checked against known_hosts).
    #[arg(long, value_name = "FILE")]
    pub git_ssh_key: Option<PathBuf>,
    /// File holding a token for https:// repositories that ask for
    /// credentials (read at each fetch; never logged or stored).
    #[arg(long, value_name = "FILE")]
    pub git_token_file: Option<PathBuf>,
    /// Where berth keeps its store, lock and token. Default: `/var/lib/berth`
    /// for root, else `$XDG_STATE_HOME/berth` (`~/.local/state/berth`).
    #[arg(long, value_name = "DIR", env = "BERTH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Encrypted payloads: the keyring, the replay window, where plaintext is refused.
    #[command(flatten)]
    pub ingress: crate::ingress::IngressArgs,
    /// Where the REST API listens: `ADDRESS:PORT` or `unix:/PATH`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7777", env = "BERTH_LISTEN")]
    pub listen: Listen,
    /// Container engine to drive.
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto, env = "BERTH_ENGINE")]
    pub engine: EngineChoice,
    /// When Podman is installed but no socket answers, run `podman system
    /// service` as a child (stopped when berth exits).
    #[arg(long)]
    pub podman_start_service: bool,
    /// Reconciles running at once.
    #[arg(long, value_name = "N", default_value_t = ControllerConfig::default().concurrency)]
    pub concurrency: usize,
    /// Time between full resyncs with the engine (a safety net: engine
    /// events repair drift at once).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,
    /// Where the DNS server answers (UDP and TCP): `ADDRESS:PORT`, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:5380", env = "BERTH_DNS_LISTEN")]
    pub dns_listen: ListenAddr,
    /// The zone the DNS server is authoritative for.
    #[arg(long, value_name = "ZONE", default_value = "berth.internal.")]
    pub dns_zone: String,
    /// Resolvers for names outside the zone: `IP[:PORT]`, comma-separated,
    /// or `off` to refuse them. Default: the nameservers of /etc/resolv.conf.
    #[arg(long, value_name = "ADDRS|off", value_parser = Upstream::parse)]
    pub dns_upstream: Option<Upstream>,
    /// Also answer DNS on port 53 of every berth network's gateway and make
    /// it the DNS server of the containers on those networks (they search
    /// `<namespace>.<zone>`, so `api` names the Container api). Turning it
    /// on or off recreates berth's networks and their containers.
    #[arg(long, env = "BERTH_DNS_ON_NETWORKS")]
    pub dns_on_networks: bool,
    /// Where the HTTP proxy listens: `ADDRESS:PORT`, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:8088", env = "BERTH_PROXY_LISTEN")]
    pub proxy_listen: ListenAddr,
    /// Longest the proxy waits for a backend's response headers (then 504).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub proxy_timeout: Duration,
    /// Longest the proxy waits to connect to a backend (then it tries another, or answers 502).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub proxy_connect_timeout: Duration,
    /// Threads serving the proxy's connections (default: one per core, up to 8).
    #[arg(long, value_name = "N", default_value_t = crate::proxy::default_workers() as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub proxy_workers: u16,
    /// How long a client of the API or the proxy has to send a request's
    /// headers, from connecting or from the end of its previous request (so
    /// it also closes idle kept-alive connections).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Most connections the proxy keeps open; when full, the oldest is closed
    /// (after the request in progress) to serve a new one. Never more than
    /// three quarters of the open-file limit, so the API, DNS and the engine
    /// always have descriptors.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub proxy_max_connections: usize,
    /// Clients whose names outside berth's zones the DNS server forwards,
    /// besides loopback and berth's own networks (which always are); the
    /// rest get REFUSED for them (berth's own names are answered to anyone).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', value_parser = parse_peer)]
    pub dns_allow: Vec<ipnet::IpNet>,
    /// Peers (proxies in front of berth's) whose X-Forwarded-For berth extends
    /// and whose X-Real-IP / Forwarded it keeps; anyone else's are replaced.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', value_parser = parse_peer)]
    pub proxy_trusted_peers: Vec<ipnet::IpNet>,
    /// Most connections the API keeps open; when full, the oldest is closed.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub api_max_connections: usize,
    /// Events the audit log keeps (the oldest go first; every object keeps
    /// its last 50 whatever this says).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub event_retention: usize,
    /// Take over the engine objects of this state directory's previous
    /// instance when its database was lost (berth refuses to start without
    /// it, to not leave them unmanaged): what the manifests declare is kept
    /// or recreated, the rest removed.
    #[arg(long)]
    pub adopt: bool,
    /// How much a manifest (a file, a commit, a request) may cost to read.
    #[command(flatten)]
    pub manifest_limits: crate::manifest::limits::LimitArgs,
    /// Events older than this go (every object keeps its last 50).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub event_max_age: Duration,
    /// What manifests may take from the host (all refused by default).
    #[command(flatten)]
    pub policy: crate::manifest::policy::PolicyArgs,
    /// The TLS listener, for kubectl and the other Kubernetes clients.
    #[command(flatten)]
    pub tls: crate::server::tls::TlsArgs,
}

/// A network (`10.0.0.0/8`) or one address (`10.0.0.1`).
fn parse_peer(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is neither an address (10.0.0.1) nor a network (10.0.0.0/8)"))
}

/// Keeps the event log within `retention`: shortly after start, then every
/// [`PRUNE_EVERY`], until `stop`.
async fn prune_events(store: Store, retention: Retention, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut next = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Cancel-safe: both arms only wait.
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.prune_events(&retention)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "event log pruned"),
            Ok(Err(e)) => tracing::warn!("pruning the event log failed: {e}"),
            Err(e) => tracing::warn!("pruning the event log failed: {e}"),
        }
        next = tokio::time::Instant::now() + PRUNE_EVERY;
    }
}

/// A socket address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub Option<SocketAddr>);

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "off" {
            return Ok(ListenAddr(None));
        }
        text.parse()
            .map(|address| ListenAddr(Some(address)))
            .map_err(|_| format!("`{text}` is not ADDRESS:PORT (e.g. 127.0.0.1:5380) or off"))
    }
}

/// Which engine `serve` drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// `DOCKER_HOST` or `CONTAINER_HOST` when set, else the first socket that
    /// answers of Docker's, rootful Podman's and rootless Podman's.
    Auto,
    /// Docker, through its API socket (`DOCKER_HOST` or `/var/run/docker.sock`).
    Docker,
    /// Podman, through its libpod API socket (`CONTAINER_HOST`,
    /// `/run/podman/podman.sock` or `$XDG_RUNTIME_DIR/podman/podman.sock`).
    Podman,
    /// The in-memory engine, for trying berth without containers.
    Fake,
}

/// The default state directory for this user.
pub fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/berth");
    }
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")));
    state_home.unwrap_or_else(|| PathBuf::from(".")).join("berth")
}

/// Runs the controller until a signal.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::manifest::limits::set((&args.manifest_limits).into());
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let store = Store::open(&state_dir).with_context(|| format!("opening state directory {}", state_dir.display()))?;
    // Git checkouts are followed directories too: their build contexts are granted.
    let followed: Vec<PathBuf> = args.manifests.iter().cloned().chain([state_dir.join("git")]).collect();
    crate::manifest::policy::set(host_policy(&args.policy, &state_dir, &followed)?);
    for dir in &args.manifests {
        anyhow::ensure!(dir.is_dir(), "--manifests {}: not a directory", dir.display());
    }
    let git = GitArgs::check(&args)?;
    tracing::info!(state_dir = %state_dir.display(), resource_version = store.resource_version(), "store opened");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let token = Token::load_or_create(&state_dir)?;
    runtime.block_on(serve(args, store, token, git, state_dir))?;
    Ok(ExitCode::SUCCESS)
}

/// The policy the flags grant (build contexts in the followed manifest
/// directories and git checkouts included); the default secret directory is
/// made (0700) when missing, one given with --secret-dir must exist.
fn host_policy(
    args: &crate::manifest::policy::PolicyArgs,
    state_dir: &std::path::Path,
    manifest_dirs: &[PathBuf],
) -> anyhow::Result<HostPolicy> {
    match &args.secret_dir {
        Some(dir) => anyhow::ensure!(dir.is_dir(), "--secret-dir {}: not a directory", dir.display()),
        None => {
            use std::os::unix::fs::DirBuilderExt;
            let dir = state_dir.join("secrets");
            if !dir.is_dir() {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .with_context(|| format!("making the secret directory {}", dir.display()))?;
            }
        }
    }
    let policy = args.policy(state_dir, manifest_dirs).map_err(anyhow::Error::msg)?;
    tracing::info!(
        host_paths = ?policy.host_paths,
        secret_dir = %policy.secret_dir.display(),
        privileged = policy.privileged,
        host_env = ?policy.host_env,
        "host policy"
    );
    Ok(policy)
}

/// The git flags, checked: every repository parsed, the credential files
/// readable, the webhook secret read.
struct GitArgs {
    specs: Vec<GitSpec>,
    credentials: Credentials,
    hooks: GitHooks,
}

impl GitArgs {
    fn check(args: &ServeArgs) -> anyhow::Result<GitArgs> {
        let mut specs: Vec<GitSpec> = Vec::new();
        for argument in &args.git {
            let spec = GitSpec::parse(argument, &args.git_branch, &args.git_path)?;
            anyhow::ensure!(!specs.contains(&spec), "--git {} is given twice", spec.id());
            specs.push(spec);
        }
        let credentials = Credentials { ssh_key: args.git_ssh_key.clone(), token_file: args.git_token_file.clone() };
        credentials.check()?;
        let secret = match &args.git_webhook_secret_file {
            Some(file) => {
                let text = std::fs::read(file)
                    .with_context(|| format!("--git-webhook-secret-file {}: cannot read it", file.display()))?;
                let secret = text.trim_ascii().to_vec();
                anyhow::ensure!(!secret.is_empty(), "--git-webhook-secret-file {}: the file is empty", file.display());
                Some(secret)
            }
            None => None,
        };
        Ok(GitArgs { specs, credentials, hooks: GitHooks::new(secret) })
    }
}

async fn serve(args: ServeArgs, store: Store, token: Token, git: GitArgs, state_dir: PathBuf) -> anyhow::Result<()> {
    let ingress = args.ingress.security().map_err(anyhow::Error::msg)?;
    let mqtt = args.ingress.mqtt.config().map_err(anyhow::Error::msg)?;
    let mq = args.ingress.mq.config().map_err(anyhow::Error::msg)?;
    let mq = mq.as_ref().map(crate::ingress::mq::listen).transpose().map_err(anyhow::Error::msg)?;
    let (shutdown_tx, shutdown) = watch::channel(Shutdown::Running);
    tokio::spawn(shutdown_signal(shutdown_tx));
    let stopping = |mut shutdown: watch::Receiver<Shutdown>| async move {
        let _ = shutdown.wait_for(|phase| *phase != Shutdown::Running).await;
    };
    // Every listener is bound before anything runs: a taken port fails the start at once.
    let listener = args.listen.bind().await?;
    let tls_listener = match args.tls.tls_listen.0 {
        Some(address) => {
            let tls = crate::server::tls::ServingTls::prepare(&args.tls, &state_dir, address)?;
            Some(Bound::tls(address, tls).await?)
        }
        None => None,
    };
    let dns = match args.dns_listen.0 {
        Some(listen) => {
            let upstream = args.dns_upstream.clone().unwrap_or_else(|| {
                Upstream::from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
            });
            let on_networks = args.dns_on_networks.then_some(DNS_PORT);
            let allow = args.dns_allow.clone();
            let config = DnsConfig { listen, zone: args.dns_zone.clone(), upstream, on_networks, allow };
            Some(DnsServer::bind(&config).await.context("--dns-listen")?)
        }
        None if args.dns_on_networks => {
            anyhow::bail!("--dns-on-networks needs the DNS server: drop `--dns-listen off` or --dns-on-networks")
        }
        None => None,
    };
    let proxy = match args.proxy_listen.0 {
        Some(listen) => {
            let nofile = crate::connections::raise_nofile_limit().unwrap_or(1024);
            let max_connections = crate::connections::proxy_share(args.proxy_max_connections, nofile);
            if max_connections < args.proxy_max_connections {
                tracing::info!(
                    max_connections,
                    open_file_limit = nofile,
                    "proxy connections limited to three quarters of the open-file limit"
                );
            }
            let config = ProxyConfig {
                listen,
                timeout: args.proxy_timeout,
                connect_timeout: args.proxy_connect_timeout,
                workers: args.proxy_workers.into(),
                limits: Limits { header_timeout: args.header_timeout, max_connections },
                trusted_peers: args.proxy_trusted_peers.clone(),
            };
            Some(Proxy::bind(&config).await.context("--proxy-listen")?)
        }
        None => None,
    };
    // The API, the sources, DNS and the proxy work from the store (and the
    // endpoint set, empty until the engine answers): they start at once, and
    // the engine side joins when the engine answers.
    let metrics = Metrics::new();
    let engine_slot = EngineSlot::default();
    let mut tasks = tokio::task::JoinSet::new();
    let GitArgs { specs, credentials, mut hooks } = git;
    for spec in specs {
        let trigger = hooks.follow(spec.clone());
        tracing::info!(source = %spec.id(), interval = ?args.git_interval, prune = args.git_prune, "following");
        let source = GitSource::new(store.clone(), &state_dir, spec, args.git_prune, credentials.clone());
        tasks.spawn(source.run(args.git_interval, trigger, shutdown.clone()));
    }
    if !args.manifests.is_empty() {
        let source = DirSource::new(store.clone(), &args.manifests).context("--manifests")?;
        let source_shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = source.run(source_shutdown).await {
                tracing::error!("manifest directories: {e:#}");
            }
        });
    }
    let retention = Retention { max_events: args.event_retention, max_age: args.event_max_age, ..Retention::default() };
    tasks.spawn(prune_events(store.clone(), retention, stopping(shutdown.clone())));
    let (dns_reports, dns_served) = watch::channel(Arc::default());
    let (route_reports, routes_served) = watch::channel(Arc::default());
    let served = Served { dns: dns.is_some().then_some(dns_served), routes: proxy.is_some().then_some(routes_served) };
    let (endpoints_tx, endpoints) = watch::channel(Arc::new(EndpointSet::default()));
    // Awaited on the way out, so that they drain rather than being cut.
    let mut servers = Vec::new();
    if let Some(dns) = dns {
        tracing::info!(zone = %args.dns_zone, "DNS on udp+tcp {}", dns.local_addr());
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
        ingress,
        exec_sessions: Default::default(),
        dashboard: Default::default(),
    });
    let executor = crate::ingress::Ingress::new(state.clone());
    if let Some(mqtt) = mqtt {
        let run = crate::ingress::mqtt::run(mqtt, executor.clone(), store.clone(), stopping(shutdown.clone()));
        servers.push(tokio::spawn(run));
    }
    if let Some(mq) = mq {
        servers.push(tokio::spawn(mq.run(executor.clone(), stopping(shutdown.clone()))));
    }
    if let Some(bus) = args.ingress.dbus.bus() {
        let connection = crate::ingress::dbus::connect(&bus, executor.clone()).await.map_err(anyhow::Error::msg)?;
        let run =
            crate::ingress::dbus::run(bus, connection, executor.clone(), store.clone(), stopping(shutdown.clone()));
        servers.push(tokio::spawn(run));
    }
    let app = crate::server::app(state, token);
    match listener.local_addr() {
        Some(address) => tracing::info!("REST API on http://{address}"),
        None => tracing::info!("REST API on {}", args.listen),
    }
    let api_limits = Limits { header_timeout: args.header_timeout, max_connections: args.api_max_connections };
    if let Some(tls_listener) = tls_listener {
        if let Some(address) = tls_listener.local_addr() {
            crate::server::tls::write_url(&state_dir, address)?;
            tracing::info!("Kubernetes API (TLS) on https://{address}; `berth kubeconfig` writes a kubeconfig for it");
        }
        let (app, shutdown) = (app.clone().layer(axum::Extension(crate::server::OverTls)), shutdown.clone());
        servers.push(tokio::spawn(async move {
            if let Err(e) = tls_listener.serve(app, api_limits, stopping(shutdown)).await {
                tracing::error!("TLS listener: {e:#}");
            }
        }));
    }
    let api = tokio::spawn(listener.serve(app, api_limits, stopping(shutdown.clone())));
    let (outcome, service) = match connect(args.engine, args.podman_start_service, shutdown.clone()).await? {
        None => (Ok(()), None),
        Some((engine, service)) => {
            if args.dns_on_networks {
                let endpoint = engine.info().await.map(|info| info.endpoint).unwrap_or_default();
                check_network_dns(&endpoint).map_err(|problem| anyhow::anyhow!(problem))?;
            }
            let config = ControllerConfig {
                concurrency: args.concurrency.max(1),
                resync_interval: args.resync_interval,
                metrics,
                served,
                network_dns: args.dns_on_networks.then(|| NetworkDns { zone: args.dns_zone.clone() }),
                ..ControllerConfig::default()
            };
            let db_dir = state_dir.join("db").display().to_string();
            // The check waits for the engine to list; a signal ends the wait.
            let lost = tokio::select! {
                checked = crate::controller::check_lost_store(&store, &engine, &db_dir, args.adopt) => Some(checked),
                () = stopping(shutdown.clone()) => None,
            };
            match lost {
                None => (Ok(()), service),
                Some(checked) => {
                    checked?;
                    let controller = Controller::new(store.clone(), engine, config)?;
                    let ctx = controller.context();
                    tasks.spawn(crate::endpoints::follow(ctx.store.clone(), ctx.reflector.clone(), endpoints_tx));
                    engine_slot.set(Connected { ctx, observed: controller.observed() });
                    (controller.run(shutdown).await, service)
                }
            }
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

/// Connects to the chosen engine, waiting for it to come up; `None` when a
/// signal came first. With `start_service`, a Podman that is installed but
/// not served is started (the service is returned, to stop on exit);
/// without it, that case is an error saying so.
async fn connect(
    choice: EngineChoice,
    start_service: bool,
    mut shutdown: watch::Receiver<Shutdown>,
) -> anyhow::Result<Option<(Arc<dyn Engine>, Option<PodmanService>)>> {
    let selection = match choice {
        EngineChoice::Fake => {
            tracing::warn!("using the in-memory fake engine: nothing real will run");
            return Ok(Some((Arc::new(FakeEngine::new()), None)));
        }
        EngineChoice::Auto => Selection::Auto,
        EngineChoice::Docker => Selection::Docker,
        EngineChoice::Podman => Selection::Podman,
    };
    let candidates =
        endpoint::candidates(selection, |name| std::env::var(name).ok(), crate::engine::podman::user_socket());
    let mut attempt = 0u32;
    loop {
        let mut failures = Vec::new();
        for candidate in &candidates {
            match candidate.connect().await {
                Ok(engine) => {
                    let (backend, reason) = (candidate.backend.as_str(), candidate.reason);
                    tracing::info!(engine = backend, endpoint = %candidate.endpoint, reason, "engine chosen");
                    return Ok(Some((engine, None)));
                }
                Err(e) => failures.push(format!("{} at {}: {e:#}", candidate.backend.as_str(), candidate.endpoint)),
            }
        }
        let failures = failures.join("; ");
        let podman_socket =
            candidates.iter().filter(|c| c.backend == endpoint::Backend::Podman).find_map(|c| c.socket());
        if let (Some(socket), true) = (podman_socket, endpoint::podman_installed()) {
            anyhow::ensure!(
                start_service,
                "no engine answers ({failures}). Podman is installed but its API service is not running: \
                 pass --podman-start-service to let berth start `podman system service` (and stop it on exit), \
                 or start it yourself: podman system service --time=0 unix://{}",
                socket.display()
            );
            tracing::info!(socket = %socket.display(), "starting podman system service");
            let service = PodmanService::start(&socket).await.context("--podman-start-service")?;
            let engine = crate::engine::podman::PodmanEngine::connect(Some(&format!("unix://{}", socket.display())))
                .await
                .context("connecting to the podman service berth started")?;
            tracing::info!(
                engine = "podman",
                endpoint = engine.endpoint(),
                reason = "started by berth",
                "engine chosen"
            );
            return Ok(Some((Arc::new(engine), Some(service))));
        }
        let delay = Duration::from_millis(800).saturating_mul(1 << attempt.min(5)).min(Duration::from_secs(30));
        attempt += 1;
        tracing::warn!(
            "no engine answers ({failures}); retrying in {delay:?}. Start Docker (systemctl start docker) or \
             Podman (systemctl start podman.socket), point DOCKER_HOST or CONTAINER_HOST at one, or try \
             --engine fake to run berth against an in-memory engine"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return Ok(None),
        }
    }
}

/// First SIGTERM or Ctrl-C: drain. Second: force.
async fn shutdown_signal(shutdown: watch::Sender<Shutdown>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else { return };
    for phase in [Shutdown::Drain, Shutdown::Force] {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        match phase {
            Shutdown::Drain => tracing::info!("shutting down: finishing running reconciles (signal again to force)"),
            _ => tracing::warn!("forced shutdown"),
        }
        let _ = shutdown.send(phase);
    }
}
