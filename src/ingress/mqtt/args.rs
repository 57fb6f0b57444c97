//! The `berth serve` flags of the MQTT transport, and the connection
//! settings they resolve to (the broker address, TLS roots, credentials
//! read from their file): every mistake is reported at start, naming the
//! flag.

use std::path::PathBuf;

use clap::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::topics::check_node;

/// MQTT flags of `berth serve`.
#[derive(Debug, Args)]
pub struct MqttArgs {
    /// Take commands from this MQTT broker: mqtt://HOST[:PORT] (1883) or
    /// mqtts://HOST[:PORT] (TLS, 8883). Off unless given.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// This host's name in MQTT topics (berth/<node>/...). Default: the
    /// host name.
    #[arg(long, value_name = "NAME", requires = "mqtt")]
    pub node: Option<String>,
    /// The MQTT client id. Default: berth-<node>.
    #[arg(long, value_name = "ID", requires = "mqtt")]
    pub mqtt_client_id: Option<String>,
    /// File holding the broker's user name and password as USER:PASSWORD
    /// on its first line (kept out of the command line and the logs).
    #[arg(long, value_name = "FILE", requires = "mqtt")]
    pub mqtt_credentials: Option<PathBuf>,
    /// PEM file of the CA certificates an mqtts:// broker is checked
    /// against. Default: the system's (/etc/ssl/certs/ca-certificates.crt).
    #[arg(long, value_name = "FILE", requires = "mqtt")]
    pub mqtt_ca: Option<PathBuf>,
    /// The largest MQTT packet berth takes or sends (a manifest and its
    /// reply must fit): bytes, or with KiB/MiB.
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub mqtt_max_packet: u32,
}

/// Where the broker is and how to reach it.
#[derive(Clone, Debug)]
pub(crate) struct MqttConfig {
    /// The broker's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// TLS roots, for mqtts://.
    pub tls: Option<Vec<CertificateDer<'static>>>,
    /// This host's topic level.
    pub node: String,
    /// The client id.
    pub client_id: String,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// The largest packet taken or sent.
    pub max_packet: u32,
}

impl MqttArgs {
    /// The settings the flags name, or `None` when MQTT is off.
    pub(crate) fn config(&self) -> Result<Option<MqttConfig>, String> {
        let Some(url) = &self.mqtt else { return Ok(None) };
        let (tls, host, port) = parse_url(url)?;
        let node = match &self.node {
            Some(node) => node.clone(),
            None => crate::server::tls::host_name().ok_or("--node: the host name is unknown; give --node NAME")?,
        };
        check_node(&node)?;
        let tls = tls.then(|| self.roots()).transpose()?;
        let credentials = self.mqtt_credentials.as_ref().map(|file| read_credentials(file)).transpose()?;
        let client_id = self.mqtt_client_id.clone().unwrap_or_else(|| format!("berth-{node}"));
        if client_id.is_empty() || client_id.len() > 256 {
            return Err("--mqtt-client-id: give 1 to 256 characters".into());
        }
        Ok(Some(MqttConfig { host, port, tls, node, client_id, credentials, max_packet: self.mqtt_max_packet }))
    }

    fn roots(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let (flag, path) = match &self.mqtt_ca {
            Some(path) => ("--mqtt-ca", path.clone()),
            None => ("the system's CA certificates", PathBuf::from("/etc/ssl/certs/ca-certificates.crt")),
        };
        let certificates: Vec<_> = CertificateDer::pem_file_iter(&path)
            .and_then(|iter| iter.collect::<Result<_, _>>())
            .map_err(|e| format!("{flag} {}: cannot read PEM certificates: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!("{flag} {}: no PEM certificate in it", path.display()));
        }
        Ok(certificates)
    }
}

/// `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`: (TLS, host, port).
fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let wrong = |why: &str| format!("--mqtt {url}: {why}; give mqtt://HOST[:PORT] or mqtts://HOST[:PORT]");
    let (scheme, rest) = url.split_once("://").ok_or_else(|| wrong("no scheme"))?;
    let (tls, default_port) = match scheme {
        "mqtt" | "tcp" => (false, 1883),
        "mqtts" | "ssl" => (true, 8883),
        other => return Err(wrong(&format!("`{other}://` is not an MQTT scheme"))),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(wrong("credentials do not go in the URL (it shows in `ps`); use --mqtt-credentials FILE"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(wrong("a broker URL has no path or query"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
            (host, port.parse::<u16>().map_err(|_| wrong(&format!("`{port}` is not a port")))?)
        }
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(wrong("no host"));
    }
    Ok((tls, host.to_string(), port))
}

fn read_credentials(file: &std::path::Path) -> Result<(String, String), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("--mqtt-credentials {}: cannot read it: {e}", file.display()))?;
    let line = text.lines().next().unwrap_or_default();
    let (user, password) = line
        .split_once(':')
        .filter(|(user, _)| !user.is_empty())
        .ok_or_else(|| format!("--mqtt-credentials {}: the first line is not USER:PASSWORD", file.display()))?;
    Ok((user.to_string(), password.to_string()))
}

/// A size in bytes, optionally with KiB, MiB (or K, M).
pub(crate) fn parse_size(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 =
        number.parse().map_err(|_| format!("`{text}` is not a size; give e.g. 262144, 512KiB or 4MiB"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        other => return Err(format!("`{other}` is not a size unit; use KiB or MiB")),
    };
    let bytes = number.saturating_mul(factor);
    match u32::try_from(bytes) {
        Ok(bytes) if (1024..=256 << 20).contains(&bytes) => Ok(bytes),
        _ => Err(format!("`{text}`: give 1KiB to 256MiB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_name_scheme_host_and_port() {
        assert_eq!(parse_url("mqtt://127.0.0.1:1884").unwrap(), (false, "127.0.0.1".into(), 1884));
        assert_eq!(parse_url("mqtts://broker.lan").unwrap(), (true, "broker.lan".into(), 8883));
        assert_eq!(parse_url("tcp://[::1]:1883/").unwrap(), (false, "::1".into(), 1883));
        assert_eq!(parse_url("mqtt://[::1]").unwrap(), (false, "::1".into(), 1883));
        assert!(parse_url("http://x").unwrap_err().contains("not an MQTT scheme"));
        assert!(parse_url("mqtt://u:p@x").unwrap_err().contains("--mqtt-credentials"));
        assert!(parse_url("mqtt://x:port").unwrap_err().contains("not a port"));
        assert!(parse_url("mqtt://x/topic").is_err());
        assert!(parse_url("broker:1883").is_err());
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("262144").unwrap(), 262_144);
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("12").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn credentials_come_from_the_first_line() {
        let dir = std::env::temp_dir().join(format!("berth-mqtt-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("creds");
        std::fs::write(&file, "device:s3:cr3t\nignored\n").unwrap();
        assert_eq!(read_credentials(&file).unwrap(), ("device".into(), "s3:cr3t".into()));
        std::fs::write(&file, "no-colon\n").unwrap();
        assert!(read_credentials(&file).unwrap_err().contains("USER:PASSWORD"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
