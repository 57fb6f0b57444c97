//! `berth serve`: the flags of the daemon, turned into its configuration.
//!
//! Opens (and locks) the state directory, checks every flag and reads the
//! files they name, then runs [`crate::daemon`] until SIGTERM or Ctrl-C.
//! The first signal drains (running reconciles finish); a second one forces
//! the exit. Either way a restart resumes from the store and the engine's
//! labels. The flags come in groups, one per subsystem ([`GitArgs`],
//! [`DnsArgs`], [`ProxyArgs`], and the ingress, TLS, policy and limit
//! groups of their own modules), each turned into that subsystem's
//! configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::sync::watch;

use crate::connections::Limits;
use crate::controller::runtime::Shutdown;
use crate::controller::{ControllerConfig, NetworkDns};
use crate::daemon::{
    ApiConfig, ControllerSettings, EngineConfig, EngineKind, GitConfig, IngressConfig, ServeConfig, SourcesConfig,
};
use crate::dns::{DnsConfig, Upstream, DNS_PORT};
use crate::engine::endpoint::Selection;
use crate::manifest::policy::HostPolicy;
use crate::proxy::ProxyConfig;
use crate::server::tls::ServingTls;
use crate::server::{Listen, Token};
use crate::source::git::{Credentials, GitHooks, GitSpec};
use crate::store::{Retention, Store};

/// Arguments of `berth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of manifests to follow (recursively). Repeatable.
    #[arg(long = "manifests", value_name = "DIR")]
    pub manifests: Vec<PathBuf>,
    /// The git repositories followed.
    #[command(flatten)]
    pub git: GitArgs,
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
    /// The DNS server.
    #[command(flatten)]
    pub dns: DnsArgs,
    /// The HTTP proxy.
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// How long a client of the API or the proxy has to send a request's
    /// headers, from connecting or from the end of its previous request (so
    /// it also closes idle kept-alive connections).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
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

/// The git flags of `berth serve`.
#[derive(Debug, Args)]
pub struct GitArgs {
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
}

/// The DNS flags of `berth serve`.
#[derive(Debug, Args)]
pub struct DnsArgs {
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
    /// Clients whose names outside berth's zones the DNS server forwards,
    /// besides loopback and berth's own networks (which always are); the
    /// rest get REFUSED for them (berth's own names are answered to anyone).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', value_parser = parse_peer)]
    pub dns_allow: Vec<ipnet::IpNet>,
}

/// The proxy flags of `berth serve`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
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
    /// Most connections the proxy keeps open; when full, the oldest is closed
    /// (after the request in progress) to serve a new one. Never more than
    /// three quarters of the open-file limit, so the API, DNS and the engine
    /// always have descriptors.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub proxy_max_connections: usize,
    /// Peers (proxies in front of berth's) whose X-Forwarded-For berth extends
    /// and whose X-Real-IP / Forwarded it keeps; anyone else's are replaced.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', value_parser = parse_peer)]
    pub proxy_trusted_peers: Vec<ipnet::IpNet>,
}

/// A network (`10.0.0.0/8`) or one address (`10.0.0.1`).
fn parse_peer(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is neither an address (10.0.0.1) nor a network (10.0.0.0/8)"))
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

/// Runs the daemon until a signal.
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
    tracing::info!(state_dir = %state_dir.display(), resource_version = store.resource_version(), "store opened");
    let token = Token::load_or_create(&state_dir)?;
    let config = serve_config(args, state_dir, store, token)?;
    // Durable commits wait for the disk under `block_in_place`, which hands
    // the worker's tasks to a pooled thread: keeping idle pool threads for
    // minutes rather than tokio's 10 s spares a burst of writes (a stack
    // converging) the exit and respawn of those threads, whose teardown
    // (freeing their allocator caches) was most of berth's CPU in the
    // half-minute after 10,000 Containers converged.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(300))
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let (shutdown_tx, shutdown) = watch::channel(Shutdown::Running);
        tokio::spawn(shutdown_signal(shutdown_tx));
        crate::daemon::run(config, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The daemon's configuration from the flags, every value checked and
/// every file they name read.
fn serve_config(args: ServeArgs, state_dir: PathBuf, store: Store, token: Token) -> anyhow::Result<ServeConfig> {
    let tls = match args.tls.tls_listen.0 {
        Some(address) => Some((address, ServingTls::prepare(&args.tls, &state_dir, address)?)),
        None => None,
    };
    let ingress = IngressConfig {
        security: args.ingress.security().map_err(anyhow::Error::msg)?,
        mqtt: args.ingress.mqtt.config().map_err(anyhow::Error::msg)?,
        mq: args.ingress.mq.config().map_err(anyhow::Error::msg)?,
        dbus: args.ingress.dbus.bus(),
    };
    let zone = args.dns.dns_zone.clone();
    let limits = Limits { header_timeout: args.header_timeout, max_connections: args.api_max_connections };
    Ok(ServeConfig {
        sources: SourcesConfig { manifests: args.manifests, git: args.git.config()? },
        api: ApiConfig { listen: args.listen, tls, limits },
        engine: EngineConfig {
            kind: args.engine.into(),
            start_podman_service: args.podman_start_service,
            adopt: args.adopt,
        },
        controller: ControllerSettings { concurrency: args.concurrency, resync_interval: args.resync_interval },
        network_dns: args.dns.dns_on_networks.then_some(NetworkDns { zone }),
        proxy: args.proxy.config(args.header_timeout),
        dns: args.dns.config(),
        ingress,
        retention: Retention { max_events: args.event_retention, max_age: args.event_max_age, ..Retention::default() },
        state_dir,
        store,
        token,
    })
}

impl DnsArgs {
    /// The DNS server's configuration, or `None` for `--dns-listen off`.
    fn config(&self) -> Option<DnsConfig> {
        let listen = self.dns_listen.0?;
        let upstream = self.dns_upstream.clone().unwrap_or_else(|| {
            Upstream::from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        });
        Some(DnsConfig {
            listen,
            zone: self.dns_zone.clone(),
            upstream,
            on_networks: self.dns_on_networks.then_some(DNS_PORT),
            allow: self.dns_allow.clone(),
        })
    }
}

impl ProxyArgs {
    /// The proxy's configuration, or `None` for `--proxy-listen off`.
    fn config(&self, header_timeout: Duration) -> Option<ProxyConfig> {
        Some(ProxyConfig {
            listen: self.proxy_listen.0?,
            timeout: self.proxy_timeout,
            connect_timeout: self.proxy_connect_timeout,
            workers: self.proxy_workers.into(),
            limits: Limits { header_timeout, max_connections: self.proxy_max_connections },
            trusted_peers: self.proxy_trusted_peers.clone(),
        })
    }
}

impl From<EngineChoice> for EngineKind {
    fn from(choice: EngineChoice) -> Self {
        match choice {
            EngineChoice::Auto => EngineKind::Real(Selection::Auto),
            EngineChoice::Docker => EngineKind::Real(Selection::Docker),
            EngineChoice::Podman => EngineKind::Real(Selection::Podman),
            EngineChoice::Fake => EngineKind::Fake,
        }
    }
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

impl GitArgs {
    /// The followed repositories, checked: every one parsed, the credential
    /// files readable, the webhook secret read.
    fn config(&self) -> anyhow::Result<GitConfig> {
        let mut specs: Vec<GitSpec> = Vec::new();
        for argument in &self.git {
            let spec = GitSpec::parse(argument, &self.git_branch, &self.git_path)?;
            anyhow::ensure!(!specs.contains(&spec), "--git {} is given twice", spec.id());
            specs.push(spec);
        }
        let credentials = Credentials { ssh_key: self.git_ssh_key.clone(), token_file: self.git_token_file.clone() };
        credentials.check()?;
        let secret = match &self.git_webhook_secret_file {
            Some(file) => {
                let text = std::fs::read(file)
                    .with_context(|| format!("--git-webhook-secret-file {}: cannot read it", file.display()))?;
                let secret = text.trim_ascii().to_vec();
                anyhow::ensure!(!secret.is_empty(), "--git-webhook-secret-file {}: the file is empty", file.display());
                Some(secret)
            }
            None => None,
        };
        Ok(GitConfig {
            specs,
            credentials,
            hooks: GitHooks::new(secret),
            interval: self.git_interval,
            prune: self.git_prune,
        })
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
