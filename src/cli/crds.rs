//! `berth crds --out DIR`: write the generated CRDs and JSON Schemas.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::manifest::{crd, reference};

/// Arguments of `berth crds`.
#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also refresh the generated manifest reference in this file
    /// (docs/manifests.md).
    #[arg(long, value_name = "FILE", hide = true)]
    pub reference: Option<PathBuf>,
}

/// Writes the files and lists them.
pub fn run(args: CrdsArgs) -> anyhow::Result<ExitCode> {
    let written = crd::write_all(&args.out).with_context(|| format!("writing into {}", args.out.display()))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    if let Some(file) = args.reference {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let updated = reference::update_document(&text).with_context(|| {
            format!(
                "{} has no generated-reference markers; add {} and {}",
                file.display(),
                reference::BEGIN,
                reference::END
            )
        })?;
        std::fs::write(&file, updated).with_context(|| format!("writing {}", file.display()))?;
        println!("updated {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
