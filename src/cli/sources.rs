//! `berth get sources`: where the objects come from (watched files, API
//! sets, git repositories), the commit each repository last saw and
//! applied, and each source's last error.

use std::process::ExitCode;

use hyper::Method;

use crate::api::SourceKind;
use crate::server::{SourceList, SourceStatus};

use super::client_args::block_on;
use super::get::{Format, GetArgs};
use super::output::{age, table};

/// Whether `kind` (the argument of `berth get`) asks for the sources.
pub fn is_sources(kind: &str) -> bool {
    matches!(kind, "sources" | "source" | "src")
}

/// Lists the sources; a NAME keeps those whose id contains it.
pub fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    block_on(async move {
        let mut list: SourceList = client.json(Method::GET, "/sources", None).await?;
        if let Some(name) = &args.name {
            list.items.retain(|s| s.id.contains(name.as_str()));
        }
        match args.output {
            Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&list)?),
            Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&list)?),
            Some(Format::Wide) | None if list.items.is_empty() => eprintln!("No sources found."),
            Some(Format::Wide) => println!("{}", render_table(&list.items, true)),
            None => println!("{}", render_table(&list.items, false)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The table of `sources`; `wide` shows errors whole.
pub fn render_table(sources: &[SourceStatus], wide: bool) -> String {
    let headers = ["SOURCE", "TYPE", "COMMIT", "APPLIED", "OBJECTS", "ERROR", "AGE"];
    let short = |commit: &Option<String>| commit.as_deref().map_or("-".to_string(), |c| c.chars().take(12).collect());
    let rows: Vec<Vec<String>> = sources
        .iter()
        .map(|status| {
            let (kind, name) = status.id.split_once(':').unwrap_or((status.id.as_str(), ""));
            let name = if name.is_empty() { kind } else { name };
            let error = match (&status.fetch_error, status.errors.as_slice()) {
                (Some(fetch), _) => fetch.clone(),
                (None, []) => "-".to_string(),
                (None, [one]) => one.clone(),
                (None, [first, rest @ ..]) => format!("{first} (and {} more)", rest.len()),
            };
            let error = error.replace('\n', " ");
            let error = if wide || error.chars().count() <= 80 {
                error
            } else {
                format!("{}…", error.chars().take(79).collect::<String>())
            };
            let git = status.source.kind == SourceKind::Git;
            vec![
                name.to_string(),
                kind.to_string(),
                if git { short(&status.seen_commit) } else { "-".into() },
                if git { short(&status.applied_commit) } else { "-".into() },
                status.objects.len().to_string(),
                error,
                age(Some(status.error_time.unwrap_or(status.updated))),
            ]
        })
        .collect();
    table(&headers, &rows)
}

/// Arguments of `berth sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The git source to fetch (its id, as `berth get sources` shows it);
    /// every git source without it.
    pub source: Option<String>,
    #[command(flatten)]
    pub client: super::client_args::ClientArgs,
}

/// Runs `berth sync`: the git sources fetch now.
pub fn sync(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    let path = match &args.source {
        Some(id) => format!("/sources/sync?source={}", crate::client::query_escape(id)),
        None => "/sources/sync".to_string(),
    };
    block_on(async move {
        let requested: crate::server::SyncRequested = client.json(Method::POST, &path, None).await?;
        for id in requested.triggered {
            println!("{id}: fetching now");
        }
        Ok(ExitCode::SUCCESS)
    })
}
