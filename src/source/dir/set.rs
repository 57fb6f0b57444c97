//! What the watched directories declare, decided as one set.
//!
//! Every scan looks at every manifest file of every `--manifests` directory
//! together and decides, in one pure step, what the store must become: the
//! union of what the files declare. Deciding per file instead (as berth
//! once did) turns ordinary edits into outages: when an object moves from
//! `a.yaml` to `b.yaml`, or `a.yaml` is renamed, the file that gained it
//! and the file that lost it are seen at different moments, and the
//! object is deleted in between. Decided as a set, a moved object changes
//! owner in the same transaction that writes the rest of the change: same
//! uid, same generation if its spec is unchanged, nothing for the engine
//! to do.
//!
//! # Rules
//! - A valid file declares its objects. An invalid file keeps what it owns
//!   (its last good version), and records its errors.
//! - Two files declaring one object: the file that owns it in the store
//!   keeps it; if neither does (the owner's declaration is gone), the first
//!   in scan order (directory order, then path) takes it. The other file
//!   is rejected whole like an invalid one, with the conflict named on
//!   both; it is decided again on every scan, so the survivor takes over
//!   the moment the other declaration disappears.
//! - An object owned by another kind of source (the API, a git
//!   repository) is not taken over, unless it is being deleted (its source
//!   dropped it): the file declaring it is rejected.
//! - An object nothing declares any more is deleted, but only once the
//!   file that owned it has been left alone for a while (a file being
//!   written may look short), and for a file that is gone, once its
//!   directory has: an editor that moves the old file away before writing
//!   the new one, or a cut-and-paste between two files, must not turn into
//!   a deletion. Until then it is postponed and looked at again.
//!
//! # Known limit
//! A file rejected for a conflict stays rejected for the rest of that
//! decision even if the file it lost to is itself rejected later in it;
//! in such a three-way tangle the last good versions stay and the next
//! scan decides again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::api::{AnyObject, ObjectKey, Source};
use crate::store::{declares_same, Event, Precondition, SourceRecord, WriteBatch, WriteOp};

/// One manifest file as a scan found it.
#[derive(Clone, Debug)]
pub(crate) struct ScannedFile {
    /// Its path, absolute.
    pub path: PathBuf,
    /// What it declares, or why it was rejected.
    pub content: Content,
    /// Whether it has been left alone long enough for a change that
    /// deletes objects to be believed.
    pub settled: bool,
}

/// What a file says.
#[derive(Clone, Debug)]
pub(crate) enum Content {
    /// Valid: these objects, validated and defaulted.
    Valid(Vec<AnyObject>),
    /// Invalid (or unreadable): these errors, each naming the file.
    Invalid(Vec<String>),
}

/// What the store holds about the files of the set.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stored {
    /// Source records of the files under the set's directories (including
    /// files that are gone), by source id.
    pub records: BTreeMap<String, SourceRecord>,
    /// The stored objects the decision is about: everything declared and
    /// everything recorded.
    pub objects: BTreeMap<ObjectKey, AnyObject>,
}

/// An object to write.
#[derive(Clone, Debug)]
pub(crate) struct Write {
    /// The object, its source set to the file that declares it.
    pub object: AnyObject,
    /// The source id of the file it moves from, if it changes owner.
    pub taken_from: Option<String>,
    /// Whether the store has no such object yet.
    pub created: bool,
}

impl Write {
    /// The id of the file that declares the object.
    fn source_id(&self) -> String {
        self.object.metadata().source.as_ref().map(|s| s.id()).unwrap_or_default()
    }
}

/// An object to delete.
#[derive(Clone, Debug)]
pub(crate) struct Delete {
    /// The object.
    pub key: ObjectKey,
    /// The file that owned it.
    pub owner: Source,
    /// Why, for the event log.
    pub why: String,
}

/// What a scan changes in the store.
#[derive(Clone, Debug, Default)]
pub(crate) struct SetPlan {
    /// Objects created, changed or moved.
    pub writes: Vec<Write>,
    /// Objects nothing declares any more.
    pub deletes: Vec<Delete>,
    /// Source records that changed.
    pub records: Vec<SourceRecord>,
    /// Source ids of files that are gone and own nothing any more.
    pub forgotten: Vec<String>,
    /// Objects whose deletion waits for their file to settle.
    pub postponed: Vec<ObjectKey>,
    /// Whether a file declares an object another kind of source owns: that
    /// can change without any file changing, so scans must come again.
    pub foreign_conflicts: bool,
}

impl SetPlan {
    /// Whether the scan changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.deletes.is_empty() && self.records.is_empty() && self.forgotten.is_empty()
    }

    /// The plan as one transaction, each object change with its event.
    pub(crate) fn batch(&self) -> WriteBatch {
        // Writes, deletions, then records: the order the store has always
        // applied a scan in.
        let mut batch = with_writes(WriteBatch::new(), self.writes.iter());
        for delete in &self.deletes {
            batch = batch
                .op(WriteOp::Delete {
                    key: delete.key.clone(),
                    precondition: Precondition::None,
                    source: Some(delete.owner.clone()),
                    force: false,
                })
                .event(Event::about(&delete.key, "deleted", "SourceRemoved", delete.why.clone()));
        }
        batch = with_records(batch, self.records.iter());
        for id in &self.forgotten {
            batch = batch.op(WriteOp::ForgetSource(id.clone()));
        }
        batch
    }

    /// The plan as the transactions to commit, in order. A plan that moves
    /// or deletes anything is one transaction: a move must not be a
    /// deletion for a moment. One that only creates and changes objects
    /// (the first scan of a directory of 10,000 Containers) is cut between
    /// files into transactions of about [`OBJECTS_PER_COMMIT`] objects, each
    /// file's record with its objects: a crash between two leaves files
    /// applied whole or not at all, which the next scan completes, and no
    /// transaction holds the whole directory in memory at once (that one
    /// transaction was most of berth's peak memory at 10,000).
    pub(crate) fn batches(&self) -> Vec<WriteBatch> {
        let moves = self.writes.iter().any(|w| w.taken_from.is_some());
        if moves || !self.deletes.is_empty() || !self.forgotten.is_empty() || self.writes.len() <= OBJECTS_PER_COMMIT {
            return vec![self.batch()];
        }
        let mut by_file: BTreeMap<String, (Vec<&Write>, Vec<&SourceRecord>)> = BTreeMap::new();
        for write in &self.writes {
            by_file.entry(write.source_id()).or_default().0.push(write);
        }
        for record in &self.records {
            by_file.entry(record.source.id()).or_default().1.push(record);
        }
        let mut batches = Vec::new();
        let (mut writes, mut records): (Vec<&Write>, Vec<&SourceRecord>) = (Vec::new(), Vec::new());
        for (_, (file_writes, file_records)) in by_file {
            writes.extend(file_writes);
            records.extend(file_records);
            if writes.len() >= OBJECTS_PER_COMMIT {
                batches.push(with_records(with_writes(WriteBatch::new(), writes.drain(..)), records.drain(..)));
            }
        }
        if !writes.is_empty() || !records.is_empty() {
            batches.push(with_records(with_writes(WriteBatch::new(), writes.into_iter()), records.into_iter()));
        }
        batches
    }
}

/// About how many objects one transaction of [`SetPlan::batches`] writes.
pub(crate) const OBJECTS_PER_COMMIT: usize = 1_000;

/// `batch` and `writes`, each with its event.
fn with_writes<'a>(mut batch: WriteBatch, writes: impl Iterator<Item = &'a Write>) -> WriteBatch {
    for write in writes {
        let key = write.object.key();
        let source = write.source_id();
        let (reason, message) = match (&write.taken_from, write.created) {
            (Some(from), _) => ("SourceMoved", format!("moved from {from} to {source}")),
            (None, true) => ("SourceChanged", format!("declared by {source}")),
            (None, false) => ("SourceChanged", format!("changed in {source}")),
        };
        let object = write.object.clone();
        batch = match &write.taken_from {
            Some(from) => batch.op(WriteOp::TakeOver { object, from: from.clone() }),
            None => batch.op(WriteOp::Put { object, precondition: Precondition::None, force: false }),
        };
        batch = batch.event(Event::about(&key, "applied", reason, message));
    }
    batch
}

/// `batch` and the source `records`.
fn with_records<'a>(batch: WriteBatch, records: impl Iterator<Item = &'a SourceRecord>) -> WriteBatch {
    records.fold(batch, |batch, record| batch.op(WriteOp::Source(record.clone())))
}

/// The source of objects read from `path`.
pub(crate) fn file_source(path: &Path) -> Source {
    Source::file(path.display().to_string())
}

/// Decides what the store must become for `files` (in scan order) given
/// what it holds. `gone_settled` says, for a recorded file that is gone,
/// whether its removal is old enough to be believed.
pub(crate) fn resolve(files: &[ScannedFile], stored: &Stored, gone_settled: &dyn Fn(&Path) -> bool) -> SetPlan {
    let mut set = Decision::new(files, stored);
    let owners = set.settle();
    let mut plan = SetPlan::default();

    // Writes: what each accepted file declares, unless already so.
    for (index, file) in files.iter().enumerate() {
        let Content::Valid(objects) = &file.content else { continue };
        if set.rejected.contains(&index) {
            continue;
        }
        let source = file_source(&file.path);
        for object in objects {
            let key = object.key();
            let mut next = object.clone();
            next.metadata_mut().source = Some(source.clone());
            let stored_object = stored.objects.get(&key);
            if stored_object.is_some_and(|s| declares_same(s, &next)) {
                continue;
            }
            // (A foreign owner's leaving object is taken by a plain write.)
            let taken_from =
                set.owner_of(&key).filter(|owner| *owner != set.ids[index] && *owner != FOREIGN).map(str::to_string);
            plan.writes.push(Write { object: next, taken_from, created: stored_object.is_none() });
        }
    }

    // Deletes: recorded objects nothing claims any more.
    let mut postponed: BTreeMap<&str, Vec<ObjectKey>> = BTreeMap::new();
    for (id, record) in &stored.records {
        let scanned = set.ids.iter().position(|i| i == id);
        let path = record.source.path.as_deref().map(PathBuf::from).unwrap_or_default();
        for key in &record.objects {
            if owners.contains_key(key) || set.owner_of(key) != Some(id.as_str()) {
                continue;
            }
            if stored.objects.get(key).is_some_and(|o| o.metadata().deletion_timestamp.is_some()) {
                continue;
            }
            let settled = scanned.map_or_else(|| gone_settled(&path), |index| files[index].settled);
            if !settled {
                postponed.entry(id.as_str()).or_default().push(key.clone());
                plan.postponed.push(key.clone());
                continue;
            }
            let why = match scanned {
                Some(_) => format!("{} no longer declares it", path.display()),
                None => format!("{} is gone", path.display()),
            };
            plan.deletes.push(Delete { key: key.clone(), owner: record.source.clone(), why });
        }
    }

    // Records: what each file owns now, and its problems.
    for (index, file) in files.iter().enumerate() {
        let id = &set.ids[index];
        let mut objects: BTreeSet<ObjectKey> =
            owners.iter().filter(|(_, owner)| **owner == index).map(|(key, _)| key.clone()).collect();
        objects.extend(postponed.get(id.as_str()).into_iter().flatten().cloned());
        let errors = set.errors(index, &owners);
        let previous = stored.records.get(id);
        let objects: Vec<ObjectKey> = objects.into_iter().collect();
        if previous.is_some_and(|r| r.objects == objects && r.errors == errors) {
            continue;
        }
        let error_time = match previous {
            Some(r) if r.errors == errors => r.error_time,
            _ if errors.is_empty() => None,
            _ => Some(Utc::now()),
        };
        plan.records.push(SourceRecord { errors, error_time, ..SourceRecord::new(file_source(&file.path), objects) });
    }
    for (id, record) in &stored.records {
        if set.ids.contains(id) {
            continue;
        }
        match postponed.get(id.as_str()) {
            None => plan.forgotten.push(id.clone()),
            Some(keys) if *keys != record.objects => {
                plan.records.push(SourceRecord { objects: keys.clone(), ..record.clone() });
            }
            Some(_) => {}
        }
    }
    plan.foreign_conflicts = set.foreign_conflicts(&owners);
    plan
}

/// The state of one decision: files, their ids, and which were rejected.
struct Decision<'a> {
    files: &'a [ScannedFile],
    stored: &'a Stored,
    /// Source id of each file, by index.
    ids: Vec<String>,
    /// Every source id of the set: files scanned and files recorded.
    ours: BTreeSet<String>,
    /// Files that keep what they own instead of declaring: the invalid
    /// ones and those that lost a conflict.
    rejected: BTreeSet<usize>,
}

impl<'a> Decision<'a> {
    fn new(files: &'a [ScannedFile], stored: &'a Stored) -> Self {
        let ids: Vec<String> = files.iter().map(|f| file_source(&f.path).id()).collect();
        let ours = ids.iter().cloned().chain(stored.records.keys().cloned()).collect();
        let rejected = files
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f.content, Content::Invalid(_)))
            .map(|(i, _)| i)
            .collect();
        Decision { files, stored, ids, ours, rejected }
    }

    /// The source id owning `key` in the store.
    /// [`FOREIGN`] when that is not a file of the set.
    fn owner_of(&self, key: &ObjectKey) -> Option<&str> {
        let id = self.stored.objects.get(key)?.metadata().source.as_ref()?.id();
        Some(self.ours.get(&id).map_or(FOREIGN, String::as_str))
    }

    /// What file `index` claims: its objects, or when rejected, what it
    /// owns in the store (a key and whether it is only kept).
    fn claims(&self, index: usize) -> Vec<(ObjectKey, bool)> {
        match (&self.files[index].content, self.rejected.contains(&index)) {
            (Content::Valid(objects), false) => objects.iter().map(|o| (o.key(), false)).collect(),
            _ => self
                .stored
                .records
                .get(&self.ids[index])
                .map(|r| r.objects.iter())
                .into_iter()
                .flatten()
                .filter(|key| self.owner_of(key) == Some(self.ids[index].as_str()))
                .map(|key| (key.clone(), true))
                .collect(),
        }
    }

    /// Rejects the losers of conflicts until none is left; returns the
    /// owner (file index) of every claimed object.
    fn settle(&mut self) -> BTreeMap<ObjectKey, usize> {
        loop {
            let mut claimers: BTreeMap<ObjectKey, Vec<(usize, bool)>> = BTreeMap::new();
            for index in 0..self.files.len() {
                for (key, kept) in self.claims(index) {
                    claimers.entry(key).or_default().push((index, kept));
                }
            }
            let mut losers = BTreeSet::new();
            let mut owners = BTreeMap::new();
            for (key, claims) in claimers {
                let winner = self.winner(&key, &claims);
                for (index, kept) in &claims {
                    if Some(*index) != winner && !kept {
                        losers.insert(*index);
                    }
                }
                if let Some(winner) = winner {
                    owners.insert(key, winner);
                }
            }
            if losers.is_empty() {
                return owners;
            }
            self.rejected.extend(losers);
        }
    }

    /// Which claim on `key` wins: none if another kind of source owns it;
    /// else a file that only keeps it, else the file owning it, else the
    /// first.
    fn winner(&self, key: &ObjectKey, claims: &[(usize, bool)]) -> Option<usize> {
        let owner = self.owner_of(key);
        if owner == Some(FOREIGN) && !self.leaving(key) {
            return None;
        }
        claims
            .iter()
            .find(|(_, kept)| *kept)
            .or_else(|| claims.iter().find(|(index, _)| Some(self.ids[*index].as_str()) == owner))
            .or_else(|| claims.first())
            .map(|(index, _)| *index)
    }

    /// The problems recorded on file `index`.
    fn errors(&self, index: usize, owners: &BTreeMap<ObjectKey, usize>) -> Vec<String> {
        let file = &self.files[index];
        let objects = match &file.content {
            Content::Valid(objects) => objects,
            Content::Invalid(errors) => return errors.clone(),
        };
        let mut errors = Vec::new();
        if self.rejected.contains(&index) {
            for key in objects.iter().map(AnyObject::key) {
                let holder = match owners.get(&key) {
                    Some(owner) if *owner == index => continue,
                    Some(owner) => self.ids[*owner].clone(),
                    // Not claimed by a file: another kind of source, or
                    // nobody (a new object that conflicts with nothing).
                    None => match self.stored_owner_id(&key) {
                        Some(id) if id != self.ids[index] => id,
                        _ => continue,
                    },
                };
                errors.push(format!(
                    "{}: {key} is also declared by {holder}, which keeps it; remove one of the two declarations",
                    file.path.display()
                ));
            }
            return errors;
        }
        for (other, other_file) in self.files.iter().enumerate() {
            let Content::Valid(theirs) = &other_file.content else { continue };
            if other == index || !self.rejected.contains(&other) {
                continue;
            }
            for key in theirs.iter().map(AnyObject::key) {
                if owners.get(&key) == Some(&index) {
                    errors
                        .push(format!("{key} is also declared by {}; this source keeps it", other_file.path.display()));
                }
            }
        }
        errors
    }

    /// Whether the stored `key` is being deleted: another source's object on
    /// its way out may be taken over.
    fn leaving(&self, key: &ObjectKey) -> bool {
        self.stored.objects.get(key).is_some_and(|o| o.metadata().deletion_timestamp.is_some())
    }

    /// The id of the stored owner of `key`, whoever it is.
    fn stored_owner_id(&self, key: &ObjectKey) -> Option<String> {
        self.stored.objects.get(key)?.metadata().source.as_ref().map(Source::id)
    }

    /// Whether an accepted-or-not file declares an object owned by another
    /// kind of source.
    fn foreign_conflicts(&self, owners: &BTreeMap<ObjectKey, usize>) -> bool {
        self.files.iter().any(|file| match &file.content {
            Content::Valid(objects) => {
                objects.iter().any(|o| !owners.contains_key(&o.key()) && self.owner_of(&o.key()) == Some(FOREIGN))
            }
            Content::Invalid(_) => false,
        })
    }
}

/// Stands for the id of an owner outside the set (the API, git).
const FOREIGN: &str = "\u{0}foreign";

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: &str, label: &str) -> AnyObject {
        AnyObject::from_json(serde_json::json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Volume",
            "metadata": {"name": name, "namespace": "default", "labels": {"v": label}}, "spec": {}
        }))
        .unwrap()
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::parse(&format!("Volume/default/{name}")).unwrap()
    }

    fn valid(path: &str, objects: Vec<AnyObject>) -> ScannedFile {
        ScannedFile { path: path.into(), content: Content::Valid(objects), settled: true }
    }

    fn invalid(path: &str) -> ScannedFile {
        ScannedFile { path: path.into(), content: Content::Invalid(vec![format!("{path}:1:1: broken")]), settled: true }
    }

    /// A store as if `files` had been applied: each object owned by its file.
    fn stored(files: &[(&str, Vec<AnyObject>)]) -> Stored {
        let mut stored = Stored::default();
        for (path, objects) in files {
            let source = file_source(Path::new(path));
            let keys = objects.iter().map(AnyObject::key).collect();
            stored.records.insert(source.id(), SourceRecord::new(source.clone(), keys));
            for object in objects {
                let mut object = object.clone();
                object.metadata_mut().source = Some(source.clone());
                stored.objects.insert(object.key(), object);
            }
        }
        stored
    }

    fn settled(_: &Path) -> bool {
        true
    }

    fn unsettled(_: &Path) -> bool {
        false
    }

    fn owner(plan: &SetPlan, record_path: &str) -> Option<Vec<ObjectKey>> {
        let id = file_source(Path::new(record_path)).id();
        plan.records.iter().find(|r| r.source.id() == id).map(|r| r.objects.clone())
    }

    #[test]
    fn a_first_scan_of_many_files_commits_in_parts_each_file_whole_and_a_move_in_one() {
        let files: Vec<ScannedFile> = (0..25)
            .map(|f| valid(&format!("/m/{f:02}.yaml"), (0..100).map(|i| volume(&format!("v{f}-{i}"), "x")).collect()))
            .collect();
        let plan = resolve(&files, &stored(&[]), &settled);
        let batches = plan.batches();
        assert_eq!(batches.len(), 3, "2,500 objects in parts of about {OBJECTS_PER_COMMIT}");
        let mut objects = 0;
        for batch in &batches {
            let records: BTreeSet<String> = batch
                .ops
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Source(record) => Some(record.source.id()),
                    _ => None,
                })
                .collect();
            for op in &batch.ops {
                if let WriteOp::Put { object, .. } = op {
                    objects += 1;
                    let file = object.metadata().source.as_ref().expect("a source").id();
                    assert!(records.contains(&file), "{} left its file's record in another part", object.key());
                }
            }
        }
        assert_eq!(objects, 2_500);
        // A rename moves: one transaction, however many objects.
        let many: Vec<AnyObject> = (0..1_500).map(|i| volume(&format!("v{i}"), "x")).collect();
        let plan = resolve(&[valid("/m/b.yaml", many.clone())], &stored(&[("/m/a.yaml", many)]), &settled);
        assert_eq!(plan.batches().len(), 1);
    }

    #[test]
    fn an_unchanged_directory_changes_nothing() {
        let v = volume("v", "x");
        let plan = resolve(&[valid("/m/a.yaml", vec![v.clone()])], &stored(&[("/m/a.yaml", vec![v])]), &settled);
        assert!(plan.is_empty(), "{plan:#?}");
    }

    #[test]
    fn a_renamed_file_moves_its_objects_without_deleting_them() {
        let v = volume("v", "x");
        let plan = resolve(&[valid("/m/b.yaml", vec![v.clone()])], &stored(&[("/m/a.yaml", vec![v])]), &settled);
        assert!(plan.deletes.is_empty(), "{plan:#?}");
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.writes[0].taken_from.as_deref(), Some("file:/m/a.yaml"));
        assert!(!plan.writes[0].created);
        assert_eq!(plan.forgotten, vec!["file:/m/a.yaml".to_string()]);
        assert_eq!(owner(&plan, "/m/b.yaml"), Some(vec![key("v")]));
    }

    #[test]
    fn a_paste_saved_before_the_cut_waits_then_takes_over() {
        let v = volume("v", "x");
        let before = stored(&[("/m/a.yaml", vec![v.clone()]), ("/m/b.yaml", vec![])]);
        // Pasted into b, still in a: a keeps it, b is rejected whole.
        let both = [valid("/m/a.yaml", vec![v.clone()]), valid("/m/b.yaml", vec![v.clone(), volume("w", "y")])];
        let plan = resolve(&both, &before, &settled);
        assert!(plan.writes.is_empty() && plan.deletes.is_empty(), "{plan:#?}");
        let b = plan.records.iter().find(|r| r.source.id() == "file:/m/b.yaml").unwrap();
        assert_eq!(
            b.errors,
            vec!["/m/b.yaml: Volume/default/v is also declared by file:/m/a.yaml, which keeps it; remove one of the two declarations"]
        );
        let a = plan.records.iter().find(|r| r.source.id() == "file:/m/a.yaml").unwrap();
        assert_eq!(a.errors, vec!["Volume/default/v is also declared by /m/b.yaml; this source keeps it"]);
        // Then cut from a: b takes it over and applies the rest.
        let after = [valid("/m/a.yaml", vec![]), valid("/m/b.yaml", vec![v.clone(), volume("w", "y")])];
        let plan = resolve(&after, &before, &settled);
        assert!(plan.deletes.is_empty(), "{plan:#?}");
        let moved: Vec<_> = plan.writes.iter().map(|w| (w.object.key(), w.taken_from.clone())).collect();
        assert_eq!(moved, vec![(key("v"), Some("file:/m/a.yaml".into())), (key("w"), None)]);
        assert!(plan.records.iter().all(|r| r.errors.is_empty()), "{plan:#?}");
    }

    #[test]
    fn a_cut_saved_before_the_paste_postpones_the_deletion() {
        let v = volume("v", "x");
        let before = stored(&[("/m/a.yaml", vec![v.clone()])]);
        let cut = ScannedFile { settled: false, ..valid("/m/a.yaml", vec![]) };
        let plan = resolve(&[cut], &before, &settled);
        assert!(plan.deletes.is_empty(), "{plan:#?}");
        assert_eq!(plan.postponed, vec![key("v")]);
        assert!(plan.records.is_empty(), "a keeps recording what it may still own: {plan:#?}");
        // Once settled with no paste, it goes.
        let plan = resolve(&[valid("/m/a.yaml", vec![])], &before, &settled);
        assert_eq!(plan.deletes.iter().map(|d| d.key.clone()).collect::<Vec<_>>(), vec![key("v")]);
        assert_eq!(owner(&plan, "/m/a.yaml"), Some(vec![]));
    }

    #[test]
    fn a_file_removed_a_moment_ago_keeps_its_objects_until_its_directory_settles() {
        let v = volume("v", "x");
        let before = stored(&[("/m/a.yaml", vec![v])]);
        let plan = resolve(&[], &before, &unsettled);
        assert!(plan.deletes.is_empty() && plan.forgotten.is_empty(), "{plan:#?}");
        let plan = resolve(&[], &before, &settled);
        assert_eq!(plan.deletes.len(), 1);
        assert_eq!(plan.deletes[0].why, "/m/a.yaml is gone");
        assert_eq!(plan.forgotten, vec!["file:/m/a.yaml".to_string()]);
    }

    #[test]
    fn an_invalid_file_keeps_what_it_owns_and_blocks_a_taker() {
        let v = volume("v", "x");
        let before = stored(&[("/m/a.yaml", vec![v.clone()])]);
        let plan = resolve(&[invalid("/m/a.yaml"), valid("/m/b.yaml", vec![volume("v", "other")])], &before, &settled);
        assert!(plan.writes.is_empty() && plan.deletes.is_empty(), "{plan:#?}");
        let b = plan.records.iter().find(|r| r.source.id() == "file:/m/b.yaml").unwrap();
        assert!(b.errors[0].contains("is also declared by file:/m/a.yaml, which keeps it"), "{:?}", b.errors);
        let a = plan.records.iter().find(|r| r.source.id() == "file:/m/a.yaml").unwrap();
        assert_eq!(a.errors, vec!["/m/a.yaml:1:1: broken"]);
        assert_eq!(a.objects, vec![key("v")]);
    }

    #[test]
    fn two_new_declarations_go_to_the_first_file_in_scan_order() {
        let files = [valid("/m/a.yaml", vec![volume("v", "a")]), valid("/m/b.yaml", vec![volume("v", "b")])];
        let plan = resolve(&files, &Stored::default(), &settled);
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.writes[0].object.metadata().labels["v"], "a");
    }

    #[test]
    fn an_object_the_api_owns_is_not_taken_and_scans_come_again() {
        let mut before = Stored::default();
        let mut v = volume("v", "api");
        v.metadata_mut().source = Some(Source::api());
        before.objects.insert(key("v"), v);
        let plan = resolve(&[valid("/m/a.yaml", vec![volume("v", "file"), volume("w", "x")])], &before, &settled);
        assert!(plan.writes.is_empty(), "{plan:#?}");
        assert!(plan.foreign_conflicts);
        let a = plan.records.iter().find(|r| r.source.id() == "file:/m/a.yaml").unwrap();
        assert!(a.errors[0].contains("is also declared by api, which keeps it"), "{:?}", a.errors);
    }

    #[test]
    fn an_object_another_source_is_deleting_is_taken_over() {
        let mut before = Stored::default();
        let mut v = volume("v", "git");
        v.metadata_mut().source = Some(Source::api_set("ci"));
        v.metadata_mut().deletion_timestamp = Some(Utc::now());
        before.objects.insert(key("v"), v);
        let plan = resolve(&[valid("/m/a.yaml", vec![volume("v", "file")])], &before, &settled);
        assert_eq!(plan.writes.len(), 1, "{plan:#?}");
        assert_eq!(plan.writes[0].taken_from, None, "a plain write takes a leaving object");
        assert!(!plan.foreign_conflicts);
        assert!(plan.records[0].errors.is_empty(), "{plan:#?}");
    }

    #[test]
    fn a_split_and_a_merge_move_objects_without_deleting_any() {
        let (v, w) = (volume("v", "x"), volume("w", "x"));
        let before = stored(&[("/m/all.yaml", vec![v.clone(), w.clone()])]);
        let split = [valid("/m/v.yaml", vec![v.clone()]), valid("/m/w.yaml", vec![w.clone()])];
        let plan = resolve(&split, &before, &settled);
        assert!(plan.deletes.is_empty(), "{plan:#?}");
        assert_eq!(plan.writes.iter().filter(|w| w.taken_from.is_some()).count(), 2);
        let after_split = stored(&[("/m/v.yaml", vec![v.clone()]), ("/m/w.yaml", vec![w.clone()])]);
        let merge = [valid("/m/all.yaml", vec![v, w])];
        let plan = resolve(&merge, &after_split, &settled);
        assert!(plan.deletes.is_empty(), "{plan:#?}");
        assert_eq!(plan.forgotten.len(), 2);
    }
}
