//! The `berth serve` flags of the ingress: the keyring, the replay window
//! and where plaintext is refused.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::message::Transport;
use super::security::Security;

/// Ingress flags of `berth serve`.
#[derive(Debug, Args)]
pub struct IngressArgs {
    /// Keyring of encrypted payloads (YAML, mode 0600; `berth keygen`
    /// makes one): key ids to 32-byte keys, the primary one encrypting
    /// replies. Without it, encrypted payloads are refused.
    #[arg(long, value_name = "FILE", env = "BERTH_KEYRING")]
    pub keyring: Option<PathBuf>,
    /// Refuse plaintext requests on these transports (rest: `POST /apply`;
    /// mqtt, dbus, mq), comma-separated. Needs --keyring.
    #[arg(long, value_name = "TRANSPORT,...", value_delimiter = ',')]
    pub require_encryption: Vec<Transport>,
    /// How old (or how far ahead of this host's clock) an encrypted
    /// payload may be; its message id is remembered that long, so a replay
    /// is refused.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub replay_window: Duration,
    #[command(flatten)]
    pub mqtt: super::mqtt::MqttArgs,
    #[command(flatten)]
    pub mq: super::mq::MqArgs,
    #[command(flatten)]
    pub dbus: super::dbus::DbusArgs,
}

impl IngressArgs {
    /// The security settings the flags name (reads the keyring).
    pub fn security(&self) -> Result<Security, String> {
        let required: BTreeSet<Transport> = self.require_encryption.iter().copied().collect();
        Security::load(self.keyring.as_deref(), self.replay_window, required)
    }
}
