//! `berth kubeconfig`: prints a kubeconfig for the server's TLS listener,
//! so `berth kubeconfig > ~/.kube/berth && KUBECONFIG=~/.kube/berth kubectl
//! get ctr` works with nothing else to set up.
//!
//! It reads what `berth serve` left in its state directory: the URL it
//! bound (`tls/url`), the CA it issued its certificate from (`tls/ca.crt`)
//! and the API token. With an operator's certificate (`--tls-cert`) there is
//! no berth CA: `--ca FILE` names the CA to trust, else the system's roots
//! are trusted.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Args;

use crate::server::tls::{CA_CERT_FILE, TLS_DIR, URL_FILE};

/// Arguments of `berth kubeconfig`.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The server's state directory (its token, CA and TLS URL).
    #[arg(long, value_name = "DIR", env = "BERTH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The URL clients use, when it is not the address berth bound (a host
    /// name, or a forwarded port): `https://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The CA to trust instead of berth's own (with `serve --tls-cert`).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The context, cluster and user name in the kubeconfig.
    #[arg(long, value_name = "NAME", default_value = "berth")]
    pub name: String,
    /// The namespace the context starts in.
    #[arg(long, short = 'n', value_name = "NAMESPACE", default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// Prints the kubeconfig.
pub fn run(args: KubeconfigArgs) -> anyhow::Result<ExitCode> {
    let dir = args.state_dir.clone().unwrap_or_else(super::serve::default_state_dir);
    let tls = dir.join(TLS_DIR);
    let server = match &args.server {
        Some(url) => {
            anyhow::ensure!(url.starts_with("https://"), "--server {url}: kubectl needs an https:// URL");
            url.clone()
        }
        None => std::fs::read_to_string(tls.join(URL_FILE)).map(|text| text.trim().to_string()).with_context(|| {
            format!(
                "{} does not say where berth serves TLS: start `berth serve` (its --tls-listen must not be off) \
                     with this --state-dir, or pass --server https://HOST:PORT",
                tls.join(URL_FILE).display()
            )
        })?,
    };
    let ca_path = args.ca.clone().unwrap_or_else(|| tls.join(CA_CERT_FILE));
    let ca = match std::fs::read(&ca_path) {
        Ok(pem) => Some(base64::engine::general_purpose::STANDARD.encode(pem)),
        Err(_) if args.ca.is_none() => None,
        Err(e) => anyhow::bail!("--ca {}: cannot read it: {e}", ca_path.display()),
    };
    let token_path = dir.join(crate::server::auth::TOKEN_FILE);
    let token = crate::server::auth::read(&token_path)?;
    let mut cluster = serde_json::json!({ "server": server });
    if let Some(ca) = ca {
        cluster["certificate-authority-data"] = ca.into();
    }
    let name = &args.name;
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": cluster }],
        "users": [{ "name": name, "user": { "token": token } }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name, "namespace": args.namespace } }],
        "current-context": name,
        "preferences": {},
    });
    print!("{}", serde_yaml::to_string(&config).context("rendering the kubeconfig")?);
    Ok(ExitCode::SUCCESS)
}
