//! Every stored object, decoded, in memory: reads (`get`, `list`, the start
//! of a watch) come from here instead of sled and a JSON decode per object.
//!
//! A list of 100 objects decoded each one from its JSON bytes, which made
//! it about a hundredth as fast as `/healthz`; the controller's reads paid
//! the same. The cache is filled when the database opens (or reopens after
//! a failed write) and follows every commit under the commit lock, from the
//! commit's own changes, which carry each written object exactly as
//! written. So it holds what sled holds: a commit is in both or in neither.
//!
//! A record that does not decode stays as its bytes, so reading it fails
//! as before, naming its key, and the rest of the store stays usable.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::api::AnyObject;

use super::watch::{Change, ChangeType};
use super::{decode, Result};

/// One object: decoded, or the bytes of a record that does not decode.
enum Entry {
    Object(Box<AnyObject>),
    Corrupt(sled::IVec),
}

/// The objects by key (`Kind/namespace/name`), in the database's order.
#[derive(Default)]
pub(super) struct ObjectCache {
    entries: RwLock<BTreeMap<String, Entry>>,
}

impl ObjectCache {
    /// Fills the cache from the `objects` tree, replacing what it held.
    pub(super) fn load(&self, objects: &sled::Tree) -> Result<()> {
        let mut entries = BTreeMap::new();
        for entry in objects.iter() {
            let (key, bytes) = entry?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let entry = match decode(&key, &bytes) {
                Ok(object) => Entry::Object(Box::new(object)),
                Err(_) => Entry::Corrupt(bytes),
            };
            entries.insert(key, entry);
        }
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = entries;
        Ok(())
    }

    /// Follows a commit: each change's object as written, or its removal.
    pub(super) fn apply(&self, changes: &[Change]) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for change in changes {
            let key = change.object.key().to_string();
            match change.change {
                ChangeType::Deleted => entries.remove(&key),
                ChangeType::Added | ChangeType::Modified => {
                    entries.insert(key, Entry::Object(Box::new(change.object.clone())))
                }
            };
        }
    }

    /// The object under `key`, if any.
    pub(super) fn get(&self, key: &str) -> Result<Option<AnyObject>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).map(|entry| read(key, entry)).transpose()
    }

    /// The objects whose keys start with `prefix` and for which `keep`
    /// holds, in key order.
    pub(super) fn scan(&self, prefix: &str, keep: impl Fn(&AnyObject) -> bool) -> Result<Vec<AnyObject>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut objects = Vec::new();
        for (key, entry) in entries.range(prefix.to_string()..).take_while(|(key, _)| key.starts_with(prefix)) {
            if let Entry::Object(object) = entry {
                if !keep(object) {
                    continue;
                }
            }
            objects.push(read(key, entry)?);
        }
        Ok(objects)
    }
}

fn read(key: &str, entry: &Entry) -> Result<AnyObject> {
    match entry {
        Entry::Object(object) => Ok(AnyObject::clone(object)),
        Entry::Corrupt(bytes) => decode(key, bytes),
    }
}
