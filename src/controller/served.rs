//! DnsRecord and Route: their status is what the DNS server and the proxy
//! serve now.
//!
//! The DNS server and the proxy publish a report per object (targets,
//! backends and their health, conflicts) whenever what they serve changes;
//! the controller requeues the objects whose report changed
//! ([`follow_reports`]), and these reconcilers turn the report into status.
//! They change nothing else, so they are idempotent and may be cancelled
//! and re-run at any point. When a server is off (`--dns-listen off`,
//! `--proxy-listen off`) its objects say `Ready=False, reason NotServed`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::api::route::BackendStatus;
use crate::api::{DnsRecord, DnsRecordStatus, ObjectKey, Route, RouteStatus};
use crate::dns::{DnsReport, RecordProblem};
use crate::proxy::RoutesReport;

use super::action::{Action, ReconcileError};
use super::context::{Conditions, Context};
use super::runtime::{Request, Trigger};

/// What the DNS server and the proxy serve; `None` for a server that is off.
#[derive(Clone, Debug, Default)]
pub struct Served {
    /// Per DnsRecord.
    pub dns: Option<watch::Receiver<Arc<DnsReport>>>,
    /// Per Route.
    pub routes: Option<watch::Receiver<Arc<RoutesReport>>>,
}

/// Writes a DnsRecord's status from the DNS server's report.
pub fn reconcile_dns(ctx: &Context, key: &ObjectKey, desired: Option<DnsRecord>) -> Result<Action, ReconcileError> {
    let Some(object) = super::finalizer::live(ctx, key, desired)? else { return Ok(Action::await_change()) };
    let conditions = Conditions::from(&object);
    let Some(dns) = &ctx.served.dns else {
        let common = conditions.ready(false, "NotServed", "the DNS server is off (--dns-listen off)", false).build();
        ctx.write_status(&object, DnsRecordStatus { common, ..DnsRecordStatus::default() })?;
        return Ok(Action::await_change());
    };
    let report = dns.borrow().get(key).cloned();
    let kind = format!("{:?}", object.spec.record_type);
    let status = match report {
        None => DnsRecordStatus {
            common: conditions.ready(false, "Pending", "not in the DNS zones yet", false).build(),
            ..DnsRecordStatus::default()
        },
        Some(report) => {
            let (ready, reason, message, degraded) = match &report.problem {
                Some(RecordProblem::Conflict(holder)) => (
                    false,
                    "Conflict",
                    format!("{holder} already serves {} {kind}; the older object keeps the name", report.fqdn),
                    true,
                ),
                Some(RecordProblem::Invalid(problem)) => (false, "Invalid", problem.clone(), true),
                None if report.targets.is_empty() => (
                    false,
                    "NoTargets",
                    format!("{} {kind}: no ready replica matches the selector", report.fqdn),
                    false,
                ),
                None => (true, "Served", format!("{} {kind}: {} record(s)", report.fqdn, report.targets.len()), false),
            };
            let served = report.problem.is_none();
            DnsRecordStatus {
                common: conditions.ready(ready, reason, message, degraded).build(),
                fqdn: report.fqdn,
                targets: if served { report.targets } else { Vec::new() },
            }
        }
    };
    ctx.write_status(&object, status)?;
    Ok(Action::await_change())
}

/// Writes a Route's status from the proxy's report.
pub fn reconcile_route(ctx: &Context, key: &ObjectKey, desired: Option<Route>) -> Result<Action, ReconcileError> {
    let Some(object) = super::finalizer::live(ctx, key, desired)? else { return Ok(Action::await_change()) };
    let conditions = Conditions::from(&object);
    let Some(routes) = &ctx.served.routes else {
        let common = conditions.ready(false, "NotServed", "the HTTP proxy is off (--proxy-listen off)", false).build();
        ctx.write_status(&object, RouteStatus { common, ..RouteStatus::default() })?;
        return Ok(Action::await_change());
    };
    let report = routes.borrow().get(key).cloned();
    let status = match report {
        None => RouteStatus {
            common: conditions.ready(false, "Pending", "not in the proxy's table yet", false).build(),
            ..RouteStatus::default()
        },
        Some(report) => {
            let healthy = report.backends.iter().filter(|(_, _, up)| *up).count();
            let total = report.backends.len();
            let (ready, reason, message, degraded) = if let Some((_, holder)) = report.conflicts.first() {
                let clashes: Vec<&str> = report.conflicts.iter().map(|(m, _)| m.as_str()).collect();
                let message = format!("{holder} already serves {}; the older Route keeps it", clashes.join(", "));
                (false, "Conflict", message, true)
            } else if total == 0 {
                (false, "NoBackends", "no ready replica matches any backend".to_string(), false)
            } else if healthy == 0 {
                (false, "Unhealthy", format!("none of {total} backends passes its health check"), true)
            } else {
                (true, "Served", format!("{healthy} of {total} backends healthy"), false)
            };
            RouteStatus {
                common: conditions.ready(ready, reason, message, degraded).build(),
                backends: report
                    .backends
                    .into_iter()
                    .map(|(target, address, healthy)| BackendStatus { target, address: address.to_string(), healthy })
                    .collect(),
            }
        }
    };
    ctx.write_status(&object, status)?;
    Ok(Action::await_change())
}

/// Requeues every object whose report changed.
pub async fn follow_reports(served: Served, requests: mpsc::UnboundedSender<Request<ObjectKey>>) {
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(dns) = served.dns {
        tasks.spawn(follow_one(dns, requests.clone()));
    }
    if let Some(routes) = served.routes {
        tasks.spawn(follow_one(routes, requests.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

async fn follow_one<V: PartialEq + Send + Sync + 'static>(
    mut reports: watch::Receiver<Arc<BTreeMap<ObjectKey, V>>>,
    requests: mpsc::UnboundedSender<Request<ObjectKey>>,
) {
    let mut previous: Arc<BTreeMap<ObjectKey, V>> = Arc::new(BTreeMap::new());
    loop {
        let current = reports.borrow_and_update().clone();
        let changed = current
            .iter()
            .filter(|(key, value)| previous.get(*key) != Some(*value))
            .map(|(key, _)| key)
            .chain(previous.keys().filter(|key| !current.contains_key(*key)));
        for key in changed {
            let _ = requests.send(Request::now(key.clone(), Trigger::Other));
        }
        previous = current;
        if reports.changed().await.is_err() {
            return;
        }
    }
}
