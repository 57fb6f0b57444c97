//! The embedded DNS server: authoritative for berth's zone, fed from the
//! endpoint set and the DnsRecord objects, forwarding other names.
//!
//! hickory-server answers UDP and TCP on one address. What it answers from
//! is a [`Catalog`] of in-memory zones built by [`zone::build`] and swapped
//! whole ([`ArcSwap`]) whenever a DnsRecord or the endpoint set changes: a
//! query sees the old record sets or the new ones, never a mix, and never
//! waits for a rebuild. Names outside every served zone go to the upstream
//! resolvers through hickory's forwarder for the clients [`clients`] allows
//! (loopback, berth's networks, `--dns-allow`), and are refused for others
//! or when forwarding is off.
//!
//! With `--dns-on-networks` the same answers are also given on the gateway
//! of every berth network ([`gateways`]), for the containers on them.
//!
//! What each DnsRecord serves (its name, its targets, or the conflict that
//! keeps it out) is published as a [`DnsReport`] for the DnsRecord
//! reconciler to write into status.

mod clients;
mod gateways;
pub mod zone;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::rr::{LowerName, Name};
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::resolver::config::{NameServerConfig, ResolverOpts};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::forwarder::{ForwardConfig, ForwardZoneHandler};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::api::{AnyObject, DnsRecord, Kind};
use crate::endpoints::{publish, EndpointSet, Endpoints, Inputs};
use crate::store::Store;

pub use gateways::{check_network_dns, DNS_PORT};
pub use zone::{DnsReport, RecordProblem, RecordReport};

/// Errors of the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The address could not be bound.
    #[error("cannot listen for DNS on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The zone name does not parse.
    #[error("DNS zone `{zone}` is not a domain name: {problem}")]
    Zone {
        /// The zone as given.
        zone: String,
        /// What is wrong.
        problem: String,
    },
    /// The forwarder could not be set up.
    #[error("DNS forwarding: {0}")]
    Upstream(String),
}

/// Result of DNS server operations.
pub type Result<T, E = DnsError> = std::result::Result<T, E>;

/// Where out-of-zone queries go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// Nowhere: they are refused.
    Off,
    /// These resolvers, tried in order.
    Servers(Vec<SocketAddr>),
}

impl Upstream {
    /// Parses `off`, or a comma-separated list of `IP` or `IP:PORT`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        if text == "off" {
            return Ok(Upstream::Off);
        }
        let servers = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| format!("`{s}` is not an IP address or IP:PORT; write e.g. 1.1.1.1,9.9.9.9:53 or off"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err("list at least one resolver, or write off".into());
        }
        Ok(Upstream::Servers(servers))
    }

    /// The `nameserver` lines of a resolv.conf text (port 53).
    pub fn from_resolv_conf(text: &str) -> Self {
        let servers: Vec<SocketAddr> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("nameserver"))
            .filter_map(|rest| rest.split_whitespace().next()?.split('%').next()?.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        if servers.is_empty() {
            Upstream::Off
        } else {
            Upstream::Servers(servers)
        }
    }
}

/// Settings of the DNS server.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// UDP and TCP address.
    pub listen: SocketAddr,
    /// The zone served (`berth.internal.`).
    pub zone: String,
    /// Where other names go.
    pub upstream: Upstream,
    /// Also answer on this port of every berth network's gateway
    /// (`--dns-on-networks`: [`DNS_PORT`]).
    pub on_networks: Option<u16>,
    /// Clients beyond loopback and berth's networks whose other names are
    /// forwarded (`--dns-allow`).
    pub allow: Vec<ipnet::IpNet>,
}

/// A bound DNS server, not serving yet.
pub struct DnsServer {
    sockets: (UdpSocket, TcpListener),
    table: Table,
    on_networks: Option<u16>,
}

/// What is answered: the zones (swapped whole) and the forwarder.
struct Table {
    zone: Name,
    handler: Arc<Handler>,
    forwarder: Option<Arc<dyn ZoneHandler>>,
}

/// Answers from the current catalog; the catalog is replaced whole.
struct Handler {
    /// The zones and the forwarder.
    catalog: ArcSwap<Catalog>,
    /// The zones alone: what a client that may not forward is answered
    /// from (other names are REFUSED, no zone handler taking them).
    zones_only: ArcSwap<Catalog>,
    clients: Arc<clients::ForwardClients>,
}

/// The handler as hickory's server holds it (by value).
#[derive(Clone)]
struct SharedHandler(Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for SharedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, response: R) -> ResponseInfo {
        let handler = &self.0;
        let catalog = if handler.clients.may_forward(request.src().ip()) {
            handler.catalog.load_full()
        } else {
            handler.zones_only.load_full()
        };
        catalog.handle_request::<R, T>(request, response).await
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `config.listen` (with port 0, the same port the
    /// system picks for UDP) and prepares the forwarder.
    pub async fn bind(config: &DnsConfig) -> Result<DnsServer> {
        let zone = zone::fqdn(&config.zone).map_err(|problem| DnsError::Zone { zone: config.zone.clone(), problem })?;
        let sockets = bind_both(config.listen, false).await?;
        let forwarder: Option<Arc<dyn ZoneHandler>> = match &config.upstream {
            Upstream::Off => None,
            Upstream::Servers(servers) => Some(Arc::new(forwarder(servers)?)),
        };
        let handler = Arc::new(Handler {
            catalog: ArcSwap::from_pointee(Catalog::new()),
            zones_only: ArcSwap::from_pointee(Catalog::new()),
            clients: Arc::new(clients::ForwardClients::new(config.allow.clone())),
        });
        let table = Table { zone, handler, forwarder };
        table.swap(&zone::build(&table.zone, &EndpointSet::default(), &[], 1));
        Ok(DnsServer { sockets, table, on_networks: config.on_networks })
    }

    /// The address it answers on (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.sockets.0.local_addr().expect("a bound socket has an address")
    }

    /// Serves until `stopping` completes, rebuilding the zones whenever a
    /// DnsRecord or the endpoint set changes and publishing what each
    /// DnsRecord serves on `reports`.
    pub async fn run(
        self,
        store: Store,
        endpoints: Endpoints,
        reports: watch::Sender<Arc<DnsReport>>,
        stopping: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(stopping);
        let DnsServer { sockets, table, on_networks } = self;
        let handler = SharedHandler(table.handler.clone());
        let mut server = serve_on(handler.clone(), sockets);
        let (stop_gateways, stopped) = watch::channel(false);
        let clients = tokio::spawn(table.handler.clients.clone().follow_networks(store.clone(), stopped.clone()));
        let gateways = on_networks.map(|port| tokio::spawn(gateways::follow(store.clone(), handler, port, stopped)));
        let mut inputs = Inputs::new(store, Kind::DnsRecord, endpoints);
        let mut serial = 1u32;
        loop {
            serial = serial.wrapping_add(1).max(1);
            let (objects, set) = inputs.current();
            let records: Vec<DnsRecord> = objects
                .into_iter()
                .filter_map(|o| if let AnyObject::DnsRecord(r) = o { Some(r) } else { None })
                .collect();
            let zones = zone::build(&table.zone, &set, &records, serial);
            table.swap(&zones);
            publish(&reports, zones.report);
            tokio::select! {
                // Cancel-safe: see `Inputs::changed`.
                more = inputs.changed() => if !more { break },
                // Cancel-safe: a pinned future polled again resumes.
                _ = &mut stopping => break,
            }
        }
        let _ = stop_gateways.send(true);
        let _ = server.shutdown_gracefully().await;
        if let Some(gateways) = gateways {
            let _ = gateways.await;
        }
        let _ = clients.await;
    }
}

/// A hickory server answering from `handler` on `sockets`.
fn serve_on(handler: SharedHandler, (udp, tcp): (UdpSocket, TcpListener)) -> hickory_server::Server<SharedHandler> {
    let mut server = hickory_server::Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(10), 64);
    server
}

impl Table {
    /// Installs a new set of zones (and the forwarder) in one swap.
    fn swap(&self, zones: &zone::Zones) {
        let (mut catalog, mut zones_only) = (Catalog::new(), Catalog::new());
        for (origin, sets) in &zones.zones {
            match InMemoryZoneHandler::<TokioRuntimeProvider>::new(
                origin.clone(),
                sets.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            ) {
                Ok(handler) => {
                    let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
                    catalog.upsert(LowerName::from(origin), vec![handler.clone()]);
                    zones_only.upsert(LowerName::from(origin), vec![handler]);
                }
                Err(e) => tracing::warn!(zone = %origin, "DNS zone not served: {e}"),
            }
        }
        if let Some(forwarder) = &self.forwarder {
            catalog.upsert(LowerName::from(Name::root()), vec![forwarder.clone()]);
        }
        self.handler.catalog.store(Arc::new(catalog));
        self.handler.zones_only.store(Arc::new(zones_only));
    }
}

/// UDP and TCP on one address. With port 0 the system picks the UDP port
/// and TCP takes the same one; when another process holds that TCP port,
/// another pair is tried. `freebind` binds an address the host does not
/// have yet (`IP_FREEBIND`).
async fn bind_both(listen: SocketAddr, freebind: bool) -> Result<(UdpSocket, TcpListener)> {
    let bind_error = |address, source| DnsError::Bind { address, source };
    let mut attempts = 0;
    loop {
        let udp = bind_socket(listen, Type::DGRAM, freebind)
            .and_then(|socket| UdpSocket::from_std(socket.into()))
            .map_err(|e| bind_error(listen, e))?;
        let address = udp.local_addr().map_err(|e| bind_error(listen, e))?;
        let tcp = bind_socket(address, Type::STREAM, freebind).and_then(|socket| {
            socket.listen(1024)?;
            TcpListener::from_std(socket.into())
        });
        match tcp {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if listen.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && attempts < 20 => attempts += 1,
            Err(e) => return Err(bind_error(address, e)),
        }
    }
}

/// A non-blocking socket of `kind` bound to `address` (with `SO_REUSEADDR`,
/// as tokio's own `bind` does).
fn bind_socket(address: SocketAddr, kind: Type, freebind: bool) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), kind, None)?;
    if kind == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    #[cfg(target_os = "linux")]
    if freebind {
        match address {
            SocketAddr::V4(_) => socket.set_freebind_v4(true)?,
            SocketAddr::V6(_) => socket.set_freebind_v6(true)?,
        }
    }
    // Elsewhere an address the host does not have yet fails the bind,
    // which the gateway follower retries.
    #[cfg(not(target_os = "linux"))]
    let _ = freebind;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

fn forwarder(servers: &[SocketAddr]) -> Result<ForwardZoneHandler> {
    let name_servers = servers
        .iter()
        .map(|address| {
            let mut config = NameServerConfig::udp_and_tcp(address.ip());
            for connection in &mut config.connections {
                connection.port = address.port();
            }
            config
        })
        .collect();
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_secs(2);
    options.attempts = 1;
    let config = ForwardConfig { name_servers, options: Some(options) };
    ForwardZoneHandler::builder_tokio(config).build().map_err(DnsError::Upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse() {
        assert_eq!(Upstream::parse("off"), Ok(Upstream::Off));
        assert_eq!(
            Upstream::parse("1.1.1.1, 127.0.0.1:5353").unwrap(),
            Upstream::Servers(vec!["1.1.1.1:53".parse().unwrap(), "127.0.0.1:5353".parse().unwrap()])
        );
        assert!(Upstream::parse("resolver.example").is_err());
        let conf = "# comment\nsearch example\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\noptions ndots:2\n";
        assert_eq!(
            Upstream::from_resolv_conf(conf),
            Upstream::Servers(vec!["10.0.0.1:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()])
        );
        assert_eq!(Upstream::from_resolv_conf(""), Upstream::Off);
    }
}
