//! `berth keygen`: makes a keyring for encrypted payloads, or rotates one.
//!
//! Without `--rotate` it prints a keyring of one fresh key (or writes it,
//! mode 0600, with `-o`). With `--rotate FILE` it adds a fresh key to FILE
//! as the primary and keeps the others, so what senders sealed with the old
//! key still opens while they move to the new one; the file is replaced
//! atomically (a temporary file in the same directory, renamed over it), so
//! a crash leaves the old keyring or the new one, never half of either.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::ingress::keyring::Keyring;

/// Arguments of `berth keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The new key's id: ASCII letters, digits, `.`, `_`, `-` (default `k1`;
    /// with --rotate, the next free `kN`).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Add a new primary key to this keyring file, in place; its other keys stay.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub rotate: Option<PathBuf>,
    /// Write the new keyring to this file (created, mode 0600) instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Prints or writes a new keyring, or rotates one (the new id on stderr).
pub fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.rotate {
        let id = rotate(path, args.id.as_deref())?;
        eprintln!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let keyring = Keyring::generate(args.id.as_deref().unwrap_or("k1"))?;
    match &args.output {
        Some(path) => {
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).with_context(|| {
                    format!("{}: cannot create the keyring (it must not exist yet)", path.display())
                })?;
            file.write_all(keyring.to_yaml().as_bytes())
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
        None => print!("{}", *keyring.to_yaml()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Adds a fresh primary key (`id`, or the next free `kN`) to the keyring
/// at `path`, replacing the file atomically; the new id.
fn rotate(path: &Path, id: Option<&str>) -> anyhow::Result<String> {
    let keyring = Keyring::load(path)?;
    let id = id.map_or_else(|| keyring.next_free_id(), str::to_string);
    let rotated = keyring.with_new_primary(&id).with_context(|| format!("{}", path.display()))?;
    // Through a symbolic link, the file it names is the one replaced.
    let target = std::fs::canonicalize(path).with_context(|| format!("{}: cannot resolve", path.display()))?;
    replace_file(&target, rotated.to_yaml().as_bytes())?;
    Ok(id)
}

/// Replaces `path` with `contents` (mode 0600) through a temporary file in
/// its directory and a rename, syncing both.
fn replace_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = dir.join(format!(".{name}.berth-{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.with_context(|| format!("{}: cannot write the rotated keyring", path.display()))
}
