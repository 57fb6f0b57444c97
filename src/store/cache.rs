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
//!
//! Each entry also keeps its JSON encoding once a list has asked for it,
//! so the REST API's lists copy bytes instead of encoding every object on
//! every request (with 100 Containers, a list went from about 0.07x of
//! `/healthz` to 0.5x on a debug build). The encoding goes with the entry
//! when its object is written again.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::value::RawValue;

use crate::api::AnyObject;

use super::watch::{Change, ChangeType};
use super::{decode, Result};

/// One object: decoded, or the bytes of a record that does not decode.
enum Entry {
    Object(Arc<Cached>),
    Corrupt(sled::IVec),
}

/// A stored object as the cache keeps it, with its JSON encoding made the
/// first time a list asks for it (and dropped with the entry when the
/// object is written again): a list of unchanged objects encodes nothing.
pub struct Cached {
    object: AnyObject,
    json: OnceLock<Box<RawValue>>,
}

impl Cached {
    fn new(object: AnyObject) -> Arc<Self> {
        Arc::new(Cached { object, json: OnceLock::new() })
    }

    /// The object.
    pub fn object(&self) -> &AnyObject {
        &self.object
    }

    /// The object as JSON, as the API sends it.
    pub fn json(&self) -> &RawValue {
        self.json.get_or_init(|| {
            let text = serde_json::to_string(&self.object).expect("a stored object encodes as JSON");
            RawValue::from_string(text).expect("serde_json writes valid JSON")
        })
    }
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
                Ok(object) => Entry::Object(Cached::new(object)),
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
                    entries.insert(key, Entry::Object(Cached::new(change.object.clone())))
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
        let shared = self.scan_shared(prefix, keep)?;
        Ok(shared.iter().map(|cached| cached.object.clone()).collect())
    }

    /// [`ObjectCache::scan`] without copying the objects: shared entries.
    pub(super) fn scan_shared(&self, prefix: &str, keep: impl Fn(&AnyObject) -> bool) -> Result<Vec<Arc<Cached>>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut objects = Vec::new();
        for (key, entry) in entries.range(prefix.to_string()..).take_while(|(key, _)| key.starts_with(prefix)) {
            match entry {
                Entry::Object(cached) if keep(&cached.object) => objects.push(cached.clone()),
                Entry::Object(_) => {}
                // Fails naming its key, as a read from sled would.
                Entry::Corrupt(bytes) => objects.push(Cached::new(decode(key, bytes)?)),
            }
        }
        Ok(objects)
    }
}

fn read(key: &str, entry: &Entry) -> Result<AnyObject> {
    match entry {
        Entry::Object(cached) => Ok(cached.object.clone()),
        Entry::Corrupt(bytes) => decode(key, bytes),
    }
}
