//! `berth validate -f PATH...`: the loader's verdict on manifests, offline.

use std::io::Read;
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
    let (files, stdin): (Vec<PathBuf>, Vec<PathBuf>) = args.paths.into_iter().partition(|p| p.as_os_str() != "-");
    let mut count = 0;
    let mut errors = Vec::new();
    match manifest::load_paths(&files) {
        Ok(set) => count += set.objects.len(),
        Err(found) => errors.extend(found.0),
    }
    if !stdin.is_empty() {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        match manifest::load_text(&text, "<stdin>", std::env::current_dir().ok().as_deref()) {
            Ok(objects) => count += objects.len(),
            Err(found) => errors.extend(found.0),
        }
    }
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
