//! `berth events`: the audit log, all of it or one object's, once or
//! following (`-w`).

use std::process::ExitCode;

use clap::Args;
use futures::StreamExt;
use hyper::Method;

use crate::api::ObjectKey;
use crate::client::{query_escape, sse_events};
use crate::server::{EventEntry, EventList};

use super::client_args::{block_on, ClientArgs};
use super::get::parse_kind;
use super::output::table;

/// Arguments of `berth events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events about this kind of object (with NAME).
    #[arg(requires = "name")]
    pub kind: Option<String>,
    /// Only events about the object of this name.
    pub name: Option<String>,
    /// Namespace (with KIND NAME).
    #[arg(short, long, default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Keep following new events.
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn row(e: &EventEntry) -> Vec<String> {
    let time = e.time.get(..19).unwrap_or(&e.time).replace('T', " ");
    vec![
        time,
        e.object.clone().unwrap_or_else(|| "-".into()),
        e.action.clone(),
        e.reason.clone(),
        e.message.replace('\n', " "),
    ]
}

const HEADERS: [&str; 5] = ["TIME", "OBJECT", "ACTION", "REASON", "MESSAGE"];

/// Runs `berth events`.
pub fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let filter = match (&args.kind, &args.name) {
        (Some(kind), Some(name)) => {
            format!("&object={}", query_escape(&ObjectKey::new(parse_kind(kind)?, &args.namespace, name).to_string()))
        }
        _ => String::new(),
    };
    let client = args.client.client()?;
    block_on(async move {
        let mut rows = Vec::new();
        let mut after = 0;
        loop {
            let page: EventList = client.json(Method::GET, &format!("/events?after={after}{filter}"), None).await?;
            let Some(last) = page.items.last() else { break };
            after = last.seq;
            rows.extend(page.items.iter().map(row));
        }
        if rows.is_empty() && !args.watch {
            eprintln!("No events.");
        } else {
            println!("{}", table(&HEADERS, &rows));
        }
        if !args.watch {
            return Ok(ExitCode::SUCCESS);
        }
        let mut events = sse_events(client.stream(&format!("/events?follow=true&after={after}{filter}")).await?);
        while let Some(event) = events.next().await {
            let entry: EventEntry = serde_json::from_str(&event?.data)?;
            println!("{}", row(&entry).join("   "));
        }
        Ok(ExitCode::SUCCESS)
    })
}
