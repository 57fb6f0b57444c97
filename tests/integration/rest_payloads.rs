//! Encrypted and protobuf payloads on `POST /apply`, from clients that
//! are not berth: a Python urllib client (`tests/clients/rest.py`) sealing
//! with `cryptography` (AES-256-GCM, ChaCha20-Poly1305) and encoding with
//! Google's `protobuf` from the committed .proto; `berth encrypt`'s
//! output posted as-is; every refusal (tampered, wrong key, replayed,
//! stale, plaintext where encryption is required) applies nothing.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::api::ServedFake;
use crate::support::ingress::{example_stack, exists, file_with, keyring, peer, EXAMPLE_OBJECTS};
use crate::support::tools::venv_python;

fn rest(python: &Path, server: &ServedFake, args: &[&str]) -> Value {
    let token = server.state_dir().join("token");
    let token = token.to_str().unwrap();
    let all: Vec<&str> =
        ["--url", server.url.as_str(), "--token-file", token].into_iter().chain(args.iter().copied()).collect();
    peer(python, "rest.py", &all)
}

fn served(keys: &Path, extra: &[&str]) -> ServedFake {
    let examples = crate::support::repo_path("examples");
    let mut args = vec!["--keyring", keys.to_str().unwrap(), "--allow-host-paths", examples.to_str().unwrap()];
    args.extend_from_slice(extra);
    ServedFake::start_with(&args)
}

fn setup() -> Option<(PathBuf, tempfile::TempDir, PathBuf)> {
    let python = venv_python()?;
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(dir.path());
    Some((python, dir, keys))
}

#[test]
fn python_sealed_and_protobuf_requests_are_applied_and_answered_in_kind() {
    let Some((python, dir, keys)) = setup() else { return };
    let server = served(&keys, &[]);
    let stack = file_with(dir.path(), "stack.yaml", &example_stack());
    let (stack, keys) = (stack.to_str().unwrap(), keys.to_str().unwrap());

    let reply = rest(&python, &server, &["-f", stack, "--protobuf", "--query", "dryRun=true"]);
    assert_eq!(reply["status"], 200, "{reply}");
    assert_eq!(reply["protobuf"], true, "{reply}");
    assert_eq!(reply["dry_run"], true, "{reply}");
    assert_eq!(reply["items"].as_array().unwrap().len(), EXAMPLE_OBJECTS, "{reply}");
    assert!(!exists(&server, "container", "web"), "a dry run wrote");

    for algorithm in ["aes-256-gcm", "chacha20-poly1305"] {
        let reply = rest(&python, &server, &["-f", stack, "--keyring", keys, "--algorithm", algorithm]);
        assert_eq!(reply["status"], 200, "{algorithm}: {reply}");
        assert_eq!(reply["encrypted"], true, "{reply}");
        assert_eq!(reply["content_type"], "application/vnd.berth.encrypted", "{reply}");
        assert_eq!(reply["json"]["items"].as_array().unwrap().len(), EXAMPLE_OBJECTS, "{reply}");
    }
    assert!(exists(&server, "container", "web"));
    // ?dryRun outside an encrypted body is not authenticated: refused.
    let reply = rest(&python, &server, &["-f", stack, "--keyring", keys, "--query", "dryRun=true"]);
    assert_eq!(reply["status"], 400, "{reply}");
    assert!(reply["json"]["message"].as_str().unwrap().contains("not authenticated"), "{reply}");
    let reply = rest(&python, &server, &["-f", stack, "--protobuf", "--keyring", keys]);
    assert_eq!(reply["encrypted"], true, "{reply}");
    assert_eq!(reply["protobuf"], true, "{reply}");
    assert!(reply["items"].as_array().unwrap().iter().all(|i| i["action"] == "unchanged"), "{reply}");
}

#[test]
fn every_bad_envelope_is_refused_with_nothing_applied_and_berth_encrypt_output_posts_as_is() {
    let Some((python, dir, keys)) = setup() else { return };
    let server = served(&keys, &["--require-encryption", "rest"]);
    let manifest = file_with(dir.path(), "one.yaml", &crate::support::api::container("guarded", "1"));
    let (manifest_path, keys_path) = (manifest.to_str().unwrap(), keys.to_str().unwrap());

    let cases: [(&[&str], &str); 5] = [
        (&[], "plaintext is refused"),
        (&["--keyring", keys_path, "--tamper"], "authenticate"),
        (&["--keyring", keys_path, "--key-id", "k9"], "k9"),
        (&["--keyring", keys_path, "--stale"], "ago"),
        (&["--keyring", keys_path, "--channel", "mqtt:berth/x/cmd/apply"], "mqtt:berth/x/cmd/apply"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["-f", manifest_path];
        args.extend_from_slice(extra);
        let reply = rest(&python, &server, &args);
        assert_eq!(reply["status"], 403, "{extra:?}: {reply}");
        let message = reply["json"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{extra:?}: {message}");
    }
    // berth's own client is refused too, and told why.
    let output = server.cli().args(["apply", "-f", manifest_path]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("plaintext is refused"));
    assert!(!exists(&server, "container", "guarded"), "a refused request applied something");

    // A replay: the first is applied, the same bytes again refused.
    let replies = rest(&python, &server, &["-f", manifest_path, "--keyring", keys_path, "--times", "2"]);
    assert_eq!(replies[0]["status"], 200, "{replies}");
    assert_eq!(replies[1]["status"], 403, "{replies}");
    assert!(replies[1]["json"]["message"].as_str().unwrap().contains("replayed"), "{replies}");

    // What `berth encrypt` writes, POST /apply takes as it is.
    let other = file_with(dir.path(), "two.yaml", &crate::support::api::container("sealed-by-cli", "1"));
    let sealed = dir.path().join("two.enc");
    let output = server
        .cli()
        .args(["encrypt", "--keyring", keys_path, "--channel", "rest:/apply", "-f", other.to_str().unwrap(), "-o"])
        .arg(&sealed)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // (XChaCha20-Poly1305 by default, which `cryptography` lacks: the
    // sealed reply's header is read, and berth decrypt opens it.)
    let reply = rest(&python, &server, &["--raw", sealed.to_str().unwrap(), "--type", "application/octet-stream"]);
    assert_eq!(reply["status"], 200, "{reply}");
    assert_eq!(reply["encrypted"], true, "{reply}");
    assert_eq!(reply["algorithm"], "xchacha20-poly1305", "{reply}");
    assert!(exists(&server, "container", "sealed-by-cli"));
}
