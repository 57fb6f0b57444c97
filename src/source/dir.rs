//! Watched directories: every manifest file under them is a source.
//!
//! notify reports changes; bursts are debounced (quiet for 20 ms, at most
//! 1 s), then the changed directory is rescanned whole. Rescanning rather
//! than trusting event paths handles editors that write a temporary file
//! and rename it over the original, and events lost by the OS. Only files
//! whose content changed are loaded again; writing an unchanged object is
//! free anyway.
//!
//! Files removed while berth was not running are noticed on start: their
//! source records name files that no longer exist.
//!
//! A file read while a slow writer is still writing it could look valid but
//! short (an empty file, or the first of two documents). Applying it would
//! delete what the missing part declares. So a change that would delete
//! objects is applied only once the file has not been modified for
//! [`STABLE_FOR`]; until then it is looked at again. Additions and updates
//! apply at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::api::{Source, SourceKind};
use crate::engine::labels::sha256_hex;
use crate::manifest;
use crate::store::{Store, StoreError};

use super::apply::{apply_source, reject_source, remove_source};

/// Quiet time that ends a burst of changes.
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// Longest a burst may delay a rescan.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// How long a file must be left alone before a change that deletes objects
/// is believed.
pub const STABLE_FOR: Duration = Duration::from_secs(1);

/// Follows directories of manifests into the store.
pub struct DirSource {
    store: Store,
    dirs: Vec<PathBuf>,
    /// Content hash of each file as last applied (or rejected).
    seen: BTreeMap<PathBuf, String>,
}

impl DirSource {
    /// A source for `dirs` (made absolute).
    pub fn new(store: Store, dirs: &[PathBuf]) -> std::io::Result<Self> {
        let dirs = dirs.iter().map(std::fs::canonicalize).collect::<std::io::Result<Vec<_>>>()?;
        Ok(DirSource { store, dirs, seen: BTreeMap::new() })
    }

    /// Scans every directory once and applies what changed. Returns true
    /// when a file must be looked at again (see [`STABLE_FOR`]).
    pub fn sync_all(&mut self) -> Result<bool, StoreError> {
        let mut recheck = false;
        for dir in self.dirs.clone() {
            recheck |= self.sync_dir(&dir)?;
        }
        Ok(recheck)
    }

    /// Scans one directory: applies new and changed files, removes the
    /// objects of files that are gone. Returns true when a file must be
    /// looked at again.
    pub fn sync_dir(&mut self, dir: &Path) -> Result<bool, StoreError> {
        let files: BTreeSet<PathBuf> = match manifest::manifest_files(dir) {
            Ok(files) => files.into_iter().collect(),
            Err(e) => {
                tracing::warn!("cannot scan {}: {e}", dir.display());
                return Ok(false);
            }
        };
        let mut recheck = false;
        for file in &files {
            let Ok(bytes) = std::fs::read(file) else { continue };
            let hash = sha256_hex(&bytes);
            if self.seen.get(file) == Some(&hash) {
                continue;
            }
            if self.load(file, bytes)? == Loaded::Postponed {
                recheck = true;
                continue;
            }
            self.seen.insert(file.clone(), hash);
        }
        for record in self.store.sources()? {
            let source = record.source;
            let Some(path) = source.path.as_deref().map(PathBuf::from) else { continue };
            if source.kind == SourceKind::File && path.starts_with(dir) && !files.contains(&path) {
                self.seen.remove(&path);
                let deleted = retry_on_race(|| remove_source(&self.store, &source))?;
                tracing::info!(file = %path.display(), deleted, "manifest removed; deleting its objects");
            }
        }
        tracing::debug!(dir = %dir.display(), files = files.len(), "manifest directory synced");
        Ok(recheck)
    }

    /// Applies `bytes`, the content of `file` just read and hashed.
    fn load(&self, file: &Path, bytes: Vec<u8>) -> Result<Loaded, StoreError> {
        let source = Source::file(file.display().to_string());
        let (objects, mut errors) = manifest::decode_bytes(file, bytes);
        errors.extend(manifest::check_set(&objects));
        if !errors.is_empty() {
            for error in &errors {
                tracing::error!("{error}");
            }
            tracing::warn!(file = %file.display(), "invalid manifest: its objects stay as they were");
            reject_source(&self.store, &source, errors.iter().map(ToString::to_string).collect())?;
            return Ok(Loaded::Done);
        }
        let objects: Vec<_> = objects.into_iter().map(|o| o.object).collect();
        let declared: BTreeSet<_> = objects.iter().map(crate::api::AnyObject::key).collect();
        let previous = self.store.source(&source.id())?.map(|r| r.objects).unwrap_or_default();
        let deletes = previous.iter().any(|key| !declared.contains(key));
        let settled = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age >= STABLE_FOR);
        if deletes && !settled {
            tracing::debug!(file = %file.display(), "change would delete objects; waiting for the file to settle");
            return Ok(Loaded::Postponed);
        }
        match retry_on_race(|| apply_source(&self.store, &source, objects.clone())) {
            Ok(applied) => {
                tracing::info!(file = %file.display(), written = applied.written, deleted = applied.deleted, "manifest applied");
                Ok(Loaded::Done)
            }
            Err(StoreError::OwnedByOther { key, owner }) => {
                let message =
                    format!("{key} is also declared by {owner}, which keeps it; rename or remove one of them");
                tracing::error!(file = %file.display(), "{message}");
                reject_source(&self.store, &source, vec![format!("{}: {message}", file.display())])?;
                // Tell the owner's record too, so the conflict shows on both.
                if let Some(owner_record) = self.store.sources()?.into_iter().find(|r| r.source.id() == owner) {
                    let mut errors = owner_record.errors.clone();
                    errors.push(format!("{key} is also declared by {}; this source keeps it", file.display()));
                    let record = crate::store::SourceRecord { errors, ..owner_record };
                    self.store.commit(crate::store::WriteBatch::new().op(crate::store::WriteOp::Source(record)))?;
                }
                Ok(Loaded::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// Syncs once, then follows changes until `shutdown` changes.
    pub async fn run(
        mut self,
        mut shutdown: watch::Receiver<crate::controller::runtime::Shutdown>,
    ) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
        let roots = self.dirs.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let paths = match event {
                // berth's own reads during a rescan come back as opens and
                // closes; following them would rescan forever.
                Ok(event) if !may_change_content(&event.kind) => return,
                Ok(event) => event.paths,
                // Lost events: rescan everything.
                Err(_) => roots.clone(),
            };
            for path in paths {
                if let Some(root) = roots.iter().find(|r| path.starts_with(r)) {
                    let _ = tx.send(root.clone());
                }
            }
        })?;
        for dir in &self.dirs {
            watcher.watch(dir, RecursiveMode::Recursive)?;
        }
        let mut recheck = self.sync_all()?;
        loop {
            let recheck_at = tokio::time::Instant::now() + STABLE_FOR;
            // Cancel safety: every branch only receives or sleeps; nothing is lost.
            let first = tokio::select! {
                dir = rx.recv() => match dir { Some(dir) => Some(dir), None => return Ok(()) },
                _ = tokio::time::sleep_until(recheck_at), if recheck => None,
                _ = shutdown.changed() => return Ok(()),
            };
            let Some(first) = first else {
                recheck = self.sync_all()?;
                continue;
            };
            let mut dirty = BTreeSet::from([first]);
            let deadline = tokio::time::Instant::now() + MAX_DELAY;
            while let Ok(Some(dir)) =
                tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + DEBOUNCE), rx.recv()).await
            {
                dirty.insert(dir);
            }
            // `recheck` stays set for other directories; the timer's full
            // rescan recomputes it.
            for dir in dirty {
                match self.sync_dir(&dir) {
                    Ok(again) => recheck |= again,
                    Err(e) => tracing::error!("applying {} failed: {e:#}", dir.display()),
                }
            }
        }
    }
}

/// False for events that only report a file being read: inotify reports
/// every open and close, the rescan's own reads included.
fn may_change_content(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)))
}

/// What became of a changed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loaded {
    /// Applied, or rejected with its errors recorded.
    Done,
    /// Not yet: it would delete objects and was modified too recently.
    Postponed,
}

/// Runs a store write again when a concurrent teardown removed an object
/// between our read and our write.
pub(super) fn retry_on_race<T>(mut write: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut attempts = 0;
    loop {
        match write() {
            Err(StoreError::NotFound { .. }) if attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind};

    #[test]
    fn reads_are_not_changes_but_writes_and_everything_else_are() {
        let reads = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ];
        for kind in reads {
            assert!(!may_change_content(&kind), "{kind:?}");
        }
        let changes = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
            EventKind::Other,
        ];
        for kind in changes {
            assert!(may_change_content(&kind), "{kind:?}");
        }
    }
}
