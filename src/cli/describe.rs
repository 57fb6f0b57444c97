//! `berth describe`: one object for people: what it is, where it came
//! from, its spec, replicas, conditions and recent events.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use crate::api::{AnyObject, ObjectKey};
use crate::client::query_escape;
use crate::server::EventList;

use super::client_args::{block_on, object_path, ClientArgs};
use super::get::parse_kind;
use super::output::{age, table};

/// Events shown.
const RECENT_EVENTS: usize = 20;

/// Arguments of `berth describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    #[arg(short, long, default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// Runs `berth describe`.
pub fn run(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let key = ObjectKey::new(parse_kind(&args.kind)?, &args.namespace, &args.name);
    let client = args.client.client()?;
    block_on(async move {
        let object: AnyObject = client.json(Method::GET, &object_path(&key), None).await?;
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let path = format!("/events?object={}&after={after}", query_escape(&key.to_string()));
            let page: EventList = client.json(Method::GET, &path, None).await?;
            let Some(last) = page.items.last() else { break };
            after = last.seq;
            events.extend(page.items);
            let keep = events.len().saturating_sub(RECENT_EVENTS);
            events.drain(..keep);
        }
        println!("{}", describe(&object, &events));
        Ok(ExitCode::SUCCESS)
    })
}

/// The description of `object` with its `events`.
pub fn describe(object: &AnyObject, events: &[crate::server::EventEntry]) -> String {
    let meta = object.metadata();
    let mut out = Vec::new();
    let field = |name: &str, value: String| format!("{:<14}{value}", format!("{name}:"));
    out.push(field("Name", meta.name.clone()));
    out.push(field("Namespace", meta.namespace().to_string()));
    out.push(field("Kind", object.kind().to_string()));
    out.push(field("Source", meta.source.as_ref().map_or("-".into(), |s| s.id())));
    let created = meta.creation_timestamp.map_or("-".into(), |t| format!("{} ({} ago)", t.to_rfc3339(), age(Some(t))));
    out.push(field("Created", created));
    let observed = object.status_common().map_or(0, |c| c.observed_generation);
    out.push(field("Generation", format!("{} (observed {observed})", meta.generation.unwrap_or(0))));
    out.push(field("Version", meta.resource_version.map_or("-".into(), |v| v.to_string())));
    let labels: Vec<String> = meta.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push(field("Labels", if labels.is_empty() { "<none>".into() } else { labels.join(",") }));
    if meta.deletion_timestamp.is_some() {
        out.push(field("Deleting", "yes: its engine objects are being torn down".into()));
    }
    out.push("Spec:".into());
    out.push(indent(serde_yaml::to_string(&object.spec_json()).unwrap_or_default().trim_end()));
    if let AnyObject::Container(container) = object {
        let replicas = container.status.as_ref().map(|s| s.replicas.clone()).unwrap_or_default();
        out.push("Replicas:".into());
        if replicas.is_empty() {
            out.push("  <none>".into());
        } else {
            let rows: Vec<Vec<String>> = replicas
                .iter()
                .map(|r| {
                    let ips: Vec<String> = r.ips.iter().map(|(n, ip)| format!("{n}={ip}")).collect();
                    let ports: Vec<String> = r.host_ports.iter().map(|(p, h)| format!("{p}->{h}")).collect();
                    vec![
                        r.index.to_string(),
                        r.container_id.chars().take(12).collect(),
                        r.state.clone(),
                        if r.health.is_empty() { "-".into() } else { r.health.clone() },
                        r.restarts.to_string(),
                        ips.join(","),
                        ports.join(","),
                    ]
                })
                .collect();
            out.push(indent(&table(&["INDEX", "ID", "STATE", "HEALTH", "RESTARTS", "IPS", "PORTS"], &rows)));
        }
    }
    out.push("Conditions:".into());
    let conditions = object.status_common().map(|c| c.conditions.clone()).unwrap_or_default();
    if conditions.is_empty() {
        out.push("  <none>".into());
    } else {
        let rows: Vec<Vec<String>> = conditions
            .iter()
            .map(|c| {
                vec![
                    c.kind.clone(),
                    format!("{:?}", c.status),
                    c.reason.clone(),
                    age(Some(c.last_transition_time)),
                    c.message.replace('\n', " "),
                ]
            })
            .collect();
        out.push(indent(&table(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], &rows)));
    }
    out.push("Events:".into());
    if events.is_empty() {
        out.push("  <none>".into());
    } else {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                let time = chrono::DateTime::parse_from_rfc3339(&e.time).ok().map(|t| t.with_timezone(&chrono::Utc));
                vec![age(time), e.action.clone(), e.reason.clone(), e.message.replace('\n', " ")]
            })
            .collect();
        out.push(indent(&table(&["AGE", "ACTION", "REASON", "MESSAGE"], &rows)));
    }
    out.join("\n")
}
