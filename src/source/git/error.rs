//! Why following a repository failed. Problems in a commit's manifests are
//! not errors here: they reject the commit (see `reject_source`) and are
//! recorded on the source.

use std::path::PathBuf;

use crate::store::StoreError;

/// A failure of one poll of a repository. URLs in these messages never hold
/// a password ([`check_url`](super::credentials::check_url) refuses them),
/// and credentials appear only as the names of their files.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `--git` argument is not a repository URL berth can follow.
    #[error("--git {url}: {reason}")]
    Url {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The mirror in the state directory cannot be opened or created.
    #[error("cannot open the mirror {}", path.display())]
    Mirror {
        /// Its directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: gix::Error,
    },
    /// Talking to the remote failed: unreachable, refused, bad credentials.
    #[error("fetching {url} failed")]
    Fetch {
        /// The remote.
        url: String,
        /// Why (network, protocol, authentication).
        #[source]
        source: gix::Error,
    },
    /// The remote has no such branch.
    #[error("{url} has no branch `{branch}`")]
    NoBranch {
        /// The remote.
        url: String,
        /// The branch followed.
        branch: String,
    },
    /// A fetched commit cannot be read or written out.
    #[error("cannot check out commit {commit}")]
    Checkout {
        /// The commit.
        commit: String,
        /// Why.
        #[source]
        source: super::checkout::CheckoutError,
    },
    /// The source's directory in the state directory cannot be written.
    #[error("cannot write {}", path.display())]
    StateDir {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A credentials file cannot be read. Its content is never shown.
    #[error("cannot read the credentials file {}", file.display())]
    Credentials {
        /// The file named by `--git-ssh-key` or `--git-token-file`.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The remote asked for credentials and none were given.
    #[error(
        "the remote asks for credentials; give a token with --git-token-file (or an ssh:// URL with --git-ssh-key)"
    )]
    NoCredentials,
    /// The store refused the write.
    #[error("writing to the store failed")]
    Store(#[from] StoreError),
}

/// Result of the git source's steps.
pub type Result<T, E = GitError> = std::result::Result<T, E>;
