//! `berth delete`: one object by kind and name, or every object the given
//! manifest files declare. Deletion is asynchronous: the object is marked,
//! its reconciler tears down the engine objects, then it goes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use crate::api::{AnyObject, ObjectKey};
use crate::manifest;

use super::client_args::{block_on, object_path, short_name, ClientArgs};
use super::get::parse_kind;
use super::output::{paint, RED};

/// Arguments of `berth delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kind (with NAME).
    #[arg(required_unless_present = "files", requires = "name")]
    pub kind: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Delete what these manifest files or directories declare.
    #[arg(short = 'f', long = "filename", value_name = "PATH", conflicts_with_all = ["kind", "name"])]
    pub files: Vec<PathBuf>,
    /// Namespace (with KIND NAME).
    #[arg(short, long, default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Delete objects that a watched file or repository owns (it declares
    /// them again on its next change).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `berth delete`.
pub fn run(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let keys: Vec<ObjectKey> = match (&args.kind, &args.name) {
        (Some(kind), Some(name)) => vec![ObjectKey::new(parse_kind(kind)?, &args.namespace, name)],
        _ => match manifest::load_paths(&args.files) {
            Ok(set) => set.objects.iter().map(|loaded| loaded.object.key()).collect(),
            Err(errors) => anyhow::bail!("{errors}"),
        },
    };
    let client = args.client.client()?;
    block_on(async move {
        let mut failed = 0;
        for key in &keys {
            let path = format!("{}?force={}", object_path(key), args.force);
            match client.json::<AnyObject>(Method::DELETE, &path, None).await {
                Ok(_) => println!("{} deleted", short_name(key)),
                Err(e) => {
                    anstream::eprintln!("{} {}: {e}", paint(RED, "error:"), short_name(key));
                    failed += 1;
                }
            }
        }
        Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}
