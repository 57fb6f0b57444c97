//! `berth encrypt` and `berth decrypt`: seal a payload into an envelope
//! (see `docs/encryption.md`) for any transport, or open one, offline, with
//! a keyring file. They are how an operator makes a test payload, checks
//! what a sender produced, and how scripts without a crypto library send
//! encrypted requests.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::builder::PossibleValue;
use clap::Args;

use crate::ingress::envelope::{self, Algorithm, PayloadFormat, MAX_ENVELOPE};
use crate::ingress::keyring::Keyring;

/// Arguments of `berth encrypt`.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// The keyring; the payload is sealed with its primary key.
    #[arg(long, value_name = "FILE", env = "BERTH_KEYRING")]
    pub keyring: PathBuf,
    /// The payload (YAML, JSON or protobuf); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub input: PathBuf,
    /// The only channel it will be accepted on (`mqtt:TOPIC`, `rest:/apply`,
    /// `dbus:MEMBER`, `mq:QUEUE`), or `*` for any.
    #[arg(long, value_name = "CHANNEL", default_value = envelope::ANY_CHANNEL)]
    pub channel: String,
    /// The cipher.
    #[arg(long, value_enum, default_value_t = Algorithm::XChaCha20Poly1305)]
    pub(crate) algorithm: Algorithm,
    /// What the payload is.
    #[arg(long, value_enum, default_value_t = PayloadFormat::Text)]
    pub(crate) format: PayloadFormat,
    /// Write the envelope here instead of standard output (`-`).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Arguments of `berth decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The keyring holding the key the envelope names.
    #[arg(long, value_name = "FILE", env = "BERTH_KEYRING")]
    pub keyring: PathBuf,
    /// The envelope; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub input: PathBuf,
    /// Refuse an envelope that is not bound to this channel (or to `*`).
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// Write the plaintext here (mode 0600) instead of standard output (`-`).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl clap::ValueEnum for Algorithm {
    fn value_variants<'a>() -> &'a [Self] {
        &Algorithm::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

impl clap::ValueEnum for PayloadFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &PayloadFormat::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

/// Writes the envelope of the input.
pub fn run_encrypt(args: EncryptArgs) -> anyhow::Result<ExitCode> {
    let keyring = Keyring::load(&args.keyring)?;
    let plaintext = read_input(&args.input)?;
    let sealed = envelope::seal(&keyring, args.algorithm, args.format, &args.channel, &plaintext)
        .with_context(|| shown(&args.input))?;
    write_output(args.output.as_deref(), &sealed, true, 0o644)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the plaintext of the input envelope; its header on stderr.
pub fn run_decrypt(args: DecryptArgs) -> anyhow::Result<ExitCode> {
    let keyring = Keyring::load(&args.keyring)?;
    let sealed = read_input(&args.input)?;
    let opened = envelope::open(&keyring, &sealed).with_context(|| shown(&args.input))?;
    let header = &opened.header;
    if let Some(channel) = &args.channel {
        envelope::check_channel(header, channel).with_context(|| shown(&args.input))?;
    }
    let issued = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(header.issued_at_ms));
    eprintln!(
        "key {}, {}, {}, channel {}, message id {}, issued at {}",
        header.key_id,
        header.algorithm,
        header.format,
        header.channel,
        header.message_id_hex(),
        issued.map_or_else(|| header.issued_at_ms.to_string(), |t| humantime::format_rfc3339_millis(t).to_string()),
    );
    write_output(args.output.as_deref(), &opened.plaintext, header.format == PayloadFormat::Protobuf, 0o600)?;
    Ok(ExitCode::SUCCESS)
}

fn shown(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        path.display().to_string()
    }
}

/// The file or standard input, refused beyond an envelope's limit.
fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    let limit = MAX_ENVELOPE as u64 + 1;
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|file| file.take(limit).read_to_end(&mut bytes))
    };
    read.with_context(|| format!("{}: cannot read", shown(path)))?;
    anyhow::ensure!(
        bytes.len() <= MAX_ENVELOPE,
        "{}: over 16 MiB; an encrypted payload is at most 16 MiB",
        shown(path)
    );
    Ok(bytes)
}

/// Writes to the file (created with `mode`, or truncated) or to standard
/// output, which must not be a terminal when the bytes are binary.
fn write_output(path: Option<&Path>, bytes: &[u8], binary: bool, mode: u32) -> anyhow::Result<()> {
    match path.filter(|p| p.as_os_str() != "-") {
        Some(path) => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .and_then(|mut file| file.write_all(bytes))
            .with_context(|| format!("{}: cannot write", path.display())),
        None => {
            let mut stdout = std::io::stdout().lock();
            anyhow::ensure!(
                !(binary && stdout.is_terminal()),
                "the output is binary and standard output is a terminal; write it to a file with -o FILE, or redirect (> FILE)"
            );
            stdout.write_all(bytes).and_then(|()| stdout.flush()).context("cannot write to standard output")
        }
    }
}
