//! Who may have names outside berth's zones forwarded: loopback, the
//! subnets of berth's own Networks, and what `--dns-allow` adds.
//!
//! A forwarding resolver that answers anyone is an open resolver: bound to
//! an address others reach (`--dns-listen 0.0.0.0:53`, or a gateway a LAN
//! routes to), it serves strangers' lookups and amplification attacks with
//! the host's upstream. berth's own names stay answered for every client
//! (they are what the server is for); other names are answered only for
//! these clients, and REFUSED for the rest, as a resolver refuses
//! recursion it does not offer.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::sync::watch;

use crate::api::{AnyObject, Kind};
use crate::store::Store;

/// The clients whose other names are forwarded.
#[derive(Debug, Default)]
pub(super) struct ForwardClients {
    /// `--dns-allow`.
    allowed: Vec<IpNet>,
    /// The subnets of the live berth Networks, followed from their status.
    networks: ArcSwap<Vec<IpNet>>,
}

impl ForwardClients {
    pub(super) fn new(allowed: Vec<IpNet>) -> ForwardClients {
        ForwardClients { allowed, networks: ArcSwap::default() }
    }

    /// Whether names outside berth's zones are forwarded for `client`.
    pub(super) fn may_forward(&self, client: IpAddr) -> bool {
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        client.is_loopback()
            || self.allowed.iter().any(|net| net.contains(&client))
            || self.networks.load().iter().any(|net| net.contains(&client))
    }

    /// Keeps the Networks' subnets current until `stop` turns true.
    pub(super) async fn follow_networks(self: Arc<Self>, store: Store, mut stop: watch::Receiver<bool>) {
        let mut changes = store.watch();
        loop {
            // A failed list keeps the subnets known (berth's containers keep
            // their forwarding through a store hiccup).
            if let Some(subnets) = subnets(&store) {
                self.networks.store(Arc::new(subnets));
            }
            tokio::select! {
                more = super::gateways::network_changed(&mut changes) => if !more { return },
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// The subnets the engine gave the live Networks; `None` when the store
/// cannot list them.
fn subnets(store: &Store) -> Option<Vec<IpNet>> {
    let networks = store
        .list(Some(Kind::Network), None)
        .map_err(|e| tracing::warn!("listing networks for DNS forwarding failed: {e:#}"))
        .ok()?;
    let subnets = networks
        .into_iter()
        .filter_map(|o| if let AnyObject::Network(n) = o { Some(n) } else { None })
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .flat_map(|n| n.status.map(|s| s.subnets).unwrap_or_default())
        .filter_map(|subnet| subnet.parse::<IpNet>().ok())
        .collect();
    Some(subnets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_the_allowed_ranges_and_the_networks_are_forwarded_for_others_are_not() {
        let clients = ForwardClients::new(vec!["192.0.2.0/28".parse().unwrap()]);
        clients.networks.store(Arc::new(vec!["10.89.3.0/24".parse().unwrap()]));
        for forwarded in
            ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "192.0.2.5", "10.89.3.7", "::ffff:10.89.3.7"]
        {
            assert!(clients.may_forward(forwarded.parse().unwrap()), "{forwarded}");
        }
        for refused in ["192.0.2.17", "10.89.4.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!clients.may_forward(refused.parse().unwrap()), "{refused}");
        }
    }
}
