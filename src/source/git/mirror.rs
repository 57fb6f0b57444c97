//! The mirror: a bare repository in the state directory that each poll
//! fetches the followed branch into.
//!
//! Only the one branch is fetched, forced (`+refs/heads/B:refs/remotes/origin/B`),
//! so a force-push moves the mirror back with the remote. The mirror is
//! opened isolated from the user's and the system's git configuration: what
//! berth fetches does not depend on who runs it, and no credential helper
//! or prompt is ever run. The SSH command with the key is an in-memory
//! override, never written to the mirror's config.
//!
//! Everything here blocks (gix's blocking client); callers run it on a
//! blocking thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::remote::Direction;

use super::credentials::Credentials;
use super::error::{GitError, Result};

/// The bare repository a source fetches into.
pub struct Mirror {
    dir: PathBuf,
}

impl Mirror {
    /// The mirror at `dir` (created on the first fetch).
    pub fn new(dir: PathBuf) -> Self {
        Mirror { dir }
    }

    /// Opens the repository, creating it when absent.
    pub fn open(&self, credentials: &Credentials) -> Result<gix::Repository> {
        let overrides: Vec<String> =
            credentials.ssh_command().map(|command| format!("core.sshCommand={command}")).into_iter().collect();
        let options = gix::open::Options::isolated().config_overrides(overrides);
        let error = |source| GitError::Mirror { path: self.dir.clone(), source };
        if self.dir.join("HEAD").is_file() {
            gix::open_opts(&self.dir, options).map_err(error)
        } else {
            std::fs::create_dir_all(&self.dir).map_err(|e| error(gix::Error::from_error(e)))?;
            gix::ThreadSafeRepository::init_opts(
                &self.dir,
                gix::create::Kind::Bare,
                gix::create::Options::default(),
                options,
            )
            .map(Into::into)
            .map_err(error)
        }
    }

    /// Fetches `branch` of `url` and returns the commit it points at.
    /// `interrupt` aborts a transfer in flight (shutdown).
    pub fn fetch(
        &self,
        url: &str,
        branch: &str,
        credentials: &Credentials,
        interrupt: &AtomicBool,
    ) -> Result<gix::ObjectId> {
        let repo = self.open(credentials)?;
        let fetch_error = |source| GitError::Fetch { url: url.to_string(), source };
        let spec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        let remote = repo
            .remote_at(url)
            .and_then(|remote| remote.with_refspecs([spec.as_str()], Direction::Fetch))
            .map_err(fetch_error)?
            .with_fetch_tags(gix::remote::fetch::Tags::None);
        let connection = remote
            .connect(Direction::Fetch)
            .map_err(fetch_error)?
            .with_credentials(|action| credentials.answer(action));
        let prepared = connection.prepare_fetch(gix::progress::Discard, Default::default()).map_err(fetch_error)?;
        let wanted = format!("refs/heads/{branch}");
        let head = prepared.ref_map().remote_refs.iter().find_map(|r| {
            let (name, target, peeled) = r.unpack();
            (name == wanted.as_bytes()).then(|| peeled.or(target).map(ToOwned::to_owned)).flatten()
        });
        let Some(head) = head else {
            return Err(GitError::NoBranch { url: url.to_string(), branch: branch.to_string() });
        };
        prepared.receive(gix::progress::Discard, interrupt).map_err(fetch_error)?;
        Ok(head)
    }

    /// The mirror's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
