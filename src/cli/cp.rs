//! `berth cp`: files between this machine and a Container's replica, like
//! `kubectl cp` and `docker cp`, through the archive endpoints.
//!
//! `berth cp NAME:SRC DEST` copies out: into `DEST` when it is a directory,
//! else to the new name `DEST` (its parent must exist); `-` as `DEST`
//! writes the tar archive to stdout. `berth cp SRC NAME:DEST` copies in:
//! into `DEST` when it is a directory in the replica (or ends with `/`),
//! else to the new name `DEST`; `-` as `SRC` reads a tar archive from
//! stdin and extracts it into the directory `DEST`.
//!
//! Archives from the replica are unpacked into a staging directory beside
//! the destination with the tar crate's checks (no entry may leave it, by
//! `..`, an absolute path or a link), and only then moved into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use hyper::Method;

use crate::api::{Kind, ObjectKey};
use crate::client::{query_escape, Body, Client};

use super::client_args::{block_on, object_path, ClientArgs};

/// Arguments of `berth cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// `NAME:PATH` in a Container's replica, or a local path (`-`: a tar archive on stdin).
    pub source: String,
    /// A local path (`-`: the tar archive on stdout), or `NAME:PATH`.
    pub destination: String,
    /// Namespace.
    #[arg(short, long, default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Which replica.
    #[arg(long, default_value_t = 0)]
    pub replica: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `NAME:PATH`, when `text` is one (a local path with a colon can be given
/// as `./a:b`).
fn remote(text: &str) -> Option<(&str, &str)> {
    if text.starts_with('.') || text.starts_with('/') {
        return None;
    }
    text.split_once(':').filter(|(name, path)| !name.is_empty() && path.starts_with('/'))
}

/// Runs `berth cp`.
pub fn run(args: CpArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.client()?;
    let archive_of = |name: &str, path: &str| {
        let key = ObjectKey::new(Kind::Container, &args.namespace, name);
        format!("{}/archive?replica={}&path={}", object_path(&key), args.replica, query_escape(path))
    };
    match (remote(&args.source), remote(&args.destination)) {
        (Some(_), Some(_)) => anyhow::bail!("copy between two replicas in two steps: out to this machine, then in"),
        (None, None) => anyhow::bail!(
            "neither `{}` nor `{}` is NAME:/PATH in a Container (the path in the replica is absolute)",
            args.source,
            args.destination
        ),
        (Some((name, path)), None) => {
            let api_path = archive_of(name, path);
            let destination = PathBuf::from(&args.destination);
            block_on(async move { copy_out(&client, &api_path, &destination).await.map(|()| ExitCode::SUCCESS) })
        }
        (None, Some((name, path))) => {
            let (name, path) = (name.to_string(), path.to_string());
            let source = args.source.clone();
            block_on(async move {
                copy_in(&client, &source, &path, |p| archive_of(&name, p)).await.map(|()| ExitCode::SUCCESS)
            })
        }
    }
}

async fn copy_out(client: &Client, api_path: &str, destination: &Path) -> anyhow::Result<()> {
    let mut archive = client.stream(api_path).await?;
    if destination == Path::new("-") {
        let mut stdout = std::io::stdout().lock();
        while let Some(chunk) = archive.next().await {
            stdout.write_all(&chunk?)?;
        }
        return Ok(stdout.flush()?);
    }
    let mut tar = Vec::new();
    while let Some(chunk) = archive.next().await {
        tar.extend_from_slice(&chunk?);
    }
    let (directory, new_name) = if destination.is_dir() {
        (destination.to_path_buf(), None)
    } else {
        let parent = destination.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        anyhow::ensure!(parent.is_dir(), "{} does not exist: make it first", parent.display());
        let name = destination.file_name().context("the destination has no file name")?;
        (parent.to_path_buf(), Some(name.to_os_string()))
    };
    let staging = tempfile::Builder::new()
        .prefix(".berth-cp-")
        .tempdir_in(&directory)
        .with_context(|| format!("cannot write in {}", directory.display()))?;
    let mut unpacked = tar::Archive::new(tar.as_slice());
    unpacked.set_preserve_permissions(true);
    for entry in unpacked.entries().context("the archive from the replica does not read")? {
        let mut entry = entry.context("the archive from the replica does not read")?;
        let shown = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
        anyhow::ensure!(
            entry.unpack_in(staging.path())?,
            "the archive's entry {shown} leaves its directory; nothing was copied"
        );
    }
    let top = std::fs::read_dir(staging.path())?.next().context("the replica sent an empty archive")??;
    let target = directory.join(new_name.unwrap_or_else(|| top.file_name()));
    std::fs::rename(top.path(), &target).with_context(|| format!("cannot move the copy to {}", target.display()))?;
    Ok(())
}

/// Whether `path` in the replica is a directory: the first header of its
/// archive says (`None`: it does not exist).
async fn remote_is_dir(client: &Client, api_path: &str) -> anyhow::Result<Option<bool>> {
    let mut archive = match client.stream(api_path).await {
        Ok(archive) => archive,
        Err(error) if error.status() == Some(hyper::StatusCode::NOT_FOUND) && error.to_string().contains(" in ") => {
            return Ok(None)
        }
        Err(error) => return Err(error.into()),
    };
    let mut head = Vec::new();
    while head.len() < 512 {
        match archive.next().await {
            Some(chunk) => head.extend_from_slice(&chunk?),
            None => break,
        }
    }
    anyhow::ensure!(head.len() >= 512, "the replica's archive of the destination is cut short");
    Ok(Some(head[156] == b'5'))
}

async fn copy_in(
    client: &Client,
    source: &str,
    destination: &str,
    archive_of: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    let (directory, tar) = if source == "-" {
        let mut tar = Vec::new();
        std::io::stdin().lock().take(crate::server::MAX_UPLOAD_BYTES as u64 + 1).read_to_end(&mut tar)?;
        (destination.to_string(), tar)
    } else {
        let local = Path::new(source);
        anyhow::ensure!(local.exists(), "{source} does not exist");
        let into_directory =
            destination.ends_with('/') || remote_is_dir(client, &archive_of(destination)).await? == Some(true);
        let (directory, name) = if into_directory {
            let name = local
                .canonicalize()?
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .context("the source has no name")?;
            (destination.trim_end_matches('/').to_string(), name)
        } else {
            let (parent, name) = destination.rsplit_once('/').context("the destination is not an absolute path")?;
            (if parent.is_empty() { "/".to_string() } else { parent.to_string() }, name.to_string())
        };
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        if local.is_dir() {
            builder.append_dir_all(&name, local)?;
        } else {
            builder.append_path_with_name(local, &name)?;
        }
        (if directory.is_empty() { "/".into() } else { directory }, builder.into_inner()?)
    };
    anyhow::ensure!(
        tar.len() <= crate::server::MAX_UPLOAD_BYTES,
        "the archive is over {} MiB, the most berth takes at once; copy it in parts",
        crate::server::MAX_UPLOAD_BYTES >> 20
    );
    let body = Body { content_type: "application/x-tar", bytes: tar.into() };
    client.send(Method::PUT, &archive_of(&directory), Some(body)).await?;
    Ok(())
}
