//! The directory source on real files: applying, editing, removing files,
//! invalid files keeping their objects, conflicts between files, and an
//! editor's write-to-temp-then-rename.

use std::path::Path;
use std::time::Duration;

use berth::api::{AnyObject, ObjectKey};
use berth::controller::runtime::Shutdown;
use berth::source::dir::DirSource;
use berth::store::Store;
use tokio::sync::watch;

use crate::support::controller::eventually;

const WAIT: Duration = Duration::from_secs(10);

fn volume(name: &str, label: &str) -> String {
    format!("apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: {name}\n  labels: {{v: {label}}}\nspec: {{}}\n")
}

fn get(store: &Store, key: &str) -> Option<AnyObject> {
    store.get(&ObjectKey::parse(key).unwrap()).unwrap()
}

fn label(store: &Store, key: &str) -> Option<String> {
    get(store, key).map(|o| o.metadata().labels["v"].clone())
}

/// Whether the object is marked for deletion (the controller would remove it).
fn deleting(store: &Store, key: &str) -> bool {
    get(store, key).is_some_and(|o| o.metadata().deletion_timestamp.is_some())
}

struct Watched {
    store: Store,
    shutdown: watch::Sender<Shutdown>,
    task: tokio::task::JoinHandle<berth::start_error::Result<()>>,
    _state: tempfile::TempDir,
}

fn watch_dir(dir: &Path) -> Watched {
    let state = tempfile::tempdir().unwrap();
    let store = Store::open(state.path()).unwrap();
    let source = DirSource::new(store.clone(), &[dir.to_path_buf()]).unwrap();
    let (shutdown, receiver) = watch::channel(Shutdown::Running);
    let task = tokio::spawn(source.run(receiver));
    Watched { store, shutdown, task, _state: state }
}

impl Watched {
    async fn stop(self) {
        self.shutdown.send(Shutdown::Drain).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_applied_edited_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), volume("a", "one")).unwrap();
    let watched = watch_dir(dir.path());
    let store = watched.store.clone();
    eventually(WAIT, "a applied", || async {
        (label(&store, "Volume/default/a").as_deref() == Some("one")).then_some(())
    })
    .await;
    let source = get(&store, "Volume/default/a").unwrap().metadata().source.clone().unwrap();
    assert_eq!(source.path.as_deref(), Some(dir.path().canonicalize().unwrap().join("a.yaml").to_str().unwrap()));

    // Edit: two objects now, one of them changed.
    std::fs::write(dir.path().join("a.yaml"), format!("{}---\n{}", volume("a", "two"), volume("b", "one"))).unwrap();
    eventually(WAIT, "a edited, b added", || async {
        (label(&store, "Volume/default/a").as_deref() == Some("two") && get(&store, "Volume/default/b").is_some())
            .then_some(())
    })
    .await;
    // An object the file no longer declares is deleted; the other stays.
    std::fs::write(dir.path().join("a.yaml"), volume("a", "two")).unwrap();
    eventually(WAIT, "b deleted", || async { deleting(&store, "Volume/default/b").then_some(()) }).await;
    assert!(!deleting(&store, "Volume/default/a"));
    // Removing the file deletes exactly its objects.
    std::fs::write(dir.path().join("other.yaml"), volume("c", "one")).unwrap();
    eventually(WAIT, "c applied", || async { get(&store, "Volume/default/c").is_some().then_some(()) }).await;
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    eventually(WAIT, "a deleted", || async { deleting(&store, "Volume/default/a").then_some(()) }).await;
    assert!(!deleting(&store, "Volume/default/c"));
    watched.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_keeps_its_last_good_objects_and_records_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(&file, volume("a", "good")).unwrap();
    let watched = watch_dir(dir.path());
    let store = watched.store.clone();
    eventually(WAIT, "a applied", || async { get(&store, "Volume/default/a").is_some().then_some(()) }).await;
    std::fs::write(
        &file,
        "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: a\nspec:\n  reclaimPolicy: Sometimes\n",
    )
    .unwrap();
    let record = eventually(WAIT, "the error recorded", || async {
        store.sources().unwrap().into_iter().find(|r| !r.errors.is_empty())
    })
    .await;
    assert!(
        record.errors[0].contains("a.yaml:6:18: Volume/default/a: spec.reclaimPolicy: unknown variant `Sometimes`"),
        "{:?}",
        record.errors
    );
    assert_eq!(label(&store, "Volume/default/a").as_deref(), Some("good"));
    assert!(!deleting(&store, "Volume/default/a"), "an invalid file must not tear anything down");
    // Fixing the file clears the errors.
    std::fs::write(&file, volume("a", "fixed")).unwrap();
    eventually(WAIT, "fixed", || async {
        (label(&store, "Volume/default/a").as_deref() == Some("fixed")).then_some(())
    })
    .await;
    assert!(store.sources().unwrap().iter().all(|r| r.errors.is_empty()));
    watched.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_name_in_two_files_stays_with_the_first_and_is_reported_on_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), volume("shared", "from-a")).unwrap();
    let watched = watch_dir(dir.path());
    let store = watched.store.clone();
    eventually(WAIT, "a applied", || async { get(&store, "Volume/default/shared").is_some().then_some(()) }).await;
    std::fs::write(dir.path().join("b.yaml"), format!("{}---\n{}", volume("shared", "from-b"), volume("only-b", "x")))
        .unwrap();
    let records = eventually(WAIT, "the conflict on both sources", || async {
        let records = store.sources().unwrap();
        (records.iter().filter(|r| !r.errors.is_empty()).count() == 2).then_some(records)
    })
    .await;
    let errors: Vec<String> = records.iter().flat_map(|r| r.errors.clone()).collect();
    assert!(
        errors.iter().any(|e| e.contains("b.yaml: Volume/default/shared is also declared by file:")
            && e.contains("a.yaml, which keeps it")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Volume/default/shared is also declared by")
                && e.contains("b.yaml; this source keeps it")),
        "{errors:#?}"
    );
    assert_eq!(label(&store, "Volume/default/shared").as_deref(), Some("from-a"));
    assert!(get(&store, "Volume/default/only-b").is_none(), "a rejected file applies nothing");
    watched.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_save_by_rename_is_seen_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(&file, volume("a", "v1")).unwrap();
    let watched = watch_dir(dir.path());
    let store = watched.store.clone();
    eventually(WAIT, "v1", || async { (label(&store, "Volume/default/a").as_deref() == Some("v1")).then_some(()) })
        .await;
    // vim-style: write a swap/temp file, then rename it over the original.
    let temp = dir.path().join(".a.yaml.swp");
    std::fs::write(&temp, "half a fi").unwrap();
    std::fs::write(&temp, volume("a", "v2")).unwrap();
    std::fs::rename(&temp, &file).unwrap();
    eventually(WAIT, "v2", || async { (label(&store, "Volume/default/a").as_deref() == Some("v2")).then_some(()) })
        .await;
    assert!(store.sources().unwrap().iter().all(|r| r.errors.is_empty()), "the temp file is never read as a manifest");
    watched.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_removed_while_berth_was_down_are_noticed_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), volume("a", "x")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), volume("b", "x")).unwrap();
    {
        let store = Store::open(state.path()).unwrap();
        DirSource::new(store, &[dir.path().to_path_buf()]).unwrap().sync_all().unwrap();
    }
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let store = Store::open(state.path()).unwrap();
    let mut source = DirSource::new(store.clone(), &[dir.path().to_path_buf()]).unwrap();
    assert!(source.sync_all().unwrap(), "a removal just made waits for the directory to settle");
    assert!(!deleting(&store, "Volume/default/a"));
    let mut source = source.with_stable_for(Duration::ZERO);
    source.sync_all().unwrap();
    assert!(deleting(&store, "Volume/default/a"));
    assert!(!deleting(&store, "Volume/default/b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_never_deletes_what_its_missing_part_declares() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    let whole = format!("{}---\n{}", volume("a", "x"), volume("b", "x"));
    std::fs::write(&file, &whole).unwrap();
    let watched = watch_dir(dir.path());
    let store = watched.store.clone();
    eventually(WAIT, "both applied", || async { get(&store, "Volume/default/b").is_some().then_some(()) }).await;
    // A slow writer: the first document lands, the rest 400 ms later.
    std::fs::write(&file, volume("a", "x")).unwrap();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!deleting(&store, "Volume/default/b"), "b was deleted from a half-written file");
    }
    std::fs::write(&file, &whole).unwrap();
    tokio::time::sleep(berth::source::dir::STABLE_FOR * 2).await;
    assert!(!deleting(&store, "Volume/default/b"), "b was deleted from a half-written file");
    // An empty file that stays empty is believed, once it has settled.
    std::fs::write(&file, "").unwrap();
    eventually(WAIT, "both deleted", || async {
        (deleting(&store, "Volume/default/a") && deleting(&store, "Volume/default/b")).then_some(())
    })
    .await;
    watched.stop().await;
}

/// The uid, generation and owning file of an object.
fn identity(store: &Store, key: &str) -> Option<(String, u64, String)> {
    let object = get(store, key)?;
    let meta = object.metadata();
    let file = meta.source.as_ref().and_then(|s| s.path.clone()).unwrap_or_default();
    let file = Path::new(&file).file_name().unwrap().to_string_lossy().into_owned();
    Some((meta.uid.clone().unwrap(), meta.generation.unwrap(), file))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_file_and_a_cut_and_paste_keep_the_object_in_any_order_of_saving() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), volume("v", "x")).unwrap();
    let watched = watch_dir(dir.path());
    let store = watched.store.clone();
    let (uid, generation, _) = eventually(WAIT, "v applied", || async { identity(&store, "Volume/default/v") }).await;
    let owned_by = |file: &'static str| {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move { identity(&store, "Volume/default/v").filter(|(_, _, f)| f == file) }
        }
    };
    // `mv a.yaml b.yaml` (the reproduction of the issue).
    std::fs::rename(dir.path().join("a.yaml"), dir.path().join("b.yaml")).unwrap();
    let moved = eventually(WAIT, "v owned by b.yaml", owned_by("b.yaml")).await;
    assert_eq!(moved, (uid.clone(), generation, "b.yaml".into()));
    // Paste into c.yaml first, then cut from b.yaml.
    std::fs::write(dir.path().join("c.yaml"), volume("v", "x")).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(dir.path().join("b.yaml"), "").unwrap();
    let moved = eventually(WAIT, "v owned by c.yaml", owned_by("c.yaml")).await;
    assert_eq!(moved, (uid.clone(), generation, "c.yaml".into()));
    // Cut from c.yaml first, then paste into d.yaml.
    std::fs::write(dir.path().join("c.yaml"), "").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(dir.path().join("d.yaml"), volume("v", "x")).unwrap();
    let moved = eventually(WAIT, "v owned by d.yaml", owned_by("d.yaml")).await;
    assert_eq!(moved, (uid, generation, "d.yaml".into()));
    tokio::time::sleep(berth::source::dir::STABLE_FOR * 2).await;
    assert!(!deleting(&store, "Volume/default/v"), "a move is never a deletion");
    let records = store.sources().unwrap();
    assert!(records.iter().all(|r| r.errors.is_empty()), "{records:#?}");
    let files: Vec<_> = records.iter().filter_map(|r| r.source.path.clone()).collect();
    assert!(files.iter().all(|f| Path::new(f).exists()), "no record of a file that is gone: {files:?}");
    let events = store.events(Some(&ObjectKey::parse("Volume/default/v").unwrap()), 0, 100).unwrap();
    assert!(events.iter().any(|e| e.reason == "SourceMoved" && e.message.contains("to file:")), "{events:#?}");
    watched.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_moves_between_two_manifest_directories_and_a_conflict_resolves_when_one_side_goes() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    std::fs::write(one.path().join("a.yaml"), volume("v", "one")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let store = Store::open(state.path()).unwrap();
    let source = DirSource::new(store.clone(), &[one.path().to_path_buf(), two.path().to_path_buf()]).unwrap();
    let (shutdown, receiver) = watch::channel(Shutdown::Running);
    let task = tokio::spawn(source.run(receiver));
    let (uid, ..) = eventually(WAIT, "v applied", || async { identity(&store, "Volume/default/v") }).await;
    // Declared in both directories: the first keeps it, the conflict shows.
    std::fs::write(two.path().join("b.yaml"), format!("{}---\n{}", volume("v", "two"), volume("w", "two"))).unwrap();
    eventually(WAIT, "the conflict recorded", || async {
        store.sources().unwrap().iter().any(|r| r.errors.iter().any(|e| e.contains("which keeps it"))).then_some(())
    })
    .await;
    assert_eq!(label(&store, "Volume/default/v").as_deref(), Some("one"));
    assert!(get(&store, "Volume/default/w").is_none());
    // The first declaration goes: the second takes over at once, whole.
    std::fs::remove_file(one.path().join("a.yaml")).unwrap();
    eventually(WAIT, "b.yaml took v over", || async {
        (label(&store, "Volume/default/v").as_deref() == Some("two") && get(&store, "Volume/default/w").is_some())
            .then_some(())
    })
    .await;
    assert_eq!(identity(&store, "Volume/default/v").unwrap().0, uid, "the same object, not a new one");
    assert!(!deleting(&store, "Volume/default/v"));
    eventually(WAIT, "no errors left", || async {
        store.sources().unwrap().iter().all(|r| r.errors.is_empty()).then_some(())
    })
    .await;
    shutdown.send(Shutdown::Drain).unwrap();
    task.await.unwrap().unwrap();
}
