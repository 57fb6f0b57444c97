//! Watched directories: every manifest file under them is a source, and
//! all of them together are applied as one set.
//!
//! notify reports changes; bursts are debounced (quiet for 20 ms, at most
//! 1 s), then every directory is rescanned whole and decided as one set
//! ([`set`]): an object that moves from one file to another, or whose file
//! is renamed, changes owner in one transaction and the engine never
//! notices. Rescanning rather than trusting event paths handles editors
//! that write a temporary file and rename it over the original, and events
//! lost by the OS. Only files whose content changed are decoded again, and
//! a scan that changes nothing writes nothing.
//!
//! Files removed while berth was not running are noticed on start: their
//! source records name files that no longer exist.
//!
//! A file read while a slow writer is still writing it could look valid but
//! short (an empty file, or the first of two documents). Applying it would
//! delete what the missing part declares. So an object nothing declares any
//! more is deleted only once its file (or, for a file that is gone, its
//! directory) has not been modified for [`STABLE_FOR`]; until then it is
//! looked at again. Additions, updates and moves apply at once.

mod set;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::api::SourceKind;
use crate::engine::labels::sha256_hex;
use crate::manifest;
use crate::start_error::Doing as _;
use crate::store::{Store, StoreError};

use set::{Content, ScannedFile, SetPlan, Stored};

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
    /// Each file's content hash and what it decoded to, so that a scan
    /// decodes only the files that changed. Holds only the files of the
    /// last scan.
    decoded: BTreeMap<PathBuf, (String, Content)>,
    /// See [`STABLE_FOR`].
    stable_for: Duration,
}

impl DirSource {
    /// A source for `dirs` (made absolute).
    pub fn new(store: Store, dirs: &[PathBuf]) -> std::io::Result<Self> {
        let dirs = dirs.iter().map(std::fs::canonicalize).collect::<std::io::Result<Vec<_>>>()?;
        Ok(DirSource { store, dirs, decoded: BTreeMap::new(), stable_for: STABLE_FOR })
    }

    /// Believes a change that deletes objects once its file has been left
    /// alone for `stable_for` instead of [`STABLE_FOR`] (tests make it short).
    pub fn with_stable_for(mut self, stable_for: Duration) -> Self {
        self.stable_for = stable_for;
        self
    }

    /// Scans every directory and applies what changed, as one set. Returns
    /// true when the set must be looked at again soon (a deletion waits for
    /// its file to settle, or a file declares what the API or git owns).
    pub fn sync_all(&mut self) -> Result<bool, StoreError> {
        let (files, unreadable) = self.scan();
        let scanned = files.len();
        let plan = retry_on_race(|| {
            let (files, stored) = self.stored(files.clone(), &unreadable)?;
            let plan = set::resolve(&files, &stored, &|path| self.removal_settled(path));
            if !plan.is_empty() {
                for batch in plan.batches() {
                    self.store.commit(batch)?;
                }
            }
            Ok(plan)
        })?;
        log_plan(&plan);
        // The end of every rescan, changed or not: what a benchmark (and a
        // person reading debug logs) waits for.
        tracing::debug!(
            files = scanned,
            written = plan.writes.len(),
            deleted = plan.deletes.len(),
            "manifest directory synced"
        );
        Ok(!plan.postponed.is_empty() || plan.foreign_conflicts)
    }

    /// Every manifest file of every directory, in directory then path
    /// order, read and decoded; and the directories that could not be
    /// scanned, with why.
    fn scan(&mut self) -> (Vec<ScannedFile>, Vec<(PathBuf, String)>) {
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        let mut listed = BTreeSet::new();
        let mut decoded = BTreeMap::new();
        for dir in &self.dirs {
            match manifest::manifest_files(dir) {
                Ok(paths) => {
                    for path in paths.into_iter().filter(|p| listed.insert(p.clone())) {
                        if let Some(file) = read_file(path, &self.decoded, &mut decoded, self.stable_for) {
                            files.push(file);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("cannot scan {}: {e}; the objects of its files stay as they are", dir.display());
                    unreadable.push((dir.clone(), e.to_string()));
                }
            }
        }
        self.decoded = decoded;
        (files, unreadable)
    }

    /// What the store holds about `files` and the recorded files of the
    /// directories; the files of a directory that could not be scanned are
    /// added as rejected, so that they keep their objects.
    fn stored(
        &self,
        mut files: Vec<ScannedFile>,
        unreadable: &[(PathBuf, String)],
    ) -> Result<(Vec<ScannedFile>, Stored), StoreError> {
        let mut stored = Stored::default();
        for record in self.store.sources()? {
            let Some(path) = record.source.path.as_deref().map(PathBuf::from) else { continue };
            if record.source.kind != SourceKind::File || !self.dirs.iter().any(|d| path.starts_with(d)) {
                continue;
            }
            if let Some((dir, why)) = unreadable.iter().find(|(dir, _)| path.starts_with(dir)) {
                if !files.iter().any(|f| f.path == path) {
                    let error = format!(
                        "{}: cannot scan {}: {why}; its objects stay as they are",
                        path.display(),
                        dir.display()
                    );
                    files.push(ScannedFile {
                        path: path.clone(),
                        content: Content::Invalid(vec![error]),
                        settled: true,
                    });
                }
            }
            stored.records.insert(record.source.id(), record);
        }
        let declared = files.iter().flat_map(|f| match &f.content {
            Content::Valid(objects) => objects.iter().map(crate::api::AnyObject::key).collect(),
            Content::Invalid(_) => Vec::new(),
        });
        let recorded: Vec<_> = stored.records.values().flat_map(|r| r.objects.iter().cloned()).collect();
        for key in declared.chain(recorded) {
            if let std::collections::btree_map::Entry::Vacant(entry) = stored.objects.entry(key) {
                if let Some(object) = self.store.get(entry.key())? {
                    entry.insert(object);
                }
            }
        }
        Ok((files, stored))
    }

    /// Whether the removal of the file at `path` is old enough to be
    /// believed: its directory (the nearest one left) has not changed for
    /// [`STABLE_FOR`].
    fn removal_settled(&self, path: &Path) -> bool {
        let dir = path.ancestors().skip(1).find(|dir| dir.is_dir());
        dir.is_none_or(|dir| left_alone_for(dir, self.stable_for))
    }

    /// Syncs; on failure logs the error unless it is `last`'s, and asks to
    /// be run again. Returns whether to look again soon.
    fn sync_reporting(&mut self, last: &mut Option<String>) -> bool {
        match self.sync_all() {
            Ok(again) => {
                if last.take().is_some() {
                    tracing::info!("the manifest directories apply again");
                }
                again
            }
            Err(e) => {
                let message = format!("{e:#}");
                if last.as_deref() != Some(message.as_str()) {
                    tracing::error!("applying the manifest directories failed (retrying): {message}");
                    *last = Some(message);
                }
                true
            }
        }
    }

    /// Syncs once, then follows changes until `shutdown` changes.
    pub async fn run(
        mut self,
        mut shutdown: watch::Receiver<crate::controller::runtime::Shutdown>,
    ) -> crate::start_error::Result<()> {
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
        })
        .doing(|| "cannot watch the manifest directories")?;
        for dir in &self.dirs {
            watcher.watch(dir, RecursiveMode::Recursive).doing(|| format!("cannot watch {}", dir.display()))?;
        }
        let mut recheck = self.sync_all()?;
        // A store that keeps failing (a full disk) is retried every
        // `stable_for`, and said once, not on every retry.
        let mut last_error: Option<String> = None;
        loop {
            let recheck_at = tokio::time::Instant::now() + self.stable_for.max(DEBOUNCE);
            // Cancel safety: every branch only receives or sleeps; nothing is lost.
            let first = tokio::select! {
                dir = rx.recv() => match dir { Some(dir) => Some(dir), None => return Ok(()) },
                _ = tokio::time::sleep_until(recheck_at), if recheck => None,
                _ = shutdown.changed() => return Ok(()),
            };
            let Some(first) = first else {
                recheck = self.sync_reporting(&mut last_error);
                continue;
            };
            let _ = first;
            let deadline = tokio::time::Instant::now() + MAX_DELAY;
            while let Ok(Some(_)) =
                tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + DEBOUNCE), rx.recv()).await
            {
            }
            // Every directory is one set: a change in one can settle a
            // conflict or a move with another.
            recheck = self.sync_reporting(&mut last_error);
        }
    }
}

/// False for events that only report a file being read: inotify reports
/// every open and close, the rescan's own reads included.
fn may_change_content(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)))
}

/// Reads and decodes one file, reusing the decoding of the last scan when
/// its content is the same. `None` when it vanished since it was listed.
fn read_file(
    path: PathBuf,
    last: &BTreeMap<PathBuf, (String, Content)>,
    decoded: &mut BTreeMap<PathBuf, (String, Content)>,
    stable_for: Duration,
) -> Option<ScannedFile> {
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            // Unreadable is not empty: keep what it declared.
            let error = format!("{}: cannot read: {e}; its objects stay as they are", path.display());
            return Some(ScannedFile { path, content: Content::Invalid(vec![error]), settled: true });
        }
    };
    let hash = sha256_hex(&bytes);
    let content = match last.get(&path) {
        Some((seen, content)) if *seen == hash => content.clone(),
        _ => decode(&path, bytes),
    };
    decoded.insert(path.clone(), (hash, content.clone()));
    let settled = left_alone_for(&path, stable_for);
    Some(ScannedFile { path, content, settled })
}

/// A file's objects, or its problems (logged once per content).
fn decode(path: &Path, bytes: Vec<u8>) -> Content {
    let (objects, mut errors) = manifest::decode_bytes(path, bytes);
    errors.extend(manifest::check_set(&objects));
    if errors.is_empty() {
        return Content::Valid(objects.into_iter().map(|o| o.object).collect());
    }
    for error in &errors {
        tracing::error!("{error}");
    }
    tracing::warn!(file = %path.display(), "invalid manifest: its objects stay as they were");
    Content::Invalid(errors.iter().map(ToString::to_string).collect())
}

/// Whether `path` was last modified at least `duration` ago (or its age
/// cannot be told).
fn left_alone_for(path: &Path, duration: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age >= duration)
}

/// Logs what a scan changed: conflicts when their record changes (a file's
/// own errors were logged when it was decoded), and what was written.
fn log_plan(plan: &SetPlan) {
    let conflicts = plan.records.iter().flat_map(|r| &r.errors).filter(|e| e.contains(" is also declared by "));
    for conflict in conflicts {
        tracing::error!("{conflict}");
    }
    if plan.writes.is_empty() && plan.deletes.is_empty() {
        return;
    }
    let moved = plan.writes.iter().filter(|w| w.taken_from.is_some()).count();
    tracing::info!(
        written = plan.writes.len() - moved,
        moved,
        deleted = plan.deletes.len(),
        postponed = plan.postponed.len(),
        "manifests applied"
    );
}

/// Runs a store write again when a concurrent writer changed what it was
/// decided from: a teardown removed an object between our read and our
/// write, or an API write took an object over.
pub(super) fn retry_on_race<T>(mut write: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut attempts = 0;
    loop {
        match write() {
            Err(StoreError::NotFound { .. } | StoreError::OwnedByOther { .. }) if attempts < 3 => attempts += 1,
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
