//! The API over TLS. kubectl (and client-go under it) never sends a bearer
//! token over plain `http://`, so the Kubernetes clients need this listener.
//!
//! Either the operator's own certificate (`--tls-cert`, `--tls-key`), or a
//! CA berth makes once in `<state-dir>/tls/` (kept for ten years, so the
//! kubeconfigs that trust it keep working) and a serving certificate it
//! issues from it at every start, for `localhost`, `127.0.0.1`, `::1`, the
//! host name, the listen address and every `--tls-san`. Re-issuing at start
//! means a changed name or address never needs a manual step and the
//! serving certificate never expires under a running host (it is valid for
//! a year; berth restarts more often than that, or the next start renews it).
//! The bound URL is written to `tls/url` for `berth kubeconfig`.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Datelike, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::start_error::{ensure, Doing as _, StartError};

/// The directory under the state directory.
pub const TLS_DIR: &str = "tls";
/// The CA certificate a kubeconfig trusts.
pub const CA_CERT_FILE: &str = "ca.crt";
/// Where `berth serve` writes the URL it serves TLS on.
pub const URL_FILE: &str = "url";
const CA_KEY_FILE: &str = "ca.key";
const CA_NAME: &str = "berth local CA";

/// The TLS options of `berth serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct TlsArgs {
    /// Where the API also listens over TLS (`ADDRESS:PORT`), or `off`. This
    /// is the listener for kubectl and other Kubernetes clients (see
    /// `berth kubeconfig`).
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:7443", env = "BERTH_TLS_LISTEN",
          value_parser = parse_tls_listen)]
    pub tls_listen: TlsListen,
    /// The serving certificate chain (PEM). Without it berth issues one from
    /// its own CA in `<state-dir>/tls/`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// More names or addresses for berth's own serving certificate, besides
    /// localhost, 127.0.0.1, ::1, the host name and the listen address.
    #[arg(long, value_name = "NAME|IP", value_delimiter = ',', value_parser = parse_san)]
    pub tls_san: Vec<String>,
}

/// `--tls-listen`: an address, or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsListen(pub Option<SocketAddr>);

fn parse_tls_listen(text: &str) -> Result<TlsListen, String> {
    if text == "off" {
        return Ok(TlsListen(None));
    }
    text.parse()
        .map(|address| TlsListen(Some(address)))
        .map_err(|_| format!("`{text}` is neither ADDRESS:PORT (e.g. 127.0.0.1:7443) nor `off`"))
}

/// A `--tls-san`: an IP address, or a DNS name (a leading `*.` allowed).
fn parse_san(text: &str) -> Result<String, String> {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(text.to_string());
    }
    let name = text.strip_prefix("*.").unwrap_or(text);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("`{text}` is neither an IP address nor a DNS name such as berth.example.com"))
    }
}

/// The serving side, ready for a listener.
pub struct ServingTls {
    /// Accepts TLS connections.
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl ServingTls {
    /// Loads the operator's certificate, or issues one from berth's CA
    /// (creating the CA on first start).
    pub fn prepare(args: &TlsArgs, state_dir: &Path, listen: SocketAddr) -> crate::start_error::Result<ServingTls> {
        let (chain, key) = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => (read_chain(cert)?, read_key(key)?),
            _ => issue(state_dir, &names(listen, &args.tls_san))?,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .doing(|| "TLS: no protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .doing(|| "--tls-cert and --tls-key do not make a usable pair (is the key the certificate's?)")?;
        // HTTP/1.1 only: watches and log follows are long responses on one
        // connection each, which is what the connection limits count.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServingTls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) })
    }
}

/// Records the bound URL for `berth kubeconfig`.
pub fn write_url(state_dir: &Path, address: SocketAddr) -> crate::start_error::Result<()> {
    let dir = state_dir.join(TLS_DIR);
    std::fs::create_dir_all(&dir).doing(|| format!("cannot create {}", dir.display()))?;
    let host = if address.ip().is_unspecified() { "127.0.0.1".to_string() } else { address.ip().to_string() };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let url = format!("https://{host}:{}\n", address.port());
    let path = dir.join(URL_FILE);
    std::fs::write(&path, url).doing(|| format!("cannot write {}", path.display()))
}

/// The names berth's own serving certificate carries.
fn names(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Some(host) = host_name() {
        names.push(host);
    }
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

pub(crate) fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or fails.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return None;
    }
    let end = buffer.iter().position(|b| *b == 0)?;
    let name = std::str::from_utf8(&buffer[..end]).ok()?.to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

fn read_chain(path: &Path) -> crate::start_error::Result<Vec<CertificateDer<'static>>> {
    let chain: Vec<_> = CertificateDer::pem_file_iter(path)
        .doing(|| format!("--tls-cert {}: cannot read it", path.display()))?
        .collect::<Result<_, _>>()
        .doing(|| format!("--tls-cert {}: not a PEM certificate chain", path.display()))?;
    ensure(!chain.is_empty(), || format!("--tls-cert {}: the file holds no CERTIFICATE block", path.display()))?;
    Ok(chain)
}

fn read_key(path: &Path) -> crate::start_error::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .doing(|| format!("--tls-key {}: not a PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display()))
}

/// Valid from yesterday (clocks differ a little) for `years`.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let (then, now) = (Utc::now() - chrono::Duration::days(1), Utc::now());
    params.not_before = rcgen::date_time_ymd(then.year(), then.month() as u8, then.day() as u8);
    params.not_after = rcgen::date_time_ymd(now.year() + years, now.month() as u8, now.day().min(28) as u8);
}

/// The CA's parameters: the same every time, so a stored CA key signs as
/// the CA it made (the issuer name and key id come from these and the key).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// The CA key, made with its certificate on first start.
fn ca_key(dir: &Path) -> crate::start_error::Result<KeyPair> {
    let key_path = dir.join(CA_KEY_FILE);
    let cert_path = dir.join(CA_CERT_FILE);
    if key_path.exists() && cert_path.exists() {
        let pem = std::fs::read_to_string(&key_path).doing(|| format!("cannot read {}", key_path.display()))?;
        return KeyPair::from_pem(&pem).doing(|| {
            format!("{} is not a private key; remove {} to make a new CA", key_path.display(), dir.display())
        });
    }
    let key = KeyPair::generate().doing(|| "cannot generate the CA key")?;
    let mut params = ca_params();
    set_validity(&mut params, 10);
    let cert = params.self_signed(&key).doing(|| "cannot make the CA certificate")?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).doing(|| format!("cannot write {}", cert_path.display()))?;
    tracing::info!(ca = %cert_path.display(), "made berth's TLS CA (clients trust it through `berth kubeconfig`)");
    Ok(key)
}

/// Issues a serving certificate for `names` from berth's CA.
fn issue(
    state_dir: &Path,
    names: &[String],
) -> crate::start_error::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let dir = state_dir.join(TLS_DIR);
    std::fs::create_dir_all(&dir).doing(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .doing(|| format!("cannot restrict {} to mode 0700", dir.display()))?;
    let issuer = Issuer::new(ca_params(), ca_key(&dir)?);
    let mut params =
        CertificateParams::new(names.to_vec()).doing(|| "--tls-san: a name is not a valid DNS name or IP address")?;
    params.distinguished_name.push(DnType::CommonName, "berth");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, 1);
    let key = KeyPair::generate().doing(|| "cannot generate the serving key")?;
    let cert = params.signed_by(&key, &issuer).doing(|| "cannot issue the serving certificate")?;
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| StartError::Failed { doing: "cannot encode the serving key".into(), source: e.into() })?;
    Ok((vec![cert.der().clone()], key))
}

fn write_private(path: &Path, bytes: &[u8]) -> crate::start_error::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .doing(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).doing(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_every_start_issues_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let names = names("127.0.0.1:7443".parse().unwrap(), &["berth.example".into(), "10.1.2.3".into()]);
        assert!(names.contains(&"localhost".into()) && names.contains(&"berth.example".into()));
        issue(dir.path(), &names).unwrap();
        let ca = std::fs::read(dir.path().join("tls/ca.crt")).unwrap();
        let mode = std::fs::metadata(dir.path().join("tls/ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        issue(dir.path(), &names).unwrap();
        assert_eq!(std::fs::read(dir.path().join("tls/ca.crt")).unwrap(), ca, "the CA stays");
        assert!(parse_san("not a name!").is_err());
        assert!(parse_san("-bad.example").is_err());
        assert_eq!(parse_san("Berth.Example").unwrap(), "berth.example");
        assert!(parse_san("*.berth.example").is_ok() && parse_san("fd00::1").is_ok());
    }
}
