//! Writing a source's objects: the step every source (file, git, API)
//! shares.

use std::collections::BTreeSet;

use chrono::Utc;

use crate::api::{AnyObject, ObjectKey, Source};
use crate::store::{Event, Precondition, SourceRecord, Store, StoreError, WriteBatch, WriteOp};

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Objects created or changed.
    pub written: usize,
    /// Objects the source no longer declares, now marked for deletion.
    pub deleted: usize,
}

/// Makes `objects` the complete set `source` declares: writes them, deletes
/// what it declared before and no longer does, and records the source, all
/// in one transaction. Fails whole if another source owns one of the objects.
pub fn apply_source(store: &Store, source: &Source, objects: Vec<AnyObject>) -> Result<Applied, StoreError> {
    let previous = store.source(&source.id())?.map(|r| r.objects).unwrap_or_default();
    let keys: BTreeSet<ObjectKey> = objects.iter().map(AnyObject::key).collect();
    let mut batch = WriteBatch::new();
    for mut object in objects {
        object.metadata_mut().source = Some(source.clone());
        batch = batch.op(WriteOp::Put { object, precondition: Precondition::None, force: false });
    }
    let mut deleted = 0;
    for key in previous.iter().filter(|k| !keys.contains(*k)) {
        if store.get(key)?.is_some_and(|o| o.metadata().deletion_timestamp.is_none()) {
            batch = batch.op(WriteOp::Delete {
                key: key.clone(),
                precondition: Precondition::None,
                source: Some(source.clone()),
                force: false,
            });
            deleted += 1;
        }
    }
    let record = SourceRecord {
        source: source.clone(),
        objects: keys.into_iter().collect(),
        errors: Vec::new(),
        updated: Utc::now(),
    };
    let commit = store.commit(batch.op(WriteOp::Source(record)))?;
    let written = commit
        .outcomes
        .iter()
        .filter(|o| matches!(o, crate::store::Outcome::Created | crate::store::Outcome::Updated { .. }))
        .count();
    if written + deleted > 0 {
        let message = format!("{written} objects written, {deleted} deleted from {source}");
        let events: Vec<Event> = commit
            .changes
            .iter()
            .map(|c| Event::about(&c.object.key(), "applied", "SourceChanged", message.clone()))
            .collect();
        let mut events_batch = WriteBatch::new();
        for event in events {
            events_batch = events_batch.event(event);
        }
        store.commit(events_batch)?;
    }
    Ok(Applied { written, deleted })
}

/// Records that `source`'s current input was rejected: its errors, and its
/// objects as they were.
pub fn reject_source(store: &Store, source: &Source, errors: Vec<String>) -> Result<(), StoreError> {
    let objects = store.source(&source.id())?.map(|r| r.objects).unwrap_or_default();
    let record = SourceRecord { source: source.clone(), objects, errors: errors.clone(), updated: Utc::now() };
    let event = Event {
        seq: 0,
        time: Utc::now(),
        object: None,
        action: "rejected".into(),
        reason: "InvalidManifest".into(),
        message: format!("{source}: kept the objects of its last good version; {}", errors.join("; ")),
    };
    store.commit(WriteBatch::new().op(WriteOp::Source(record)).event(event))?;
    Ok(())
}

/// Deletes every object `source` declared and forgets the source.
pub fn remove_source(store: &Store, source: &Source) -> Result<usize, StoreError> {
    let previous = store.source(&source.id())?.map(|r| r.objects).unwrap_or_default();
    let mut batch = WriteBatch::new();
    let mut deleted = 0;
    for key in &previous {
        let owned = store.get(key)?.is_some_and(|o| o.metadata().source.as_ref().map(Source::id) == Some(source.id()));
        if owned {
            batch = batch.op(WriteOp::Delete {
                key: key.clone(),
                precondition: Precondition::None,
                source: Some(source.clone()),
                force: false,
            });
            batch = batch.event(Event::about(key, "deleted", "SourceRemoved", format!("{source} is gone")));
            deleted += 1;
        }
    }
    store.commit(batch.op(WriteOp::ForgetSource(source.id())))?;
    Ok(deleted)
}
