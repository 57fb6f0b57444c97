//! `berth get`: objects as kubectl-style tables, or as YAML or JSON.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use hyper::Method;

use crate::api::{AnyObject, Kind, ObjectKey, ObjectList};
use crate::client::query_escape;

use super::client_args::{block_on, list_path, object_path, ClientArgs};
use crate::api::columns::{cells, columns};

use super::output::table;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The table with more columns.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
}

/// Arguments of `berth get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Kind: `containers`, `container` or `ctr`; `volumes`, `networks`, `images`, `dnsrecords`, `routes` (and their singulars and short names); or `sources`.
    pub kind: String,
    /// One object's name.
    pub name: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,
    /// Label selector, e.g. `app=web,tier!=cache`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output format (default: a table).
    #[arg(short, long, value_enum)]
    pub output: Option<Format>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Parses a kind argument, with the known kinds in the error.
pub fn parse_kind(text: &str) -> anyhow::Result<Kind> {
    Ok(text.parse::<Kind>()?)
}

/// Runs `berth get`.
/// (`berth get sources` is [`super::sources::run`]'s: `cli` dispatches.)
pub fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let kind = parse_kind(&args.kind).map_err(|e| anyhow::anyhow!("{e}; or `sources`"))?;
    let client = args.client.client()?;
    block_on(async move {
        let objects: Vec<AnyObject> = match &args.name {
            Some(name) => {
                let key = ObjectKey::new(kind, &args.namespace, name);
                vec![client.json(Method::GET, &object_path(&key), None).await?]
            }
            None => {
                let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
                let mut path = list_path(kind, namespace);
                if let Some(selector) = &args.selector {
                    path.push_str(&format!("?labelSelector={}", query_escape(selector)));
                }
                let list: ObjectList = client.json(Method::GET, &path, None).await?;
                list.items
            }
        };
        print(kind, &objects, args.name.is_some(), args.output, args.all_namespaces)?;
        Ok(ExitCode::SUCCESS)
    })
}

fn print(kind: Kind, objects: &[AnyObject], single: bool, format: Option<Format>, all: bool) -> anyhow::Result<()> {
    let value = if single && objects.len() == 1 {
        serde_json::to_value(&objects[0])?
    } else {
        serde_json::json!({ "apiVersion": crate::api::API_VERSION, "kind": "List", "items": objects })
    };
    match format {
        Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&value)?),
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&value)?),
        Some(Format::Wide) | None => {
            if objects.is_empty() {
                eprintln!("No {} found.", kind.plural());
                return Ok(());
            }
            let wide = format == Some(Format::Wide);
            println!("{}", render_table(kind, objects, wide, all));
        }
    }
    Ok(())
}

/// The table of `objects` of `kind`: the columns the API's Table has.
pub fn render_table(kind: Kind, objects: &[AnyObject], wide: bool, all_namespaces: bool) -> String {
    let shown: Vec<bool> = columns(kind).iter().map(|c| wide || !c.wide).collect();
    let mut headers = Vec::new();
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend(columns(kind).iter().zip(&shown).filter(|(_, s)| **s).map(|(c, _)| c.name));
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|object| {
            let mut row = Vec::new();
            if all_namespaces {
                row.push(object.metadata().namespace().to_string());
            }
            row.extend(cells(object).into_iter().zip(&shown).filter(|(_, s)| **s).map(|(c, _)| c));
            row
        })
        .collect();
    table(&headers, &rows)
}
