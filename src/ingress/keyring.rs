//! The keyring: the named 32-byte keys encrypted payloads are sealed and
//! opened with, read from a small YAML file that only its owner may read.
//!
//! One key is the *primary*: new envelopes are sealed with it. The others
//! still open envelopes that name them, so a key is rotated by adding a
//! fresh primary (`berth keygen --rotate FILE`), moving every sender to it,
//! and only then deleting the old key from the file.
//!
//! ```yaml
//! # berth keyring: key ids to 32-byte keys, base64. Keep it 0600.
//! primary: k1
//! keys:
//!   k1: <base64 of 32 bytes>
//!   k0: <base64>
//! ```
//!
//! Key bytes never appear in an error, a `Debug` string or a log line, and
//! are zeroed when the keyring is dropped. Errors name the file, the line
//! and column where they can, and the key id.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use indexmap::IndexMap;
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

/// How long a key is, in bytes (every algorithm of the envelope uses 256-bit keys).
pub(crate) const KEY_LEN: usize = 32;

/// The longest key id.
pub(crate) const KEY_ID_MAX: usize = 64;

/// The largest keyring file read: a keyring holds a handful of keys.
const MAX_FILE: u64 = 1 << 20;

/// The first line of every keyring berth writes.
const HEADER: &str = "# berth keyring: key ids to 32-byte keys, base64. Keep it 0600.\n";

/// What keyring operations return.
pub(crate) type Result<T, E = KeyringError> = std::result::Result<T, E>;

/// Whether `byte` may appear in a key id: ASCII letters, digits, `.`, `_`, `-`.
pub(crate) fn is_key_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

/// Why `id` is not a key id, or `None` when it is one.
pub(crate) fn key_id_problem(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > KEY_ID_MAX {
        return Some(format!("key id {id:?} is {} bytes long; use 1-{KEY_ID_MAX}", id.len()));
    }
    let (at, bad) = id.char_indices().find(|&(_, c)| !c.is_ascii() || !is_key_id_byte(c as u8))?;
    Some(format!("key id {id:?} has {bad:?} at byte {at}; key ids are ASCII letters, digits, `.`, `_` and `-`"))
}

/// One 256-bit key. Its `Debug` never shows it; it is zeroed on drop.
#[derive(Clone)]
pub(crate) struct Key(Zeroizing<[u8; KEY_LEN]>);

impl Key {
    /// A fresh random key.
    pub(crate) fn generate() -> Result<Key> {
        let mut key = Key(Zeroizing::new([0; KEY_LEN]));
        getrandom::fill(key.0.as_mut()).map_err(|e| KeyringError::Random { reason: e.to_string() })?;
        Ok(key)
    }

    /// The key's bytes, for the cipher.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Key ids and their keys, one of them the primary.
#[derive(Clone, Debug)]
pub(crate) struct Keyring {
    /// The id new envelopes are sealed with; always one of `keys`.
    primary: String,
    /// In file order, so a rewritten file keeps the order its owner chose.
    keys: IndexMap<String, Key>,
}

/// Where in a keyring file a problem is: the file, and the line and column
/// when they are known.
#[derive(Clone, Debug)]
pub(crate) struct Place {
    path: PathBuf,
    position: Option<(usize, usize)>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        Ok(())
    }
}

/// Why a keyring cannot be read, made or changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyringError {
    #[error("{}: cannot read the keyring", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: the keyring is readable or writable by other users (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{}: the keyring is over {} KiB; a keyring holds a few keys", path.display(), MAX_FILE / 1024)]
    TooLarge { path: PathBuf },
    #[error("{at}: {message}")]
    Syntax { at: Place, message: String },
    #[error("{at}: {problem}")]
    BadKeyId { at: Place, problem: String },
    #[error("{at}: key `{id}` is not base64 (standard alphabet, padded): {problem}")]
    BadBase64 { at: Place, id: String, problem: String },
    #[error("{at}: key `{id}` is {found} bytes; a key is exactly {KEY_LEN} bytes (44 base64 characters): make one with `berth keygen`")]
    KeyLength { at: Place, id: String, found: usize },
    #[error("{at}: the keyring has no keys; make one with `berth keygen`")]
    NoKeys { at: Place },
    #[error("{at}: primary `{primary}` is not one of the keys ({})", known.join(", "))]
    UnknownPrimary { at: Place, primary: String, known: Vec<String> },
    #[error("{problem}")]
    InvalidId { problem: String },
    #[error("the keyring already has a key `{id}`; choose another id")]
    DuplicateId { id: String },
    #[error("the system's random number generator failed: {reason}")]
    Random { reason: String },
}

/// The file as written, before its keys are decoded.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    primary: String,
    #[serde(deserialize_with = "unique_keys")]
    keys: IndexMap<String, String>,
}

/// The `keys` map, refusing an id listed twice (serde would keep the last
/// silently, and a sender's key would vanish).
fn unique_keys<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<IndexMap<String, String>, D::Error> {
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = IndexMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of key ids to base64 keys")
        }

        fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            let mut keys = IndexMap::new();
            while let Some((id, value)) = map.next_entry::<String, String>()? {
                if keys.contains_key(&id) {
                    return Err(serde::de::Error::custom(format!("key `{id}` is listed twice; key ids are unique")));
                }
                keys.insert(id, value);
            }
            Ok(keys)
        }
    }
    deserializer.deserialize_map(Unique)
}

impl Keyring {
    /// Reads a keyring file, refusing one that group or others may read or
    /// write (the key material would be theirs too).
    ///
    /// # Errors
    ///
    /// The file cannot be read, is too open or too large, is not YAML of the
    /// keyring's shape, or holds a bad key id, base64 or key length, or a
    /// primary that names no key.
    pub(crate) fn load(path: &Path) -> Result<Keyring> {
        let read = |source| KeyringError::Read { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        // The mode of the file opened, not of whatever the path names later.
        let mode = file.metadata().map_err(read)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyringError::Permissions { path: path.to_path_buf(), mode });
        }
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(read)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(KeyringError::TooLarge { path: path.to_path_buf() });
        }
        let text = std::str::from_utf8(&bytes).map_err(|e| KeyringError::Syntax {
            at: Place { path: path.to_path_buf(), position: None },
            message: format!("the keyring is not UTF-8 (at byte {})", e.valid_up_to()),
        })?;
        Keyring::parse(text, path)
    }

    /// Parses a keyring's text; `path` is only named in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Keyring> {
        let place = |position| Place { path: path.to_path_buf(), position };
        let file: KeyringFile = serde_yaml::from_str(text).map_err(|e| KeyringError::Syntax {
            at: place(e.location().map(|l| (l.line(), l.column()))),
            message: yaml_message(&e),
        })?;
        let KeyringFile { primary, keys: mut encoded } = file;
        let mut keys = IndexMap::with_capacity(encoded.len());
        let result = (|| {
            for (id, value) in &encoded {
                let at = place(locate_key(text, id));
                if let Some(problem) = key_id_problem(id) {
                    return Err(KeyringError::BadKeyId { at, problem });
                }
                let bytes =
                    Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|e| {
                        KeyringError::BadBase64 { at: at.clone(), id: id.clone(), problem: describe_base64(&e) }
                    })?);
                if bytes.len() != KEY_LEN {
                    return Err(KeyringError::KeyLength { at, id: id.clone(), found: bytes.len() });
                }
                let mut key = Zeroizing::new([0; KEY_LEN]);
                key.copy_from_slice(&bytes);
                keys.insert(id.clone(), Key(key));
            }
            Ok(())
        })();
        encoded.values_mut().for_each(Zeroize::zeroize);
        result?;
        let at = place(locate_primary(text));
        if keys.is_empty() {
            return Err(KeyringError::NoKeys { at });
        }
        if let Some(problem) = key_id_problem(&primary) {
            return Err(KeyringError::BadKeyId { at, problem: format!("primary: {problem}") });
        }
        if !keys.contains_key(&primary) {
            return Err(KeyringError::UnknownPrimary { at, primary, known: keys.keys().cloned().collect() });
        }
        Ok(Keyring { primary, keys })
    }

    /// A keyring of one fresh random key, `id`, its primary.
    ///
    /// # Errors
    ///
    /// `id` is not a key id, or the system has no randomness.
    pub(crate) fn generate(id: &str) -> Result<Keyring> {
        if let Some(problem) = key_id_problem(id) {
            return Err(KeyringError::InvalidId { problem });
        }
        let mut keys = IndexMap::new();
        keys.insert(id.to_string(), Key::generate()?);
        Ok(Keyring { primary: id.to_string(), keys })
    }

    /// Rotation: adds a fresh random key `id` and makes it the primary; the
    /// other keys stay, so what was sealed with them still opens.
    ///
    /// # Errors
    ///
    /// `id` is not a key id or is taken, or the system has no randomness.
    pub(crate) fn with_new_primary(mut self, id: &str) -> Result<Keyring> {
        if let Some(problem) = key_id_problem(id) {
            return Err(KeyringError::InvalidId { problem });
        }
        if self.keys.contains_key(id) {
            return Err(KeyringError::DuplicateId { id: id.to_string() });
        }
        // The new key first: the file lists the primary at the top.
        let mut keys = IndexMap::with_capacity(self.keys.len() + 1);
        keys.insert(id.to_string(), Key::generate()?);
        keys.extend(std::mem::take(&mut self.keys));
        Ok(Keyring { primary: id.to_string(), keys })
    }

    /// The first `kN` after every `kN` the keyring has (`k1` when it has none).
    pub(crate) fn next_free_id(&self) -> String {
        let highest = self.keys.keys().filter_map(|id| id.strip_prefix('k')?.parse::<u64>().ok()).max();
        let mut n = highest.map_or(1, |n| n.saturating_add(1));
        while self.keys.contains_key(&format!("k{n}")) {
            n = n.wrapping_add(1);
        }
        format!("k{n}")
    }

    /// The keyring as its file says it, key material included.
    pub(crate) fn to_yaml(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::from(HEADER));
        out.push_str(&format!("primary: {}\nkeys:\n", yaml_scalar(&self.primary)));
        for (id, key) in &self.keys {
            let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.bytes()));
            out.push_str("  ");
            out.push_str(&yaml_scalar(id));
            out.push_str(": ");
            out.push_str(&encoded);
            out.push('\n');
        }
        out
    }

    /// The id new envelopes are sealed with.
    pub(crate) fn primary_id(&self) -> &str {
        &self.primary
    }

    /// Every key id, in file order.
    pub(crate) fn ids(&self) -> Vec<&str> {
        self.keys.keys().map(String::as_str).collect()
    }

    /// The key called `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&Key> {
        self.keys.get(id)
    }
}

/// A key id as a YAML scalar: plain when YAML reads it back as that
/// string, single-quoted otherwise (`'1'`, `'-x'`, `'true'`).
fn yaml_scalar(id: &str) -> String {
    const WORDS: [&str; 12] = ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf", "infinity"];
    let plain =
        id.starts_with(|c: char| c.is_ascii_alphabetic()) && !WORDS.iter().any(|word| id.eq_ignore_ascii_case(word));
    if plain {
        id.to_string()
    } else {
        format!("'{id}'")
    }
}

/// serde_yaml's message without the position it appends (the error shows
/// it first, as `FILE:line:column`) and without quoted values.
fn yaml_message(error: &serde_yaml::Error) -> String {
    let message = error.to_string();
    let message = match (error.location(), message.rsplit_once(" at line ")) {
        (Some(_), Some((before, _))) => before.to_string(),
        _ => message,
    };
    redact_quoted(&message)
}

/// serde_yaml quotes the value it could not take ("invalid type: string
/// \"…\""); in a keyring that value may be a key, so it is left out.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    out.push_str(parts.next().unwrap_or_default());
    let mut inside = true;
    for part in parts {
        out.push('"');
        out.push_str(if inside { "…" } else { part });
        inside = !inside;
    }
    out
}

/// What is wrong with some base64, without the offending character (it is
/// part of a key).
fn describe_base64(error: &base64::DecodeError) -> String {
    match error {
        base64::DecodeError::InvalidByte(at, _) => format!("an invalid character at position {at}"),
        base64::DecodeError::InvalidLength(length) => format!("{length} characters is not a base64 length"),
        base64::DecodeError::InvalidLastSymbol(at, _) => format!("an invalid last character at position {at}"),
        base64::DecodeError::InvalidPadding => "the `=` padding is wrong".to_string(),
    }
}

/// The line and column of `id:` under `keys:`, when the file is in block
/// style (as berth writes it); `None` otherwise.
fn locate_key(text: &str, id: &str) -> Option<(usize, usize)> {
    let mut in_keys = false;
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let content = line.trim_start();
        if indent == 0 && !content.is_empty() && !content.starts_with('#') {
            in_keys = content.starts_with("keys:");
            continue;
        }
        let unquoted = content.trim_start_matches(['\'', '"']);
        if in_keys
            && unquoted.strip_prefix(id).is_some_and(|rest| rest.trim_start_matches(['\'', '"']).starts_with(':'))
        {
            return Some((number + 1, indent + 1));
        }
    }
    None
}

/// The line and column of `primary:`.
fn locate_primary(text: &str) -> Option<(usize, usize)> {
    text.lines().position(|line| line.starts_with("primary:")).map(|number| (number + 1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn parse(text: &str) -> Result<Keyring> {
        Keyring::parse(text, Path::new("keys.yaml"))
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn a_keyring_parses_and_keeps_file_order() {
        let ring = parse(&format!("primary: k1\nkeys:\n  k1: {K1}\n  k0: {K1}\n")).unwrap();
        assert_eq!(ring.primary_id(), "k1");
        assert_eq!(ring.ids(), ["k1", "k0"]);
        assert_eq!(ring.get(ring.primary_id()).unwrap().bytes()[31], 31);
        assert!(ring.get("k2").is_none());
    }

    #[test]
    fn generated_and_rotated_keyrings_write_yaml_that_reads_back() {
        let ring = Keyring::generate("k1").unwrap();
        let text = ring.to_yaml();
        assert!(text.starts_with(HEADER), "{}", *text);
        let again = parse(&text).unwrap();
        assert_eq!(again.get(again.primary_id()).unwrap().bytes(), ring.get(ring.primary_id()).unwrap().bytes());

        let rotated = again.with_new_primary("k2").unwrap();
        assert_eq!(rotated.primary_id(), "k2");
        assert_eq!(rotated.ids(), ["k2", "k1"]);
        assert_eq!(rotated.get("k1").unwrap().bytes(), ring.get(ring.primary_id()).unwrap().bytes());
        assert_ne!(rotated.get(rotated.primary_id()).unwrap().bytes(), ring.get(ring.primary_id()).unwrap().bytes());
        assert_eq!(rotated.next_free_id(), "k3");
        let reread = parse(&rotated.to_yaml()).unwrap();
        assert_eq!(reread.ids(), ["k2", "k1"]);
    }

    #[test]
    fn ids_yaml_would_read_as_other_things_are_quoted_and_read_back() {
        for id in ["1", "-x", ".5", "true", "No", "null", "k-1.b_c", "_"] {
            let ring = Keyring::generate(id).unwrap();
            let again = parse(&ring.to_yaml()).unwrap_or_else(|e| panic!("{id}: {e}\n{}", *ring.to_yaml()));
            assert_eq!(again.ids(), [id]);
            assert_eq!(again.primary_id(), id);
        }
    }

    #[test]
    fn the_next_free_id_follows_the_highest_kn() {
        let ring = Keyring::generate("main").unwrap();
        assert_eq!(ring.next_free_id(), "k1");
        let ring = ring.with_new_primary("k7").unwrap();
        assert_eq!(ring.next_free_id(), "k8");
        assert!(matches!(ring.with_new_primary("k7"), Err(KeyringError::DuplicateId { .. })));
    }

    #[test]
    fn bad_ids_are_refused_with_the_rule() {
        for id in ["", "a b", "ключ", &"k".repeat(65)] {
            let problem = key_id_problem(id).unwrap_or_else(|| panic!("{id:?} accepted"));
            assert!(problem.contains("key id"), "{problem}");
        }
        assert!(key_id_problem(&"k".repeat(64)).is_none());
        assert!(Keyring::generate("a/b").unwrap_err().to_string().contains("letters, digits"));
        let said = error(&format!("primary: k1\nkeys:\n  k1: {K1}\n  'a b': {K1}\n"));
        assert!(said.starts_with("keys.yaml:4:3: key id \"a b\" has ' '"), "{said}");
    }

    #[test]
    fn bad_base64_and_wrong_lengths_name_the_key_and_its_line() {
        let said = error("primary: k1\nkeys:\n  k1: not*base64\n");
        assert!(said.starts_with("keys.yaml:3:3: key `k1` is not base64"), "{said}");
        assert!(!said.contains('*'), "the key's characters are not shown: {said}");
        let said = error("primary: k1\nkeys:\n  k0: AAAA\n");
        assert_eq!(said, "keys.yaml:3:3: key `k0` is 3 bytes; a key is exactly 32 bytes (44 base64 characters): make one with `berth keygen`");
    }

    #[test]
    fn yaml_errors_have_positions_and_unknown_fields_are_refused() {
        let said = error(&format!("primary: k1\nkeys:\n  k1: {K1}\nextra: 1\n"));
        assert_eq!(said, "keys.yaml:4:1: unknown field `extra`, expected `primary` or `keys`");
        let said = error("primary: k1\nkeys: [\n");
        assert!(said.starts_with("keys.yaml:"), "{said}");
        let said = error(&format!("primary: k1\nkeys:\n  k1: {K1}\n  k1: {K1}\n"));
        assert_eq!(said, "keys.yaml:3:3: keys: key `k1` is listed twice; key ids are unique");
    }

    #[test]
    fn a_value_in_the_wrong_place_is_not_echoed() {
        let said = error(&format!("primary: k1\nkeys: \"{K1}\"\n"));
        assert!(!said.contains(K1) && !said.contains("AAEC"), "{said}");
        assert!(said.starts_with("keys.yaml:2:"), "{said}");
    }

    #[test]
    fn the_primary_must_name_a_key() {
        let said = error(&format!("primary: k9\nkeys:\n  k1: {K1}\n  k0: {K1}\n"));
        assert_eq!(said, "keys.yaml:1:1: primary `k9` is not one of the keys (k1, k0)");
        assert!(error("primary: k1\nkeys: {}\n").contains("no keys"));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let ring = parse(&format!("primary: k1\nkeys:\n  k1: {K1}\n")).unwrap();
        let shown = format!("{ring:?}");
        assert!(shown.contains("Key(<redacted>)"), "{shown}");
        assert!(!shown.contains("AAEC") && !shown.contains("31"), "{shown}");
    }

    #[test]
    fn a_keyring_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.yaml");
        std::fs::write(&path, Keyring::generate("k1").unwrap().to_yaml().as_bytes()).unwrap();
        for mode in [0o644, 0o640, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let said = Keyring::load(&path).unwrap_err().to_string();
            assert!(said.contains(&format!("run `chmod 600 {}`", path.display())), "{said}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Keyring::load(&path).unwrap().primary_id(), "k1");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Keyring::load(&path).is_ok());
    }

    #[test]
    fn a_huge_or_missing_keyring_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'#'; (MAX_FILE + 1) as usize]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(Keyring::load(&path), Err(KeyringError::TooLarge { .. })));
        let missing = Keyring::load(&dir.path().join("none.yaml")).unwrap_err().to_string();
        assert!(missing.ends_with("none.yaml: cannot read the keyring"), "{missing}");
    }
}
