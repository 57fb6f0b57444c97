//! What the transport tests share: the example stack as one message, a
//! keyring made by `berth keygen`, the Python peers under `tests/clients/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::api::ServedFake;
use super::repo_path;

/// The example stack as one manifest a message can carry: the Image's
/// build context made absolute (a message has no directory to be relative to).
pub fn example_stack() -> String {
    let examples = repo_path("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let context = format!("context: {}", examples.join("busybox").display());
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().replace("context: ./busybox", &context))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// How many objects the example stack declares.
pub const EXAMPLE_OBJECTS: usize = 8;

/// A keyring with one key `k1`, written by `berth keygen` into `dir`.
pub fn keyring(dir: &Path) -> PathBuf {
    let path = dir.join("keys.yaml");
    let output =
        Command::new(env!("CARGO_BIN_EXE_berth")).args(["keygen", "--id", "k1", "-o"]).arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    path
}

/// `text` in a new file `name` of `dir`.
pub fn file_with(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the Python peer `script` (under tests/clients) with `args`; the
/// JSON it prints.
pub fn peer(python: &Path, script: &str, args: &[&str]) -> Value {
    let output = Command::new(python).arg(repo_path(&format!("tests/clients/{script}"))).args(args).output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{script} {args:?}: {said}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(said.trim()).unwrap_or_else(|e| panic!("{e}: {said}"))
}

/// Whether the object exists, by `berth get`.
pub fn exists(server: &ServedFake, kind: &str, name: &str) -> bool {
    server.cli().args(["get", kind, name]).output().unwrap().status.success()
}
