//! Who waits for whom: the references between objects, both ways.
//!
//! A Container waits for its Image, Volumes, Networks and dependencies to be
//! Ready; when one of them changes (its status included), the Containers
//! that refer to it are reconciled, so nothing polls. The other direction
//! matters for teardown: a Network or Volume is removed once the Containers
//! using it are gone, so a Container's change wakes what it refers to.

use std::collections::{HashMap, HashSet};

use crate::api::{AnyObject, Kind, ObjectKey};

/// The reference graph, kept current from store changes.
#[derive(Debug, Default)]
pub struct Dependents {
    /// Object → what refers to it.
    referrers: HashMap<ObjectKey, HashSet<ObjectKey>>,
    /// Object → what it refers to (to undo its edges on change).
    references: HashMap<ObjectKey, Vec<ObjectKey>>,
}

/// What `object` refers to.
pub fn references_of(object: &AnyObject) -> Vec<ObjectKey> {
    let AnyObject::Container(container) = object else { return Vec::new() };
    let namespace = container.metadata.namespace();
    let spec = &container.spec;
    let key = |kind, name: &str| ObjectKey::new(kind, namespace, name);
    let mut refs = Vec::new();
    refs.extend(spec.image_ref.iter().map(|n| key(Kind::Image, n)));
    refs.extend(spec.volume_mounts.iter().filter_map(|m| m.volume.as_deref()).map(|n| key(Kind::Volume, n)));
    refs.extend(spec.networks.iter().map(|n| key(Kind::Network, &n.name)));
    refs.extend(spec.depends_on.iter().map(|d| key(Kind::Container, &d.container)));
    refs
}

/// The Containers in the store (live or being deleted) that refer to `key`:
/// a Network or Volume being deleted waits for them to be gone, so that
/// dependents are torn down first.
pub fn containers_using(
    store: &crate::store::Store,
    key: &ObjectKey,
) -> Result<Vec<ObjectKey>, crate::store::StoreError> {
    Ok(store
        .list(Some(Kind::Container), Some(&key.namespace))?
        .iter()
        .filter(|c| references_of(c).contains(key))
        .map(AnyObject::key)
        .collect())
}

impl Dependents {
    /// Records (or replaces) the references of `object`.
    pub fn update(&mut self, object: &AnyObject) {
        let key = object.key();
        self.forget(&key);
        let refs = references_of(object);
        for target in &refs {
            self.referrers.entry(target.clone()).or_default().insert(key.clone());
        }
        self.references.insert(key, refs);
    }

    /// Drops the references of a removed object.
    pub fn forget(&mut self, key: &ObjectKey) {
        for target in self.references.remove(key).unwrap_or_default() {
            if let Some(set) = self.referrers.get_mut(&target) {
                set.remove(key);
            }
        }
    }

    /// Everything to wake when `key` changes: its referrers and its references.
    pub fn related(&self, key: &ObjectKey) -> Vec<ObjectKey> {
        let referrers = self.referrers.get(key).into_iter().flatten().cloned();
        let references = self.references.get(key).into_iter().flatten().cloned();
        referrers.chain(references).collect()
    }
}
