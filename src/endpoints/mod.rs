//! The endpoint set: every replica berth runs, with its address per
//! network, its published ports and whether it can take traffic now.
//!
//! DNS and the HTTP proxy both answer from it, so a replica that dies or
//! turns unhealthy leaves both at once. It is built from two sources:
//! - the store, for each Container's labels (what DnsRecord and Route
//!   selectors match) and the order of its networks (the "first network"
//!   a selector without `network` uses);
//! - the engine, through the controller's [`Reflector`](crate::engine::reflector::Reflector):
//!   the cache of this instance's containers it keeps from the engine's
//!   events (each event re-inspects the container it names), so a `die` or
//!   `health_status: unhealthy` is in the set within milliseconds, without
//!   waiting for the Container reconciler to write status. The reflector's
//!   full lists (after every reconnect, and every `--resync-interval`) are
//!   the safety net.
//!
//! Readers get immutable snapshots ([`EndpointSet`] behind an `Arc`) from a
//! `tokio::sync::watch` channel: a reader never waits on the writer and
//! never sees a half-updated set.

mod follow;
mod inputs;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::api::{LabelSelector, ObjectKey};
use crate::engine::Health;

pub use follow::follow;
pub(crate) use inputs::{publish, Inputs};

/// One replica of a Container as DNS and the proxy see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The Container object it belongs to.
    pub container: ObjectKey,
    /// Replica index.
    pub replica: u32,
    /// Engine container id.
    pub container_id: String,
    /// The Container object's labels (selectors match these).
    pub labels: BTreeMap<String, String>,
    /// Address per network, the Container's declared networks first in
    /// declaration order (by Network object name), then any other network
    /// the engine reports (by engine name, e.g. `bridge`).
    pub addresses: Vec<(String, IpAddr)>,
    /// Host port per published container port (`8080/tcp` → `32768`).
    pub host_ports: BTreeMap<String, u16>,
    /// The engine runs it and it has not been asked to stop: it may take
    /// new requests.
    pub running: bool,
    /// No process runs in it (it exited, or is restarting): connections
    /// open to it will never be answered. A replica asked to stop is not
    /// running but not exited yet: it finishes what it has.
    pub exited: bool,
    /// Its health check's state; `None` without a check.
    pub health: Option<Health>,
}

impl Endpoint {
    /// A running replica without a health check (for tests and benchmarks
    /// that build endpoint sets by hand).
    pub fn running(
        container: ObjectKey,
        replica: u32,
        labels: BTreeMap<String, String>,
        addresses: Vec<(String, IpAddr)>,
    ) -> Self {
        Endpoint {
            container_id: format!("{}-{replica}", container.name),
            container,
            replica,
            labels,
            addresses,
            host_ports: BTreeMap::new(),
            running: true,
            exited: false,
            health: None,
        }
    }

    /// Running and, with a health check, healthy: it may take traffic.
    pub fn ready(&self) -> bool {
        self.running && matches!(self.health, None | Some(Health::Healthy))
    }

    /// Its address on `network` (a Network object name or an engine network
    /// name), or on its first network when `None`.
    pub fn address(&self, network: Option<&str>) -> Option<IpAddr> {
        match network {
            Some(network) => self.addresses.iter().find(|(n, _)| n == network).map(|(_, ip)| *ip),
            None => self.addresses.first().map(|(_, ip)| *ip),
        }
    }

    /// `Container/namespace/name#replica`, as statuses name a target.
    pub fn target_name(&self) -> String {
        format!("{}#{}", self.container, self.replica)
    }
}

/// An immutable snapshot of every replica, sorted by container and replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointSet {
    /// The replicas.
    pub endpoints: Vec<Endpoint>,
}

impl EndpointSet {
    /// A set of these endpoints (sorted here).
    pub fn new(mut endpoints: Vec<Endpoint>) -> Self {
        endpoints.sort_by(|a, b| {
            (&a.container, a.replica, &a.container_id).cmp(&(&b.container, b.replica, &b.container_id))
        });
        EndpointSet { endpoints }
    }

    /// Ready replicas of the Containers in `namespace` that `selector` matches.
    pub fn select<'a>(&'a self, namespace: &'a str, selector: &'a LabelSelector) -> impl Iterator<Item = &'a Endpoint> {
        self.endpoints
            .iter()
            .filter(move |e| e.container.namespace == namespace && e.ready() && selector.matches(&e.labels))
    }

    /// Every address a replica's process still answers on (running,
    /// draining or paused; not exited).
    pub fn live_addresses(&self) -> HashSet<IpAddr> {
        self.endpoints.iter().filter(|e| !e.exited).flat_map(|e| e.addresses.iter().map(|(_, ip)| *ip)).collect()
    }
}

/// Receives endpoint snapshots; clones share the channel.
pub type Endpoints = tokio::sync::watch::Receiver<Arc<EndpointSet>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Kind;

    fn endpoint(name: &str, replica: u32, health: Option<Health>) -> Endpoint {
        Endpoint {
            container: ObjectKey::new(Kind::Container, "default", name),
            replica,
            container_id: format!("{name}-{replica}"),
            labels: BTreeMap::from([("app".into(), name.into())]),
            addresses: vec![
                ("app".into(), "10.0.0.2".parse().unwrap()),
                ("bridge".into(), "172.17.0.2".parse().unwrap()),
            ],
            host_ports: BTreeMap::new(),
            running: true,
            exited: false,
            health,
        }
    }

    #[test]
    fn only_running_healthy_or_unchecked_replicas_are_selected() {
        let mut stopped = endpoint("web", 2, None);
        stopped.running = false;
        let set = EndpointSet::new(vec![
            endpoint("web", 1, Some(Health::Unhealthy)),
            endpoint("web", 0, Some(Health::Healthy)),
            endpoint("web", 3, Some(Health::Starting)),
            stopped,
            endpoint("api", 0, None),
        ]);
        let selector = LabelSelector { match_labels: BTreeMap::from([("app".into(), "web".into())]) };
        let picked: Vec<String> = set.select("default", &selector).map(Endpoint::target_name).collect();
        assert_eq!(picked, ["Container/default/web#0"]);
        assert_eq!(set.select("other", &selector).count(), 0);
    }

    #[test]
    fn address_defaults_to_the_first_network() {
        let e = endpoint("web", 0, None);
        assert_eq!(e.address(None), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(e.address(Some("bridge")), Some("172.17.0.2".parse().unwrap()));
        assert_eq!(e.address(Some("nope")), None);
    }
}
