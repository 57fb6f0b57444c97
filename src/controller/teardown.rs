//! Why an object's engine objects go, shared by the kinds' `decide`
//! functions (replicas, networks) and the event log's reasons: its own
//! file, so deciding one kind's steps does not pull in another's.

/// Why everything an object has in the engine goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Teardown {
    /// The object is being deleted.
    Deleted,
    /// Nothing declares the object: its containers are orphans.
    Orphan,
    /// The Container is suspended until it is resumed.
    Suspended,
}

impl Teardown {
    /// The reason recorded in the event log.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Teardown::Deleted => "Deleted",
            Teardown::Orphan => "Orphan",
            Teardown::Suspended => "Suspended",
        }
    }
}
