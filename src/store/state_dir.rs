//! The state directory: its format version and its lock.
//!
//! A state directory written by a newer berth may hold records this one
//! would misread; the `format` file lets an older binary refuse it with a
//! clear message instead. The `lock` file holds an exclusive `flock` for the
//! life of the process (the kernel drops it when the process dies, even on
//! `kill -9`), and names its holder so that a second process can say who to
//! stop. The sled database itself lives in `db/`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::{Result, StoreError};

/// Format version this build writes and understands.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_FILE: &str = "format";
const LOCK_FILE: &str = "lock";
/// The controller instance id, kept outside sled too: if the database is
/// lost (emptied, removed, replaced), the id it had is still known, and
/// berth can tell its own previous objects on the engine from strangers.
const INSTANCE_FILE: &str = "instance";
const FORMAT_PREFIX: &str = "berth-state ";

/// An exclusive hold on a state directory, released on drop.
#[derive(Debug)]
pub struct StateDirLock {
    /// Kept open: closing it releases the lock.
    _file: File,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Creates the directory if needed (mode 0700: it holds the API token, the
/// desired state and secrets' hashes), takes its lock and checks its format.
pub fn prepare(dir: &Path) -> Result<StateDirLock> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_error(dir))?;
    let lock = lock(dir)?;
    check_format(dir)?;
    Ok(lock)
}

/// Makes the database's files readable by the owner only (sled creates
/// them with the process's umask).
pub(super) fn restrict_db(db: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o700)).map_err(io_error(db))?;
    for entry in std::fs::read_dir(db).map_err(io_error(db))? {
        let path = entry.map_err(io_error(db))?.path();
        if path.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

fn lock(dir: &Path) -> Result<StateDirLock> {
    let path = dir.join(LOCK_FILE);
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?
    };
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io_error(&path))?;
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() { "another process".to_string() } else { holder.to_string() };
            return Err(StoreError::Locked { path: dir.to_path_buf(), holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::Io { path, source: e }),
    }
    let holder = format!(
        "berth pid {} (started {}, {})",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    file.set_len(0).map_err(io_error(&path))?;
    file.rewind().map_err(io_error(&path))?;
    file.write_all(holder.as_bytes()).map_err(io_error(&path))?;
    file.sync_all().map_err(io_error(&path))?;
    Ok(StateDirLock { _file: file })
}

/// The instance id recorded beside the database, if any.
pub(super) fn recorded_instance(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(INSTANCE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|id| !id.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Io { path, source: e }),
    }
}

/// Records `id` beside the database (atomically, mode 0600).
pub(super) fn record_instance(dir: &Path, id: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temp = dir.join(".instance.tmp");
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp).map_err(io_error(&temp))?;
    file.write_all(format!("{id}\n").as_bytes()).map_err(io_error(&temp))?;
    file.sync_all().map_err(io_error(&temp))?;
    let path = dir.join(INSTANCE_FILE);
    std::fs::rename(&temp, &path).map_err(io_error(&path))
}

fn check_format(dir: &Path) -> Result<()> {
    let path: PathBuf = dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(content) => {
            let version = content.trim().strip_prefix(FORMAT_PREFIX).and_then(|v| v.parse::<u32>().ok());
            match version {
                Some(found) if found <= FORMAT_VERSION => Ok(()),
                Some(found) => {
                    Err(StoreError::NewerFormat { path: dir.to_path_buf(), found, supported: FORMAT_VERSION })
                }
                None => Err(StoreError::BadFormat { path, content: content.chars().take(80).collect() }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let temp = dir.join(".format.tmp");
            std::fs::write(&temp, format!("{FORMAT_PREFIX}{FORMAT_VERSION}\n")).map_err(io_error(&temp))?;
            std::fs::rename(&temp, &path).map_err(io_error(&path))
        }
        Err(e) => Err(StoreError::Io { path, source: e }),
    }
}
