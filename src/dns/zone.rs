//! Record sets from the endpoint set and the DnsRecord objects: a pure
//! function, so what is served and what statuses say can be tested without
//! sockets.
//!
//! # Rules
//! - Automatic records, for every ready replica (running, and healthy when
//!   it has a check), at its first network's address:
//!   `<name>.<namespace>.<zone>` (all replicas) and
//!   `<replica>.<name>.<namespace>.<zone>` (one), A or AAAA, TTL
//!   [`AUTO_TTL`].
//! - DnsRecords are taken oldest first (creation time, then key). One that
//!   claims a name and type already claimed (or a CNAME where any other
//!   record is, or any record where a CNAME is) is not served and reports
//!   the object that holds the name. A declared record replaces the
//!   automatic record of the same name and type.
//! - Every zone named by a DnsRecord (`spec.zone`) is served
//!   authoritatively too.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::rr::rdata::{CNAME, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordSet, RecordType, RrKey};

use crate::api::{DnsRecord, DnsRecordSpec, ObjectKey, RecordType as SpecType};
use crate::endpoints::EndpointSet;

/// TTL of the automatic records: low, so clients follow replicas closely.
pub const AUTO_TTL: u32 = 5;
/// TTL of a DnsRecord without `ttl`.
pub const DEFAULT_TTL: u32 = 30;

/// What the DNS server serves for one DnsRecord, for its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordReport {
    /// Fully qualified name.
    pub fqdn: String,
    /// Record data served now, in presentation form.
    pub targets: Vec<String>,
    /// Why nothing is served, if so.
    pub problem: Option<RecordProblem>,
}

/// Why a DnsRecord is not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordProblem {
    /// An older object holds the name (and type).
    Conflict(ObjectKey),
    /// Its data cannot be served (a bad name or target).
    Invalid(String),
}

/// Per DnsRecord: what is served.
pub type DnsReport = BTreeMap<ObjectKey, RecordReport>;

/// Every zone's record sets, and the report.
pub struct Zones {
    /// Zone origin → its record sets (SOA included).
    pub zones: BTreeMap<Name, BTreeMap<RrKey, RecordSet>>,
    /// What each DnsRecord serves.
    pub report: DnsReport,
}

/// Builds the zones. `default_zone` is the server's zone (fully qualified);
/// `serial` goes into every SOA.
pub fn build(default_zone: &Name, endpoints: &EndpointSet, records: &[DnsRecord], serial: u32) -> Zones {
    let mut builder = Builder { zones: BTreeMap::new(), serial };
    builder.zone(default_zone);
    let mut report = DnsReport::new();
    // (name, type) → holder, and names holding a CNAME.
    let mut claims: HashMap<(Name, RecordType), ObjectKey> = HashMap::new();
    let mut cnames: HashMap<Name, ObjectKey> = HashMap::new();
    let mut ordered: Vec<&DnsRecord> = records.iter().filter(|r| r.metadata.deletion_timestamp.is_none()).collect();
    ordered.sort_by_key(|o| o.age_key());
    for record in ordered {
        let key = record.key();
        let (zone, fqdn) = match names(default_zone, &record.spec, &record.metadata.name) {
            Ok(names) => names,
            Err(problem) => {
                let report_entry = RecordReport {
                    fqdn: String::new(),
                    targets: Vec::new(),
                    problem: Some(RecordProblem::Invalid(problem)),
                };
                report.insert(key, report_entry);
                continue;
            }
        };
        let rtype = record_type(record.spec.record_type);
        let holder = if rtype == RecordType::CNAME {
            claims.iter().find(|((n, _), _)| *n == fqdn).map(|(_, k)| k.clone()).or_else(|| cnames.get(&fqdn).cloned())
        } else {
            claims.get(&(fqdn.clone(), rtype)).cloned().or_else(|| cnames.get(&fqdn).cloned())
        };
        let mut entry = RecordReport { fqdn: fqdn.to_ascii(), targets: Vec::new(), problem: None };
        if let Some(holder) = holder {
            entry.problem = Some(RecordProblem::Conflict(holder));
            report.insert(key, entry);
            continue;
        }
        let data = match record_data(&record.spec, &key, default_zone, endpoints) {
            Ok(data) => data,
            Err(problem) => {
                entry.problem = Some(RecordProblem::Invalid(problem));
                report.insert(key, entry);
                continue;
            }
        };
        claims.insert((fqdn.clone(), rtype), key.clone());
        if rtype == RecordType::CNAME {
            cnames.insert(fqdn.clone(), key.clone());
        }
        builder.zone(&zone);
        let ttl = record.spec.ttl.and_then(|t| u32::try_from(t).ok()).unwrap_or(DEFAULT_TTL);
        // An empty set still claims the name: the automatic record must not
        // come back because the selector matches nothing right now.
        builder.claim(&zone, &fqdn, rtype, ttl);
        for rdata in data {
            entry.targets.push(rdata.to_string());
            builder.add(&zone, &fqdn, ttl, rdata);
        }
        report.insert(key, entry);
    }
    for endpoint in endpoints.endpoints.iter().filter(|e| e.ready()) {
        let Some(ip) = endpoint.address(None) else { continue };
        let (name, namespace) = (&endpoint.container.name, &endpoint.container.namespace);
        let Ok(service) = Name::from_ascii(format!("{name}.{namespace}")).and_then(|n| n.append_domain(default_zone))
        else {
            continue;
        };
        let Ok(replica) = Name::from_ascii(endpoint.replica.to_string()).and_then(|n| n.append_domain(&service)) else {
            continue;
        };
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(v4.into()),
            IpAddr::V6(v6) => RData::AAAA(v6.into()),
        };
        for owner in [service, replica] {
            let declared = claims.contains_key(&(owner.clone(), rdata.record_type())) || cnames.contains_key(&owner);
            if !declared {
                builder.add(default_zone, &owner, AUTO_TTL, rdata.clone());
            }
        }
    }
    Zones { zones: builder.zones, report }
}

/// The zone and the fully qualified name of a record.
fn names(default_zone: &Name, spec: &DnsRecordSpec, object_name: &str) -> Result<(Name, Name), String> {
    let zone = match &spec.zone {
        Some(zone) => fqdn(zone).map_err(|e| format!("zone `{zone}`: {e}"))?,
        None => default_zone.clone(),
    };
    let relative = spec.name.as_deref().unwrap_or(object_name);
    let name = if relative == "@" {
        zone.clone()
    } else {
        Name::from_ascii(relative)
            .and_then(|n| n.append_domain(&zone))
            .map_err(|e| format!("name `{relative}`: {e}"))?
    };
    Ok((zone, name))
}

/// Parses a name, making it fully qualified.
pub fn fqdn(text: &str) -> Result<Name, String> {
    let mut name = Name::from_str(text).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// A name in a target: absolute when it ends with `.`, else relative to the zone.
fn target_name(text: &str, zone: &Name) -> Result<Name, String> {
    let name = Name::from_str(text).map_err(|e| format!("`{text}`: {e}"))?;
    if name.is_fqdn() {
        Ok(name)
    } else {
        name.append_domain(zone).map_err(|e| format!("`{text}`: {e}"))
    }
}

fn record_type(spec: SpecType) -> RecordType {
    match spec {
        SpecType::A => RecordType::A,
        SpecType::AAAA => RecordType::AAAA,
        SpecType::CNAME => RecordType::CNAME,
        SpecType::TXT => RecordType::TXT,
        SpecType::SRV => RecordType::SRV,
    }
}

/// The data of a record: its static targets, or what its selector selects now.
fn record_data(
    spec: &DnsRecordSpec,
    key: &ObjectKey,
    zone: &Name,
    endpoints: &EndpointSet,
) -> Result<Vec<RData>, String> {
    let mut data = Vec::new();
    if let Some(selector) = &spec.selector {
        for endpoint in endpoints.select(&key.namespace, selector) {
            let Some(ip) = endpoint.address(spec.network.as_deref()) else { continue };
            match (spec.record_type, ip) {
                (SpecType::A, IpAddr::V4(v4)) => data.push(RData::A(v4.into())),
                (SpecType::AAAA, IpAddr::V6(v6)) => data.push(RData::AAAA(v6.into())),
                (SpecType::SRV, _) => {
                    let port = spec.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
                    let target =
                        format!("{}.{}.{}", endpoint.replica, endpoint.container.name, endpoint.container.namespace);
                    data.push(RData::SRV(SRV::new(10, 10, port, target_name(&target, zone)?)));
                }
                _ => {}
            }
        }
        return Ok(data);
    }
    for target in &spec.targets {
        let rdata = match spec.record_type {
            SpecType::A => {
                RData::A(target.parse::<std::net::Ipv4Addr>().map_err(|e| format!("`{target}`: {e}"))?.into())
            }
            SpecType::AAAA => {
                RData::AAAA(target.parse::<std::net::Ipv6Addr>().map_err(|e| format!("`{target}`: {e}"))?.into())
            }
            SpecType::CNAME => RData::CNAME(CNAME(target_name(target, zone)?)),
            SpecType::TXT => RData::TXT(TXT::new(vec![target.clone()])),
            SpecType::SRV => {
                let parts: Vec<&str> = target.split_whitespace().collect();
                let number = |i: usize| parts.get(i).and_then(|p| p.parse::<u16>().ok());
                let (Some(priority), Some(weight), Some(port), Some(host)) =
                    (number(0), number(1), number(2), parts.get(3))
                else {
                    return Err(format!("SRV target `{target}` is not `priority weight port target`"));
                };
                RData::SRV(SRV::new(priority, weight, port, target_name(host, zone)?))
            }
        };
        data.push(rdata);
    }
    Ok(data)
}

struct Builder {
    zones: BTreeMap<Name, BTreeMap<RrKey, RecordSet>>,
    serial: u32,
}

impl Builder {
    /// Makes sure `origin` is served, with its SOA.
    fn zone(&mut self, origin: &Name) {
        if self.zones.contains_key(origin) {
            return;
        }
        let mut sets = BTreeMap::new();
        let host = |label: &str| {
            Name::from_ascii(label).and_then(|n| n.append_domain(origin)).unwrap_or_else(|_| origin.clone())
        };
        let soa = SOA::new(host("ns"), host("hostmaster"), self.serial, 60, 30, 3600, AUTO_TTL);
        let mut set = RecordSet::with_ttl(origin.clone(), RecordType::SOA, AUTO_TTL);
        set.insert(Record::from_rdata(origin.clone(), AUTO_TTL, RData::SOA(soa)), self.serial);
        sets.insert(RrKey::new(origin.into(), RecordType::SOA), set);
        self.zones.insert(origin.clone(), sets);
    }

    fn claim(&mut self, zone: &Name, name: &Name, rtype: RecordType, ttl: u32) {
        if let Some(sets) = self.zones.get_mut(zone) {
            sets.entry(RrKey::new(name.into(), rtype)).or_insert_with(|| RecordSet::with_ttl(name.clone(), rtype, ttl));
        }
    }

    fn add(&mut self, zone: &Name, name: &Name, ttl: u32, rdata: RData) {
        let rtype = rdata.record_type();
        self.claim(zone, name, rtype, ttl);
        if let Some(set) = self.zones.get_mut(zone).and_then(|sets| sets.get_mut(&RrKey::new(name.into(), rtype))) {
            set.insert(Record::from_rdata(name.clone(), ttl, rdata), self.serial);
        }
    }
}
