//! What a watcher that reconnects needs: every change since the
//! resourceVersion it last saw.
//!
//! The store keeps objects, not their past versions, so history is
//! rebuilt from two things: objects whose resourceVersion is newer than the
//! watcher's (their latest state), and tombstones, the last state of each
//! object removed, keyed by the version of its removal. Replaying both in
//! version order gives the watcher every object that changed, collapsed to
//! its newest state, and every removal: nothing is missed, intermediate
//! states may be skipped (as an informer's relist would).
//!
//! Tombstones are kept for [`TOMBSTONE_TTL`]; a watcher older than the
//! oldest retained version gets [`super::StoreError::Expired`] and must list
//! again, as a Kubernetes watch gets `410 Gone`.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::api::AnyObject;

/// How long removals are remembered for resuming watchers.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);

/// Key in `meta` of the oldest resourceVersion from which history is complete.
pub(crate) const HISTORY_FROM_KEY: &[u8] = b"historyFrom";

/// The last state of a removed object.
#[derive(Serialize, Deserialize)]
pub(crate) struct Tombstone {
    /// When it was removed.
    pub removed: chrono::DateTime<Utc>,
    /// The object as it was.
    pub object: AnyObject,
}

/// Key of a tombstone: the removal's resourceVersion (big-endian, so sled's
/// order is version order), then the object key for uniqueness.
pub(crate) fn tombstone_key(resource_version: u64, object: &str) -> Vec<u8> {
    let mut key = resource_version.to_be_bytes().to_vec();
    key.extend_from_slice(object.as_bytes());
    key
}

/// The resourceVersion a tombstone key starts with.
pub(crate) fn version_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]))
}
