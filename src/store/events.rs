//! The event log: an append-only audit trail of what happened and why.
//!
//! Every change berth makes (an object applied or deleted, an engine
//! operation, a rejected manifest) is recorded with its time, object,
//! action, reason and message. Entries are never rewritten; each has a
//! store-wide sequence number so readers can follow the log from where they
//! left off. Entries are also indexed by object, so `berth describe` reads an
//! object's history without scanning the whole log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::ObjectKey;

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Position in the log, assigned when the entry is stored (from 1).
    #[serde(default)]
    pub seq: u64,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The object concerned (`Kind/namespace/name`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// What was done: `created`, `updated`, `deleted`, `recreate`, …
    pub action: String,
    /// Why, in one CamelCase word or a short phrase: `SpecChanged`, `orphan`, …
    pub reason: String,
    /// Details for people.
    #[serde(default)]
    pub message: String,
}

impl Event {
    /// A new entry about `object`, timed now.
    pub fn about(object: &ObjectKey, action: &str, reason: &str, message: impl Into<String>) -> Self {
        Event {
            seq: 0,
            time: Utc::now(),
            object: Some(object.to_string()),
            action: action.to_string(),
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Key of an event in the log tree: its sequence number, big-endian so that
/// sled's byte order is log order.
pub(crate) fn log_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Key of an event in the by-object index: `object \0 seq`.
pub(crate) fn index_key(object: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(object.len() + 9);
    key.extend_from_slice(object.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The object part of a by-object index key (see [`index_key`]).
pub(crate) fn index_object(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(9)]
}
