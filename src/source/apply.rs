//! Writing a source's objects: the step every source (file, git, API)
//! shares.

use std::collections::BTreeSet;

use chrono::Utc;

use crate::api::{AnyObject, ObjectKey, Source};
use crate::store::{Event, Outcome, Precondition, SourceRecord, Store, StoreError, WriteBatch, WriteOp};

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Objects created.
    pub created: usize,
    /// Objects created or changed.
    pub written: usize,
    /// Objects the source no longer declares, now marked for deletion.
    pub deleted: usize,
    /// The store's resourceVersion after the apply.
    pub resource_version: u64,
}

/// How a set is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetOptions {
    /// The set is everything the source declares: delete what it declared
    /// before and no longer does, and remember the set.
    pub prune: bool,
    /// Write objects other sources own.
    pub force: bool,
    /// Write an object carrying `metadata.resourceVersion` only if the
    /// stored one is at that version (API writes; files ignore it).
    pub preconditions: bool,
    /// Record the source (its objects and, for git, its commit) even
    /// without `prune`: a repository followed with `--git-prune=false` still
    /// says which commit it applied. Its objects are then what it declared
    /// before and what it declares now.
    pub record: bool,
    /// Refuse to write an object that exists already (a create).
    pub create_only: bool,
}

impl SetOptions {
    /// A watched file or repository: the set is complete, versions ignored.
    pub const SOURCE: SetOptions =
        SetOptions { prune: true, force: false, preconditions: false, record: true, create_only: false };
}

/// Makes `objects` the complete set `source` declares: writes them, deletes
/// what it declared before and no longer does, and records the source, all
/// in one transaction. Fails whole if another source owns one of the objects.
pub fn apply_source(store: &Store, source: &Source, objects: Vec<AnyObject>) -> Result<Applied, StoreError> {
    apply_set(store, source, objects, SetOptions::SOURCE)
}

/// Objects `source` declared before and no longer does, that still exist.
pub fn pruned(store: &Store, source: &Source, objects: &[AnyObject]) -> Result<Vec<ObjectKey>, StoreError> {
    let previous = store.source(&source.id())?.map(|r| r.objects).unwrap_or_default();
    let keys: BTreeSet<ObjectKey> = objects.iter().map(AnyObject::key).collect();
    let mut gone = Vec::new();
    for key in previous.into_iter().filter(|k| !keys.contains(k)) {
        if store.get(&key)?.is_some_and(|o| o.metadata().deletion_timestamp.is_none()) {
            gone.push(key);
        }
    }
    Ok(gone)
}

/// Writes `objects` as `source`'s, in one transaction, as `options` say.
pub fn apply_set(
    store: &Store,
    source: &Source,
    objects: Vec<AnyObject>,
    options: SetOptions,
) -> Result<Applied, StoreError> {
    let (batch, deleted) = set_batch(store, source, objects, options)?;
    let commit = store.commit(batch)?;
    let count = |f: fn(&Outcome) -> bool| commit.outcomes.iter().filter(|o| f(o)).count();
    let created = count(|o| matches!(o, Outcome::Created));
    let written = count(|o| matches!(o, Outcome::Created | Outcome::Updated { .. }));
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
    Ok(Applied { created, written, deleted, resource_version: commit.resource_version })
}

/// Fails exactly where [`apply_set`] would (another source owns an object, a
/// stale resourceVersion), writing nothing: for dry runs. Returns what the
/// commit would have done.
pub fn check_set(
    store: &Store,
    source: &Source,
    objects: Vec<AnyObject>,
    options: SetOptions,
) -> Result<crate::store::Commit, StoreError> {
    store.check(set_batch(store, source, objects, options)?.0)
}

/// The batch that applies `objects` as `source`'s, and how many objects it
/// marks for deletion.
fn set_batch(
    store: &Store,
    source: &Source,
    objects: Vec<AnyObject>,
    options: SetOptions,
) -> Result<(WriteBatch, usize), StoreError> {
    let gone = if options.prune { pruned(store, source, &objects)? } else { Vec::new() };
    let mut keys: BTreeSet<ObjectKey> = objects.iter().map(AnyObject::key).collect();
    if options.record && !options.prune {
        keys.extend(store.source(&source.id())?.map(|r| r.objects).unwrap_or_default());
    }
    let mut batch = WriteBatch::new();
    for mut object in objects {
        let precondition = match object.metadata().resource_version {
            _ if options.create_only => Precondition::MustNotExist,
            Some(version) if options.preconditions => Precondition::ResourceVersion(version),
            _ => Precondition::None,
        };
        object.metadata_mut().source = Some(source.clone());
        batch = batch.op(WriteOp::Put { object, precondition, force: options.force });
    }
    let deleted = gone.len();
    for key in gone {
        batch = batch.op(WriteOp::Delete {
            key,
            precondition: Precondition::None,
            source: Some(source.clone()),
            force: options.force,
        });
    }
    if options.prune || options.record {
        batch = batch.op(WriteOp::Source(SourceRecord::new(source.clone(), keys.into_iter().collect())));
    }
    Ok((batch, deleted))
}

/// Records that `source`'s current input was rejected: its errors, and its
/// objects as they were. For git, `source.commit` is the rejected commit:
/// it is recorded as seen, and the applied one stays.
pub fn reject_source(store: &Store, source: &Source, errors: Vec<String>) -> Result<(), StoreError> {
    let previous = store.source(&source.id())?;
    let (objects, applied_commit) = previous.map(|r| (r.objects, r.applied_commit)).unwrap_or_default();
    let record = SourceRecord {
        errors: errors.clone(),
        applied_commit,
        error_time: Some(Utc::now()),
        ..SourceRecord::new(source.clone(), objects)
    };
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
