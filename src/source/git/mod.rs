//! Git repositories as sources: berth follows a branch the way it follows a
//! directory.
//!
//! Each poll fetches the branch into a mirror in the state directory
//! ([`mirror`]). A commit not seen before is written out ([`checkout`]),
//! the manifests under the followed path are loaded as one set and applied
//! in one transaction, every object carrying the source with the commit.
//! What the previous commit declared and this one does not is deleted
//! (unless pruning is off). A commit with any invalid manifest is rejected
//! whole: the last good commit's objects stay, and the errors, recorded on
//! the source, name the commit, the file as it is in the repository, the
//! line and the column (`1a2b3c4d5e6f:deploy/web.yaml:14:22: …`). A poll
//! that finds the commit it saw last writes nothing at all.
//!
//! The state of a source lives under `<state-dir>/git/<hash of its id>/`:
//! `mirror.git/` (the bare repository), `checkouts/` and `current` (see
//! [`checkout`]), and `source` (the id, for whoever looks at the directory).
//! Credentials never go there ([`credentials`]).
//!
//! Polls happen every interval, and at once when a push webhook names the
//! repository ([`webhook`]). Force-pushes are followed: the mirror's branch
//! is moved wherever the remote's is, and an older commit is applied like
//! any other.
//!
//! # Guarantees
//! - A poll writes to the store only when the commit changed, or when a
//!   fetch error starts or ends (recorded on the source).
//! - A rejected commit leaves every object as it was.
//! - A crash at any point leaves either the old or the new commit applied;
//!   the next poll finishes the job (the record says which commit was seen).

pub mod checkout;
pub mod credentials;
pub mod error;
pub mod mirror;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{watch, Notify};

use crate::api::{AnyObject, Source, SourceKind};
use crate::controller::runtime::Shutdown;
use crate::engine::labels::sha256_hex;
use crate::error_chain::Chain;
use crate::manifest::{self, ManifestError};
use crate::store::{SourceRecord, Store, StoreError, WriteBatch, WriteOp};

use super::apply::{apply_set, reject_source, Applied, SetOptions};
use checkout::Checkouts;
pub use credentials::Credentials;
pub use error::{GitError, Result};
use mirror::Mirror;
pub use webhook::GitHooks;

/// Default branch followed.
pub const DEFAULT_BRANCH: &str = "main";
/// Default time between polls.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Length of the commit ids in error messages.
const SHORT: usize = 12;
/// Marks an ownership conflict in a rejected commit's error.
const OWNED_BY: &str = " is owned by ";

/// What to follow: a repository, a branch, a directory in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSpec {
    /// The repository's URL: `https://`, `ssh://`, `user@host:path`,
    /// `git://`, `file://` or a local path. Never with a password.
    pub url: String,
    /// The branch.
    pub branch: String,
    /// The directory whose manifests are applied, relative to the
    /// repository's root, without leading or trailing `/`; empty for the root.
    pub path: String,
}

impl GitSpec {
    /// Parses `URL[#BRANCH[:PATH]]` (the `--git` argument); the parts not
    /// given are `default_branch` and `default_path`. Git forbids `:` in
    /// branch names and URLs never need a `#`, so the split is unambiguous.
    pub fn parse(argument: &str, default_branch: &str, default_path: &str) -> Result<GitSpec> {
        let (url, selector) = match argument.split_once('#') {
            Some((url, selector)) => (url, Some(selector)),
            None => (argument, None),
        };
        let (branch, path) = match selector {
            Some(selector) => match selector.split_once(':') {
                Some((branch, path)) => (branch, path),
                None => (selector, default_path),
            },
            None => (default_branch, default_path),
        };
        let branch = if branch.is_empty() { default_branch } else { branch };
        credentials::check_url(url)?;
        let bad = |reason: String| GitError::Url { url: credentials::redact(argument), reason };
        if branch.is_empty() || branch.starts_with('-') || branch.contains("..") || branch.contains(char::is_whitespace)
        {
            return Err(bad(format!("`{branch}` is not a branch name")));
        }
        let path = normalize_path(path).ok_or_else(|| bad(format!("path `{path}` leaves the repository")))?;
        Ok(GitSpec { url: url.to_string(), branch: branch.to_string(), path })
    }

    /// The source of the objects read from `commit`.
    pub fn source(&self, commit: Option<String>) -> Source {
        Source {
            kind: SourceKind::Git,
            path: Some(self.path.clone()),
            repo: Some(self.url.clone()),
            branch: Some(self.branch.clone()),
            commit,
        }
    }

    /// The source's id (without a commit).
    pub fn id(&self) -> String {
        self.source(None).id()
    }
}

/// `deploy/`, `./deploy`, `/deploy` → `deploy`; `.` and `/` → the root;
/// `None` for a path with `..`.
fn normalize_path(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// What one poll did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Synced {
    /// The commit was seen before: nothing written.
    Unchanged {
        /// The branch's commit.
        commit: String,
    },
    /// The commit's objects were applied.
    Applied {
        /// The commit.
        commit: String,
        /// What the apply wrote.
        applied: Applied,
    },
    /// The commit was rejected; the previous objects stay.
    Rejected {
        /// The commit.
        commit: String,
        /// Why, with the commit, file, line and column in each.
        errors: Vec<String>,
    },
}

/// Follows one branch of one repository into the store.
pub struct GitSource {
    store: Store,
    spec: GitSpec,
    /// Delete what the previous commit declared and this one does not.
    prune: bool,
    credentials: Credentials,
    mirror: Mirror,
    checkouts: Checkouts,
    /// Set on shutdown: aborts a fetch in flight.
    interrupt: Arc<AtomicBool>,
}

impl GitSource {
    /// A source following `spec`, keeping its mirror and checkouts under
    /// `<state_dir>/git/`.
    pub fn new(store: Store, state_dir: &Path, spec: GitSpec, prune: bool, credentials: Credentials) -> Self {
        let root = source_dir(state_dir, &spec);
        GitSource {
            store,
            prune,
            credentials,
            mirror: Mirror::new(root.join("mirror.git")),
            checkouts: Checkouts::new(root),
            spec,
            interrupt: Arc::new(AtomicBool::new(false)),
        }
    }

    /// What the source follows.
    pub fn spec(&self) -> &GitSpec {
        &self.spec
    }

    /// Fetches the branch and applies its commit if it is new. Blocks (the
    /// fetch, the checkout, the store); run it on a blocking thread.
    ///
    /// # Errors
    /// A failed fetch or checkout, or a store failure. A fetch failure is
    /// recorded on the source (once, until it changes or ends).
    pub fn sync(&self) -> Result<Synced> {
        let record = self.store.source(&self.spec.id())?;
        let head = match self.mirror.fetch(&self.spec.url, &self.spec.branch, &self.credentials, &self.interrupt) {
            Ok(head) => head,
            Err(error) => {
                self.record_fetch_error(record, &error)?;
                return Err(error);
            }
        };
        let commit = head.to_string();
        // A commit rejected because another source owned one of its objects
        // is tried again on every poll: the other declaration may be gone.
        let seen = record.as_ref().filter(|r| {
            r.seen_commit.as_deref() == Some(commit.as_str()) && !r.errors.iter().any(|e| e.contains(OWNED_BY))
        });
        if let Some(record) = seen.cloned() {
            if record.fetch_error.is_some() {
                let record = SourceRecord { fetch_error: None, error_time: None, ..record };
                self.store.commit(WriteBatch::new().op(WriteOp::Source(record)))?;
            }
            return Ok(Synced::Unchanged { commit });
        }
        self.write_root()?;
        let repo = self.mirror.open(&self.credentials)?;
        let checkout_error = |e: checkout::CheckoutError| GitError::Checkout { commit: commit.clone(), source: e };
        let source = self.spec.source(Some(commit.clone()));
        let dir = match self.checkouts.write(&repo, head, &self.spec.path).map_err(checkout_error)? {
            Some(dir) => dir,
            None => {
                let shown = if self.spec.path.is_empty() { "/" } else { &self.spec.path };
                let errors = vec![format!(
                    "{}: the commit has no directory `{shown}`; nothing was applied",
                    &commit[..SHORT.min(commit.len())]
                )];
                return self.reject(&source, errors);
            }
        };
        let objects = match self.load(&commit, &dir) {
            Ok(objects) => objects,
            Err(errors) => return self.reject(&source, errors),
        };
        self.apply(&source, objects)
    }

    /// Loads the checkout at `dir` as one set. Errors name the commit and
    /// the file as it is in the repository; build contexts point through
    /// `current`.
    fn load(&self, commit: &str, dir: &Path) -> std::result::Result<Vec<AnyObject>, Vec<String>> {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let current = self.checkouts.current();
        match manifest::load_paths(&[&dir]) {
            Ok(set) => Ok(set
                .objects
                .into_iter()
                .map(|loaded| {
                    let mut object = loaded.object;
                    if let AnyObject::Image(image) = &mut object {
                        let context = image.spec.build.as_mut().and_then(|b| b.context.as_mut());
                        if let Some(context) = context {
                            if let Ok(inside) = Path::new(context.as_str()).strip_prefix(&dir) {
                                *context = current.join(inside).display().to_string();
                            }
                        }
                    }
                    object
                })
                .collect()),
            Err(errors) => Err(errors.0.into_iter().map(|e| self.in_repository(commit, &dir, e)).collect()),
        }
    }

    /// An error about a file of the checkout at `dir`, told about the file
    /// in the repository: `<commit>:<path>:<line>:<column>: …`.
    fn in_repository(&self, commit: &str, dir: &Path, mut error: ManifestError) -> String {
        let prefix = format!("{}/", dir.display());
        let in_repo = |relative: &str| {
            if self.spec.path.is_empty() {
                relative.to_string()
            } else {
                format!("{}/{relative}", self.spec.path)
            }
        };
        if let Some(relative) = error.file.strip_prefix(&prefix) {
            error.file = in_repo(relative);
        } else if error.file == dir.display().to_string() {
            error.file = in_repo(".");
        }
        error.file = format!("{}:{}", &commit[..SHORT.min(commit.len())], error.file);
        error.message = error.message.replace(&prefix, &in_repo(""));
        error.to_string()
    }

    /// Applies `objects` as the commit's set.
    fn apply(&self, source: &Source, objects: Vec<AnyObject>) -> Result<Synced> {
        let commit = source.commit.clone().unwrap_or_default();
        let previous = self.checkouts.current_commit();
        // Before the apply, so that the reconcile it triggers reads the new
        // commit's files (a changed build context).
        self.checkouts
            .set_current(&commit)
            .map_err(|e| GitError::Checkout { commit: commit.clone(), source: checkout::CheckoutError::Write(e) })?;
        let options =
            SetOptions { prune: self.prune, force: false, preconditions: false, record: true, create_only: false };
        let applied = super::dir::retry_on_race(|| apply_set(&self.store, source, objects.clone(), options));
        match applied {
            Ok(applied) => {
                self.checkouts.remove_stale();
                Ok(Synced::Applied { commit, applied })
            }
            Err(error) => {
                if let Some(previous) = previous {
                    let _ = self.checkouts.set_current(&previous);
                }
                match error {
                    StoreError::OwnedByOther { key, owner } => {
                        let short = &commit[..SHORT.min(commit.len())];
                        let message =
                            format!("{short}: {key}{OWNED_BY}{owner}, which keeps it; rename or remove one of them");
                        // Tried again each poll: record it once.
                        let record = self.store.source(&source.id())?;
                        let same = record.is_some_and(|r| {
                            r.seen_commit == source.commit && r.errors.len() == 1 && r.errors[0] == message
                        });
                        if same {
                            return Ok(Synced::Rejected { commit, errors: vec![message] });
                        }
                        self.reject(source, vec![message])
                    }
                    other => Err(other.into()),
                }
            }
        }
    }

    /// Records `errors` for the commit of `source`; its objects stay.
    /// (An ownership conflict is recorded with [`OWNED_BY`] in its message,
    /// which makes the next poll try the commit again.)
    fn reject(&self, source: &Source, errors: Vec<String>) -> Result<Synced> {
        reject_source(&self.store, source, errors.clone())?;
        self.checkouts.remove_stale();
        Ok(Synced::Rejected { commit: source.commit.clone().unwrap_or_default(), errors })
    }

    /// Records a failed fetch on the source, unless that is already what it
    /// says.
    fn record_fetch_error(&self, record: Option<SourceRecord>, error: &GitError) -> Result<()> {
        let message = Chain(error).to_string();
        if record.as_ref().and_then(|r| r.fetch_error.as_deref()) == Some(message.as_str()) {
            return Ok(());
        }
        let record = match record {
            Some(record) => record,
            None => SourceRecord {
                seen_commit: None,
                applied_commit: None,
                ..SourceRecord::new(self.spec.source(None), vec![])
            },
        };
        let record = SourceRecord { fetch_error: Some(message), error_time: Some(Utc::now()), ..record };
        self.store.commit(WriteBatch::new().op(WriteOp::Source(record)))?;
        Ok(())
    }

    /// Creates the source's directory, with a note of whose it is.
    fn write_root(&self) -> Result<()> {
        let root = self.mirror.dir().parent().unwrap_or(Path::new("."));
        let note = root.join("source");
        if !note.exists() {
            std::fs::create_dir_all(root)
                .and_then(|()| std::fs::write(&note, format!("{}\n", self.spec.id())))
                .map_err(|source| GitError::StateDir { path: note.clone(), source })?;
        }
        Ok(())
    }

    /// Polls now, then every `interval` and whenever `trigger` is notified
    /// (a webhook), until `shutdown` changes.
    pub async fn run(self, interval: Duration, trigger: Arc<Notify>, mut shutdown: watch::Receiver<Shutdown>) {
        let interrupt = self.interrupt.clone();
        let id = self.spec.id();
        let shown = credentials::redact(&id);
        let source = Arc::new(self);
        loop {
            let polling = source.clone();
            let sync = tokio::task::spawn_blocking(move || polling.sync());
            // Cancel safety: dropping the join handle leaves the blocking
            // poll to finish on its own; the interrupt flag makes a fetch in
            // flight stop, and a store write commits whole or not at all.
            let outcome = tokio::select! {
                outcome = sync => outcome,
                _ = shutdown.changed() => {
                    interrupt.store(true, Ordering::Relaxed);
                    return;
                }
            };
            match outcome {
                Ok(Ok(Synced::Unchanged { commit })) => tracing::debug!(source = %shown, %commit, "no new commit"),
                Ok(Ok(Synced::Applied { commit, applied })) => tracing::info!(
                    source = %shown,
                    %commit,
                    written = applied.written,
                    deleted = applied.deleted,
                    "commit applied"
                ),
                Ok(Ok(Synced::Rejected { commit, errors })) => {
                    for error in &errors {
                        tracing::error!("{error}");
                    }
                    tracing::warn!(source = %shown, %commit, "commit rejected: the objects of the last good commit stay");
                }
                Ok(Err(error)) => tracing::warn!(source = %shown, "{}", Chain(&error)),
                Err(panic) => tracing::error!(source = %shown, "the poll panicked: {panic}"),
            }
            // Cancel safety: sleeping and waiting for a notification lose
            // nothing when dropped (a notification that comes meanwhile is
            // kept as a permit for the next wait).
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = trigger.notified() => tracing::debug!(source = %shown, "poll triggered by a webhook"),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// `<state_dir>/git/<first 16 hex digits of the SHA-256 of the source id>`.
pub fn source_dir(state_dir: &Path, spec: &GitSpec) -> PathBuf {
    state_dir.join("git").join(&sha256_hex(spec.id().as_bytes())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_names_url_branch_and_path() {
        let spec = GitSpec::parse("https://example.com/r.git", "main", "").unwrap();
        assert_eq!((spec.branch.as_str(), spec.path.as_str()), ("main", ""));
        let spec = GitSpec::parse("https://example.com/r.git#prod", "main", "deploy").unwrap();
        assert_eq!((spec.branch.as_str(), spec.path.as_str()), ("prod", "deploy"));
        let spec = GitSpec::parse("git@example.com:r.git#prod:./hosts/a/", "main", "").unwrap();
        assert_eq!(
            (spec.url.as_str(), spec.branch.as_str(), spec.path.as_str()),
            ("git@example.com:r.git", "prod", "hosts/a")
        );
        let spec = GitSpec::parse("/srv/r.git#:hosts", "dev", "").unwrap();
        assert_eq!((spec.branch.as_str(), spec.path.as_str()), ("dev", "hosts"));
        assert_eq!(spec.id(), "git:/srv/r.git#dev:hosts");
    }

    #[test]
    fn bad_arguments_are_refused_without_showing_a_password() {
        for bad in ["https://example.com/r.git#a..b", "https://example.com/r.git#main:../x", "ftp://x/r.git"] {
            assert!(GitSpec::parse(bad, "main", "").is_err(), "{bad}");
        }
        let error = GitSpec::parse("https://u:hunter2@example.com/r.git", "main", "").unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
