//! The store: compare-and-swap, generation against resourceVersion,
//! atomic batches, two-phase deletion, ownership, durability across
//! reopen, the event log, the watch stream, and the state-directory lock.

use berth::api::{AnyObject, ContainerSpec, IntoAny, ObjectKey, Source, Volume, VolumeSpec};
use berth::store::{ChangeType, Event, Outcome, Precondition, Store, StoreError, WriteBatch, WriteOp};

fn volume(name: &str) -> AnyObject {
    let mut object = Volume::new(name, VolumeSpec::default()).into_any();
    berth::api::defaults::apply(&mut object);
    object
}

fn container(name: &str, image: &str) -> AnyObject {
    let spec = ContainerSpec { image: Some(image.into()), ..Default::default() };
    let mut object = berth::api::Container::new(name, spec).into_any();
    berth::api::defaults::apply(&mut object);
    object
}

fn owned_by(mut object: AnyObject, source: Source) -> AnyObject {
    object.metadata_mut().source = Some(source);
    object
}

fn put_if(object: AnyObject, precondition: Precondition) -> WriteOp {
    WriteOp::Put { object, precondition, force: false }
}

#[test]
fn resource_version_is_store_wide_and_generation_follows_the_spec_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.resource_version(), 0);
    store.commit(WriteBatch::new().put(container("web", "busybox:1"))).unwrap();
    store.commit(WriteBatch::new().put(volume("data"))).unwrap();
    let web = store.get(&container("web", "x").key()).unwrap().unwrap();
    assert_eq!((web.metadata().resource_version, web.metadata().generation), (Some(1), Some(1)));
    assert_eq!(store.get(&volume("data").key()).unwrap().unwrap().metadata().resource_version, Some(2));

    // A label change is a write but not a spec change.
    let mut relabelled = container("web", "busybox:1");
    relabelled.metadata_mut().labels.insert("tier".into(), "front".into());
    let commit = store.commit(WriteBatch::new().put(relabelled)).unwrap();
    assert_eq!(commit.outcomes, [Outcome::Updated { spec_changed: false }]);
    let web = store.get(&web.key()).unwrap().unwrap();
    assert_eq!((web.metadata().resource_version, web.metadata().generation), (Some(3), Some(1)));

    // A spec change moves both.
    let mut respecced = container("web", "busybox:2");
    respecced.metadata_mut().labels.insert("tier".into(), "front".into());
    store.commit(WriteBatch::new().put(respecced.clone())).unwrap();
    let web = store.get(&web.key()).unwrap().unwrap();
    assert_eq!((web.metadata().resource_version, web.metadata().generation), (Some(4), Some(2)));

    // The same object again changes nothing at all.
    let commit = store.commit(WriteBatch::new().put(respecced)).unwrap();
    assert_eq!(commit.outcomes, [Outcome::Unchanged]);
    assert_eq!(commit.resource_version, 4);
    assert_eq!(store.resource_version(), 4);
    assert!(commit.changes.is_empty());
}

#[test]
fn compare_and_swap_refuses_stale_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.commit(WriteBatch::new().op(put_if(volume("data"), Precondition::MustNotExist))).unwrap();
    let read = store.get(&volume("data").key()).unwrap().unwrap();
    let version = read.metadata().resource_version.unwrap();

    let mut first = volume("data");
    first.metadata_mut().labels.insert("by".into(), "first".into());
    store.commit(WriteBatch::new().op(put_if(first, Precondition::ResourceVersion(version)))).unwrap();

    let mut second = volume("data");
    second.metadata_mut().labels.insert("by".into(), "second".into());
    let err = store.commit(WriteBatch::new().op(put_if(second, Precondition::ResourceVersion(version)))).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { expected: 1, found: Some(2), .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "Volume/default/data has changed: the write expected resourceVersion 1, the store has 2"
    );

    let err = store.commit(WriteBatch::new().op(put_if(volume("data"), Precondition::MustNotExist))).unwrap_err();
    assert_eq!(err.to_string(), "Volume/default/data already exists");
    assert_eq!(store.get(&read.key()).unwrap().unwrap().metadata().labels["by"], "first");
}

#[test]
fn a_failing_batch_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.commit(WriteBatch::new().put(volume("existing"))).unwrap();
    let before = store.resource_version();
    let batch = WriteBatch::new()
        .put(volume("one"))
        .put(container("two", "busybox"))
        .event(Event::about(&volume("one").key(), "created", "Test", "should vanish"))
        .op(put_if(volume("existing"), Precondition::MustNotExist));
    assert!(matches!(store.commit(batch), Err(StoreError::AlreadyExists { .. })));
    assert_eq!(store.get(&volume("one").key()).unwrap(), None);
    assert_eq!(store.get(&container("two", "x").key()).unwrap(), None);
    assert_eq!(store.resource_version(), before);
    assert!(store.events(None, 0, 100).unwrap().is_empty());
}

#[test]
fn deletion_is_two_phase() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = volume("data").key();
    store.commit(WriteBatch::new().put(volume("data"))).unwrap();
    let commit = store.commit(WriteBatch::new().delete(key.clone())).unwrap();
    assert_eq!(commit.outcomes, [Outcome::DeletionRequested]);
    let marked = store.get(&key).unwrap().expect("still there until torn down");
    assert!(marked.metadata().deletion_timestamp.is_some());
    assert_eq!(store.commit(WriteBatch::new().delete(key.clone())).unwrap().outcomes, [Outcome::AlreadyDeleting]);
    store.commit(WriteBatch::new().remove(key.clone())).unwrap();
    assert_eq!(store.get(&key).unwrap(), None);
    assert!(matches!(store.commit(WriteBatch::new().delete(key)), Err(StoreError::NotFound { .. })));
}

#[test]
fn a_source_cannot_overwrite_another_sources_object_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let file = Source::file("/srv/manifests/web.yaml");
    store.commit(WriteBatch::new().put(owned_by(container("web", "busybox:1"), file.clone()))).unwrap();

    let from_api = owned_by(container("web", "busybox:2"), Source::api());
    let err = store.commit(WriteBatch::new().put(from_api.clone())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Container/default/web is owned by file:/srv/manifests/web.yaml; change it there, or force the write"
    );

    store
        .commit(WriteBatch::new().op(WriteOp::Put { object: from_api, precondition: Precondition::None, force: true }))
        .unwrap();
    let web = store.get(&ObjectKey::parse("Container/default/web").unwrap()).unwrap().unwrap();
    assert_eq!(web.metadata().source.as_ref(), Some(&file), "a forced write leaves the owner in place");
    let AnyObject::Container(web) = web else { unreachable!() };
    assert_eq!(web.spec.image.as_deref(), Some("busybox:2"));
}

#[test]
fn status_writes_keep_the_spec_and_are_marked_for_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut watch = store.watch();
    store.commit(WriteBatch::new().put(container("web", "busybox"))).unwrap();
    let key = container("web", "x").key();
    let status = serde_json::json!({"observedGeneration": 1, "readyReplicas": 1, "conditions": []});
    store.commit(WriteBatch::new().status(key.clone(), status)).unwrap();
    // An update of the spec keeps the status.
    store.commit(WriteBatch::new().put(container("web", "busybox:2"))).unwrap();
    let AnyObject::Container(web) = store.get(&key).unwrap().unwrap() else { unreachable!() };
    assert_eq!(web.status.unwrap().ready_replicas, 1);

    let changes: Vec<(u64, ChangeType, bool)> =
        (0..3).map(|_| watch.try_recv().unwrap()).map(|c| (c.resource_version, c.change, c.status_only)).collect();
    assert_eq!(
        changes,
        [(1, ChangeType::Added, false), (2, ChangeType::Modified, true), (3, ChangeType::Modified, false)]
    );

    let err = store.commit(WriteBatch::new().status(key, serde_json::json!({"readyReplicas": "many"}))).unwrap_err();
    assert!(matches!(err, StoreError::InvalidStatus { .. }), "{err}");
}

#[test]
fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = volume("data").key();
    {
        let store = Store::open(dir.path()).unwrap();
        let batch = WriteBatch::new()
            .put(owned_by(volume("data"), Source::file("/m/data.yaml")))
            .put(container("web", "busybox"))
            .event(Event::about(&key, "created", "Applied", "from /m/data.yaml"))
            .op(WriteOp::Source(berth::store::SourceRecord::new(Source::file("/m/data.yaml"), vec![key.clone()])));
        store.commit(batch).unwrap();
        store
            .commit(WriteBatch::new().event(Event::about(&container("web", "x").key(), "created", "Applied", "")))
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.resource_version(), 1);
    assert_eq!(store.list(None, None).unwrap().len(), 2);
    assert_eq!(store.list(Some(berth::api::Kind::Volume), Some("default")).unwrap().len(), 1);
    assert_eq!(store.list(Some(berth::api::Kind::Volume), Some("other")).unwrap().len(), 0);
    assert_eq!(store.sources().unwrap()[0].objects, std::slice::from_ref(&key));
    let events = store.events(None, 0, 10).unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let about_data = store.events(Some(&key), 0, 10).unwrap();
    assert_eq!(about_data.len(), 1);
    assert_eq!(about_data[0].message, "from /m/data.yaml");
    assert_eq!(store.events(None, 1, 10).unwrap()[0].seq, 2, "reading resumes after a sequence number");
    // Counters continue where they stopped.
    store.commit(WriteBatch::new().put(volume("more"))).unwrap();
    assert_eq!(store.resource_version(), 2);
}

#[test]
fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    std::fs::write(dir.path().join("format"), "berth-state 99\n").unwrap();
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("has format version 99, newer than this berth understands (1)"), "{err}");
    std::fs::write(dir.path().join("format"), "something else").unwrap();
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("not a berth format version"), "{err}");
}

#[test]
fn the_lock_refuses_a_second_process_and_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path()).unwrap();
    let output = assert_cmd::Command::cargo_bin("berth")
        .unwrap()
        .args(["serve", "--engine", "fake", "--state-dir"])
        .arg(dir.path())
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let holder = format!("is in use by berth pid {}", std::process::id());
    assert!(stderr.contains(&holder), "stderr should name this test process as the holder:\n{stderr}");
    assert!(stderr.contains("stop that process or choose another --state-dir"), "{stderr}");
}

#[test]
fn the_lock_is_released_when_the_holder_goes() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    Store::open(dir.path()).expect("reopened after the first handle was dropped");
}

#[test]
fn a_file_carrying_a_stale_resource_version_still_applies() {
    // `berth get -o yaml > web.yaml` copies the version into the file; a
    // watched directory must not turn it into a precondition.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut object = volume("data");
    object.metadata_mut().resource_version = Some(12_345);
    let source = Source::file("/srv/data.yaml");
    berth::source::apply::apply_source(&store, &source, vec![object.clone()]).unwrap();
    berth::source::apply::apply_source(&store, &source, vec![object]).unwrap();
    assert!(store.get(&ObjectKey::parse("Volume/default/data").unwrap()).unwrap().is_some());
}

#[test]
fn a_checked_batch_fails_where_its_commit_would_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.commit(WriteBatch::new().put(volume("data"))).unwrap();
    let version = store.resource_version();
    let mut watch = store.watch();
    store
        .check(WriteBatch::new().put(volume("other")).event(Event::about(&volume("other").key(), "a", "b", "c")))
        .unwrap();
    assert_eq!(store.resource_version(), version, "a check wrote");
    assert!(store.get(&volume("other").key()).unwrap().is_none());
    assert!(store.events(None, 0, 10).unwrap().is_empty(), "a check appended an event");
    assert!(watch.try_recv().is_err(), "a check told watchers");
    let stale = store.check(WriteBatch::new().op(put_if(volume("data"), Precondition::ResourceVersion(version + 7))));
    assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
}

#[test]
fn the_state_directory_is_for_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state");
    let store = Store::open(&dir).unwrap();
    store.instance_id().unwrap();
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the state directory");
    assert_eq!(mode(&dir.join("db")), 0o700, "the database directory");
    for name in ["lock", "instance"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    for entry in std::fs::read_dir(dir.join("db")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    // A directory loosened by hand is tightened again on the next start.
    drop(store);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(Store::open(&dir).unwrap());
    assert_eq!(mode(&dir), 0o700);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root (the test setup runs as root)");
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_is_reported_in_words_and_written_nothing() {
    let disk = SmallDisk::mount("8m");
    let state = disk.dir.path().join("state");
    let store = Store::open(&state).unwrap();
    store.commit(WriteBatch::new().put(volume("before"))).unwrap();
    // Fill the disk.
    let filler = disk.dir.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    drop(file);
    // Writes fail in words naming the directory; the store says why.
    let mut failure = None;
    for i in 0..200 {
        let big = berth::api::AnyObject::from_json(serde_json::json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Volume",
            "metadata": {"name": format!("v{i}"), "labels": {"pad": "x".repeat(60)}}, "spec": {}
        }))
        .unwrap();
        if let Err(e) = store.commit(WriteBatch::new().put(big)) {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("a commit fails on a full disk");
    assert!(failure.is_disk_full(), "{failure:?}");
    let words = format!("{:#}", anyhow::Error::from(failure));
    assert!(words.contains(&state.join("db").display().to_string()) && words.contains("No space left"), "{words}");
    assert!(!words.contains("Os {"), "no debug text: {words}");
    let problem = store.write_problem().expect("the store remembers why it cannot write");
    assert!(problem.contains("No space left"), "{problem}");
    // What was written before is still there.
    assert!(store.get(&berth::api::ObjectKey::parse("Volume/default/before").unwrap()).unwrap().is_some());
    // While the disk is full, the store keeps failing in words (and tries
    // to reopen itself at most once a second, not per write).
    std::thread::sleep(berth::store::RECOVER_EVERY);
    let still_full = store.commit(WriteBatch::new().put(volume("still-full")));
    assert!(still_full.as_ref().is_err_and(|e| e.is_disk_full()), "{still_full:?}");
    assert!(store.write_problem().is_some());
    // With space back, the same store works again, without a restart, with
    // everything written before.
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(berth::store::RECOVER_EVERY);
    assert!(store.recover(), "the database was not reopened");
    assert_eq!(store.write_problem(), None, "the reopened database's probe write failed");
    store.commit(WriteBatch::new().put(volume("after"))).unwrap();
    for name in ["before", "after"] {
        let key = berth::api::ObjectKey::parse(&format!("Volume/default/{name}")).unwrap();
        assert!(store.get(&key).unwrap().is_some(), "{name} is gone");
    }
    // And a restart still finds it all.
    drop(store);
    let store = Store::open(&state).unwrap();
    assert!(store.get(&berth::api::ObjectKey::parse("Volume/default/after").unwrap()).unwrap().is_some());
}

/// A real `berth serve` whose state directory fills up: writes are refused
/// 507 in words, `/readyz` turns 503 naming the cause, and once the file
/// system is enlarged berth is ready and writes again by itself, without a
/// restart, with everything written before.
#[test]
fn a_full_disk_turns_readiness_off_and_enlarging_it_brings_berth_back_without_a_restart() {
    use predicates::str::contains;
    let disk = SmallDisk::mount("8m");
    let state = disk.dir.path().join("state");
    let server = crate::support::api::ServedFake::start_in(&state, &[]);
    let manifests = tempfile::tempdir().unwrap();
    let manifest = |name: &str| {
        let file = manifests.path().join(format!("{name}.yaml"));
        let pad = "x".repeat(60);
        std::fs::write(&file, format!("apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: {name}\n  labels: {{pad: {pad}}}\nspec: {{}}\n")).unwrap();
        file
    };
    let cli = || crate::support::api::cli(&server.url, &state);
    cli().args(["apply", "-f"]).arg(manifest("before")).assert().success();
    let wait_for = |what: &str, want: u16| {
        let started = std::time::Instant::now();
        loop {
            let (status, body) = server.http_get("/readyz");
            if status == want {
                return body;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{what}: /readyz is {status}: {body}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    wait_for("ready at first", 200);
    // Fill the file system, then write until a write fails.
    let mut filler = std::fs::File::create(disk.dir.path().join("filler")).unwrap();
    while std::io::Write::write_all(&mut filler, &vec![0u8; 64 << 10]).is_ok() {}
    drop(filler);
    let refused = (0..200).find_map(|i| {
        let output = cli().args(["apply", "-f"]).arg(manifest(&format!("v{i}"))).output().unwrap();
        (!output.status.success()).then(|| String::from_utf8_lossy(&output.stderr).into_owned())
    });
    let refused = refused.expect("a write fails on the full disk");
    assert!(refused.contains("No space left on device") && refused.contains("/db"), "{refused}");
    let body = wait_for("not ready on a full disk", 503);
    assert!(body.contains("No space left on device"), "{body}");
    // Enlarged: ready again, writing again, nothing lost.
    let status =
        std::process::Command::new("mount").args(["-o", "remount,size=64m"]).arg(disk.dir.path()).status().unwrap();
    assert!(status.success());
    wait_for("ready again once the disk has room", 200);
    cli().args(["apply", "-f"]).arg(manifest("after")).assert().success();
    for name in ["before", "after"] {
        cli().args(["get", "volume", name]).assert().success().stdout(contains(name));
    }
    drop(server);
}

/// Reads come from the store's in-memory copy of the objects; a reopened
/// store reads them from disk. After a long run of mixed commits (puts,
/// status writes, two-phase deletes, removals, several ops on one key in one
/// batch, failed batches), both must read the same, object for object.
#[test]
fn reads_from_memory_agree_with_the_disk_after_every_kind_of_commit() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c", "d", "e"];
    let before = {
        let store = Store::open(dir.path()).unwrap();
        let mut random = fastrand::Rng::with_seed(16);
        for round in 0..400 {
            let name = names[random.usize(..names.len())];
            let other = names[random.usize(..names.len())];
            let key = container(name, "x").key();
            let present = store.get(&key).unwrap().is_some();
            let batch = match random.u8(..6) {
                0 => WriteBatch::new().put(container(name, &format!("busybox:{round}"))),
                1 if present => {
                    let status = serde_json::json!({"observedGeneration": round, "readyReplicas": round % 3});
                    WriteBatch::new().status(key, status).relaxed()
                }
                2 if present => WriteBatch::new().delete(key),
                3 if present => WriteBatch::new().remove(key),
                // Two ops on one key, and one on another, in one batch.
                4 => WriteBatch::new().put(container(name, "first")).put(container(name, "second")).put(volume(other)),
                // A batch that fails part-way writes nothing.
                5 if present => WriteBatch::new()
                    .put(volume(other))
                    .op(put_if(container(name, "stale"), Precondition::ResourceVersion(0))),
                _ => WriteBatch::new().put(volume(name)),
            };
            let _ = store.commit(batch);
            // The encodings lists keep follow every write.
            if round % 40 == 0 {
                for kind in [berth::api::Kind::Container, berth::api::Kind::Volume] {
                    for cached in store.list_shared(Some(kind), None).unwrap() {
                        let encoded = serde_json::to_string(cached.object()).unwrap();
                        assert_eq!(cached.json().get(), encoded, "round {round}");
                    }
                    let listed: Vec<_> =
                        store.list_shared(Some(kind), None).unwrap().iter().map(|c| c.object().clone()).collect();
                    assert_eq!(listed, store.list(Some(kind), None).unwrap());
                }
            }
        }
        store.list(None, None).unwrap()
    };
    assert!(before.len() > 3, "the run left objects: {before:?}");
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(reopened.list(None, None).unwrap(), before);
    for object in &before {
        assert_eq!(reopened.get(&object.key()).unwrap().as_ref(), Some(object));
    }
}

#[test]
fn an_override_survives_its_sources_writes_but_not_a_redeclaration_after_deletion() {
    use berth::api::overrides::SUSPENDED;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let file = Source::file("/srv/manifests/web.yaml");
    let key = container("web", "x").key();
    store.commit(WriteBatch::new().put(owned_by(container("web", "busybox:1"), file.clone()))).unwrap();
    let suspend = WriteOp::Override { key: key.clone(), annotation: SUSPENDED, value: Some("by alice".into()) };
    store.commit(WriteBatch::new().op(suspend)).unwrap();
    let suspended = |store: &Store| store.get(&key).unwrap().unwrap().metadata().annotations.get(SUSPENDED).cloned();

    // The file writes its object again, with a new image and a try at
    // clearing the override by writing its own value: the override stays.
    let mut edited = owned_by(container("web", "busybox:2"), file.clone());
    edited.metadata_mut().annotations.insert(SUSPENDED.into(), "by the file".into());
    let commit = store.commit(WriteBatch::new().put(edited)).unwrap();
    assert_eq!(commit.outcomes, [Outcome::Updated { spec_changed: true }]);
    assert_eq!(suspended(&store).as_deref(), Some("by alice"));

    // Deleted, then declared again before its teardown finished: the new
    // declaration starts without the old object's override.
    store.commit(WriteBatch::new().delete(key.clone())).unwrap();
    store.commit(WriteBatch::new().put(owned_by(container("web", "busybox:2"), file))).unwrap();
    assert_eq!(suspended(&store), None);
    assert!(store.get(&key).unwrap().unwrap().metadata().deletion_timestamp.is_none());
}
