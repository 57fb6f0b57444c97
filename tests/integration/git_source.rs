//! The git source on real repositories made by the test (a bare repository
//! on disk, pushed to with the `git` command): first sync, edits, removals,
//! broken commits, force-pushes, polls that find nothing new, credentials
//! over HTTP, and what it records on its source.

use std::sync::Arc;
use std::time::Duration;

use berth::api::{AnyObject, ObjectKey, SourceKind};
use berth::engine::fake::FakeEngine;
use berth::engine::labels;
use berth::source::git::{Credentials, GitSource, GitSpec, Synced};
use berth::store::Store;

use crate::support::controller::{eventually, is_ready, Running};
use crate::support::git::{container, Remote};

const WAIT: Duration = Duration::from_secs(10);

/// A store and a git source on `remote`'s `deploy/` directory.
struct Follower {
    store: Store,
    source: GitSource,
    state: tempfile::TempDir,
}

fn follow(remote: &Remote, prune: bool) -> Follower {
    follow_url(&remote.url(), prune, Credentials::default())
}

fn follow_url(url: &str, prune: bool, credentials: Credentials) -> Follower {
    let state = tempfile::tempdir().unwrap();
    let store = Store::open(state.path()).unwrap();
    let spec = GitSpec::parse(url, "main", "deploy").unwrap();
    let source = GitSource::new(store.clone(), state.path(), spec, prune, credentials);
    Follower { store, source, state }
}

impl Follower {
    fn sync(&self) -> Synced {
        self.source.sync().unwrap_or_else(|e| panic!("sync failed: {e:#}"))
    }

    fn get(&self, key: &str) -> Option<AnyObject> {
        self.store.get(&ObjectKey::parse(key).unwrap()).unwrap()
    }

    fn value(&self, name: &str) -> Option<String> {
        let AnyObject::Container(c) = self.get(&format!("Container/default/{name}"))? else { return None };
        c.spec.env.first().and_then(|e| e.value.clone())
    }

    fn deleting(&self, name: &str) -> bool {
        self.get(&format!("Container/default/{name}")).is_some_and(|o| o.metadata().deletion_timestamp.is_some())
    }

    fn record(&self) -> berth::store::SourceRecord {
        self.store.source(&self.source.spec().id()).unwrap().expect("a source record")
    }

    fn checkouts(&self) -> Vec<String> {
        let dir = berth::source::git::source_dir(self.state.path(), self.source.spec()).join("checkouts");
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }
}

fn applied(synced: Synced) -> berth::source::Applied {
    match synced {
        Synced::Applied { applied, .. } => applied,
        other => panic!("expected an apply, got {other:?}"),
    }
}

#[test]
fn the_first_sync_applies_the_path_with_the_commit_in_every_source() {
    let remote = Remote::new();
    remote
        .write("deploy/web.yaml", &container("web", "one"))
        .write("deploy/more/api.yaml", &container("api", "one"))
        .write("elsewhere/db.yaml", &container("db", "one"))
        .write("README.md", "not a manifest");
    let commit = remote.commit("first");
    let follower = follow(&remote, true);
    let applied = applied(follower.sync());
    assert_eq!((applied.created, applied.deleted), (2, 0));
    assert!(follower.get("Container/default/db").is_none(), "only deploy/ is followed");
    for name in ["web", "api"] {
        let object = follower.get(&format!("Container/default/{name}")).unwrap();
        let source = object.metadata().source.clone().unwrap();
        assert_eq!(source.kind, SourceKind::Git);
        assert_eq!(source.repo.as_deref(), Some(remote.url().as_str()));
        assert_eq!(source.branch.as_deref(), Some("main"));
        assert_eq!(source.path.as_deref(), Some("deploy"));
        assert_eq!(source.commit.as_deref(), Some(commit.as_str()));
    }
    let record = follower.record();
    assert_eq!(record.seen_commit.as_deref(), Some(commit.as_str()));
    assert_eq!(record.applied_commit.as_deref(), Some(commit.as_str()));
    assert_eq!(record.objects.len(), 2);
    assert!(record.errors.is_empty() && record.fetch_error.is_none());
    assert_eq!(follower.checkouts(), [commit]);
}

#[test]
fn the_same_commit_polled_twice_writes_nothing() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    let commit = remote.commit("first");
    let follower = follow(&remote, true);
    applied(follower.sync());
    let (version, record) = (follower.store.resource_version(), follower.record());
    let events = follower.store.events(None, 0, 1000).unwrap().len();
    for _ in 0..2 {
        assert_eq!(follower.sync(), Synced::Unchanged { commit: commit.clone() });
    }
    assert_eq!(follower.store.resource_version(), version, "no object written");
    assert_eq!(follower.record(), record, "the source record is not rewritten");
    assert_eq!(follower.store.events(None, 0, 1000).unwrap().len(), events, "no event logged");
}

#[test]
fn a_commit_removing_a_file_prunes_its_objects_unless_pruning_is_off() {
    for prune in [true, false] {
        let remote = Remote::new();
        remote.write("deploy/web.yaml", &container("web", "one")).write("deploy/api.yaml", &container("api", "one"));
        remote.commit("two containers");
        let follower = follow(&remote, prune);
        applied(follower.sync());
        remote.remove("deploy/api.yaml");
        remote.commit("api goes");
        let applied = applied(follower.sync());
        assert_eq!(applied.deleted, usize::from(prune), "prune={prune}");
        assert_eq!(follower.deleting("api"), prune, "prune={prune}");
        assert!(!follower.deleting("web"));
    }
}

#[test]
fn a_broken_commit_changes_nothing_and_names_commit_file_line_and_column() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one")).write("deploy/api.yaml", &container("api", "one"));
    let good = remote.commit("good");
    let follower = follow(&remote, true);
    applied(follower.sync());
    let version = follower.store.resource_version();

    // One valid edit and one broken file: the whole commit is rejected.
    remote.write("deploy/web.yaml", &container("web", "two"));
    remote.write("deploy/api.yaml", &container("api", "one").replace("stopGracePeriod: 1s", "stopGracePeriod: 10"));
    let bad = remote.commit("broken");
    let Synced::Rejected { commit, errors } = follower.sync() else { panic!("the broken commit was applied") };
    assert_eq!(commit, bad);
    let expected = format!("{}:deploy/api.yaml:8:20: Container/default/api: spec.stopGracePeriod", &bad[..12]);
    assert!(errors.iter().any(|e| e.starts_with(&expected)), "{errors:#?}\nexpected {expected}");
    assert!(!errors.iter().any(|e| e.contains("/checkouts/")), "errors name the file in the repository: {errors:#?}");
    assert_eq!(follower.store.resource_version(), version, "nothing written");
    assert_eq!(follower.value("web").as_deref(), Some("one"), "the last good commit stays");
    let record = follower.record();
    assert_eq!(record.seen_commit.as_deref(), Some(bad.as_str()));
    assert_eq!(record.applied_commit.as_deref(), Some(good.as_str()));
    assert_eq!(record.errors, errors);
    assert!(record.error_time.is_some());
    assert_eq!(follower.checkouts(), std::slice::from_ref(&good), "only the applied commit's checkout is kept");
    // Polling the broken commit again does nothing.
    assert_eq!(follower.sync(), Synced::Unchanged { commit: bad.clone() });

    // The fix is applied and clears the errors.
    remote.write("deploy/api.yaml", &container("api", "two"));
    let fixed = remote.commit("fixed");
    applied(follower.sync());
    assert_eq!(follower.value("web").as_deref(), Some("two"));
    assert_eq!(follower.value("api").as_deref(), Some("two"));
    let record = follower.record();
    assert_eq!(record.applied_commit.as_deref(), Some(fixed.as_str()));
    assert!(record.errors.is_empty() && record.error_time.is_none());
}

#[test]
fn a_commit_without_the_path_is_rejected_rather_than_pruning_everything() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    remote.commit("first");
    let follower = follow(&remote, true);
    applied(follower.sync());
    remote.remove("deploy/web.yaml").write("other/web.yaml", &container("web", "one"));
    let moved = remote.commit("moved away");
    let Synced::Rejected { errors, .. } = follower.sync() else { panic!("applied a commit without deploy/") };
    assert!(errors[0].starts_with(&format!("{}: the commit has no directory `deploy`", &moved[..12])), "{errors:?}");
    assert!(!follower.deleting("web"));
}

#[test]
fn a_force_push_to_an_older_commit_converges_back() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    let old = remote.commit("one");
    remote.write("deploy/web.yaml", &container("web", "two")).write("deploy/api.yaml", &container("api", "two"));
    remote.commit("two");
    let follower = follow(&remote, true);
    applied(follower.sync());
    assert_eq!(follower.value("web").as_deref(), Some("two"));

    remote.force_push(&old);
    let applied = applied(follower.sync());
    assert_eq!(applied.deleted, 1, "api, which the old commit does not declare");
    assert_eq!(follower.value("web").as_deref(), Some("one"));
    assert!(follower.deleting("api"));
    assert_eq!(follower.record().applied_commit.as_deref(), Some(old.as_str()));
    assert_eq!(follower.checkouts(), [old]);
}

#[test]
fn fetch_failures_are_recorded_once_and_cleared_by_the_next_fetch() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    remote.commit("first");
    let state = tempfile::tempdir().unwrap();
    let store = Store::open(state.path()).unwrap();
    let spec = GitSpec::parse(&format!("{}#nope", remote.url()), "main", "deploy").unwrap();
    let source = GitSource::new(store.clone(), state.path(), spec.clone(), true, Credentials::default());
    let error = source.sync().unwrap_err();
    assert!(error.to_string().contains("has no branch `nope`"), "{error}");
    let record = store.source(&spec.id()).unwrap().unwrap();
    assert!(record.fetch_error.as_deref().unwrap().contains("no branch `nope`"), "{record:?}");
    let version = store.resource_version();
    source.sync().unwrap_err();
    assert_eq!(store.source(&spec.id()).unwrap().unwrap(), record, "the same error is not written again");
    assert_eq!(store.resource_version(), version);
    // The branch appears: applied, and the error is gone.
    crate::support::git::git(&remote.work, &["push", "--quiet", "origin", "main:nope"]);
    assert!(matches!(source.sync().unwrap(), Synced::Applied { .. }));
    let record = store.source(&spec.id()).unwrap().unwrap();
    assert!(record.fetch_error.is_none() && record.error_time.is_none(), "{record:?}");

    // An unreachable repository is an error too, without secrets in it.
    let missing = format!("file://{}/missing.git", state.path().display());
    let follower = follow_url(&missing, true, Credentials::default());
    let error = follower.source.sync().unwrap_err();
    assert!(error.to_string().starts_with(&format!("fetching {missing} failed")), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_edits_one_container_recreates_only_it() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one")).write("deploy/api.yaml", &container("api", "one"));
    remote.commit("two containers");
    let follower = follow(&remote, true);
    let fake = FakeEngine::new();
    fake.preload_image("busybox");
    let running = Running::start(&follower.store, Arc::new(fake.clone()));
    applied(follower.sync());
    let store = follower.store.clone();
    eventually(WAIT, "both containers ready", || async {
        (is_ready(&store, "Container/default/web") && is_ready(&store, "Container/default/api")).then_some(())
    })
    .await;
    let replica = |name: &str| {
        let name = name.to_string();
        fake.containers().into_iter().find(|c| c.labels.get(labels::NAME) == Some(&name)).map(|c| c.id)
    };
    let (web_before, api_before) = (replica("web").unwrap(), replica("api").unwrap());
    fake.clear_calls();

    remote.write("deploy/web.yaml", &container("web", "two"));
    remote.commit("web changes");
    applied(follower.sync());
    eventually(WAIT, "web recreated", || async {
        let replaced = replica("web").is_some_and(|id| id != web_before);
        (replaced && is_ready(&store, "Container/default/web")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert_eq!(replica("api"), Some(api_before.clone()), "api is not recreated");
    let calls = fake.mutating_calls();
    assert!(
        calls.iter().all(|c| c.target != api_before && !c.target.contains("-api-")),
        "api is not touched: {calls:#?}"
    );
    assert!(calls.iter().any(|c| c.op == "remove_container" && c.target == web_before), "{calls:#?}");
}
