//! The `berth` command line: one binary for the server (`serve`), the
//! offline tools (`validate`, `crds`, `completion`, and `keygen`, `encrypt`,
//! `decrypt` for encrypted payloads) and the client commands
//! that talk to a running server over its REST API (`apply`, `diff`, `get`,
//! `describe`, `delete`, `events`, `logs`, `exec`, `cp`).
//!
//! Each subcommand lives in its own file and returns an exit code or an
//! error; `main` prints errors with their causes and exits 1. clap exits 2
//! on usage errors.

mod actions;
mod apply;
mod client_args;
mod cp;
mod crds;
mod crypt;
mod delete;
mod describe;
mod events;
mod exec;
mod get;
mod keygen;
mod kubeconfig;
mod logs;
mod output;
mod serve;
mod sources;
mod validate;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    Serve(Box<serve::ServeArgs>),
    /// Check manifests without a server: print every problem, exit 1 if any.
    Validate(validate::ValidateArgs),
    /// Write the CustomResourceDefinitions and JSON Schemas of every kind.
    Crds(crds::CrdsArgs),
    /// Send manifests to the server; print what changed (or, with --dry-run, the plan).
    Apply(apply::ApplyArgs),
    /// Show the plan of applying manifests: what changes, and the engine operations that follow.
    Diff(apply::DiffArgs),
    /// List objects, or show one.
    Get(get::GetArgs),
    /// Show one object in detail: spec, replicas, conditions, recent events.
    Describe(describe::DescribeArgs),
    /// Delete objects, by kind and name or by manifest file.
    Delete(delete::DeleteArgs),
    /// Restart a Container's replicas (--replica N: only that one), recorded with --reason.
    Restart(actions::RestartArgs),
    /// Suspend a Container: keep the object, remove its replicas until `berth resume`.
    Suspend {
        /// The Container.
        name: String,
        #[command(flatten)]
        args: actions::ActionArgs,
    },
    /// Resume a suspended Container: its replicas run again.
    Resume {
        /// The Container.
        name: String,
        #[command(flatten)]
        args: actions::ActionArgs,
    },
    /// Fetch git sources now instead of at their next poll.
    Sync(sources::SyncArgs),
    /// Show the audit log of what berth did and why.
    Events(events::EventsArgs),
    /// Show a Container replica's output.
    Logs(logs::LogsArgs),
    /// Run a command in a Container replica (-i: pass stdin, -t: a terminal).
    Exec(exec::ExecArgs),
    /// Copy files to or from a Container replica (NAME:/PATH on the replica's side).
    Cp(cp::CpArgs),
    /// Print a kubeconfig for the server's TLS listener (for kubectl and other Kubernetes clients).
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Print a new keyring for encrypted payloads, or rotate one (--rotate FILE).
    Keygen(keygen::KeygenArgs),
    /// Seal a payload (YAML, JSON, protobuf) into an encrypted envelope with a keyring's primary key.
    Encrypt(crypt::EncryptArgs),
    /// Open an encrypted envelope: the plaintext on stdout, its header on stderr.
    Decrypt(crypt::DecryptArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the version.
    Version,
}

/// Parses the process arguments (exits 2 on usage errors).
pub fn parse() -> Cli {
    Cli::parse()
}

/// Sets up logging to stderr; `RUST_LOG` filters (default `info`).
/// hickory's server logs every DNS query at `info`; that is kept to
/// warnings unless `RUST_LOG` names hickory itself.
pub fn init_tracing(cli: &Cli) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("hickory")) {
        if let Ok(quiet) = "hickory_server=warn".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Validate(args) => validate::run(args),
        Command::Crds(args) => crds::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Diff(args) => apply::run_diff(args),
        Command::Get(args) if sources::is_sources(&args.kind) => sources::run(args),
        Command::Get(args) => get::run(args),
        Command::Describe(args) => describe::run(args),
        Command::Delete(args) => delete::run(args),
        Command::Restart(args) => actions::restart(args),
        Command::Suspend { name, args } => actions::run(actions::Action::Suspend, &name, args),
        Command::Resume { name, args } => actions::run(actions::Action::Resume, &name, args),
        Command::Sync(args) => sources::sync(args),
        Command::Events(args) => events::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Cp(args) => cp::run(args),
        Command::Kubeconfig(args) => kubeconfig::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Encrypt(args) => crypt::run_encrypt(args),
        Command::Decrypt(args) => crypt::run_decrypt(args),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "berth", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("berth {} ({}/{})", env!("CARGO_PKG_VERSION"), crate::api::API_VERSION, std::env::consts::ARCH);
            Ok(ExitCode::SUCCESS)
        }
    }
}
