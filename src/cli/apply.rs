//! `berth apply` and `berth diff`: manifests from files to the server.
//!
//! The files are read and validated here first, with the same loader as
//! `berth validate`, so problems are reported at the user's own
//! `file:line:column` and relative build contexts are resolved against the
//! manifest's directory before anything is sent. The server validates again
//! (and applies its own rules, such as its host policy, whose refusals are
//! placed back at the user's files) and applies the set as one transaction;
//! the answer is the plan, printed as a coloured diff with the reason for
//! every engine operation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use hyper::Method;

use crate::api::{AnyObject, FieldPath, ObjectKey};
use crate::client::{query_escape, Body, Client, ClientError};
use crate::controller::plan::{PlanAction, PlanItem};
use crate::manifest::{self, LoadedObject};
use crate::server::ApplyResponse;

use super::client_args::{block_on, object_path, short_name, ClientArgs};
use super::output::{paint, readiness, BOLD, DIM, GREEN, RED, YELLOW};

/// Arguments of `berth apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifest files or directories (read recursively); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// Show the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until every object is Ready, showing progress.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Write objects that a watched file or repository owns.
    #[arg(long)]
    pub force: bool,
    /// Apply the files as the complete set of this named source: objects it
    /// declared before and no longer does are deleted.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `berth diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Manifest files or directories (read recursively); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// Plan as the complete set of this named source (shows deletions).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Reads and validates the files (`-`: standard input), or prints every problem.
fn load(files: &[PathBuf]) -> Result<Vec<LoadedObject>, ExitCode> {
    match manifest::load_inputs(files) {
        Ok(objects) => Ok(objects),
        Err(errors) => {
            for error in &errors.0 {
                anstream::eprintln!("{}", paint(RED, &error.to_string()));
            }
            eprintln!("{} problem(s); nothing was applied", errors.0.len());
            Err(ExitCode::FAILURE)
        }
    }
}

/// The objects as one multi-document YAML body.
fn body(objects: &[LoadedObject]) -> anyhow::Result<Body> {
    let mut text = String::new();
    for loaded in objects {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(&loaded.object)?);
    }
    Ok(Body { content_type: "application/yaml", bytes: text.into() })
}

/// The server's refusal of objects (a rule of the server's own, such as its
/// host policy) placed back at the user's `file:line:column`: the server
/// saw the body berth sent, whose lines are not the user's. `None` when the
/// error is not about fields of the objects sent.
fn refusals_in_files(error: &anyhow::Error, objects: &[LoadedObject]) -> Option<Vec<String>> {
    let Some(ClientError::Api { body, .. }) = error.downcast_ref::<ClientError>() else { return None };
    let mut lines = Vec::new();
    for detail in &body.details.causes {
        let (Some(object), Some(field), Some(message)) = (
            detail.get("object").and_then(|v| v.as_str()),
            detail.get("field").and_then(|v| v.as_str()),
            detail.get("message").and_then(|v| v.as_str()),
        ) else {
            return None;
        };
        let loaded = objects.iter().find(|o| o.object.key().to_string() == object)?;
        let at = loaded.tree.position_of(&FieldPath::parse(field));
        lines.push(format!("{}:{}:{}: {object}: {field}: {message}", loaded.file, at.line, at.column));
    }
    (!lines.is_empty()).then_some(lines)
}

/// Sends the objects; a refusal of theirs is printed at the user's files.
async fn post_or_print(
    client: &Client,
    objects: &[LoadedObject],
    dry_run: bool,
    force: bool,
    source: Option<&str>,
) -> anyhow::Result<Result<ApplyResponse, ExitCode>> {
    match post(client, objects, dry_run, force, source).await {
        Ok(answer) => Ok(Ok(answer)),
        Err(error) => match refusals_in_files(&error, objects) {
            Some(lines) => {
                for line in &lines {
                    anstream::eprintln!("{}", paint(RED, line));
                }
                eprintln!("{} problem(s) refused by the server; nothing was applied", lines.len());
                Ok(Err(ExitCode::FAILURE))
            }
            None => Err(error),
        },
    }
}

async fn post(
    client: &Client,
    objects: &[LoadedObject],
    dry_run: bool,
    force: bool,
    source: Option<&str>,
) -> anyhow::Result<ApplyResponse> {
    let mut path = format!("/apply?dryRun={dry_run}&force={force}");
    if let Some(source) = source {
        path.push_str(&format!("&source={}", query_escape(source)));
    }
    Ok(client.json(Method::POST, &path, Some(body(objects)?)).await?)
}

/// Runs `berth apply`.
pub fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let objects = match load(&args.files) {
        Ok(objects) => objects,
        Err(code) => return Ok(code),
    };
    let client = args.client.client()?;
    block_on(async move {
        let answer = match post_or_print(&client, &objects, args.dry_run, args.force, args.source.as_deref()).await? {
            Ok(answer) => answer,
            Err(code) => return Ok(code),
        };
        if args.dry_run {
            print_plan(&answer.items);
            return Ok(ExitCode::SUCCESS);
        }
        for item in &answer.items {
            let done = match item.action {
                PlanAction::Create => paint(GREEN, "created"),
                PlanAction::Update => paint(YELLOW, "configured"),
                PlanAction::Unchanged => paint(DIM, "unchanged"),
                PlanAction::Delete => paint(RED, "deleted"),
            };
            anstream::println!("{} {done}", display_name(&item.object));
        }
        if !args.wait {
            return Ok(ExitCode::SUCCESS);
        }
        let keys: Vec<ObjectKey> = answer
            .items
            .iter()
            .filter(|i| i.action != PlanAction::Delete)
            .filter_map(|i| ObjectKey::parse(&i.object))
            .collect();
        wait_ready(&client, &keys, args.timeout).await
    })
}

/// Runs `berth diff`.
pub fn run_diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let objects = match load(&args.files) {
        Ok(objects) => objects,
        Err(code) => return Ok(code),
    };
    let client = args.client.client()?;
    block_on(async move {
        let answer = match post_or_print(&client, &objects, true, true, args.source.as_deref()).await? {
            Ok(answer) => answer,
            Err(code) => return Ok(code),
        };
        print_plan(&answer.items);
        Ok(ExitCode::SUCCESS)
    })
}

fn display_name(object: &str) -> String {
    ObjectKey::parse(object).map_or_else(|| object.to_string(), |key| short_name(&key))
}

/// Prints a plan: one block per object, with its operations and a diff of its spec.
pub fn print_plan(items: &[PlanItem]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for item in items {
        let (sign, word, style) = match item.action {
            PlanAction::Create => ("+", "create", GREEN),
            PlanAction::Update => ("~", "update", YELLOW),
            PlanAction::Unchanged => ("=", "unchanged", DIM),
            PlanAction::Delete => ("-", "delete", RED),
        };
        *counts.entry(word).or_default() += 1;
        let fields = if item.changed_fields.is_empty() {
            String::new()
        } else {
            format!(" ({})", item.changed_fields.join(", "))
        };
        anstream::println!(
            "{} {}{}",
            paint(style, &format!("{sign} {}", display_name(&item.object))),
            paint(style, word),
            fields
        );
        for operation in &item.operations {
            anstream::println!(
                "    {} {}  {}",
                paint(BOLD, "→"),
                operation.operation,
                paint(DIM, &format!("({})", operation.reason))
            );
        }
        if item.action == PlanAction::Update {
            print_spec_diff(item);
        }
    }
    let summary: Vec<String> = ["create", "update", "delete", "unchanged"]
        .iter()
        .filter_map(|w| counts.get(w).map(|n| format!("{n} to {w}")))
        .collect();
    let summary = if summary.is_empty() {
        "nothing to apply".to_string()
    } else {
        summary.join(", ").replace("to unchanged", "unchanged")
    };
    anstream::println!("{} {summary}", paint(BOLD, "Plan:"));
}

fn print_spec_diff(item: &PlanItem) {
    let yaml =
        |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| serde_yaml::to_string(v).ok()).unwrap_or_default();
    let (old, new) = (yaml(&item.current), yaml(&item.desired));
    let diff = similar::TextDiff::from_lines(&old, &new);
    for hunk in diff.unified_diff().context_radius(1).iter_hunks() {
        for change in hunk.iter_changes() {
            let line = change.to_string_lossy();
            let line = line.trim_end();
            match change.tag() {
                similar::ChangeTag::Delete => anstream::println!("      {}", paint(RED, &format!("- {line}"))),
                similar::ChangeTag::Insert => anstream::println!("      {}", paint(GREEN, &format!("+ {line}"))),
                similar::ChangeTag::Equal => anstream::println!("      {}", paint(DIM, &format!("  {line}"))),
            }
        }
    }
}

/// Polls the objects until all are Ready, printing each change of state;
/// fails naming those that are not when `timeout` passes.
pub async fn wait_ready(client: &Client, keys: &[ObjectKey], timeout: Duration) -> anyhow::Result<ExitCode> {
    const POLL: Duration = Duration::from_millis(250);
    let started = Instant::now();
    let mut shown: BTreeMap<ObjectKey, String> = BTreeMap::new();
    loop {
        let mut waiting = Vec::new();
        for key in keys {
            let object: AnyObject = client.json(Method::GET, &object_path(key), None).await?;
            let state = readiness(&object);
            let line = if state.ready {
                paint(GREEN, "Ready")
            } else {
                format!("{} {}: {}", paint(YELLOW, &format!("Ready={}", state.status)), state.reason, state.message)
            };
            if shown.get(key) != Some(&line) {
                anstream::println!("{}  {line}", short_name(key));
                shown.insert(key.clone(), line);
            }
            if !state.ready {
                waiting.push((key.clone(), state));
            }
        }
        if waiting.is_empty() {
            anstream::println!("{} {} object(s) ready after {:.1?}", paint(GREEN, "✔"), keys.len(), started.elapsed());
            return Ok(ExitCode::SUCCESS);
        }
        if started.elapsed() >= timeout {
            anstream::eprintln!("{} not ready after {}:", paint(RED, "✘"), humantime::format_duration(timeout));
            for (key, state) in waiting {
                anstream::eprintln!(
                    "  {}: Ready={} {}: {}",
                    short_name(&key),
                    state.status,
                    state.reason,
                    state.message
                );
            }
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(POLL).await;
    }
}
