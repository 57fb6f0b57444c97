//! `berth logs`: a Container replica's output, followed with `-f`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use futures::StreamExt;

use crate::api::{Kind, ObjectKey};

use super::client_args::{block_on, object_path, ClientArgs};

/// Arguments of `berth logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The Container's name.
    pub name: String,
    /// Namespace.
    #[arg(short, long, default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Keep streaming until the replica stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Which replica.
    #[arg(long, default_value_t = 0)]
    pub replica: u32,
    /// Lines of history.
    #[arg(long, default_value_t = 100)]
    pub tail: usize,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `berth logs`.
pub fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let key = ObjectKey::new(Kind::Container, &args.namespace, &args.name);
    let client = args.client.client()?;
    block_on(async move {
        let path =
            format!("{}/logs?follow={}&replica={}&tail={}", object_path(&key), args.follow, args.replica, args.tail);
        let mut body = client.stream(&path).await?;
        let mut stdout = std::io::stdout().lock();
        while let Some(chunk) = body.next().await {
            stdout.write_all(&chunk?)?;
            stdout.flush()?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
