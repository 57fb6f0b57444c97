//! `berth validate -f PATH...`: the loader's verdict on manifests, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::manifest;

/// Arguments of `berth validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest files or directories (walked recursively); `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// How much a manifest may cost to read.
    #[command(flatten)]
    pub limits: crate::manifest::limits::LimitArgs,
}

/// Prints every problem (exit 1) or `N objects valid` (exit 0).
pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    crate::manifest::limits::set((&args.limits).into());
    let (count, errors) = match manifest::load_inputs(&args.paths) {
        Ok(objects) => (objects.len(), Vec::new()),
        Err(found) => (0, found.0),
    };
    if errors.is_empty() {
        println!("{count} objects valid");
        return Ok(ExitCode::SUCCESS);
    }
    for error in &errors {
        eprintln!("{error}");
    }
    let noun = if errors.len() == 1 { "error" } else { "errors" };
    eprintln!("{} {noun}", errors.len());
    Ok(ExitCode::FAILURE)
}
