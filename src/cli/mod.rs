//! The `berth` command line: one binary for the server (`serve`), the
//! offline tools (`validate`, `crds`) and, in later work, the client
//! commands that talk to a running server.
//!
//! Each subcommand lives in its own file and returns an exit code or an
//! error; `main` prints errors with their causes and exits 1. clap exits 2
//! on usage errors.

mod crds;
mod serve;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Top-level arguments.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about = "Keeps a Docker or Podman host in the state YAML manifests declare")]
pub struct Cli {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BERTH_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: converge the engine to the manifests, forever.
    Serve(serve::ServeArgs),
    /// Check manifests without a server: print every problem, exit 1 if any.
    Validate(validate::ValidateArgs),
    /// Write the CustomResourceDefinitions and JSON Schemas of every kind.
    Crds(crds::CrdsArgs),
    /// Print the version.
    Version,
}

/// Parses the process arguments (exits 2 on usage errors).
pub fn parse() -> Cli {
    Cli::parse()
}

/// Sets up logging to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Crds(args) => crds::run(args),
        Command::Version => {
            println!("berth {} ({}/{})", env!("CARGO_PKG_VERSION"), crate::api::API_VERSION, std::env::consts::ARCH);
            Ok(ExitCode::SUCCESS)
        }
    }
}
