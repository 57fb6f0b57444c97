//! Writes: a batch of operations applied in one sled transaction.
//!
//! Everything that belongs together (the objects of one file, one API
//! apply, an object's removal and its event) goes in one [`WriteBatch`]; the
//! batch commits whole or not at all. Each write that changes anything moves
//! the store-wide resourceVersion on by one, and every object it touched
//! carries that version. Preconditions make any write a compare-and-swap.
//!
//! # Guarantees
//! - A batch whose operation fails (conflict, not found, owned by another
//!   source) leaves the store exactly as it was.
//! - Writing an object identical to the stored one changes nothing: no new
//!   resourceVersion, no watch event. Re-applying a file is free.
//! - `generation` moves only when the spec changes.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::api::{AnyObject, ObjectKey, Source};

use super::events::{self, Event};
use super::watch::{Change, ChangeType};
use super::StoreError;

/// Condition a write requires of the stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// None.
    None,
    /// The object must not exist (create).
    MustNotExist,
    /// The object must exist at exactly this resourceVersion (update).
    ResourceVersion(u64),
}

/// A source and what it last declared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRecord {
    /// The source.
    pub source: Source,
    /// Objects it declared in its last good state.
    #[serde(default)]
    pub objects: Vec<ObjectKey>,
    /// Problems of its current state, when that state was rejected; the
    /// objects of the last good state stay in place meanwhile.
    #[serde(default)]
    pub errors: Vec<String>,
    /// When the source was last read.
    pub updated: chrono::DateTime<Utc>,
    /// Git: the commit last fetched and looked at, applied or rejected.
    /// A poll that finds it again does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_commit: Option<String>,
    /// Git: the commit whose objects are in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_commit: Option<String>,
    /// Git: why the last fetch failed, until one succeeds. Kept apart from
    /// `errors`, which are about the content of `seen_commit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
    /// When `errors` or `fetch_error` were last set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_time: Option<chrono::DateTime<Utc>>,
}

impl SourceRecord {
    /// A record of `source` declaring `objects`, read now, without errors.
    /// For git, the source's commit is both seen and applied.
    pub fn new(source: Source, objects: Vec<ObjectKey>) -> Self {
        SourceRecord {
            seen_commit: source.commit.clone(),
            applied_commit: source.commit.clone(),
            source,
            objects,
            errors: Vec::new(),
            updated: Utc::now(),
            fetch_error: None,
            error_time: None,
        }
    }
}

/// One operation of a batch.
// `Put` carries a whole object; batches are short-lived, so the size gap
// between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Create or update an object's metadata and spec (status is kept).
    Put {
        /// The object as the source declares it.
        object: AnyObject,
        /// What the stored object must be.
        precondition: Precondition,
        /// Write even if another source owns the object (it keeps ownership
        /// and will write its own version back on its next change).
        force: bool,
    },
    /// Create or update an object as its source's, taking it over from
    /// source `from` if that one owns it: an object that moved from one
    /// manifest file to another keeps its uid, its status and, with an
    /// unchanged spec, its generation. Refused if a third source owns it.
    TakeOver {
        /// The object as its new source declares it.
        object: AnyObject,
        /// The id of the source it may be taken from.
        from: String,
    },
    /// Mark an object for deletion; its reconciler tears down, then removes it.
    Delete {
        /// The object.
        key: ObjectKey,
        /// What the stored object must be.
        precondition: Precondition,
        /// The source asking; refused if another owns the object, unless forced.
        source: Option<Source>,
        /// Delete even if another source owns it.
        force: bool,
    },
    /// Remove an object's record: the last step of deletion.
    Remove {
        /// The object.
        key: ObjectKey,
        /// What the stored object must be.
        precondition: Precondition,
    },
    /// Replace an object's status.
    Status {
        /// The object.
        key: ObjectKey,
        /// The new status, in the kind's status shape.
        status: serde_json::Value,
    },
    /// Sets (`Some`) or clears (`None`) one of berth's overrides on an
    /// object ([`crate::api::overrides`]), whoever its source is: the
    /// object's spec and generation stay, its resourceVersion moves.
    Override {
        /// The object.
        key: ObjectKey,
        /// The override's annotation, one of [`crate::api::overrides::ALL`].
        annotation: &'static str,
        /// Its value, or `None` to clear it.
        value: Option<String>,
    },
    /// Record a source's state.
    Source(SourceRecord),
    /// Forget a source.
    ForgetSource(String),
    /// Append to the event log.
    Event(Event),
}

/// Operations committed together.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<WriteOp>,
    /// Commit without waiting for the disk (see [`WriteBatch::relaxed`]).
    pub(crate) relaxed: bool,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation.
    pub fn op(mut self, op: WriteOp) -> Self {
        self.ops.push(op);
        self
    }

    /// Creates or updates `object`, without precondition.
    pub fn put(self, object: AnyObject) -> Self {
        self.op(WriteOp::Put { object, precondition: Precondition::None, force: false })
    }

    /// Marks `key` for deletion.
    pub fn delete(self, key: ObjectKey) -> Self {
        self.op(WriteOp::Delete { key, precondition: Precondition::None, source: None, force: false })
    }

    /// Removes `key`'s record.
    pub fn remove(self, key: ObjectKey) -> Self {
        self.op(WriteOp::Remove { key, precondition: Precondition::None })
    }

    /// Replaces `key`'s status.
    pub fn status(self, key: ObjectKey, status: serde_json::Value) -> Self {
        self.op(WriteOp::Status { key, status })
    }

    /// Appends an event.
    pub fn event(self, event: Event) -> Self {
        self.op(WriteOp::Event(event))
    }

    /// Lets the commit return before its data reaches the disk; sled writes
    /// it within half a second. For what can be derived again after a crash
    /// (status, the controller's own events), never for desired state.
    pub fn relaxed(mut self) -> Self {
        self.relaxed = true;
        self
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new object.
    Created,
    /// An existing object changed; `spec_changed` says whether its generation moved.
    Updated {
        /// Whether the spec changed.
        spec_changed: bool,
    },
    /// Nothing to change.
    Unchanged,
    /// The object is now marked for deletion.
    DeletionRequested,
    /// The object was already marked for deletion.
    AlreadyDeleting,
    /// The record is gone.
    Removed,
    /// The status was written.
    StatusWritten,
    /// The source record was written or forgotten.
    SourceWritten,
    /// The event got this sequence number.
    EventAppended(u64),
}

/// The result of a committed batch.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// The store's resourceVersion after the batch (unchanged if nothing changed).
    pub resource_version: u64,
    /// One outcome per operation, in order.
    pub outcomes: Vec<Outcome>,
    /// The object changes the batch made, for watchers.
    pub changes: Vec<Change>,
    /// The sequence number of the last event appended, if any.
    pub last_event: Option<u64>,
}

/// The trees a transaction works on.
pub(crate) struct Trees<'a> {
    pub objects: &'a TransactionalTree,
    pub sources: &'a TransactionalTree,
    pub meta: &'a TransactionalTree,
    pub events: &'a TransactionalTree,
    pub events_by_object: &'a TransactionalTree,
    pub tombstones: &'a TransactionalTree,
}

pub(crate) const RESOURCE_VERSION_KEY: &[u8] = b"resourceVersion";
pub(crate) const EVENT_SEQ_KEY: &[u8] = b"eventSeq";

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

fn read_counter(tree: &TransactionalTree, key: &[u8]) -> TxResult<u64> {
    Ok(tree.get(key)?.map_or(0, |v| u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))))
}

fn read_object(tree: &TransactionalTree, key: &ObjectKey) -> TxResult<Option<AnyObject>> {
    match tree.get(key.to_string().as_bytes())? {
        None => Ok(None),
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes).and_then(AnyObject::from_json) {
            Ok(object) => Ok(Some(object)),
            Err(source) => abort(StoreError::Corrupt { key: key.to_string(), source }),
        },
    }
}

/// The stored object, or `NotFound`.
fn read_existing(tree: &TransactionalTree, key: &ObjectKey) -> TxResult<AnyObject> {
    match read_object(tree, key)? {
        Some(object) => Ok(object),
        None => abort(StoreError::NotFound { key: key.clone() }),
    }
}

fn write_object(tree: &TransactionalTree, object: &AnyObject) -> TxResult<()> {
    let bytes = serde_json::to_vec(object).expect("objects serialize to JSON");
    tree.insert(object.key().to_string().as_bytes(), bytes)?;
    Ok(())
}

fn check(key: &ObjectKey, precondition: Precondition, stored: Option<&AnyObject>) -> TxResult<()> {
    let found = stored.and_then(|o| o.metadata().resource_version);
    match (precondition, stored) {
        (Precondition::None, _) => Ok(()),
        (Precondition::MustNotExist, None) => Ok(()),
        (Precondition::MustNotExist, Some(_)) => abort(StoreError::AlreadyExists { key: key.clone() }),
        (Precondition::ResourceVersion(expected), _) if found == Some(expected) => Ok(()),
        (Precondition::ResourceVersion(expected), _) => {
            abort(StoreError::Conflict { key: key.clone(), expected, found })
        }
    }
}

/// Refuses a write by `writer` to an object another source owns.
fn check_owner(key: &ObjectKey, stored: &AnyObject, writer: Option<&Source>, force: bool) -> TxResult<()> {
    let owner = stored.metadata().source.as_ref();
    match (owner, writer) {
        (Some(owner), Some(writer)) if owner.id() != writer.id() && !force => {
            abort(StoreError::OwnedByOther { key: key.clone(), owner: owner.id() })
        }
        _ => Ok(()),
    }
}

/// Applies `ops` inside a transaction. Pure in the transaction's view, as
/// sled may run it more than once.
pub(crate) fn apply(ops: &[WriteOp], trees: Trees<'_>) -> TxResult<Commit> {
    let next_version = read_counter(trees.meta, RESOURCE_VERSION_KEY)? + 1;
    let mut event_seq = read_counter(trees.meta, EVENT_SEQ_KEY)?;
    let mut commit = Commit::default();
    let now = Utc::now();
    for op in ops {
        let outcome = match op {
            WriteOp::Put { object, precondition, force } => {
                let owner = if *force { OwnerRule::Override } else { OwnerRule::Same };
                match put(&trees, &mut commit, object, *precondition, owner, next_version, now)? {
                    Some(outcome) => outcome,
                    None => continue,
                }
            }
            WriteOp::TakeOver { object, from } => {
                match put(
                    &trees,
                    &mut commit,
                    object,
                    Precondition::None,
                    OwnerRule::TakeFrom(from),
                    next_version,
                    now,
                )? {
                    Some(outcome) => outcome,
                    None => continue,
                }
            }
            WriteOp::Delete { key, precondition, source, force } => {
                let mut stored = read_existing(trees.objects, key)?;
                check(key, *precondition, Some(&stored))?;
                check_owner(key, &stored, source.as_ref(), *force)?;
                if stored.metadata().deletion_timestamp.is_some() {
                    commit.outcomes.push(Outcome::AlreadyDeleting);
                    continue;
                }
                stored.metadata_mut().deletion_timestamp = Some(now);
                write_modified(&trees, &mut commit, stored, next_version)?;
                Outcome::DeletionRequested
            }
            WriteOp::Remove { key, precondition } => {
                let stored = read_existing(trees.objects, key)?;
                check(key, *precondition, Some(&stored))?;
                trees.objects.remove(key.to_string().as_bytes())?;
                let tombstone = super::history::Tombstone { removed: now, object: stored.clone() };
                let bytes = serde_json::to_vec(&tombstone).expect("objects serialize to JSON");
                trees.tombstones.insert(super::history::tombstone_key(next_version, &key.to_string()), bytes)?;
                commit.changes.push(Change {
                    resource_version: next_version,
                    change: ChangeType::Deleted,
                    object: stored,
                    status_only: false,
                });
                Outcome::Removed
            }
            WriteOp::Status { key, status } => {
                let stored = read_existing(trees.objects, key)?;
                let mut json = stored.to_json();
                json["status"] = status.clone();
                json["metadata"]["resourceVersion"] = serde_json::json!(next_version);
                let next = match AnyObject::from_json(json) {
                    Ok(next) => next,
                    Err(source) => return abort(StoreError::InvalidStatus { key: key.clone(), source }),
                };
                write_object(trees.objects, &next)?;
                commit.changes.push(Change {
                    resource_version: next_version,
                    change: ChangeType::Modified,
                    object: next,
                    status_only: true,
                });
                Outcome::StatusWritten
            }
            WriteOp::Override { key, annotation, value } => {
                let mut stored = read_existing(trees.objects, key)?;
                let annotations = &mut stored.metadata_mut().annotations;
                let before = annotations.get(*annotation).cloned();
                if before == *value {
                    commit.outcomes.push(Outcome::Unchanged);
                    continue;
                }
                match value {
                    Some(value) => annotations.insert((*annotation).to_string(), value.clone()),
                    None => annotations.remove(*annotation),
                };
                write_modified(&trees, &mut commit, stored, next_version)?;
                Outcome::Updated { spec_changed: false }
            }
            WriteOp::Source(record) => {
                let bytes = serde_json::to_vec(record).expect("source records serialize");
                trees.sources.insert(record.source.id().as_bytes(), bytes)?;
                Outcome::SourceWritten
            }
            WriteOp::ForgetSource(id) => {
                trees.sources.remove(id.as_bytes())?;
                Outcome::SourceWritten
            }
            WriteOp::Event(event) => {
                event_seq += 1;
                let mut event = event.clone();
                event.seq = event_seq;
                let bytes = serde_json::to_vec(&event).expect("events serialize");
                trees.events.insert(&events::log_key(event_seq), bytes)?;
                if let Some(object) = &event.object {
                    trees.events_by_object.insert(events::index_key(object, event_seq), &[])?;
                }
                commit.last_event = Some(event_seq);
                Outcome::EventAppended(event_seq)
            }
        };
        commit.outcomes.push(outcome);
    }
    commit.resource_version = next_version - 1;
    if !commit.changes.is_empty() {
        trees.meta.insert(RESOURCE_VERSION_KEY, &next_version.to_be_bytes())?;
        commit.resource_version = next_version;
    }
    trees.meta.insert(EVENT_SEQ_KEY, &event_seq.to_be_bytes())?;
    Ok(commit)
}

/// Writes `object`, changed in its metadata, at `version`, and reports the change.
fn write_modified(trees: &Trees<'_>, commit: &mut Commit, mut object: AnyObject, version: u64) -> TxResult<()> {
    object.metadata_mut().resource_version = Some(version);
    write_object(trees.objects, &object)?;
    commit.changes.push(Change { resource_version: version, change: ChangeType::Modified, object, status_only: false });
    Ok(())
}

/// Whose write a [`put`] accepts when another source owns the object.
enum OwnerRule<'a> {
    /// Only the owner's (or an unowned object).
    Same,
    /// Anyone's; the owner keeps ownership.
    Override,
    /// The owner's, or `from`'s: the writer then becomes the owner.
    TakeFrom(&'a str),
}

/// Creates or updates `object`; `None` when nothing changes (the outcome
/// is already recorded).
fn put(
    trees: &Trees<'_>,
    commit: &mut Commit,
    object: &AnyObject,
    precondition: Precondition,
    owner: OwnerRule<'_>,
    next_version: u64,
    now: chrono::DateTime<Utc>,
) -> TxResult<Option<Outcome>> {
    let key = object.key();
    let stored = read_object(trees.objects, &key)?;
    check(&key, precondition, stored.as_ref())?;
    let mut next = object.clone();
    next.clear_status();
    // Overrides are the store's to keep: no writer sets or clears them. An
    // object declared again while being deleted starts without them.
    let live = stored.as_ref().filter(|s| s.metadata().deletion_timestamp.is_none());
    crate::api::overrides::carry_over(live.map(AnyObject::metadata), next.metadata_mut());
    let meta = next.metadata_mut();
    meta.resource_version = Some(next_version);
    meta.deletion_timestamp = None;
    let (outcome, change) = match stored {
        None => {
            meta.uid = Some(uuid::Uuid::new_v4().to_string());
            meta.generation = Some(1);
            meta.creation_timestamp = Some(now);
            (Outcome::Created, ChangeType::Added)
        }
        Some(stored) => {
            let stored_owner = stored.metadata().source.as_ref().map(Source::id);
            let forced = matches!(owner, OwnerRule::Override);
            // An object on its way out (its source no longer declares it)
            // may be declared again by another source, which takes it over.
            let leaving = stored.metadata().deletion_timestamp.is_some() && !forced;
            let taken = leaving || matches!(owner, OwnerRule::TakeFrom(from) if stored_owner.as_deref() == Some(from));
            if !taken {
                check_owner(&key, &stored, object.metadata().source.as_ref(), forced)?;
            }
            let old = stored.metadata();
            let spec_changed = !stored.same_spec(&next);
            let meta = next.metadata_mut();
            meta.uid = old.uid.clone();
            meta.creation_timestamp = old.creation_timestamp;
            meta.finalizers = old.finalizers.clone();
            if meta.managed_fields.is_empty() {
                meta.managed_fields = old.managed_fields.clone();
            }
            meta.generation = Some(old.generation.unwrap_or(1) + u64::from(spec_changed));
            if forced || meta.source.is_none() {
                meta.source = old.source.clone();
            }
            if declares_same(&stored, &next) {
                commit.outcomes.push(Outcome::Unchanged);
                return Ok(None);
            }
            restore_status(&mut next, &stored);
            (Outcome::Updated { spec_changed }, ChangeType::Modified)
        }
    };
    write_object(trees.objects, &next)?;
    commit.changes.push(Change { resource_version: next_version, change, object: next, status_only: false });
    Ok(Some(outcome))
}

/// Whether writing `next` over `stored` would change nothing: the same
/// spec, labels, annotations (berth's overrides aside: the store keeps
/// those) and source, field managers unchanged (a write
/// without them keeps the stored ones), and no deletion to cancel.
pub(crate) fn declares_same(stored: &AnyObject, next: &AnyObject) -> bool {
    let (old, new) = (stored.metadata(), next.metadata());
    stored.same_spec(next)
        && new.labels == old.labels
        && crate::api::overrides::same_annotations(&old.annotations, &new.annotations)
        && new.source == old.source
        && (new.managed_fields.is_empty() || new.managed_fields == old.managed_fields)
        && old.deletion_timestamp.is_none()
}

/// Carries the stored status over to an updated object.
fn restore_status(next: &mut AnyObject, stored: &AnyObject) {
    let status = stored.to_json().get("status").cloned();
    if let Some(status) = status {
        let mut json = next.to_json();
        json["status"] = status;
        if let Ok(with_status) = AnyObject::from_json(json) {
            *next = with_status;
        }
    }
}
