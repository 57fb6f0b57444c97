//! Watched directories: every manifest file under them is a source.
//!
//! notify reports changes; bursts are debounced (quiet for 100 ms, at most
//! 1 s), then the changed directory is rescanned whole. Rescanning rather
//! than trusting event paths handles editors that write a temporary file
//! and rename it over the original, and events lost by the OS. Only files
//! whose content changed are loaded again; writing an unchanged object is
//! free anyway.
//!
//! Files removed while berth was not running are noticed on start: their
//! source records name files that no longer exist.

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
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a burst may delay a rescan.
const MAX_DELAY: Duration = Duration::from_secs(1);

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

    /// Scans every directory once and applies what changed.
    pub fn sync_all(&mut self) -> Result<(), StoreError> {
        for dir in self.dirs.clone() {
            self.sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Scans one directory: applies new and changed files, removes the
    /// objects of files that are gone.
    pub fn sync_dir(&mut self, dir: &Path) -> Result<(), StoreError> {
        let files: BTreeSet<PathBuf> = match manifest::manifest_files(dir) {
            Ok(files) => files.into_iter().collect(),
            Err(e) => {
                tracing::warn!("cannot scan {}: {e}", dir.display());
                return Ok(());
            }
        };
        for file in &files {
            let Ok(bytes) = std::fs::read(file) else { continue };
            let hash = sha256_hex(&bytes);
            if self.seen.get(file) == Some(&hash) {
                continue;
            }
            self.seen.insert(file.clone(), hash);
            self.load(file)?;
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
        Ok(())
    }

    fn load(&self, file: &Path) -> Result<(), StoreError> {
        let source = Source::file(file.display().to_string());
        let (objects, mut errors) = manifest::decode_file(file);
        errors.extend(manifest::check_set(&objects));
        if !errors.is_empty() {
            for error in &errors {
                tracing::error!("{error}");
            }
            tracing::warn!(file = %file.display(), "invalid manifest: its objects stay as they were");
            return reject_source(&self.store, &source, errors.iter().map(ToString::to_string).collect());
        }
        let objects: Vec<_> = objects.into_iter().map(|o| o.object).collect();
        match retry_on_race(|| apply_source(&self.store, &source, objects.clone())) {
            Ok(applied) => {
                tracing::info!(file = %file.display(), written = applied.written, deleted = applied.deleted, "manifest applied");
                Ok(())
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
                Ok(())
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
        self.sync_all()?;
        loop {
            // Cancel safety: both branches only receive; nothing is lost.
            let first = tokio::select! {
                dir = rx.recv() => match dir { Some(dir) => dir, None => return Ok(()) },
                _ = shutdown.changed() => return Ok(()),
            };
            let mut dirty = BTreeSet::from([first]);
            let deadline = tokio::time::Instant::now() + MAX_DELAY;
            while let Ok(Some(dir)) =
                tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + DEBOUNCE), rx.recv()).await
            {
                dirty.insert(dir);
            }
            for dir in dirty {
                if let Err(e) = self.sync_dir(&dir) {
                    tracing::error!("applying {} failed: {e:#}", dir.display());
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

/// Runs a store write again when a concurrent teardown removed an object
/// between our read and our write.
fn retry_on_race<T>(mut write: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
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
