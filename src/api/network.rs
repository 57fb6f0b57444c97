//! `Network`: an engine network that Containers join by name.

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{FieldErrors, FieldPath};
use super::{CommonStatus, Kind, Spec};

/// Desired state of a Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// Network driver. Default `bridge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Address range in CIDR form, e.g. `10.89.1.0/24`. Default: chosen by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Gateway address inside `subnet`. Requires `subnet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Cut the network off from the outside world.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Enable IPv6 on the network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
}

/// Observed state of a Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Engine network id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine_id: String,
    /// Subnets the engine assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// Gateway addresses (where berth answers DNS with `--dns-on-networks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
}

/// Parses `addr/prefix`, saying what is wrong.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let invalid = || format!("`{text}` is not a CIDR range; write e.g. 10.89.1.0/24 or fd00:89::/64");
    let (addr, prefix) = text.split_once('/').ok_or_else(invalid)?;
    let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(format!("`{text}` has prefix /{prefix}, longer than /{max}"));
    }
    Ok((addr, prefix))
}

/// Whether `ip` lies inside `net/prefix`.
fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

impl NetworkSpec {
    /// Whether berth answers DNS on this network's gateway with
    /// `--dns-on-networks`: a bridge (the default driver) with outside
    /// access, whose gateway is an address of the host. Other drivers'
    /// gateways are routers elsewhere, and an internal network's containers
    /// keep the engine's own DNS.
    pub fn gateway_dns(&self) -> bool {
        self.driver.as_deref().unwrap_or(super::defaults::NETWORK_DRIVER) == "bridge" && !self.internal
    }
}

impl Spec for NetworkSpec {
    const KIND: Kind = Kind::Network;
    type Status = NetworkStatus;

    fn validate(&self, spec: &FieldPath, errors: &mut FieldErrors) {
        let subnet = match &self.subnet {
            Some(text) => match parse_cidr(text) {
                Ok(cidr) => Some(cidr),
                Err(why) => {
                    errors.push(&spec.key("subnet"), why);
                    None
                }
            },
            None => None,
        };
        if let Some(gateway) = &self.gateway {
            let at = spec.key("gateway");
            match (errors.ip(&at, gateway, None), subnet, &self.subnet) {
                (_, _, None) => errors.push(&at, "gateway requires subnet; add the subnet it belongs to"),
                (Some(ip), Some((net, prefix)), Some(text)) if !contains(net, prefix, ip) => {
                    errors.push(&at, format!("gateway {gateway} is outside subnet {text}"))
                }
                _ => {}
            }
        }
        if let Some(driver) = self.driver.as_deref().filter(|d| d.trim().is_empty()) {
            errors.push(&spec.key("driver"), format!("driver `{driver}` must not be blank; omit it for `bridge`"));
        }
    }

    fn status_common(status: &Self::Status) -> &CommonStatus {
        &status.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_containment() {
        let (net, prefix) = parse_cidr("10.89.1.0/24").unwrap();
        assert!(contains(net, prefix, "10.89.1.1".parse().unwrap()));
        assert!(!contains(net, prefix, "10.89.2.1".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
        let (net6, prefix6) = parse_cidr("fd00::/64").unwrap();
        assert!(contains(net6, prefix6, "fd00::1".parse().unwrap()));
    }
}
