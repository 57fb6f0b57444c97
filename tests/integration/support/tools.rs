//! The peers `scripts/setup-clients.sh` installs under `$BERTH_TOOLS`
//! (default `~/.cache/berth-tools`), for tests that check berth against
//! other implementations. `BERTH_SKIP_CLIENTS=1` skips those tests on a
//! machine without them; otherwise a missing tool fails with that advice.

use std::path::PathBuf;

/// The venv's python (with `cryptography`, `paho-mqtt`, `posix_ipc`,
/// `protobuf`), or `None` when the client tests are skipped.
pub fn venv_python() -> Option<PathBuf> {
    if std::env::var_os("BERTH_SKIP_CLIENTS").is_some() {
        eprintln!("BERTH_SKIP_CLIENTS is set: skipping a client test");
        return None;
    }
    let dir = match std::env::var_os("BERTH_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/berth-tools"),
    };
    let python = dir.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-clients.sh (or set BERTH_SKIP_CLIENTS=1)",
        python.display()
    );
    Some(python)
}
