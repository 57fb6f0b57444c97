//! The encrypted-payload envelope, format v1: any request payload (YAML,
//! JSON or protobuf) sealed with a keyring key, with the channel it is
//! meant for, a random message id and the time it was issued in an
//! authenticated header. The same bytes travel over REST, MQTT, D-Bus and
//! POSIX queues.
//!
//! ```text
//! offset  size  field
//! 0       4     magic: 00 42 52 54 ("\0BRT")
//! 4       1     version: 1
//! 5       1     algorithm: 1 = AES-256-GCM (12-byte nonce),
//!               2 = ChaCha20-Poly1305 (12), 3 = XChaCha20-Poly1305 (24)
//! 6       1     format of the plaintext: 1 = text (YAML or JSON), 2 = protobuf
//! 7       1     key id length n, 1..=64
//! 8       n     key id, ASCII [A-Za-z0-9._-]
//! 8+n     2     channel length m, big-endian, 0..=1024
//! 10+n    m     channel, UTF-8 ("mqtt:berth/node1/cmd/apply", "rest:/apply",
//!               "dbus:ApplyBytes", "mq:/berth-requests"), or "*" for any
//! 10+n+m  16    message id (random bytes)
//! 26+n+m  8     issued-at: Unix time in milliseconds, big-endian u64
//! 34+n+m  12|24 nonce
//! ...     rest  ciphertext || 16-byte tag
//! ```
//!
//! The AAD is every byte before the ciphertext (magic through nonce), so
//! the key id, channel, id, time and format cannot be changed without the
//! tag failing. A NUL never starts YAML or JSON text and is no valid
//! protobuf tag, so [`is_envelope`] tells an envelope from a plain payload
//! by its first bytes alone. Envelopes are at most 16 MiB.
//!
//! [`open`] parses strictly and decrypts; it checks neither the channel
//! ([`check_channel`]) nor replay ([`super::replay`]): the executor does
//! both, after `open` has proved the header authentic.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, KeySizeUser, Nonce, Payload};

use super::keyring::{is_key_id_byte, key_id_problem, Key, Keyring, KEY_ID_MAX};

/// The first four bytes of every envelope.
pub(crate) const MAGIC: [u8; 4] = *b"\0BRT";

/// The format version this code reads and writes.
pub(crate) const VERSION: u8 = 1;

/// The largest envelope sealed or opened.
pub(crate) const MAX_ENVELOPE: usize = 16 << 20;

/// The longest channel, in bytes.
pub(crate) const MAX_CHANNEL: usize = 1024;

/// The channel that matches every channel.
pub(crate) const ANY_CHANNEL: &str = "*";

/// The length of every algorithm's tag.
const TAG_LEN: usize = 16;

/// What envelope operations return.
pub(crate) type Result<T, E = EnvelopeError> = std::result::Result<T, E>;

/// Whether `bytes` is an envelope (starts with the magic), rather than a
/// plaintext payload.
pub(crate) fn is_envelope(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// The AEAD an envelope is sealed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Algorithm {
    /// AES-256-GCM, 12-byte nonce: fastest where the CPU has AES instructions.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439), 12-byte nonce.
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305, 24-byte nonce: random nonces never plausibly repeat.
    XChaCha20Poly1305,
}

impl Algorithm {
    /// Every algorithm, by code.
    pub(crate) const ALL: [Algorithm; 3] =
        [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305, Algorithm::XChaCha20Poly1305];

    /// The name flags use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "aes-256-gcm",
            Algorithm::ChaCha20Poly1305 => "chacha20-poly1305",
            Algorithm::XChaCha20Poly1305 => "xchacha20-poly1305",
        }
    }

    /// The byte at offset 5.
    pub(crate) fn code(self) -> u8 {
        match self {
            Algorithm::Aes256Gcm => 1,
            Algorithm::ChaCha20Poly1305 => 2,
            Algorithm::XChaCha20Poly1305 => 3,
        }
    }

    fn from_code(code: u8) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.code() == code)
    }

    /// How long its nonce is.
    pub(crate) fn nonce_len(self) -> usize {
        match self {
            Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => 12,
            Algorithm::XChaCha20Poly1305 => 24,
        }
    }

    /// Seals (`seal`) or opens `data` with `key`; `None` when the tag fails
    /// (or, sealing, the plaintext is beyond the cipher's limit).
    fn crypt(self, key: &Key, nonce: &[u8], aad: &[u8], data: &[u8], seal: bool) -> Option<Vec<u8>> {
        match self {
            Algorithm::Aes256Gcm => crypt::<aes_gcm::Aes256Gcm>(key, nonce, aad, data, seal),
            Algorithm::ChaCha20Poly1305 => crypt::<chacha20poly1305::ChaCha20Poly1305>(key, nonce, aad, data, seal),
            Algorithm::XChaCha20Poly1305 => crypt::<chacha20poly1305::XChaCha20Poly1305>(key, nonce, aad, data, seal),
        }
    }
}

/// One AEAD's seal or open: the three algorithms differ only in the type.
fn crypt<A>(key: &Key, nonce: &[u8], aad: &[u8], data: &[u8], seal: bool) -> Option<Vec<u8>>
where
    A: Aead + KeyInit + KeySizeUser<KeySize = U32>,
{
    let cipher = A::new(key.bytes().into());
    let nonce = Nonce::<A>::try_from(nonce).ok()?;
    let payload = Payload { msg: data, aad };
    if seal { cipher.encrypt(&nonce, payload) } else { cipher.decrypt(&nonce, payload) }.ok()
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL.into_iter().find(|a| a.name() == text).ok_or_else(|| {
            format!("`{text}` is not an algorithm; use aes-256-gcm, chacha20-poly1305 or xchacha20-poly1305")
        })
    }
}

/// What the plaintext is, so the executor need not sniff it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PayloadFormat {
    /// YAML or JSON manifests (or a request in either).
    Text,
    /// A protobuf request.
    Protobuf,
}

impl PayloadFormat {
    /// Every format, by code.
    pub(crate) const ALL: [PayloadFormat; 2] = [PayloadFormat::Text, PayloadFormat::Protobuf];

    /// The name flags use: `text`, `protobuf`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PayloadFormat::Text => "text",
            PayloadFormat::Protobuf => "protobuf",
        }
    }

    /// The byte at offset 6.
    pub(crate) fn code(self) -> u8 {
        match self {
            PayloadFormat::Text => 1,
            PayloadFormat::Protobuf => 2,
        }
    }

    fn from_code(code: u8) -> Option<PayloadFormat> {
        PayloadFormat::ALL.into_iter().find(|f| f.code() == code)
    }
}

impl std::fmt::Display for PayloadFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PayloadFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PayloadFormat::ALL
            .into_iter()
            .find(|f| f.name() == text)
            .ok_or_else(|| format!("`{text}` is not a payload format; use text or protobuf"))
    }
}

/// The authenticated header of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Always [`VERSION`] for what [`open`] returns.
    pub(crate) version: u8,
    pub(crate) algorithm: Algorithm,
    pub(crate) format: PayloadFormat,
    /// The keyring key it is sealed with.
    pub(crate) key_id: String,
    /// Where it may be accepted, or [`ANY_CHANNEL`].
    pub(crate) channel: String,
    /// Random; what the replay guard remembers.
    pub(crate) message_id: [u8; 16],
    /// When the sender sealed it, for the replay window.
    pub(crate) issued_at_ms: u64,
}

impl Header {
    /// The message id in hex, as logs and errors show it.
    pub(crate) fn message_id_hex(&self) -> String {
        hex(&self.message_id)
    }
}

/// An envelope [`open`] authenticated and decrypted.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    pub(crate) header: Header,
    pub(crate) plaintext: Vec<u8>,
}

/// Why an envelope cannot be sealed or opened, or is not for this channel.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("the payload is {len} bytes; an encrypted payload is at most 16 MiB")]
    TooLarge { len: usize },
    #[error(
        "the payload is not an encrypted berth envelope: it does not start with the bytes 00 42 52 54 (\"\\0BRT\")"
    )]
    NotEnvelope,
    #[error("the envelope is {len} bytes and ends inside its {field} (bytes {start}..{end}): it was cut short")]
    Truncated { field: &'static str, start: usize, end: usize, len: usize },
    #[error("byte 4: envelope version {0} is not supported; this berth reads version 1 (upgrade berth, or seal with version 1)")]
    Version(u8),
    #[error("byte 5: algorithm {0} is unknown; 1 is AES-256-GCM, 2 ChaCha20-Poly1305, 3 XChaCha20-Poly1305")]
    UnknownAlgorithm(u8),
    #[error("byte 6: plaintext format {0} is unknown; 1 is text (YAML or JSON), 2 protobuf")]
    UnknownFormat(u8),
    #[error("byte 7: the key id length is {0}; key ids are 1-64 bytes")]
    KeyIdLength(u8),
    #[error(
        "byte {offset}: the key id has the byte 0x{byte:02x}; key ids are ASCII letters, digits, `.`, `_` and `-`"
    )]
    KeyIdByte { offset: usize, byte: u8 },
    #[error("bytes {offset}..{}: the channel length is {length}; channels are at most 1024 bytes", offset + 2)]
    ChannelLength { offset: usize, length: usize },
    #[error("byte {offset}: the channel is not UTF-8")]
    ChannelUtf8 { offset: usize },
    #[error("the payload is encrypted with key `{id}`, which the keyring does not have (it has {}); add that key to the keyring, or encrypt with one of these", known.join(", "))]
    UnknownKey { id: String, known: Vec<String> },
    #[error("the payload does not authenticate with key `{key_id}`: it was changed in transit, or encrypted with another key")]
    Authentication { key_id: String },
    #[error(
        "the payload is bound to channel `{bound}`; it came on `{actual}` (encrypt it for `{actual}`, or for `*`)"
    )]
    WrongChannel { bound: String, actual: String },
    #[error("cannot seal: {problem}")]
    InvalidKeyId { problem: String },
    #[error("cannot seal for channel {channel:?}: it is {length} bytes; channels are at most 1024")]
    ChannelTooLong { channel: String, length: usize },
    #[error("cannot seal {len} bytes: the envelope would be over 16 MiB")]
    PlaintextTooLarge { len: usize },
    #[error("the system's random number generator failed: {reason}")]
    Random { reason: String },
}

/// Seals `plaintext` with the keyring's primary key for `channel` (or
/// [`ANY_CHANNEL`]), with a random message id and nonce, issued now.
///
/// # Errors
///
/// The channel or plaintext is too long, or the system has no randomness.
pub(crate) fn seal(
    keyring: &Keyring,
    algorithm: Algorithm,
    format: PayloadFormat,
    channel: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut message_id = [0; 16];
    random(&mut message_id)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let header = Header {
        version: VERSION,
        algorithm,
        format,
        key_id: keyring.primary_id().to_string(),
        channel: channel.to_string(),
        message_id,
        issued_at_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
    };
    seal_with(keyring, &header, plaintext)
}

/// Seals `plaintext` with the header given (its `version` is ignored: v1
/// is written), with a random nonce: for tests and tools that need a
/// chosen key, id or time.
///
/// # Errors
///
/// The key id is not in the keyring, the channel or plaintext is too
/// long, or the system has no randomness.
pub(crate) fn seal_with(keyring: &Keyring, header: &Header, plaintext: &[u8]) -> Result<Vec<u8>> {
    if let Some(problem) = key_id_problem(&header.key_id) {
        return Err(EnvelopeError::InvalidKeyId { problem });
    }
    let key = keyring.get(&header.key_id).ok_or_else(|| unknown_key(keyring, &header.key_id))?;
    let channel = header.channel.as_bytes();
    if channel.len() > MAX_CHANNEL {
        return Err(EnvelopeError::ChannelTooLong { channel: header.channel.clone(), length: channel.len() });
    }
    let nonce_len = header.algorithm.nonce_len();
    let total = 4 + 4 + header.key_id.len() + 2 + channel.len() + 16 + 8 + nonce_len + plaintext.len() + TAG_LEN;
    if total > MAX_ENVELOPE {
        return Err(EnvelopeError::PlaintextTooLarge { len: plaintext.len() });
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, header.algorithm.code(), header.format.code()]);
    out.push(header.key_id.len() as u8); // 1..=64, checked above
    out.extend_from_slice(header.key_id.as_bytes());
    out.extend_from_slice(&(channel.len() as u16).to_be_bytes()); // ≤ 1024, checked above
    out.extend_from_slice(channel);
    out.extend_from_slice(&header.message_id);
    out.extend_from_slice(&header.issued_at_ms.to_be_bytes());
    let nonce_at = out.len();
    out.resize(nonce_at + nonce_len, 0);
    random(&mut out[nonce_at..])?;
    let sealed = header
        .algorithm
        .crypt(key, &out[nonce_at..], &out, plaintext, true)
        .ok_or(EnvelopeError::PlaintextTooLarge { len: plaintext.len() })?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Parses an envelope strictly, finds its key in `keyring` and decrypts
/// it. The channel and replay are not checked here.
///
/// # Errors
///
/// The bytes are too many, not an envelope, cut short or malformed (each
/// error names the byte or field); the key id is not in the keyring; or
/// the tag fails (changed bytes, or another key).
pub(crate) fn open(keyring: &Keyring, bytes: &[u8]) -> Result<Opened> {
    if bytes.len() > MAX_ENVELOPE {
        return Err(EnvelopeError::TooLarge { len: bytes.len() });
    }
    let mut reader = Reader { bytes, at: 0 };
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(EnvelopeError::NotEnvelope);
    }
    reader.take(4, "magic")?;
    let version = reader.byte("version")?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let code = reader.byte("algorithm")?;
    let algorithm = Algorithm::from_code(code).ok_or(EnvelopeError::UnknownAlgorithm(code))?;
    let code = reader.byte("plaintext format")?;
    let format = PayloadFormat::from_code(code).ok_or(EnvelopeError::UnknownFormat(code))?;
    let key_id_len = reader.byte("key id length")?;
    if key_id_len == 0 || usize::from(key_id_len) > KEY_ID_MAX {
        return Err(EnvelopeError::KeyIdLength(key_id_len));
    }
    let key_id_at = reader.at;
    let key_id = reader.take(usize::from(key_id_len), "key id")?;
    if let Some(at) = key_id.iter().position(|&b| !is_key_id_byte(b)) {
        return Err(EnvelopeError::KeyIdByte { offset: key_id_at + at, byte: key_id[at] });
    }
    let key_id = String::from_utf8_lossy(key_id).into_owned(); // ASCII, checked above
    let length_at = reader.at;
    let channel_len = usize::from(u16::from_be_bytes(reader.array("channel length")?));
    if channel_len > MAX_CHANNEL {
        return Err(EnvelopeError::ChannelLength { offset: length_at, length: channel_len });
    }
    let channel_at = reader.at;
    let channel = reader.take(channel_len, "channel")?;
    let channel = std::str::from_utf8(channel)
        .map_err(|e| EnvelopeError::ChannelUtf8 { offset: channel_at + e.valid_up_to() })?
        .to_string();
    let message_id = reader.array("message id")?;
    let issued_at_ms = u64::from_be_bytes(reader.array("issued-at time")?);
    let nonce = reader.take(algorithm.nonce_len(), "nonce")?;
    let aad = &bytes[..reader.at];
    if bytes.len() - reader.at < TAG_LEN {
        return Err(reader.truncated(TAG_LEN, "ciphertext and tag"));
    }
    let sealed = &bytes[reader.at..];
    let key = keyring.get(&key_id).ok_or_else(|| unknown_key(keyring, &key_id))?;
    let plaintext = algorithm
        .crypt(key, nonce, aad, sealed, false)
        .ok_or_else(|| EnvelopeError::Authentication { key_id: key_id.clone() })?;
    let header = Header { version, algorithm, format, key_id, channel, message_id, issued_at_ms };
    Ok(Opened { header, plaintext })
}

/// Whether an envelope bound to `header.channel` may be accepted on
/// `actual` (`mqtt:<topic>`, `rest:/apply`, …): the same channel, or `*`.
///
/// # Errors
///
/// [`EnvelopeError::WrongChannel`] naming both.
pub(crate) fn check_channel(header: &Header, actual: &str) -> Result<()> {
    if header.channel == ANY_CHANNEL || header.channel == actual {
        return Ok(());
    }
    Err(EnvelopeError::WrongChannel { bound: header.channel.clone(), actual: actual.to_string() })
}

fn unknown_key(keyring: &Keyring, id: &str) -> EnvelopeError {
    EnvelopeError::UnknownKey {
        id: id.to_string(),
        known: keyring.ids().into_iter().map(|id| format!("`{id}`")).collect(),
    }
}

fn random(into: &mut [u8]) -> Result<()> {
    getrandom::fill(into).map_err(|e| EnvelopeError::Random { reason: e.to_string() })
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A cursor over the header that names the field it ran out in.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8]> {
        let end = self.at + len;
        let taken = self.bytes.get(self.at..end).ok_or_else(|| self.truncated(len, field))?;
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.take(1, field)?[0])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn truncated(&self, len: usize, field: &'static str) -> EnvelopeError {
        EnvelopeError::Truncated { field, start: self.at, end: self.at + len, len: self.bytes.len() }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A keyring of `ids`, each key 32 bytes of its index plus `salt`.
    fn keyring(ids: &[&str], salt: u8) -> Keyring {
        use base64::Engine as _;
        let mut text = format!("primary: {}\nkeys:\n", ids[0]);
        for (n, id) in ids.iter().enumerate() {
            let key = base64::engine::general_purpose::STANDARD.encode([n as u8 ^ salt; 32]);
            text.push_str(&format!("  {id}: {key}\n"));
        }
        Keyring::parse(&text, Path::new("test")).unwrap()
    }

    fn header(algorithm: Algorithm, channel: &str) -> Header {
        Header {
            version: VERSION,
            algorithm,
            format: PayloadFormat::Text,
            key_id: "k1".to_string(),
            channel: channel.to_string(),
            message_id: [7; 16],
            issued_at_ms: 1_700_000_000_123,
        }
    }

    const PLAINTEXT: &[u8] = b"apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: app}\n";

    #[test]
    fn every_algorithm_and_format_round_trips() {
        let ring = keyring(&["k1", "k0"], 0);
        for algorithm in Algorithm::ALL {
            for format in PayloadFormat::ALL {
                let sealed = seal(&ring, algorithm, format, "mqtt:berth/node1/cmd/apply", PLAINTEXT).unwrap();
                assert!(is_envelope(&sealed));
                let opened = open(&ring, &sealed).unwrap();
                assert_eq!(opened.plaintext, PLAINTEXT);
                let header = opened.header;
                assert_eq!((header.version, header.algorithm, header.format), (1, algorithm, format));
                assert_eq!((header.key_id.as_str(), header.channel.as_str()), ("k1", "mqtt:berth/node1/cmd/apply"));
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
                assert!(header.issued_at_ms <= now && header.issued_at_ms + 60_000 > now);
            }
        }
        let empty = seal(&ring, Algorithm::Aes256Gcm, PayloadFormat::Text, "", b"").unwrap();
        assert_eq!(open(&ring, &empty).unwrap().plaintext, b"");
    }

    #[test]
    fn the_bytes_are_laid_out_as_documented() {
        let ring = keyring(&["k1"], 0);
        for algorithm in Algorithm::ALL {
            let sealed = seal_with(&ring, &header(algorithm, "rest:/apply"), PLAINTEXT).unwrap();
            let (n, m) = (2, "rest:/apply".len());
            assert_eq!(&sealed[..4], b"\0BRT");
            assert_eq!(&sealed[4..8], [1, algorithm.code(), 1, n as u8]);
            assert_eq!(&sealed[8..8 + n], b"k1");
            assert_eq!(&sealed[8 + n..10 + n], (m as u16).to_be_bytes());
            assert_eq!(&sealed[10 + n..10 + n + m], b"rest:/apply");
            assert_eq!(&sealed[10 + n + m..26 + n + m], [7; 16]);
            assert_eq!(&sealed[26 + n + m..34 + n + m], 1_700_000_000_123u64.to_be_bytes());
            assert_eq!(sealed.len(), 34 + n + m + algorithm.nonce_len() + PLAINTEXT.len() + 16);
            let opened = open(&ring, &sealed).unwrap();
            assert_eq!(opened.header, header(algorithm, "rest:/apply"));
            assert_eq!(opened.header.message_id_hex(), "07".repeat(16));
        }
        assert_eq!(Algorithm::XChaCha20Poly1305.code(), 3);
        assert_eq!(PayloadFormat::Protobuf.code(), 2);
    }

    #[test]
    fn nonces_and_ids_differ_between_seals() {
        let ring = keyring(&["k1"], 0);
        let a = seal(&ring, Algorithm::ChaCha20Poly1305, PayloadFormat::Text, "*", PLAINTEXT).unwrap();
        let b = seal(&ring, Algorithm::ChaCha20Poly1305, PayloadFormat::Text, "*", PLAINTEXT).unwrap();
        assert_ne!(open(&ring, &a).unwrap().header.message_id, open(&ring, &b).unwrap().header.message_id);
        assert_ne!(a[a.len() - 50..], b[b.len() - 50..]);
    }

    #[test]
    fn changing_any_byte_is_refused() {
        let ring = keyring(&["k1", "k2"], 0);
        for algorithm in Algorithm::ALL {
            let sealed = seal(&ring, algorithm, PayloadFormat::Text, "dbus:ApplyBytes", PLAINTEXT).unwrap();
            for at in 0..sealed.len() {
                for flip in [0x01, 0x80] {
                    let mut changed = sealed.clone();
                    changed[at] ^= flip;
                    let error = open(&ring, &changed).expect_err("a changed byte is refused");
                    let channel = 12..12 + "dbus:ApplyBytes".len();
                    if channel.contains(&at) {
                        let refused =
                            matches!(error, EnvelopeError::Authentication { .. } | EnvelopeError::ChannelUtf8 { .. });
                        assert!(refused, "byte {at}: {error}");
                    } else if at >= channel.end {
                        // id, time, nonce, ciphertext, tag
                        assert!(matches!(error, EnvelopeError::Authentication { .. }), "byte {at}: {error}");
                    }
                }
            }
            // k1 → k2: a key the keyring has, but not the one it was sealed with.
            let mut other = sealed.clone();
            other[9] = b'2';
            assert_eq!(
                open(&ring, &other).unwrap_err().to_string(),
                "the payload does not authenticate with key `k2`: it was changed in transit, or encrypted with another key"
            );
        }
    }

    #[test]
    fn another_key_under_the_same_id_does_not_authenticate() {
        let sealed = seal(&keyring(&["k1"], 0), Algorithm::Aes256Gcm, PayloadFormat::Text, "*", PLAINTEXT).unwrap();
        let said = open(&keyring(&["k1"], 9), &sealed).unwrap_err().to_string();
        assert_eq!(
            said,
            "the payload does not authenticate with key `k1`: it was changed in transit, or encrypted with another key"
        );
    }

    #[test]
    fn an_unknown_key_id_names_the_ids_the_keyring_has() {
        let sealed = seal(&keyring(&["k1"], 0), Algorithm::Aes256Gcm, PayloadFormat::Text, "*", PLAINTEXT).unwrap();
        let said = open(&keyring(&["k5", "k4"], 0), &sealed).unwrap_err().to_string();
        assert!(
            said.starts_with(
                "the payload is encrypted with key `k1`, which the keyring does not have (it has `k5`, `k4`)"
            ),
            "{said}"
        );
        let said = seal_with(&keyring(&["k5"], 0), &header(Algorithm::Aes256Gcm, "*"), b"").unwrap_err().to_string();
        assert!(said.contains("key `k1`"), "{said}");
    }

    #[test]
    fn every_truncation_is_a_clean_error_naming_the_field() {
        let ring = keyring(&["k1"], 0);
        let sealed = seal_with(&ring, &header(Algorithm::XChaCha20Poly1305, "mq:/q"), PLAINTEXT).unwrap();
        for len in 0..sealed.len() {
            let said = open(&ring, &sealed[..len]).expect_err("a cut envelope is refused").to_string();
            if len < 34 + 2 + 5 + 24 + 16 {
                assert!(
                    said.starts_with(&format!("the envelope is {len} bytes and ends inside its ")),
                    "{len}: {said}"
                );
            }
        }
        let field = |len: usize| match open(&ring, &sealed[..len]) {
            Err(EnvelopeError::Truncated { field, start, end, .. }) => (field, start, end),
            other => panic!("{len}: {other:?}"),
        };
        assert_eq!(field(2), ("magic", 0, 4));
        assert_eq!(field(4), ("version", 4, 5));
        assert_eq!(field(9), ("key id", 8, 10));
        assert_eq!(field(11), ("channel length", 10, 12));
        assert_eq!(field(13), ("channel", 12, 17));
        assert_eq!(field(20), ("message id", 17, 33));
        assert_eq!(field(40), ("issued-at time", 33, 41));
        assert_eq!(field(41), ("nonce", 41, 65));
        assert_eq!(field(70), ("ciphertext and tag", 65, 81));
    }

    #[test]
    fn malformed_headers_name_the_byte() {
        let ring = keyring(&["k1"], 0);
        let sealed = seal_with(&ring, &header(Algorithm::Aes256Gcm, "mqtt:x"), PLAINTEXT).unwrap();
        let said = |at: usize, value: &[u8]| {
            let mut changed = sealed.clone();
            changed[at..at + value.len()].copy_from_slice(value);
            open(&ring, &changed).unwrap_err().to_string()
        };
        assert!(said(4, &[2]).starts_with("byte 4: envelope version 2 is not supported"));
        assert!(said(5, &[9]).starts_with("byte 5: algorithm 9 is unknown"));
        assert!(said(6, &[0]).starts_with("byte 6: plaintext format 0 is unknown"));
        assert!(said(7, &[0]).starts_with("byte 7: the key id length is 0"));
        assert!(said(7, &[65]).starts_with("byte 7: the key id length is 65"));
        assert!(said(9, b"/").starts_with("byte 9: the key id has the byte 0x2f"));
        assert!(said(10, &1025u16.to_be_bytes()).starts_with("bytes 10..12: the channel length is 1025"));
        assert!(
            said(10, &1000u16.to_be_bytes()).starts_with("the envelope is"),
            "a length past the end is a cut envelope"
        );
        assert_eq!(said(13, &[0xff]), "byte 13: the channel is not UTF-8");
        assert!(said(0, b"apiV").starts_with("the payload is not an encrypted berth envelope"));
        assert!(!is_envelope(b"apiVersion: v1") && !is_envelope(b"{\"kind\":1}") && !is_envelope(b"\x0a\x03abc"));
    }

    #[test]
    fn oversized_envelopes_and_channels_are_refused() {
        let ring = keyring(&["k1"], 0);
        let mut huge = MAGIC.to_vec();
        huge.resize(MAX_ENVELOPE + 1, 0);
        assert!(matches!(open(&ring, &huge), Err(EnvelopeError::TooLarge { .. })));
        let too_big = vec![b'a'; MAX_ENVELOPE];
        assert!(matches!(
            seal(&ring, Algorithm::Aes256Gcm, PayloadFormat::Text, "*", &too_big),
            Err(EnvelopeError::PlaintextTooLarge { .. })
        ));
        let long = "c".repeat(MAX_CHANNEL + 1);
        assert!(matches!(
            seal(&ring, Algorithm::Aes256Gcm, PayloadFormat::Text, &long, b""),
            Err(EnvelopeError::ChannelTooLong { .. })
        ));
        let longest = seal(&ring, Algorithm::Aes256Gcm, PayloadFormat::Text, &long[1..], b"").unwrap();
        assert_eq!(open(&ring, &longest).unwrap().header.channel.len(), MAX_CHANNEL);
    }

    #[test]
    fn the_channel_binding_accepts_its_channel_and_any() {
        let bound = header(Algorithm::Aes256Gcm, "mqtt:berth/node1/cmd/apply");
        assert!(check_channel(&bound, "mqtt:berth/node1/cmd/apply").is_ok());
        let said = check_channel(&bound, "rest:/apply").unwrap_err().to_string();
        assert_eq!(said, "the payload is bound to channel `mqtt:berth/node1/cmd/apply`; it came on `rest:/apply` (encrypt it for `rest:/apply`, or for `*`)");
        assert!(check_channel(&header(Algorithm::Aes256Gcm, "*"), "dbus:ApplyBytes").is_ok());
        assert!(check_channel(&header(Algorithm::Aes256Gcm, ""), "rest:/apply").is_err());
    }

    #[test]
    fn names_parse_back() {
        for algorithm in Algorithm::ALL {
            assert_eq!(algorithm.name().parse::<Algorithm>(), Ok(algorithm));
        }
        assert!("aes"
            .parse::<Algorithm>()
            .unwrap_err()
            .contains("aes-256-gcm, chacha20-poly1305 or xchacha20-poly1305"));
        assert_eq!("protobuf".parse::<PayloadFormat>(), Ok(PayloadFormat::Protobuf));
        assert!("yaml".parse::<PayloadFormat>().is_err());
    }
}
