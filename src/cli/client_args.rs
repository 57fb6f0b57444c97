//! What every client command needs to reach the server: its address and
//! the token, from flags, the environment, or the server's state directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::api::{Kind, ObjectKey};
use crate::client::Client;
use crate::server::API_PREFIX;

/// Default server address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7777";

/// How to reach the server.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server: `http://HOST:PORT` or `unix:/PATH`.
    #[arg(long, value_name = "URL", env = "BERTH_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// The API token. Default: the `token` file of the state directory.
    #[arg(long, value_name = "TOKEN", env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's state directory, where its `token` file is.
    #[arg(long, value_name = "DIR", env = "BERTH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl ClientArgs {
    /// A client for the server. Without a readable token the requests go
    /// without one, and the server's 401 says where the token is.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = match &self.token {
            Some(token) => Some(token.clone()),
            None => {
                let dir = self.state_dir.clone().unwrap_or_else(super::serve::default_state_dir);
                crate::server::auth::read(&dir.join(crate::server::auth::TOKEN_FILE)).ok()
            }
        };
        Ok(Client::new(&self.server, token)?)
    }
}

/// Runs a client command's future on a small runtime.
pub fn block_on(future: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(future)
}

/// The API path of one object.
pub fn object_path(key: &ObjectKey) -> String {
    format!("{API_PREFIX}/namespaces/{}/{}/{}", key.namespace, key.kind.plural(), key.name)
}

/// The API path of a kind's list, in one namespace or all.
pub fn list_path(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("{API_PREFIX}/namespaces/{namespace}/{}", kind.plural()),
        None => format!("{API_PREFIX}/{}", kind.plural()),
    }
}

/// `container/web`, with the namespace when it is not `default`.
pub fn short_name(key: &ObjectKey) -> String {
    let kind = key.kind.as_str().to_ascii_lowercase();
    if key.namespace == crate::api::meta::DEFAULT_NAMESPACE {
        format!("{kind}/{}", key.name)
    } else {
        format!("{kind}/{} -n {}", key.name, key.namespace)
    }
}
