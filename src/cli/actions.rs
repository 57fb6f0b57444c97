//! `berth restart | suspend | resume NAME`: the dashboard's Container
//! buttons on the command line. Each is recorded in the audit log with who
//! asked and `--reason`.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use crate::api::{Kind, ObjectKey};
use crate::client::Body;
use crate::server::ActionDone;

use super::client_args::{block_on, object_path, ClientArgs};

/// Arguments of `berth restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The Container.
    pub name: String,
    /// Restart only this replica (removed, then created again); without it,
    /// every replica is replaced in the Container's update strategy.
    #[arg(long, value_name = "N")]
    pub replica: Option<u32>,
    #[command(flatten)]
    pub common: ActionArgs,
}

/// What every action takes.
#[derive(Debug, Args)]
pub struct ActionArgs {
    /// Namespace.
    #[arg(short, long, default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Why: recorded in the audit log (`berth events`).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Which action.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// `berth suspend`.
    Suspend,
    /// `berth resume`.
    Resume,
}

/// Runs `berth restart`.
pub fn restart(args: RestartArgs) -> anyhow::Result<ExitCode> {
    send(&args.name, "restart", args.replica, args.common)
}

/// Runs `berth suspend` or `berth resume`.
pub fn run(action: Action, name: &str, args: ActionArgs) -> anyhow::Result<ExitCode> {
    let verb = match action {
        Action::Suspend => "suspend",
        Action::Resume => "resume",
    };
    send(name, verb, None, args)
}

fn send(name: &str, verb: &str, replica: Option<u32>, args: ActionArgs) -> anyhow::Result<ExitCode> {
    let key = ObjectKey::new(Kind::Container, &args.namespace, name);
    let mut body = serde_json::Map::new();
    if let Some(reason) = &args.reason {
        body.insert("reason".into(), reason.clone().into());
    }
    if let Some(replica) = replica {
        body.insert("replica".into(), replica.into());
    }
    let body = Body { content_type: "application/json", bytes: serde_json::Value::Object(body).to_string().into() };
    let client = args.client.client()?;
    let path = format!("{}/{verb}", object_path(&key));
    block_on(async move {
        let done: ActionDone = client.json(Method::POST, &path, Some(body)).await?;
        println!("{}: {}", done.object, done.message);
        Ok(ExitCode::SUCCESS)
    })
}
