//! The sled database and its trees, as one handle the store can replace.
//!
//! sled does not recover from a failed write within the process: after an
//! I/O error (a full disk) every later write fails too, although what it
//! wrote before is safe on disk. Reopening it is what a restart would do,
//! so the store does it in place once a write has failed ([`Store::recover`](super::Store::recover)):
//! the old handle is dropped (sled holds the database's file lock), the
//! database opened again from disk and its trees swapped in.

use std::path::Path;

/// The database and every tree of the store.
pub(super) struct Db {
    pub(super) db: sled::Db,
    pub(super) objects: sled::Tree,
    pub(super) sources: sled::Tree,
    pub(super) meta: sled::Tree,
    pub(super) events: sled::Tree,
    pub(super) events_by_object: sled::Tree,
    pub(super) tombstones: sled::Tree,
}

/// A bound on sled's page cache. Objects are read from the store's own
/// decoded cache ([`super::cache`]), so sled's serves only the event log,
/// tombstones and writes; its default of 1 GiB would let a long-running
/// berth's memory grow with the log up to that. (At the 10,000-Container
/// benchmark's peak the cache is well below either bound: peak RSS did not
/// move.)
const PAGE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl Db {
    /// Opens the database at `path`; also whether it had history
    /// (tombstones) before.
    pub(super) fn open(path: &Path) -> sled::Result<(Db, bool)> {
        let db = sled::Config::new().path(path).cache_capacity(PAGE_CACHE_BYTES).open()?;
        let had_history = db.tree_names().iter().any(|name| name.as_ref() == b"tombstones");
        let db = Db {
            objects: db.open_tree("objects")?,
            sources: db.open_tree("sources")?,
            meta: db.open_tree("meta")?,
            events: db.open_tree("events")?,
            events_by_object: db.open_tree("events_by_object")?,
            tombstones: db.open_tree("tombstones")?,
            db,
        };
        Ok((db, had_history))
    }
}
