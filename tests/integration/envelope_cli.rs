//! `berth keygen`, `encrypt` and `decrypt` against `tests/clients/envelope.py`,
//! an implementation of the envelope written from `docs/encryption.md` on
//! Python's `cryptography`: what either seals the other opens (AES-256-GCM
//! and ChaCha20-Poly1305; `cryptography` has no XChaCha20), and what is
//! changed, sealed with another key or sent on another channel is refused
//! with a message that says so. Rotation keeps old keys opening, and a
//! keyring others may read is refused.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;
use predicates::prelude::*;

use crate::support::repo_path;
use crate::support::tools::venv_python;

const MANIFEST: &[u8] = b"apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata:\n  name: app\nspec: {}\n";
const CHANNEL: &str = "mqtt:berth/node1/cmd/apply";

fn berth() -> Command {
    Command::cargo_bin("berth").expect("the berth binary is built")
}

/// A temporary directory with a fresh keyring `keys.yaml` (primary `k1`).
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = Dir { dir: tempfile::tempdir().unwrap() };
        berth().args(["keygen", "-o"]).arg(dir.path("keys.yaml")).assert().success().stdout("");
        dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `berth encrypt` of `plaintext` with `keyring` and `args`: the envelope.
    fn encrypt(&self, keyring: &str, plaintext: &[u8], args: &[&str]) -> Vec<u8> {
        let assert = berth()
            .args(["encrypt", "-f", "-", "--keyring"])
            .arg(self.path(keyring))
            .args(args)
            .write_stdin(plaintext)
            .assert()
            .success();
        assert.get_output().stdout.clone()
    }

    /// `berth decrypt` of the file `name` with `keyring` and `args`.
    fn decrypt(&self, keyring: &str, name: &str, args: &[&str]) -> assert_cmd::assert::Assert {
        berth()
            .arg("decrypt")
            .arg("--keyring")
            .arg(self.path(keyring))
            .arg("-f")
            .arg(self.path(name))
            .args(args)
            .assert()
    }
}

/// Runs `envelope.py` with `args` on `input`; its output, or a panic with its error.
fn python(python: &Path, args: &[&std::ffi::OsStr], input: &[u8]) -> (Vec<u8>, String) {
    use std::io::Write as _;
    let mut child = Process::new(python)
        .arg(repo_path("tests/clients/envelope.py"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "envelope.py {args:?}: {stderr}");
    (output.stdout, stderr)
}

fn os(text: &str) -> &std::ffi::OsStr {
    text.as_ref()
}

#[test]
fn envelopes_python_seals_open_with_berth_decrypt() {
    let Some(py) = venv_python() else { return };
    let dir = Dir::new();
    let keyring = dir.path("keys.yaml");
    for algorithm in ["aes-256-gcm", "chacha20-poly1305"] {
        let args = [
            os("encrypt"),
            os("--keyring"),
            keyring.as_os_str(),
            os("--algorithm"),
            os(algorithm),
            os("--channel"),
            os(CHANNEL),
        ];
        let (sealed, _) = python(&py, &args, MANIFEST);
        dir.write("sealed.bin", &sealed);
        dir.decrypt("keys.yaml", "sealed.bin", &["--channel", CHANNEL])
            .success()
            .stdout(MANIFEST)
            .stderr(predicate::str::starts_with(format!("key k1, {algorithm}, text, channel {CHANNEL}, message id ")));
    }
}

#[test]
fn envelopes_berth_encrypt_seals_open_in_python() {
    let Some(py) = venv_python() else { return };
    let dir = Dir::new();
    let keyring = dir.path("keys.yaml");
    for (algorithm, format) in [("aes-256-gcm", "text"), ("chacha20-poly1305", "protobuf")] {
        let sealed = dir.encrypt(
            "keys.yaml",
            MANIFEST,
            &["--algorithm", algorithm, "--format", format, "--channel", "rest:/apply"],
        );
        let args = [os("decrypt"), os("--keyring"), keyring.as_os_str(), os("--channel"), os("rest:/apply")];
        let (plaintext, header) = python(&py, &args, &sealed);
        assert_eq!(plaintext, MANIFEST);
        let header: serde_json::Value = serde_json::from_str(&header).unwrap();
        assert_eq!(header["algorithm"], algorithm);
        assert_eq!(header["format"], format);
        assert_eq!((&header["key_id"], &header["channel"]), (&"k1".into(), &"rest:/apply".into()), "{header}");
    }
}

#[test]
fn a_changed_byte_another_keyring_or_another_channel_is_refused_clearly() {
    let dir = Dir::new();
    let sealed = dir.encrypt("keys.yaml", MANIFEST, &["--channel", CHANNEL]);
    let mut changed = sealed.clone();
    *changed.last_mut().unwrap() ^= 1;
    let shown = dir.write("changed.bin", &changed).display().to_string();
    dir.decrypt("keys.yaml", "changed.bin", &[]).code(1).stdout("").stderr(format!(
        "error: {shown}: the payload does not authenticate with key `k1`: it was changed in transit, or encrypted with another key\n"
    ));

    let shown = dir.write("sealed.bin", &sealed).display().to_string();
    // Another keyring with a key of the same id: the tag fails.
    berth().args(["keygen", "-o"]).arg(dir.path("other.yaml")).assert().success();
    dir.decrypt("other.yaml", "sealed.bin", &[])
        .code(1)
        .stderr(predicate::str::contains("does not authenticate with key `k1`"));
    // A keyring without the id: the ids it has, never key material.
    berth().args(["keygen", "--id", "site-b", "-o"]).arg(dir.path("b.yaml")).assert().success();
    dir.decrypt("b.yaml", "sealed.bin", &[]).code(1).stderr(predicate::str::contains(
        "the payload is encrypted with key `k1`, which the keyring does not have (it has `site-b`)",
    ));
    dir.decrypt("keys.yaml", "sealed.bin", &["--channel", "rest:/apply"]).code(1).stdout("").stderr(format!(
        "error: {shown}: the payload is bound to channel `{CHANNEL}`; it came on `rest:/apply` (encrypt it for `rest:/apply`, or for `*`)\n"
    ));
    // Cut short, and not an envelope at all.
    dir.write("cut.bin", &sealed[..20]);
    dir.decrypt("keys.yaml", "cut.bin", &[]).code(1).stderr(predicate::str::contains("ends inside its channel"));
    dir.write("plain.yaml", MANIFEST);
    dir.decrypt("keys.yaml", "plain.yaml", &[])
        .code(1)
        .stderr(predicate::str::contains("not an encrypted berth envelope"));
}

#[test]
fn a_python_envelope_changed_in_transit_is_refused() {
    let Some(py) = venv_python() else { return };
    let dir = Dir::new();
    let keyring = dir.path("keys.yaml");
    let args = [os("encrypt"), os("--keyring"), keyring.as_os_str(), os("--algorithm"), os("chacha20-poly1305")];
    let (mut sealed, _) = python(&py, &args, MANIFEST);
    sealed[13] ^= 0x20; // the message id (after "k1" and the channel "*"): authenticated, not encrypted
    dir.write("changed.bin", &sealed);
    dir.decrypt("keys.yaml", "changed.bin", &[])
        .code(1)
        .stderr(predicate::str::contains("does not authenticate with key `k1`"));
}

#[test]
fn keygen_rotate_adds_a_primary_and_keeps_old_keys_decrypting() {
    let dir = Dir::new();
    dir.write("old.bin", &dir.encrypt("keys.yaml", MANIFEST, &[]));
    berth().args(["keygen", "--rotate"]).arg(dir.path("keys.yaml")).assert().success().stdout("").stderr("k2\n");
    let mode = std::fs::metadata(dir.path("keys.yaml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(dir.path("keys.yaml")).unwrap();
    assert!(text.contains("primary: k2\nkeys:\n  k2: ") && text.contains("\n  k1: "), "{text}");
    assert_eq!(std::fs::read_dir(dir.dir.path()).unwrap().count(), 2, "no temporary file is left");

    dir.decrypt("keys.yaml", "old.bin", &[]).success().stdout(MANIFEST).stderr(predicate::str::starts_with("key k1,"));
    dir.write("new.bin", &dir.encrypt("keys.yaml", MANIFEST, &[]));
    dir.decrypt("keys.yaml", "new.bin", &[]).success().stdout(MANIFEST).stderr(predicate::str::starts_with("key k2,"));

    berth()
        .args(["keygen", "--rotate"])
        .arg(dir.path("keys.yaml"))
        .args(["--id", "next"])
        .assert()
        .success()
        .stderr("next\n");
    berth()
        .args(["keygen", "--rotate"])
        .arg(dir.path("keys.yaml"))
        .args(["--id", "k1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the keyring already has a key `k1`; choose another id"));
    dir.decrypt("keys.yaml", "old.bin", &[]).success().stdout(MANIFEST);
}

#[test]
fn keygen_output_loads_and_a_keyring_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let assert = berth().args(["keygen", "--id", "main"]).assert().success();
    let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        text.starts_with(
            "# berth keyring: key ids to 32-byte keys, base64. Keep it 0600.\nprimary: main\nkeys:\n  main: "
        ),
        "{text}"
    );
    let keyring = dir.path().join("keys.yaml");
    std::fs::write(&keyring, &text).unwrap();
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shown = keyring.display();
    berth()
        .args(["encrypt", "-f", "-", "--keyring"])
        .arg(&keyring)
        .write_stdin(MANIFEST)
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "error: {shown}: the keyring is readable or writable by other users (mode 0644); run `chmod 600 {shown}`\n"
        ));
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sealed =
        berth().args(["encrypt", "-f", "-", "--keyring"]).arg(&keyring).write_stdin(MANIFEST).assert().success();
    assert!(sealed.get_output().stdout.starts_with(b"\0BRT\x01\x03\x01\x04main"));
    berth()
        .args(["keygen", "-o"])
        .arg(&keyring)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("must not exist yet"));
    berth().args(["keygen", "--id", "a b"]).assert().code(1).stderr(predicate::str::contains("key id \"a b\" has ' '"));
}
