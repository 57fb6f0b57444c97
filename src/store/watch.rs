//! Change notifications: every committed write is announced, in
//! resourceVersion order, to whoever watches (the controller, API watches).

use serde::{Deserialize, Serialize};

use crate::api::AnyObject;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeType {
    /// It was created.
    Added,
    /// Its spec, metadata, deletion mark or status changed.
    Modified,
    /// Its record was removed.
    Deleted,
}

/// One committed change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The store's resourceVersion after the write.
    pub resource_version: u64,
    /// What happened.
    pub change: ChangeType,
    /// The object after the write (before it, for `Deleted`).
    pub object: AnyObject,
    /// True when only the status changed: the object's own reconciler wrote
    /// it and must not be woken by it.
    pub status_only: bool,
}
