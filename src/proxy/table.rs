//! The route table: Routes and the endpoint set turned into host → rules →
//! backends, built whole on every change and swapped in atomically.
//!
//! # Matching
//! - Host: an exact hostname first, then wildcards (`*.example.test`
//!   matches any name ending in `.example.test`), the longest suffix first.
//!   When no rule of a host matches the path, the next host entry is tried.
//! - Path, within a host: `Exact` before `PathPrefix`, longer prefixes
//!   before shorter; ties go to the older Route (creation time, then key),
//!   then to the earlier rule.
//! - Two Routes with the same hostname and the same match (type and value)
//!   conflict: the older Route keeps it; the newer one's match is not
//!   served and its status names the older.
//!
//! # Backends
//! Each rule's backends are the ready replicas its selectors pick (at the
//! backend's `port`, on its `network` or the replica's first network), with
//! the backend's weight. Health state lives in [`health::Registry`] across
//! rebuilds, keyed by Route and address.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::api::route::{LoadBalancing, PathMatchType};
use crate::api::{ObjectKey, Route};
use crate::endpoints::EndpointSet;

use super::health::{BackendState, Registry};

/// How a rule compares paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathRule {
    /// The whole path.
    Exact(String),
    /// Whole leading segments (`/api` matches `/api` and `/api/x`).
    Prefix(String),
}

impl PathRule {
    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathRule::Exact(value) => path == value,
            PathRule::Prefix(value) => {
                let value = value.trim_end_matches('/');
                value.is_empty()
                    || path == value
                    || (path.starts_with(value) && path.as_bytes().get(value.len()) == Some(&b'/'))
            }
        }
    }

    /// Larger is more specific.
    fn specificity(&self) -> (u8, usize) {
        match self {
            PathRule::Exact(value) => (1, value.len()),
            PathRule::Prefix(value) => (0, value.trim_end_matches('/').len()),
        }
    }
}

/// One replica a rule may send to.
pub struct Backend {
    /// Where to connect.
    pub address: SocketAddr,
    /// `Container/ns/name#replica`.
    pub target: String,
    /// Share of traffic.
    pub weight: u32,
    /// Health, shared with the checkers.
    pub state: Arc<BackendState>,
}

/// One path match of one rule of a Route, for one hostname.
pub struct Rule {
    /// The Route (`ns/name` in error bodies).
    pub route: ObjectKey,
    /// The match.
    pub path: PathRule,
    /// Precedence among equally specific matches: older first.
    age: (Option<chrono::DateTime<chrono::Utc>>, ObjectKey, usize),
    /// Replicas, with weights.
    pub backends: Vec<Backend>,
    /// Random instead of round robin.
    random: bool,
    /// Round-robin position.
    next: AtomicUsize,
}

impl Rule {
    /// `ns/name`, as error bodies name the Route.
    pub fn route_name(&self) -> String {
        format!("{}/{}", self.route.namespace, self.route.name)
    }

    /// Whether a backend other than `address` is up to take a request.
    pub fn has_other(&self, address: SocketAddr) -> bool {
        self.backends.iter().any(|b| b.weight > 0 && b.state.up() && b.address != address)
    }

    /// Picks a backend by weight among those up and not in `exclude`;
    /// `None` when none is.
    pub fn pick(&self, exclude: Option<SocketAddr>) -> Option<&Backend> {
        let usable = |b: &&Backend| b.weight > 0 && b.state.up() && Some(b.address) != exclude;
        let total: usize = self.backends.iter().filter(usable).map(|b| b.weight as usize).sum();
        if total == 0 {
            return None;
        }
        let mut n =
            if self.random { fastrand::usize(..total) } else { self.next.fetch_add(1, Ordering::Relaxed) % total };
        for backend in self.backends.iter().filter(usable) {
            if n < backend.weight as usize {
                return Some(backend);
            }
            n -= backend.weight as usize;
        }
        None
    }
}

/// Host → rules, most specific first.
#[derive(Default)]
pub struct RouteTable {
    exact: HashMap<String, Vec<Arc<Rule>>>,
    /// `(".example.test", rules)`, longest suffix first.
    wildcards: Vec<(String, Vec<Arc<Rule>>)>,
}

impl RouteTable {
    /// The rule for a request: `host` without port, lower case.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Rule>> {
        let exact = self.exact.get(host).into_iter();
        let wildcards = self
            .wildcards
            .iter()
            .filter(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, rules)| rules);
        exact.chain(wildcards).find_map(|rules| rules.iter().find(|rule| rule.path.matches(path)))
    }

    /// Whether any Route serves `host`.
    pub fn knows_host(&self, host: &str) -> bool {
        self.exact.contains_key(host)
            || self.wildcards.iter().any(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
    }
}

/// What the proxy serves for one Route, for its status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteReport {
    /// Backend replicas: target, address, up.
    pub backends: Vec<(String, SocketAddr, bool)>,
    /// Matches not served: `hostname path` and the Route that holds it.
    pub conflicts: Vec<(String, ObjectKey)>,
}

/// Per Route: what is served.
pub type RoutesReport = BTreeMap<ObjectKey, RouteReport>;

/// Builds the table and the report; `registry` keeps health state across
/// builds and starts or stops the checkers of backends that come or go.
pub fn build(routes: &[Route], endpoints: &EndpointSet, registry: &mut Registry) -> (RouteTable, RoutesReport) {
    let mut ordered: Vec<&Route> = routes.iter().filter(|r| r.metadata.deletion_timestamp.is_none()).collect();
    ordered.sort_by_key(|o| o.age_key());
    let mut report = RoutesReport::new();
    let mut hosts: BTreeMap<String, Vec<Arc<Rule>>> = BTreeMap::new();
    let mut claimed: HashMap<(String, PathRule), ObjectKey> = HashMap::new();
    registry.begin();
    for route in ordered {
        let key = route.key();
        let entry = report.entry(key.clone()).or_default();
        for (index, rule_spec) in route.spec.rules.iter().enumerate() {
            let mut backends = Vec::new();
            for backend in &rule_spec.backends {
                let weight = backend.weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(1);
                let Ok(port) = u16::try_from(backend.port) else { continue };
                for endpoint in endpoints.select(&key.namespace, &backend.selector) {
                    let Some(ip) = endpoint.address(backend.network.as_deref()) else { continue };
                    let address = SocketAddr::new(ip, port);
                    let state = registry.state(&key, address, route.spec.health_check.as_ref(), &route.spec.hostnames);
                    backends.push((endpoint.target_name(), address, weight, state));
                }
            }
            for (target, address, _, state) in &backends {
                if !entry.backends.iter().any(|(t, a, _)| t == target && a == address) {
                    entry.backends.push((target.clone(), *address, state.up()));
                }
            }
            let paths: Vec<PathRule> = if rule_spec.matches.is_empty() {
                vec![PathRule::Prefix("/".into())]
            } else {
                rule_spec
                    .matches
                    .iter()
                    .map(|m| match m.match_type.unwrap_or(PathMatchType::PathPrefix) {
                        PathMatchType::Exact => PathRule::Exact(m.value.clone()),
                        PathMatchType::PathPrefix => PathRule::Prefix(m.value.clone()),
                    })
                    .collect()
            };
            for host in &route.spec.hostnames {
                let host = host.to_ascii_lowercase();
                for path in &paths {
                    match claimed.get(&(host.clone(), path.clone())) {
                        Some(holder) if *holder != key => {
                            let shown = match path {
                                PathRule::Exact(v) => format!("{host} Exact {v}"),
                                PathRule::Prefix(v) => format!("{host} PathPrefix {v}"),
                            };
                            entry.conflicts.push((shown, holder.clone()));
                            continue;
                        }
                        Some(_) => continue,
                        None => {
                            claimed.insert((host.clone(), path.clone()), key.clone());
                        }
                    }
                    let rule = Rule {
                        route: key.clone(),
                        path: path.clone(),
                        age: (route.metadata.creation_timestamp, key.clone(), index),
                        backends: backends
                            .iter()
                            .map(|(target, address, weight, state)| Backend {
                                address: *address,
                                target: target.clone(),
                                weight: *weight,
                                state: state.clone(),
                            })
                            .collect(),
                        random: route.spec.load_balancing == Some(LoadBalancing::Random),
                        next: AtomicUsize::new(0),
                    };
                    hosts.entry(host.clone()).or_default().push(Arc::new(rule));
                }
            }
        }
    }
    registry.end(&endpoints.live_addresses());
    let mut table = RouteTable::default();
    for (host, mut rules) in hosts {
        rules.sort_by(|a, b| b.path.specificity().cmp(&a.path.specificity()).then_with(|| a.age.cmp(&b.age)));
        match host.strip_prefix('*') {
            Some(suffix) => table.wildcards.push((suffix.to_string(), rules)),
            None => {
                table.exact.insert(host, rules);
            }
        }
    }
    table.wildcards.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    (table, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        let api = PathRule::Prefix("/api".into());
        assert!(api.matches("/api"));
        assert!(api.matches("/api/v1"));
        assert!(!api.matches("/apix"));
        assert!(PathRule::Prefix("/api/".into()).matches("/api/v1"));
        assert!(PathRule::Prefix("/".into()).matches("/anything"));
        assert!(PathRule::Exact("/a".into()).matches("/a"));
        assert!(!PathRule::Exact("/a".into()).matches("/a/"));
    }
}
