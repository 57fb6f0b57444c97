//! The fake engine's `docker cp`: tar archives of its in-memory files.
//!
//! Paths resolve through the container's mounts as its processes see them
//! (see [`process`](super::process)). Directories are implied by the files
//! in them, so an archive holds files only, and a directory is what has
//! files under it. A directory's archive covers the store it lives in:
//! files of a volume mounted below it are not in it.

use super::{lock, FakeEngine};
use crate::engine::{EngineError, Result};

/// The last part of `path` (`/` for the root).
fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().filter(|name| !name.is_empty()).unwrap_or("/")
}

fn tar_failed(operation: &str, error: std::io::Error) -> EngineError {
    EngineError::Failed { operation: operation.into(), message: error.to_string() }
}

impl FakeEngine {
    /// The archive of `path` in container `id`.
    pub(super) fn archive(&self, id: &str, path: &str) -> Result<Vec<u8>> {
        let what = format!("{path} in container {id}");
        let world = lock(&self.inner.world);
        let resolved = world.container_id(id)?;
        let at = world.locate(&resolved, path).ok_or_else(|| EngineError::NotFound { what: what.clone() })?;
        let files = world.files.get(&at.store);
        let mut entries: Vec<(String, &Vec<u8>)> = Vec::new();
        if let Some(bytes) = files.and_then(|files| files.get(&at.path)) {
            entries.push((base_name(path).to_string(), bytes));
        } else {
            let prefix = format!("{}/", at.path.trim_end_matches('/'));
            let under = files
                .into_iter()
                .flat_map(|files| files.range(prefix.clone()..))
                .take_while(|(p, _)| p.starts_with(&prefix));
            let top = base_name(path);
            entries.extend(under.map(|(p, bytes)| (format!("{top}/{}", &p[prefix.len()..]), bytes)));
        }
        if entries.is_empty() {
            return Err(EngineError::NotFound { what });
        }
        let mut archive = tar::Builder::new(Vec::new());
        for (name, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive
                .append_data(&mut header, name.trim_start_matches('/'), bytes.as_slice())
                .map_err(|e| tar_failed("archive", e))?;
        }
        archive.into_inner().map_err(|e| tar_failed("archive", e))
    }

    /// Extracts `tar`'s files into `directory` of container `id`.
    pub(super) fn extract(&self, id: &str, directory: &str, tar: &[u8]) -> Result<()> {
        let what = format!("{directory} in container {id}");
        let mut files = Vec::new();
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries().map_err(|e| tar_failed("read the archive", e))? {
            let mut entry = entry.map_err(|e| tar_failed("read the archive", e))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().map_err(|e| tar_failed("read the archive", e))?.to_string_lossy().to_string();
            if name.split('/').any(|part| part == "..") {
                return Err(EngineError::Failed {
                    operation: format!("copy into {what}"),
                    message: format!("{name} leaves the directory"),
                });
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(|e| tar_failed("read the archive", e))?;
            files.push((format!("{}/{}", directory.trim_end_matches('/'), name.trim_start_matches("./")), bytes));
        }
        let mut world = lock(&self.inner.world);
        let resolved = world.container_id(id)?;
        for (path, bytes) in files {
            let at = world.locate(&resolved, &path).ok_or_else(|| EngineError::NotFound { what: what.clone() })?;
            if !at.writable {
                return Err(EngineError::Failed {
                    operation: format!("copy into {what}"),
                    message: "Read-only file system".into(),
                });
            }
            world.files.entry(at.store).or_default().insert(at.path, bytes);
        }
        Ok(())
    }
}
