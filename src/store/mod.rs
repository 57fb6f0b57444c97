//! The store: desired objects, their status, the sources that own them, and
//! the event log, in an embedded sled database under the state directory.
//!
//! # Model
//! - `objects`: `Kind/namespace/name` → the object (metadata, spec, status)
//!   as JSON. Each carries the store-wide `resourceVersion` of its last write.
//! - `sources`: source id → [`SourceRecord`], what each source declared last.
//! - `events` and `events_by_object`: the append-only audit log and its
//!   index, bounded by [`Retention`] (pruned in the background).
//! - `meta`: the resourceVersion and event sequence counters.
//! - `tombstones`: the last state of removed objects, for watchers that
//!   resume from an older resourceVersion (see [`history`]).
//!
//! Reads of objects come from a decoded copy in memory that follows every
//! commit ([`cache`]), not from sled.
//!
//! # Guarantees
//! - A [`WriteBatch`] commits atomically (one sled transaction across trees)
//!   and is flushed to disk before [`Store::commit`] returns: a crash after
//!   that keeps it, a crash before loses all of it. Batches marked
//!   [`WriteBatch::relaxed`] (status and reconcile errors, which the next
//!   reconcile derives again) reach the disk within sled's 500 ms flush.
//!   Concurrent commits share one flush ([`group_flush`]): their answers
//!   wait for the disk, but not for each other's fsyncs.
//! - Commits are serialized and announced to watchers in resourceVersion
//!   order, as soon as they are in sled (readers of the cache see them
//!   then too), before the writer's flush ends. A watcher that falls behind by more than the channel's capacity
//!   gets `Lagged` and must re-list, as a Kubernetes watch gets `410 Gone`.
//! - One process per state directory: [`Store::open`] takes an exclusive
//!   lock and refuses a directory written by a newer format.

mod cache;
pub use cache::Cached;
mod db;
mod event_tally;
mod events;
mod group_flush;
mod history;
mod retention;
mod state_dir;
mod watch;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::broadcast;

use crate::api::{AnyObject, Kind, ObjectKey};

use db::Db;

pub use events::Event;
pub use history::TOMBSTONE_TTL;
pub use retention::{Retention, PRUNE_EVERY};
pub use state_dir::FORMAT_VERSION;
pub use watch::{Change, ChangeType};
pub(crate) use write::declares_same;
pub use write::{Commit, Outcome, Precondition, SourceRecord, WriteBatch, WriteOp};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the state directory.
    #[error("state directory {path} is in use by {holder}; stop that process or choose another --state-dir")]
    Locked {
        /// The state directory.
        path: PathBuf,
        /// Who holds it, as it wrote itself into the lock file.
        holder: String,
    },
    /// The state directory was written by a newer berth.
    #[error(
        "state directory {path} has format version {found}, newer than this berth understands ({supported}); \
         upgrade berth or choose another --state-dir"
    )]
    NewerFormat {
        /// The state directory.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The format file is not ours.
    #[error(
        "{path} holds {content:?}, not a berth format version (`berth-state N`); is this a berth state directory?"
    )]
    BadFormat {
        /// The format file.
        path: PathBuf,
        /// The start of what it holds.
        content: String,
    },
    /// A file of the state directory could not be used.
    #[error("cannot use {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("store database error")]
    Db(#[source] sled::Error),
    /// A stored record does not decode.
    #[error("stored record {key} is corrupt")]
    Corrupt {
        /// Its key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A compare-and-swap failed.
    #[error("{key} has changed: the write expected resourceVersion {expected}, the store has {}", found.map_or("none (deleted)".to_string(), |v| v.to_string()))]
    Conflict {
        /// The object.
        key: ObjectKey,
        /// The version the writer read.
        expected: u64,
        /// The version stored now.
        found: Option<u64>,
    },
    /// A create found the object already there.
    #[error("{key} already exists")]
    AlreadyExists {
        /// The object.
        key: ObjectKey,
    },
    /// A watch asked for history older than the store keeps.
    #[error(
        "resourceVersion {requested} is too old: changes are kept from {kept_from}; \
         list again and watch from the list's resourceVersion"
    )]
    Expired {
        /// The version asked for.
        requested: u64,
        /// The oldest version from which every change is known.
        kept_from: u64,
    },
    /// The object does not exist.
    #[error("{key} not found")]
    NotFound {
        /// The object.
        key: ObjectKey,
    },
    /// The object belongs to another source.
    #[error("{key} is owned by {owner}; change it there, or force the write")]
    OwnedByOther {
        /// The object.
        key: ObjectKey,
        /// The owning source's id.
        owner: String,
    },
    /// A status that does not fit the kind's status type.
    #[error("status of {key} does not fit its kind")]
    InvalidStatus {
        /// The object.
        key: ObjectKey,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// Whether the disk under the store is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull || source.raw_os_error() == Some(28)
            }
            _ => false,
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Db(error)
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Changes a watcher may fall behind by before it must re-list.
const WATCH_CAPACITY: usize = 16_384;

/// A handle on the store; clones share it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The database; `None` only while it is being reopened (see
    /// [`Store::recover`]).
    db: RwLock<Option<Arc<Db>>>,
    /// When the last reopening was tried, so failing writes do not reopen
    /// the database in a loop.
    last_recovery: Mutex<Option<std::time::Instant>>,
    /// Serializes commits so that watchers see them in resourceVersion order
    /// (a std mutex: it is never held across an await).
    commit_lock: Mutex<()>,
    watch: broadcast::Sender<Change>,
    /// The sequence number of the newest event, for followers of the log.
    last_event: tokio::sync::watch::Sender<u64>,
    /// Counts the commits that wrote a source record.
    sources_written: tokio::sync::watch::Sender<u64>,
    /// The state directory.
    dir: std::path::PathBuf,
    /// The instance id recorded beside a database that has none: the
    /// database was lost (see [`Store::lost_instance`]).
    lost_instance: Option<String>,
    /// Why the last commit could not write to the disk (see
    /// [`Store::write_problem`]).
    write_problem: Mutex<Option<String>>,
    /// The objects, decoded, as the database holds them (see [`cache`]).
    cache: cache::ObjectCache,
    /// Durable commits waiting for the disk share its flushes.
    group_flush: group_flush::GroupFlush,
    /// Events per object, for pruning (see [`event_tally`]).
    event_tally: Mutex<event_tally::EventTally>,
    /// Dropped last: the lock outlives the database handle.
    _lock: state_dir::StateDirLock,
}

/// Least time between two reopenings of the database after failed writes.
pub const RECOVER_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Free space the state directory's file system needs before the database
/// is reopened after a failed write.
const REOPEN_ROOM: u64 = 4 << 20;

/// Bytes free for this user on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stats` a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    Some(stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// Where the time of the last reopening is kept in `meta` (its write is the
/// probe that writing works again).
const RECOVERED_AT_KEY: &[u8] = b"recoveredAt";
/// Where the controller instance id is kept in `meta`.
const INSTANCE_KEY: &[u8] = b"instanceId";
/// Where the key of secret hashes is kept in `meta`.
const SECRET_HASH_KEY: &[u8] = b"secretHashKey";

impl Store {
    /// Opens (creating if needed) the store in `state_dir`, taking its lock.
    pub fn open(state_dir: &Path) -> Result<Store> {
        let lock = state_dir::prepare(state_dir)?;
        let (db, had_history) = Db::open(&state_dir.join("db"))?;
        state_dir::restrict_db(&state_dir.join("db"))?;
        let meta = db.meta.clone();
        let cache = cache::ObjectCache::default();
        cache.load(&db.objects)?;
        let event_tally = Mutex::new(event_tally::EventTally::count(&db.events, &db.events_by_object)?);
        let mut inner = Inner {
            db: RwLock::new(Some(Arc::new(db))),
            last_recovery: Mutex::new(None),
            commit_lock: Mutex::new(()),
            watch: broadcast::channel(WATCH_CAPACITY).0,
            last_event: tokio::sync::watch::channel(0).0,
            sources_written: tokio::sync::watch::channel(0).0,
            dir: state_dir.to_path_buf(),
            lost_instance: None,
            write_problem: Mutex::new(None),
            cache,
            group_flush: group_flush::GroupFlush::default(),
            event_tally,
            _lock: lock,
        };
        let recorded = state_dir::recorded_instance(state_dir)?;
        match (meta.get(INSTANCE_KEY)?, recorded) {
            (Some(id), recorded) => {
                let id = String::from_utf8_lossy(&id).into_owned();
                if recorded.as_deref() != Some(id.as_str()) {
                    state_dir::record_instance(state_dir, &id)?;
                }
            }
            (None, Some(previous)) => inner.lost_instance = Some(previous),
            (None, None) => {}
        }
        let store = Store { inner: Arc::new(inner) };
        if !had_history {
            // A store from before tombstones: removals until now are unknown.
            meta.insert(history::HISTORY_FROM_KEY, &store.resource_version().to_be_bytes())?;
        }
        store.inner.last_event.send_replace(store.counter(write::EVENT_SEQ_KEY));
        Ok(store)
    }

    /// Commits a batch atomically and durably, then tells watchers. A
    /// failure to write to the disk (a full disk, say) is remembered for
    /// [`Store::write_problem`] until a commit succeeds again.
    pub fn commit(&self, batch: WriteBatch) -> Result<Commit> {
        self.recover();
        let result = self.commit_now(batch).map_err(|e| self.in_words(e));
        let problem = match &result {
            Err(e @ StoreError::Io { source, .. }) => Some(format!("{e}: {source}")),
            _ => None,
        };
        if result.is_ok() || problem.is_some() {
            *self.inner.write_problem.lock().unwrap_or_else(|p| p.into_inner()) = problem;
        }
        result
    }

    /// The database handle (shared: a reopening waits for it to be let go).
    fn db(&self) -> Result<Arc<Db>> {
        let mut db = self.inner.db.read().unwrap_or_else(|p| p.into_inner()).clone();
        if db.is_none() {
            // A reopening failed before: readers try again too (rate-limited).
            self.recover();
            db = self.inner.db.read().unwrap_or_else(|p| p.into_inner()).clone();
        }
        db.ok_or_else(|| StoreError::Io {
            path: self.inner.dir.join("db"),
            source: std::io::Error::other("the database is being reopened after a failed write"),
        })
    }

    /// After a failed write (see [`Store::write_problem`]), reopens the
    /// database from disk, as a restart would, so that writes work again
    /// once the cause (a full disk) is gone; at most once per
    /// [`RECOVER_EVERY`]. Returns whether the database was reopened. A
    /// reopening that fails leaves the problem in place for the next try.
    pub fn recover(&self) -> bool {
        if self.write_problem().is_none() {
            return false;
        }
        {
            let mut last = self.inner.last_recovery.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < RECOVER_EVERY) {
                return false;
            }
            *last = Some(std::time::Instant::now());
        }
        let path = self.inner.dir.join("db");
        // Reopening needs room (sled writes as it opens); without it the
        // handle would be gone and reads would fail too.
        if free_bytes(&path).is_some_and(|free| free < REOPEN_ROOM) {
            return false;
        }
        // Not while a commit runs (this thread's own included: `db()` may
        // ask from under the commit lock); the next attempt comes soon.
        let _serial = match self.inner.commit_lock.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
        let mut slot = self.inner.db.write().unwrap_or_else(|p| p.into_inner());
        let Some(mut old) = slot.take() else {
            // A reopening that failed before: try again.
            return self.reopen_into(&mut slot, &path);
        };
        // Readers in flight hold the old handle a moment longer; sled lets
        // the database go (and its file lock) with the last one.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let old_db = loop {
            match Arc::try_unwrap(old) {
                Ok(db) => break Some(db),
                Err(shared) if std::time::Instant::now() < deadline => {
                    old = shared;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(shared) => {
                    *slot = Some(shared);
                    break None;
                }
            }
        };
        let Some(old_db) = old_db else {
            tracing::warn!("the database is still in use; reopening it is retried on the next write");
            return false;
        };
        drop(old_db);
        self.reopen_into(&mut slot, &path)
    }

    /// Opens the database into the empty `slot`, and probes that it writes.
    fn reopen_into(&self, slot: &mut Option<Arc<Db>>, path: &Path) -> bool {
        let (db, _) = match Db::open(path) {
            Ok(opened) => opened,
            Err(e) => {
                let e = self.in_words(StoreError::Db(e));
                tracing::warn!("reopening the database failed: {e:#}");
                return false;
            }
        };
        // Whatever the failed writes left on disk is what the store holds.
        let read = self
            .inner
            .cache
            .load(&db.objects)
            .and_then(|()| event_tally::EventTally::count(&db.events, &db.events_by_object));
        match read {
            Ok(tally) => *self.inner.event_tally.lock().unwrap_or_else(|p| p.into_inner()) = tally,
            Err(e) => {
                tracing::warn!("reading the reopened database failed: {:#}", self.in_words(e));
                return false;
            }
        }
        // A small durable write says whether writing works again: if it
        // does, the problem is over without waiting for a real write.
        let probe =
            db.meta.insert(RECOVERED_AT_KEY, &Utc::now().timestamp().to_be_bytes()[..]).and_then(|_| db.db.flush());
        *slot = Some(Arc::new(db));
        match probe {
            Ok(_) => {
                *self.inner.write_problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::info!(path = %path.display(), "database reopened after a failed write; writes work again");
            }
            Err(e) => tracing::debug!("the reopened database cannot write yet: {:#}", self.in_words(StoreError::Db(e))),
        }
        true
    }

    /// Why the last commit could not write to the disk, until one can.
    pub fn write_problem(&self) -> Option<String> {
        self.inner.write_problem.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A database I/O failure as the state directory's: "cannot use
    /// STATE/db: No space left on device (os error 28)", not sled's debug text.
    fn in_words(&self, error: StoreError) -> StoreError {
        match error {
            StoreError::Db(sled::Error::Io(source)) => {
                // sled wraps the OS error in one whose text is the debug form.
                let source = match (source.raw_os_error(), source.kind()) {
                    (Some(code), _) => std::io::Error::from_raw_os_error(code),
                    (None, std::io::ErrorKind::StorageFull) => std::io::Error::from_raw_os_error(libc::ENOSPC),
                    (None, _) => source,
                };
                StoreError::Io { path: self.inner.dir.join("db"), source }
            }
            other => other,
        }
    }

    fn commit_now(&self, batch: WriteBatch) -> Result<Commit> {
        let (commit, db, ticket) = self.write(&batch)?;
        if !batch.relaxed {
            self.inner.group_flush.wait(ticket, || db.db.flush().map(drop))?;
        }
        Ok(commit)
    }

    /// Writes `batch` to sled, the cache and the watchers, in commit order;
    /// its ticket for [`GroupFlush::wait`](group_flush::GroupFlush::wait).
    fn write(&self, batch: &WriteBatch) -> Result<(Commit, Arc<Db>, u64)> {
        let inner = &*self.inner;
        let _serial = inner.commit_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let db = self.db()?;
        let trees = (&db.objects, &db.sources, &db.meta, &db.events, &db.events_by_object, &db.tombstones);
        let commit = trees
            .transaction(|(objects, sources, meta, events, events_by_object, tombstones)| {
                write::apply(&batch.ops, write::Trees { objects, sources, meta, events, events_by_object, tombstones })
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Db(e),
            })?;
        // In sled now: readers and watchers see it while the disk catches
        // up; only the writer's answer waits for the flush.
        inner.cache.apply(&commit.changes);
        if commit.last_event.is_some() {
            let mut tally = inner.event_tally.lock().unwrap_or_else(|p| p.into_inner());
            for op in &batch.ops {
                if let write::WriteOp::Event(event) = op {
                    tally.add(event.object.as_deref());
                }
            }
        }
        let ticket = inner.group_flush.ticket();
        for change in &commit.changes {
            // No receivers is fine: nobody is watching yet.
            let _ = inner.watch.send(change.clone());
        }
        if let Some(seq) = commit.last_event {
            inner.last_event.send_replace(seq);
        }
        if batch.ops.iter().any(|op| matches!(op, write::WriteOp::Source(_) | write::WriteOp::ForgetSource(_))) {
            inner.sources_written.send_modify(|n| *n += 1);
        }
        if commit.changes.iter().any(|c| c.change == ChangeType::Deleted) {
            self.forget_old_tombstones()?;
        }
        Ok((commit, db, ticket))
    }

    /// Runs `batch` as [`Store::commit`] would and fails where it would
    /// (preconditions, ownership), then discards it: nothing is written,
    /// nobody is told. Dry runs use it, so they cannot disagree with commits.
    /// Returns what the commit would have done.
    pub fn check(&self, batch: WriteBatch) -> Result<Commit> {
        /// Why the transaction stops: a real failure, or the check passed.
        enum Stop {
            Failed(StoreError),
            Passed(Commit),
        }
        let db = self.db()?;
        let trees = (&db.objects, &db.sources, &db.meta, &db.events, &db.events_by_object, &db.tombstones);
        let outcome = trees.transaction(|(objects, sources, meta, events, events_by_object, tombstones)| {
            let trees = write::Trees { objects, sources, meta, events, events_by_object, tombstones };
            match write::apply(&batch.ops, trees) {
                Ok(commit) => Err(ConflictableTransactionError::Abort(Stop::Passed(commit))),
                Err(ConflictableTransactionError::Abort(e)) => {
                    Err(ConflictableTransactionError::Abort(Stop::Failed(e)))
                }
                Err(ConflictableTransactionError::Conflict) => Err(ConflictableTransactionError::Conflict),
                Err(ConflictableTransactionError::Storage(e)) => Err(ConflictableTransactionError::Storage(e)),
            }
        });
        match outcome {
            Ok(()) => Ok(Commit::default()),
            Err(TransactionError::Abort(Stop::Passed(commit))) => Ok(commit),
            Err(TransactionError::Abort(Stop::Failed(e))) => Err(e),
            Err(TransactionError::Storage(e)) => Err(StoreError::Db(e)),
        }
    }

    /// Drops tombstones older than [`TOMBSTONE_TTL`], moving the start of
    /// complete history past them. Called with the commit lock held.
    fn forget_old_tombstones(&self) -> Result<()> {
        let db = self.db()?;
        let cutoff = Utc::now() - chrono::Duration::from_std(TOMBSTONE_TTL).unwrap_or_default();
        let mut kept_from = None;
        for entry in db.tombstones.iter() {
            let (key, bytes) = entry?;
            let removed = serde_json::from_slice::<history::Tombstone>(&bytes).map(|t| t.removed).ok();
            if removed.is_some_and(|removed| removed > cutoff) {
                break;
            }
            db.tombstones.remove(&key)?;
            kept_from = Some(history::version_of(&key));
        }
        if let Some(version) = kept_from {
            db.meta.insert(history::HISTORY_FROM_KEY, &version.to_be_bytes())?;
        }
        Ok(())
    }

    /// Every change after `resource_version` (each changed object in its
    /// newest state, each removal), oldest first, and a subscription to the
    /// changes after those: together they miss nothing and repeat nothing.
    /// Fails with [`StoreError::Expired`] when that history is no longer kept.
    pub fn changes_since(&self, resource_version: u64) -> Result<(Vec<Change>, broadcast::Receiver<Change>)> {
        let inner = &*self.inner;
        // Under the commit lock nothing commits between the scan and the subscription.
        let _serial = inner.commit_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let db = self.db()?;
        let kept_from = self.counter(history::HISTORY_FROM_KEY);
        if resource_version < kept_from {
            return Err(StoreError::Expired { requested: resource_version, kept_from });
        }
        let mut changes = Vec::new();
        let newer = |object: &AnyObject| object.metadata().resource_version.unwrap_or(0) > resource_version;
        for object in inner.cache.scan("", newer)? {
            let resource_version = object.metadata().resource_version.unwrap_or(0);
            changes.push(Change { resource_version, change: ChangeType::Modified, object, status_only: false });
        }
        for entry in db.tombstones.range(history::tombstone_key(resource_version.saturating_add(1), "")..) {
            let (key, bytes) = entry?;
            let tombstone: history::Tombstone = serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(&key).into_owned(), source })?;
            let version = history::version_of(&key);
            changes.push(Change {
                resource_version: version,
                change: ChangeType::Deleted,
                object: tombstone.object,
                status_only: false,
            });
        }
        changes.sort_by_key(|c| c.resource_version);
        Ok((changes, inner.watch.subscribe()))
    }

    /// Follows the sequence number of the newest event in the log.
    pub fn watch_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.last_event.subscribe()
    }

    /// Changes whenever a source record is written (a source read, its
    /// errors recorded, a source forgotten).
    pub fn watch_sources(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.sources_written.subscribe()
    }

    fn counter(&self, key: &[u8]) -> u64 {
        self.db()
            .ok()
            .and_then(|db| db.meta.get(key).ok().flatten())
            .map_or(0, |v| u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
    }

    /// Subscribes to changes committed from now on.
    pub fn watch(&self) -> broadcast::Receiver<Change> {
        self.inner.watch.subscribe()
    }

    /// The store's current resourceVersion (0 for an empty store).
    pub fn resource_version(&self) -> u64 {
        self.counter(write::RESOURCE_VERSION_KEY)
    }

    /// This state directory's controller instance id: random, created on
    /// first use, stable across restarts. It goes into the
    /// `berth.dev/instance` label of every engine object, so two berths on
    /// one engine never touch each other's objects.
    pub fn instance_id(&self) -> Result<String> {
        let fresh = format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
        self.set_instance_if_absent(&fresh)
    }

    /// The instance id this state directory had when its database was
    /// lost: the database has none, but the id is recorded beside it. The
    /// engine may still run that instance's objects (see
    /// [`Store::adopt_instance`]).
    pub fn lost_instance(&self) -> Option<String> {
        self.inner.lost_instance.clone()
    }

    /// Takes `id` as this store's instance id (unless it has one), so that
    /// the engine objects labelled with it are this store's again.
    pub fn adopt_instance(&self, id: &str) -> Result<String> {
        self.set_instance_if_absent(id)
    }

    /// This state directory's key for hashing secret values into engine
    /// labels: random, created on first use, stable across restarts, never
    /// leaving the state directory. Keyed, a label cannot be used to test
    /// guesses of a weak secret offline.
    pub fn secret_hash_key(&self) -> Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::Io {
            path: self.inner.dir.clone(),
            source: std::io::Error::other(format!("no random bytes for the secret hash key: {e}")),
        })?;
        let _ = self.db()?.meta.compare_and_swap(SECRET_HASH_KEY, None::<&[u8]>, Some(&fresh[..]))?;
        self.db()?.db.flush()?;
        let stored = self.db()?.meta.get(SECRET_HASH_KEY)?.and_then(|v| <[u8; 32]>::try_from(&v[..]).ok());
        Ok(stored.unwrap_or(fresh))
    }

    fn set_instance_if_absent(&self, id: &str) -> Result<String> {
        // Compare-and-swap from "absent": a concurrent first use agrees on one id.
        let _ = self.db()?.meta.compare_and_swap(INSTANCE_KEY, None::<&[u8]>, Some(id.as_bytes()))?;
        self.db()?.db.flush()?;
        let stored = self.db()?.meta.get(INSTANCE_KEY)?.map(|v| String::from_utf8_lossy(&v).into_owned());
        let id = stored.unwrap_or_else(|| id.to_string());
        if state_dir::recorded_instance(&self.inner.dir)?.as_deref() != Some(id.as_str()) {
            state_dir::record_instance(&self.inner.dir, &id)?;
        }
        Ok(id)
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<AnyObject>> {
        self.inner.cache.get(&key.to_string())
    }

    /// Objects of a kind (every kind when `None`), in one namespace or all.
    pub fn list(&self, kind: Option<Kind>, namespace: Option<&str>) -> Result<Vec<AnyObject>> {
        Ok(self.list_shared(kind, namespace)?.iter().map(|cached| cached.object().clone()).collect())
    }

    /// [`Store::list`] without copying: the cache's entries, each with its
    /// JSON encoding kept for the next list (what the REST API's lists send).
    pub fn list_shared(&self, kind: Option<Kind>, namespace: Option<&str>) -> Result<Vec<std::sync::Arc<Cached>>> {
        self.inner.cache.scan_shared(&key_prefix(kind, namespace), |object| {
            namespace.is_none_or(|ns| object.metadata().namespace() == ns)
        })
    }

    /// Every source record.
    pub fn sources(&self) -> Result<Vec<SourceRecord>> {
        self.db()?
            .sources
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                serde_json::from_slice(&bytes)
                    .map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(&key).into_owned(), source })
            })
            .collect()
    }

    /// One source record.
    pub fn source(&self, id: &str) -> Result<Option<SourceRecord>> {
        self.db()?
            .sources
            .get(id.as_bytes())?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt { key: id.to_string(), source })
            })
            .transpose()
    }

    /// Events after sequence number `after`, oldest first, at most `limit`;
    /// only those about `object` when given.
    pub fn events(&self, object: Option<&ObjectKey>, after: u64, limit: usize) -> Result<Vec<Event>> {
        let db = self.db()?;
        let read = |seq: u64| -> Result<Option<Event>> {
            db.events
                .get(events::log_key(seq))?
                .map(|b| {
                    serde_json::from_slice(&b)
                        .map_err(|source| StoreError::Corrupt { key: format!("event {seq}"), source })
                })
                .transpose()
        };
        let mut found = Vec::new();
        match object {
            Some(object) => {
                let start = events::index_key(&object.to_string(), after.saturating_add(1));
                let end = events::index_key(&object.to_string(), u64::MAX);
                for entry in db.events_by_object.range(start..=end).take(limit) {
                    let (key, _) = entry?;
                    let seq = u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap_or([0; 8]));
                    found.extend(read(seq)?);
                }
            }
            None => {
                for entry in db.events.range(events::log_key(after.saturating_add(1))..).take(limit) {
                    let (key, bytes) = entry?;
                    let event = serde_json::from_slice(&bytes)
                        .map_err(|source| StoreError::Corrupt { key: format!("event {key:?}"), source })?;
                    found.push(event);
                }
            }
        }
        Ok(found)
    }

    /// The newest `limit` events, oldest first; only those about `object`
    /// when given.
    pub fn latest_events(&self, object: Option<&ObjectKey>, limit: usize) -> Result<Vec<Event>> {
        let db = self.db()?;
        let seqs: Vec<u64> = match object {
            Some(object) => {
                let start = events::index_key(&object.to_string(), 0);
                let end = events::index_key(&object.to_string(), u64::MAX);
                let mut seqs = Vec::new();
                for entry in db.events_by_object.range(start..=end).rev().take(limit) {
                    let (key, _) = entry?;
                    seqs.push(u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap_or([0; 8])));
                }
                seqs
            }
            None => {
                let mut seqs = Vec::new();
                for entry in db.events.iter().keys().rev().take(limit) {
                    let key = entry?;
                    seqs.push(u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8])));
                }
                seqs
            }
        };
        let mut found = Vec::with_capacity(seqs.len());
        for seq in seqs.into_iter().rev() {
            let bytes = db.events.get(events::log_key(seq))?;
            if let Some(bytes) = bytes {
                let event = serde_json::from_slice(&bytes)
                    .map_err(|source| StoreError::Corrupt { key: format!("event {seq}"), source })?;
                found.push(event);
            }
        }
        Ok(found)
    }
}

/// Where the keys of `kind` (in `namespace`) start; every key without a kind.
fn key_prefix(kind: Option<Kind>, namespace: Option<&str>) -> String {
    match (kind, namespace) {
        (Some(kind), Some(namespace)) => format!("{kind}/{namespace}/"),
        (Some(kind), None) => format!("{kind}/"),
        (None, _) => String::new(),
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<AnyObject> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .and_then(AnyObject::from_json)
        .map_err(|source| StoreError::Corrupt { key: key.to_string(), source })
}
