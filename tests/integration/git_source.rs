//! The git source on real repositories made by the test (a bare repository
//! on disk, pushed to with the `git` command): first sync, edits, removals,
//! broken commits, force-pushes, polls that find nothing new, credentials
//! over HTTP, and what it records on its source.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use berth::api::{AnyObject, ObjectKey, SourceKind};
use berth::controller::runtime::Shutdown;
use berth::engine::fake::FakeEngine;
use berth::engine::labels;
use berth::source::git::{Credentials, GitHooks, GitSource, GitSpec, Synced};
use berth::store::Store;
use tokio::sync::watch;

use crate::support::api::{Api, Reply, ServedFake, PREFIX, TOKEN};
use crate::support::controller::{eventually, is_ready, Running};
use crate::support::git::{container, HttpRemote, Remote};

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
        self.source.sync().unwrap_or_else(|e| panic!("sync failed: {:#}", anyhow::Error::from(e)))
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

/// A commit's symlinks are written only when they stay inside the
/// repository: one to a host file (which an Image's build context, packed
/// with its links followed, would read as berth) is left out.
#[test]
fn a_committed_symlink_out_of_the_repository_is_not_checked_out() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one")).write("deploy/ctx/Dockerfile", "FROM scratch\n");
    let work = &remote.work;
    std::os::unix::fs::symlink("/etc/passwd", work.join("deploy/ctx/passwd")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/hostname", work.join("deploy/ctx/hostname")).unwrap();
    std::os::unix::fs::symlink("Dockerfile", work.join("deploy/ctx/inside")).unwrap();
    let commit = remote.commit("links");
    let follower = follow(&remote, true);
    applied(follower.sync());
    let checkout = berth::source::git::source_dir(follower.state.path(), follower.source.spec())
        .join("checkouts")
        .join(&commit)
        .join("ctx");
    assert_eq!(std::fs::read_link(checkout.join("inside")).unwrap(), std::path::Path::new("Dockerfile"));
    for escaping in ["passwd", "hostname"] {
        assert!(std::fs::symlink_metadata(checkout.join(escaping)).is_err(), "{escaping} was checked out");
    }
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

#[test]
fn http_remotes_are_followed_through_git_http_backend() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    let first = remote.commit("first");
    let server = HttpRemote::serve(&remote, None);
    let follower = follow_url(&server.url, true, Credentials::default());
    assert!(matches!(follower.sync(), Synced::Applied { commit, .. } if commit == first));
    remote.write("deploy/web.yaml", &container("web", "two"));
    remote.commit("second");
    applied(follower.sync());
    assert_eq!(follower.value("web").as_deref(), Some("two"));
    let log = server.log.lock().unwrap().clone();
    assert!(log.iter().any(|(line, status)| line.contains("git-upload-pack") && *status == 200), "{log:#?}");
}

#[test]
fn a_remote_asking_for_credentials_gets_the_token_only_over_tls() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    remote.commit("first");
    let server = HttpRemote::serve(&remote, Some("t0ken"));

    // No token: the fetch fails, saying which flag gives one.
    let follower = follow_url(&server.url, true, Credentials::default());
    let error = format!("{:#}", anyhow::Error::from(follower.source.sync().unwrap_err()));
    assert!(error.contains("--git-token-file"), "{error}");

    // A token is never sent in clear text (http://), and never shown.
    let files = tempfile::tempdir().unwrap();
    let token_file = files.path().join("token");
    std::fs::write(&token_file, "t0ken\n").unwrap();
    let credentials = Credentials { ssh_key: None, token_file: Some(token_file.clone()) };
    let follower = follow_url(&server.url, true, credentials);
    let error = format!("{:#}", anyhow::Error::from(follower.source.sync().unwrap_err()));
    assert!(error.contains("clear text"), "{error}");
    let record = format!("{:?}", follower.record());
    for text in [&error, &record] {
        assert!(!text.contains("t0ken"), "the token leaked: {text}");
    }
    let log = server.log.lock().unwrap().clone();
    assert!(log.iter().all(|(_, status)| *status == 401), "nothing was served without the token: {log:#?}");
    // Nothing of the token in the state directory.
    for entry in walkdir::WalkDir::new(follower.state.path()).into_iter().flatten() {
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(!bytes.windows(5).any(|w| w == b"t0ken"), "the token is in {}", entry.path().display());
        }
    }
}

/// A push payload as GitHub sends it (the fields berth reads).
fn push_payload(remote: &Remote) -> Vec<u8> {
    serde_json::json!({
        "ref": "refs/heads/main",
        "repository": { "clone_url": remote.url(), "full_name": "o/r" },
    })
    .to_string()
    .into_bytes()
}

fn github_signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn post_hook(api: &Api, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder().method("POST").uri("/hooks/git");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(axum::body::Body::from(body.to_vec())).unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_with_a_good_signature_poll_at_once_and_others_do_nothing() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    let first = remote.commit("first");
    let spec = GitSpec::parse(&remote.url(), "main", "deploy").unwrap();
    let mut hooks = GitHooks::new(Some(b"s3cret".to_vec()));
    let trigger = hooks.follow(spec.clone());
    let api = Api::start_with(hooks).await;
    let state = tempfile::tempdir().unwrap();
    let source = GitSource::new(api.store.clone(), state.path(), spec.clone(), true, Credentials::default());
    let (shutdown, receiver) = watch::channel(Shutdown::Running);
    // An hour between polls: only webhooks poll after the first one.
    let polling = tokio::spawn(source.run(Duration::from_secs(3600), trigger, receiver));
    let applied_commit = || api.store.source(&spec.id()).unwrap().and_then(|r| r.applied_commit);
    eventually(WAIT, "the first commit", || async { (applied_commit() == Some(first.clone())).then_some(()) }).await;

    remote.write("deploy/web.yaml", &container("web", "two"));
    let second = remote.commit("second");
    let body = push_payload(&remote);
    let refused = [
        vec![],
        vec![("x-hub-signature-256", github_signature(b"wrong", &body))],
        vec![("x-hub-signature-256", github_signature(b"s3cret", b"another body"))],
        vec![("x-gitlab-token", "wrong".to_string())],
        vec![("authorization", format!("Bearer {TOKEN}"))],
    ];
    for headers in refused {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let message = post_hook(&api, &headers, &body).await.error(StatusCode::UNAUTHORIZED);
        assert!(message.contains("secret") || message.contains("signed"), "{headers:?}: {message}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(applied_commit(), Some(first), "a refused hook polls nothing");

    let signature = github_signature(b"s3cret", &body);
    let reply = post_hook(&api, &[("x-hub-signature-256", &signature)], &body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.json()["triggered"], serde_json::json!([spec.id()]));
    eventually(WAIT, "the pushed commit", || async { (applied_commit() == Some(second.clone())).then_some(()) }).await;

    // GitLab's token works too.
    remote.write("deploy/web.yaml", &container("web", "three"));
    let third = remote.commit("third");
    let gitlab = serde_json::json!({"ref": "refs/heads/main", "project": {"git_http_url": remote.url()}}).to_string();
    let reply = post_hook(&api, &[("x-gitlab-token", "s3cret")], gitlab.as_bytes()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    eventually(WAIT, "the third commit", || async { (applied_commit() == Some(third.clone())).then_some(()) }).await;
    shutdown.send(Shutdown::Drain).unwrap();
    polling.await.unwrap();
}

/// A delivery seen before (its delivery id, or its signed body under a new
/// id) is answered as a duplicate and polls nothing; a new one polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_webhook_delivery_is_a_duplicate_and_polls_nothing() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    remote.commit("first");
    let spec = GitSpec::parse(&remote.url(), "main", "deploy").unwrap();
    let mut hooks = GitHooks::new(Some(b"s3cret".to_vec()));
    let trigger = hooks.follow(spec.clone());
    let api = Api::start_with(hooks).await;
    let body = push_payload(&remote);
    let signature = github_signature(b"s3cret", &body);
    let deliver = |id: &'static str, body: Vec<u8>, signature: String| {
        let api = &api;
        async move { post_hook(api, &[("x-hub-signature-256", &signature), ("x-github-delivery", id)], &body).await }
    };
    let first = deliver("a1", body.clone(), signature.clone()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    tokio::time::timeout(Duration::from_secs(1), trigger.notified()).await.expect("the first delivery polls");

    let other_body = serde_json::json!({"ref": "refs/heads/main", "after": "b2"}).to_string().into_bytes();
    let other_signature = github_signature(b"s3cret", &other_body);
    for (what, reply) in [
        ("the same delivery id", deliver("a1", other_body.clone(), other_signature.clone()).await),
        ("the same body under a new id", deliver("a2", body.clone(), signature.clone()).await),
    ] {
        assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text());
        assert_eq!(reply.json()["duplicate"], true, "{what}");
        assert_eq!(reply.json()["triggered"], serde_json::json!([]), "{what}");
    }
    let polled = tokio::time::timeout(Duration::from_millis(300), trigger.notified()).await;
    assert!(polled.is_err(), "a duplicate delivery polled");

    let new = deliver("a3", other_body, other_signature).await;
    assert_eq!(new.status, StatusCode::ACCEPTED, "{}", new.text());
    tokio::time::timeout(Duration::from_secs(1), trigger.notified()).await.expect("a new delivery polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_webhooks_are_off() {
    let api = Api::start().await;
    let message = post_hook(&api, &[("x-gitlab-token", "anything")], b"{}").await.error(StatusCode::NOT_FOUND);
    assert!(message.contains("--git-webhook-secret-file"), "{message}");
}

/// An API server, and a git source on `remote`'s `deploy/` writing to its store.
struct ApiFollower {
    api: Api,
    spec: GitSpec,
    source: Arc<GitSource>,
    _state: tempfile::TempDir,
}

impl ApiFollower {
    async fn start(remote: &Remote) -> ApiFollower {
        let api = Api::start().await;
        let state = tempfile::tempdir().unwrap();
        let spec = GitSpec::parse(&remote.url(), "main", "deploy").unwrap();
        let source = GitSource::new(api.store.clone(), state.path(), spec.clone(), true, Credentials::default());
        ApiFollower { api, spec, source: Arc::new(source), _state: state }
    }

    /// One poll, on a blocking thread (it blocks on the fetch and the store).
    async fn sync(&self) -> Synced {
        let source = self.source.clone();
        tokio::task::spawn_blocking(move || source.sync().unwrap()).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_from_git_refuse_api_writes_without_force_and_the_next_commit_takes_them_back() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    let first = remote.commit("first");
    let follower = ApiFollower::start(&remote).await;
    let (api, spec) = (&follower.api, &follower.spec);
    follower.sync().await;
    let path = format!("{PREFIX}/namespaces/default/containers/web");

    let message = api.send_yaml("PUT", &path, &container("web", "by-hand")).await.error(StatusCode::CONFLICT);
    assert!(message.contains(&format!("owned by {}", spec.id())), "{message}");
    let message = api.call("DELETE", &path, Some(TOKEN), None).await.error(StatusCode::CONFLICT);
    assert!(message.contains("`force=true`"), "{message}");

    let reply = api.send_yaml("PUT", &format!("{path}?force=true"), &container("web", "by-hand")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let object = api.get(&path).await.json();
    assert_eq!(object["spec"]["env"][0]["value"], "by-hand");
    assert_eq!(object["metadata"]["source"]["commit"], first.as_str(), "git keeps ownership");

    remote.write("deploy/web.yaml", &container("web", "two"));
    let second = remote.commit("second");
    follower.sync().await;
    let object = api.get(&path).await.json();
    assert_eq!(object["spec"]["env"][0]["value"], "two", "the next commit takes it back");
    assert_eq!(object["metadata"]["source"]["commit"], second.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_list_the_seen_and_applied_commits_and_the_errors() {
    let remote = Remote::new();
    remote.write("deploy/web.yaml", &container("web", "one"));
    let good = remote.commit("good");
    let follower = ApiFollower::start(&remote).await;
    let (api, spec) = (&follower.api, &follower.spec);
    follower.sync().await;
    remote.write("deploy/web.yaml", "kind: Container\n");
    let bad = remote.commit("bad");
    follower.sync().await;

    assert_eq!(api.call("GET", "/sources", None, None).await.status, StatusCode::UNAUTHORIZED);
    let list = api.get("/sources").await.json();
    let item = &list["items"][0];
    assert_eq!(item["id"], spec.id().as_str());
    assert_eq!(item["source"]["type"], "git");
    assert_eq!(item["seenCommit"], bad.as_str());
    assert_eq!(item["appliedCommit"], good.as_str());
    assert_eq!(item["objects"], serde_json::json!(["Container/default/web"]));
    let error = item["errors"][0].as_str().unwrap();
    assert!(error.starts_with(&format!("{}:deploy/web.yaml:1:1", &bad[..12])), "{error}");
    assert!(item["errorTime"].is_string());
}

#[test]
fn berth_get_sources_shows_the_repository_of_berth_serve_git() {
    let remote = Remote::new();
    remote.write("hosts/a/web.yaml", &container("web", "one"));
    let commit = remote.commit("first");
    let argument = format!("{}#main:hosts/a", remote.url());
    let served = ServedFake::start_with(&["--git", &argument, "--git-interval", "1h"]);
    let started = std::time::Instant::now();
    let table = loop {
        let output = served.cli().args(["get", "sources"]).output().unwrap();
        let table = String::from_utf8_lossy(&output.stdout).into_owned();
        if table.contains(&commit[..12]) || started.elapsed() > WAIT {
            break table;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let row = table.lines().nth(1).unwrap_or_else(|| panic!("no source row:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..6], [&argument, "git", &commit[..12], &commit[..12], "1", "-"], "{table}");
    let json = served.cli().args(["get", "sources", "-o", "json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["items"][0]["appliedCommit"], commit.as_str());
    // An hour between polls: `berth sync` (the dashboard's "sync now")
    // fetches the next commit at once.
    remote.write("hosts/a/web.yaml", &container("web", "two"));
    let second = remote.commit("second");
    served.cli().args(["sync", &argument]).assert().success().stdout(predicates::str::contains("fetching now"));
    let started = std::time::Instant::now();
    loop {
        let json = served.cli().args(["get", "sources", "-o", "json"]).output().unwrap();
        let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        if list["items"][0]["appliedCommit"] == second.as_str() {
            break;
        }
        assert!(started.elapsed() < WAIT, "the synced commit was not applied: {list:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    served
        .cli()
        .args(["sync", "git:elsewhere"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("no git source has id"));
}

/// Two repositories on one store declaring the same object: the second is
/// rejected, and once the first no longer declares it, the second's next
/// poll (same commit, nothing new fetched) takes it over. A conflict that
/// lasts is recorded once, not on every poll.
#[test]
fn a_commit_rejected_for_a_conflict_is_tried_again_on_every_poll() {
    let (first, second) = (Remote::new(), Remote::new());
    first.write("deploy/web.yaml", &container("web", "first"));
    first.commit("first declares web");
    second.write("deploy/web.yaml", &container("web", "second"));
    second.commit("second declares web too");
    let state = tempfile::tempdir().unwrap();
    let store = Store::open(state.path()).unwrap();
    let source = |remote: &Remote| {
        let spec = GitSpec::parse(&remote.url(), "main", "deploy").unwrap();
        GitSource::new(store.clone(), state.path(), spec, true, Credentials::default())
    };
    let (a, b) = (source(&first), source(&second));
    assert!(matches!(a.sync().unwrap(), Synced::Applied { .. }));
    let rejected = b.sync().unwrap();
    assert!(
        matches!(&rejected, Synced::Rejected { errors, .. } if errors[0].contains("is owned by git:")),
        "{rejected:?}"
    );
    let events = store.events(None, 0, 1000).unwrap().len();
    assert!(matches!(b.sync().unwrap(), Synced::Rejected { .. }));
    assert_eq!(store.events(None, 0, 1000).unwrap().len(), events, "a lasting conflict is recorded once");
    // The first repository drops web; the second takes it over on its next poll.
    first.write("deploy/web.yaml", "# moved to the other repository\n");
    first.commit("web moves out");
    a.sync().unwrap();
    assert!(matches!(b.sync().unwrap(), Synced::Applied { .. }));
    let web = store.get(&ObjectKey::parse("Container/default/web").unwrap()).unwrap().unwrap();
    assert_eq!(web.metadata().source.as_ref().unwrap().repo.as_deref(), Some(second.url().as_str()));
    let record = store.source(&b.spec().id()).unwrap().unwrap();
    assert!(record.errors.is_empty(), "{:?}", record.errors);
}
