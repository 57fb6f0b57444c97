//! `--dns-on-networks`: the DNS server also answers on the gateway address
//! of every berth network, which is where the containers on it send their
//! queries (the controller passes the gateways as their DNS servers).
//!
//! The gateways come from the Networks' status, written once the engine
//! created them; the listeners follow it: one hickory server per address,
//! started when a network appears and shut down when it goes. The sockets
//! are bound with `IP_FREEBIND`, because Podman brings a network's bridge,
//! and with it the gateway address, up only when the first container
//! joins: after berth wants to listen there. A bind that fails (another
//! resolver holds the port) is logged and retried every few seconds.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use crate::api::{AnyObject, Kind, ObjectKey};
use crate::store::{Change, Store};

use super::{bind_both, serve_on, SharedHandler};

/// How long a failed bind waits before the next attempt.
const RETRY: Duration = Duration::from_secs(5);

/// The port containers ask (resolv.conf has no other).
pub const DNS_PORT: u16 = 53;

type Server = hickory_server::Server<SharedHandler>;

/// Answers on the gateways of the Networks in `store`, on `port`, until
/// `stop` turns true.
pub(super) async fn follow(store: Store, handler: SharedHandler, port: u16, mut stop: watch::Receiver<bool>) {
    let mut changes = store.watch();
    let mut servers: BTreeMap<SocketAddr, Server> = BTreeMap::new();
    let mut failing: BTreeMap<SocketAddr, String> = BTreeMap::new();
    loop {
        let wanted = gateways(&store, port);
        let gone: Vec<SocketAddr> = servers.keys().filter(|address| !wanted.contains_key(address)).copied().collect();
        for address in gone {
            if let Some(mut server) = servers.remove(&address) {
                tracing::info!("DNS no longer on udp+tcp {address} (its network is gone)");
                let _ = server.shutdown_gracefully().await;
            }
        }
        failing.retain(|address, _| wanted.contains_key(address));
        for (address, network) in &wanted {
            if servers.contains_key(address) {
                continue;
            }
            match bind_both(*address, true).await {
                Ok(sockets) => {
                    tracing::info!(network = %network, "DNS also on udp+tcp {address}, the network's gateway");
                    failing.remove(address);
                    servers.insert(*address, serve_on(handler.clone(), sockets));
                }
                Err(e) => {
                    let message = crate::error_chain::Chain(&e).to_string();
                    if failing.get(address) != Some(&message) {
                        tracing::warn!(
                            network = %network,
                            "containers on the network get no DNS from berth: {message}; retrying every {RETRY:?}"
                        );
                    }
                    failing.insert(*address, message);
                }
            }
        }
        let retry = async {
            if failing.is_empty() {
                std::future::pending::<()>().await
            }
            tokio::time::sleep(RETRY).await
        };
        tokio::select! {
            more = network_changed(&mut changes) => if !more { break },
            () = retry => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    for server in servers.values_mut() {
        let _ = server.shutdown_gracefully().await;
    }
}

/// Waits for a change to a Network, status included (the gateways are
/// status); `false` once the store is gone. Cancel-safe, as `recv` is.
pub(super) async fn network_changed(changes: &mut broadcast::Receiver<Change>) -> bool {
    loop {
        match changes.recv().await {
            Ok(change) if change.object.kind() != Kind::Network => continue,
            Ok(_) | Err(RecvError::Lagged(_)) => return true,
            Err(RecvError::Closed) => return false,
        }
    }
}

/// Each gateway address of the live Networks, with the first Network that
/// has it.
fn gateways(store: &Store, port: u16) -> BTreeMap<SocketAddr, ObjectKey> {
    let networks = store.list(Some(Kind::Network), None).unwrap_or_else(|e| {
        tracing::warn!("listing networks failed: {e:#}");
        Vec::new()
    });
    let mut wanted = BTreeMap::new();
    for network in networks {
        let AnyObject::Network(network) = network else { continue };
        if network.metadata.deletion_timestamp.is_some() || !network.spec.gateway_dns() {
            continue;
        }
        let key = network.key();
        for gateway in network.status.iter().flat_map(|s| &s.gateways) {
            match gateway.parse::<IpAddr>() {
                Ok(ip) => {
                    wanted.entry(SocketAddr::new(ip, port)).or_insert_with(|| key.clone());
                }
                Err(_) => tracing::warn!(network = %key, "gateway `{gateway}` is not an IP address"),
            }
        }
    }
    wanted
}

/// Why berth could not answer on the networks' gateways, if so: port 53
/// needs root or CAP_NET_BIND_SERVICE (or a low
/// `net.ipv4.ip_unprivileged_port_start`), and a rootless engine keeps its
/// bridges in a network namespace of its own (its socket is under
/// `/run/user/`), where berth's sockets would never see a query.
pub fn check_network_dns(engine_endpoint: &str) -> Result<(), String> {
    if engine_endpoint.contains("/run/user/") {
        return Err(format!(
            "the engine at {engine_endpoint} is rootless: its networks live in a namespace of their own, where berth \
             cannot answer; use a rootful engine or drop --dns-on-networks"
        ));
    }
    let unprivileged_from: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1024);
    // CAP_NET_BIND_SERVICE is capability 10 of the effective set.
    let may_bind_low = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?.trim().to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|effective| effective & (1 << 10) != 0);
    if may_bind_low || unprivileged_from <= DNS_PORT {
        Ok(())
    } else {
        Err("--dns-on-networks listens on port 53, which needs root or CAP_NET_BIND_SERVICE \
             (e.g. `setcap cap_net_bind_service=+ep berth`)"
            .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NetworkSpec;

    #[test]
    fn only_host_bridges_with_outside_access_get_berths_dns() {
        assert!(NetworkSpec::default().gateway_dns(), "bridge is the default driver");
        let macvlan = NetworkSpec { driver: Some("macvlan".into()), ..NetworkSpec::default() };
        assert!(!macvlan.gateway_dns(), "a macvlan gateway is a router elsewhere");
        let internal = NetworkSpec { internal: true, ..NetworkSpec::default() };
        assert!(!internal.gateway_dns());
    }

    #[test]
    fn a_rootless_engine_is_refused_with_the_reason() {
        let problem = check_network_dns("unix:///run/user/1000/podman/podman.sock").unwrap_err();
        assert!(problem.contains("rootless") && problem.contains("--dns-on-networks"), "{problem}");
    }
}
