//! `Route`: HTTP routing rules for berth's embedded reverse proxy.
//!
//! A Route matches requests by hostname and path and sends them to the
//! running replicas of the Containers its backends select, with weights,
//! load balancing and active health checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::LabelSelector;
use super::quantity::DurationSpec;
use super::validation::{FieldErrors, FieldPath};
use super::{CommonStatus, Kind, Spec};

/// Desired state of a Route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    /// Host names served, exact (`app.example.test`) or wildcard (`*.example.test`).
    pub hostnames: Vec<String>,
    /// Rules, tried most specific first.
    pub rules: Vec<RouteRule>,
    /// How requests are spread over backends. Default `RoundRobin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<LoadBalancing>,
    /// Active health check of every backend replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RouteHealthCheck>,
}

/// Requests matching any of `matches` go to `backends`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRule {
    /// Path matches. Empty: every path (`PathPrefix /`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<PathMatch>,
    /// Where matching requests go.
    pub backends: Vec<RouteBackend>,
}

/// A request path match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathMatch {
    /// `Exact` or `PathPrefix` (default; matches whole segments: `/api`
    /// matches `/api` and `/api/x`, not `/apix`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub match_type: Option<PathMatchType>,
    /// The path, starting with `/`.
    pub value: String,
}

/// How a [`PathMatch`] compares paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PathMatchType {
    /// The whole path is equal.
    Exact,
    /// The path starts with these segments.
    PathPrefix,
}

/// A set of backend replicas.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteBackend {
    /// Containers whose running replicas receive traffic.
    pub selector: LabelSelector,
    /// Container port to send traffic to.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    /// Network to reach the replicas on. Default: each replica's first network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Relative share of traffic. Default 1; 0 takes the backend out of rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: Option<i64>,
}

/// Load-balancing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LoadBalancing {
    /// Weighted round robin.
    RoundRobin,
    /// Weighted random choice.
    Random,
}

/// Active HTTP health check of backend replicas.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteHealthCheck {
    /// Path requested. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between checks. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationSpec>,
    /// Time a check may take. Default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// Successes before a down backend is used again. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<i64>,
    /// Failures before a backend is taken out. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<i64>,
}

/// Observed state of a Route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Backend replicas and whether they receive traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendStatus>,
}

/// One backend replica as the proxy sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    /// `Container/namespace/name#replica`.
    pub target: String,
    /// `ip:port` the proxy connects to.
    pub address: String,
    /// Whether it passes health checks.
    pub healthy: bool,
}

impl Spec for RouteSpec {
    const KIND: Kind = Kind::Route;
    type Status = RouteStatus;

    fn validate(&self, spec: &FieldPath, errors: &mut FieldErrors) {
        if self.hostnames.is_empty() {
            errors.push(&spec.key("hostnames"), "list at least one hostname, e.g. app.example.test or *.example.test");
        }
        for (i, host) in self.hostnames.iter().enumerate() {
            errors.dns_name(&spec.key("hostnames").index(i), host, "hostname", true);
        }
        if self.rules.is_empty() {
            errors.push(&spec.key("rules"), "list at least one rule with backends");
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = spec.key("rules").index(i);
            for (j, path) in rule.matches.iter().enumerate() {
                if !path.value.starts_with('/') {
                    errors.push(
                        &at.key("matches").index(j).key("value"),
                        format!("path `{}` must start with /", path.value),
                    );
                }
            }
            if rule.backends.is_empty() {
                errors.push(&at.key("backends"), "list at least one backend");
            }
            for (j, backend) in rule.backends.iter().enumerate() {
                let at = at.key("backends").index(j);
                errors.selector(&at.key("selector"), &backend.selector);
                errors.port(&at.key("port"), backend.port);
                if let Some(network) = &backend.network {
                    errors.dns_label(&at.key("network"), network, "Network name");
                }
                if let Some(weight) = backend.weight {
                    errors.in_range(&at.key("weight"), weight, 0..=1000, "weight");
                }
            }
        }
        if let Some(check) = &self.health_check {
            let at = spec.key("healthCheck");
            if let Some(path) = check.path.as_deref().filter(|p| !p.starts_with('/')) {
                errors.push(&at.key("path"), format!("path `{path}` must start with /"));
            }
            errors.duration(&at.key("interval"), check.interval.as_ref());
            errors.duration(&at.key("timeout"), check.timeout.as_ref());
            for (field, value) in
                [("healthyThreshold", check.healthy_threshold), ("unhealthyThreshold", check.unhealthy_threshold)]
            {
                if let Some(value) = value {
                    errors.in_range(&at.key(field), value, 1..=100, field);
                }
            }
        }
    }

    fn status_common(status: &Self::Status) -> &CommonStatus {
        &status.common
    }
}
