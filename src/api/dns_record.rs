//! `DnsRecord`: records served by berth's embedded DNS server.
//!
//! Targets are either static (`targets`) or follow Containers through a
//! label `selector`: the IPs of their running replicas on a `network` (A,
//! AAAA), or their port for SRV. Record sets are replaced atomically.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::LabelSelector;
use super::validation::{is_dns_name, FieldErrors, FieldPath};
use super::{CommonStatus, Kind, Spec};

/// Desired state of a DnsRecord.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsRecordSpec {
    /// Record name relative to the zone (`www`, `_http._tcp.web`), or `@`
    /// for the zone apex. Default: the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Zone the record belongs to. Default: the server's zone (`berth.internal.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// Time to live in seconds. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub ttl: Option<i64>,
    /// Static record data, one entry per record: an address (A, AAAA), a name
    /// (CNAME: exactly one), text (TXT), or `priority weight port target` (SRV).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Containers whose running replicas are the targets (A, AAAA, SRV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// With `selector`: the Network whose addresses are served. Default: each
    /// replica's first network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// With `selector` and type SRV: the container port announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
}

/// DNS record type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    AAAA,
    /// Alias to another name.
    CNAME,
    /// Text.
    TXT,
    /// Service location: priority, weight, port and target.
    SRV,
}

/// Observed state of a DnsRecord.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecordStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Fully qualified name served.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fqdn: String,
    /// Record data served now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

impl Spec for DnsRecordSpec {
    const KIND: Kind = Kind::DnsRecord;
    type Status = DnsRecordStatus;

    fn validate(&self, spec: &FieldPath, errors: &mut FieldErrors) {
        if let Some(name) = self.name.as_deref().filter(|n| *n != "@") {
            // Service labels (`_http._tcp`) carry underscores; accept them.
            let plain = name.replace('_', "x");
            if !is_dns_name(&plain, false) {
                errors.push(&spec.key("name"), format!("record name `{name}` is not a relative DNS name; write e.g. `www` or `_http._tcp.web`, or `@` for the apex"));
            }
        }
        if let Some(zone) = &self.zone {
            errors.dns_name(&spec.key("zone"), zone, "zone", false);
        }
        errors.exactly_one(spec, &[("targets", !self.targets.is_empty()), ("selector", self.selector.is_some())]);
        if let Some(selector) = &self.selector {
            errors.selector(&spec.key("selector"), selector);
            if matches!(self.record_type, RecordType::CNAME | RecordType::TXT) {
                errors.push(
                    &spec.key("selector"),
                    format!(
                        "a selector cannot produce {:?} records; use it with A, AAAA or SRV, or list static targets",
                        self.record_type
                    ),
                );
            }
            if self.record_type == RecordType::SRV && self.port.is_none() {
                errors.push(
                    &spec.key("port"),
                    "an SRV record with a selector needs `port`, the container port to announce",
                );
            }
        }
        if let Some(network) = &self.network {
            errors.dns_label(&spec.key("network"), network, "Network name");
            if self.selector.is_none() {
                errors.push(&spec.key("network"), "`network` only applies with `selector`");
            }
        }
        if let Some(port) = self.port {
            errors.port(&spec.key("port"), port);
        }
        if let Some(ttl) = self.ttl {
            errors.in_range(&spec.key("ttl"), ttl, 0..=86_400, "ttl");
        }
        if self.record_type == RecordType::CNAME && self.targets.len() > 1 {
            errors.push(&spec.key("targets"), format!("a CNAME has exactly one target, found {}", self.targets.len()));
        }
        for (i, target) in self.targets.iter().enumerate() {
            let at = spec.key("targets").index(i);
            match self.record_type {
                RecordType::A => {
                    errors.ip(&at, target, Some(true));
                }
                RecordType::AAAA => {
                    errors.ip(&at, target, Some(false));
                }
                RecordType::CNAME => errors.dns_name(&at, target, "CNAME target", false),
                RecordType::TXT => {
                    if target.len() > 255 {
                        errors.push(
                            &at,
                            format!("TXT strings are at most 255 bytes, this one has {}; split it", target.len()),
                        );
                    }
                }
                RecordType::SRV => check_srv_target(errors, &at, target),
            }
        }
    }

    fn status_common(status: &Self::Status) -> &CommonStatus {
        &status.common
    }
}

fn check_srv_target(errors: &mut FieldErrors, at: &FieldPath, target: &str) {
    let parts: Vec<&str> = target.split_whitespace().collect();
    let numbers_ok = parts.len() == 4 && parts[..3].iter().all(|p| p.parse::<u16>().is_ok());
    if !numbers_ok {
        errors.push(
            at,
            format!(
                "SRV target `{target}` must be `priority weight port target`, e.g. `10 5 8080 web.berth.internal.`"
            ),
        );
        return;
    }
    if parts[2] == "0" {
        errors.push(at, format!("SRV target `{target}` has port 0; use 1-65535"));
    }
    errors.dns_name(at, parts[3], "SRV target host", false);
}
