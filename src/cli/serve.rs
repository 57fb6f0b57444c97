//! `berth serve`: the controller process.
//!
//! This build opens (and locks) the state directory and checks the engine
//! choice; the reconcile loop that fills the rest in is the next piece of
//! work, and until then `serve` says so and exits 1 rather than pretending.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::store::Store;

/// Arguments of `berth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of manifests to follow (recursively). Repeatable.
    #[arg(long = "manifests", value_name = "DIR")]
    pub manifests: Vec<PathBuf>,
    /// Where berth keeps its store, lock and token. Default: `/var/lib/berth`
    /// for root, else `$XDG_STATE_HOME/berth` (`~/.local/state/berth`).
    #[arg(long, value_name = "DIR", env = "BERTH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address of the REST API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7777")]
    pub listen: SocketAddr,
    /// Container engine to drive.
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto)]
    pub engine: EngineChoice,
}

/// Which engine `serve` drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// The first engine found: `DOCKER_HOST`, then Docker's and Podman's sockets.
    Auto,
    /// Docker, through its API socket.
    Docker,
    /// Podman, through its libpod API socket.
    Podman,
    /// The in-memory engine, for trying berth without containers.
    Fake,
}

/// The default state directory for this user.
pub fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/berth");
    }
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")));
    state_home.unwrap_or_else(|| PathBuf::from(".")).join("berth")
}

/// Opens the state directory, then stops: the controller comes next.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let state_dir = args.state_dir.unwrap_or_else(default_state_dir);
    let store = Store::open(&state_dir).with_context(|| format!("opening state directory {}", state_dir.display()))?;
    tracing::info!(state_dir = %state_dir.display(), resource_version = store.resource_version(), "store opened");
    anyhow::bail!(
        "the reconcile loop is not part of this build yet; `berth serve` only checks its state directory ({})",
        state_dir.display()
    )
}
