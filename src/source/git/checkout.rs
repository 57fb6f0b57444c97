//! Checkouts: a commit's manifests written out under the state directory,
//! where the manifest loader (and an Image's build context) can read them.
//!
//! Layout, under a source's directory:
//!
//! ```text
//! checkouts/<commit>/   the `--git-path` subtree of that commit
//! current               symlink to the checkout of the applied commit
//! ```
//!
//! A checkout is written into `checkouts/.partial-<commit>` and renamed into
//! place, so a directory named after a commit is always complete, even
//! after a crash. Objects refer to files through `current` (an Image's
//! build context), not through a commit's directory: their specs then stay
//! the same across commits that do not change them, and nothing is rebuilt
//! or recreated for a commit that only touched another file. Checkouts other
//! than the current one are removed once a commit has been handled.
//!
//! Only blobs, executables, symlinks and trees are written; submodules are
//! skipped (their content is not in this repository). Entry names that could
//! leave the checkout (`..`, `/`) are refused.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gix::object::tree::EntryKind;

/// Prefix of a checkout being written.
const PARTIAL: &str = ".partial-";

/// The checkouts of one source.
pub struct Checkouts {
    /// The source's directory (holds `checkouts/` and `current`).
    root: PathBuf,
}

/// Why a commit could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The repository's objects could not be read.
    #[error("reading the commit's objects")]
    Read(#[source] gix::Error),
    /// The files could not be written.
    #[error("writing the checkout")]
    Write(#[source] io::Error),
}

impl Checkouts {
    /// The checkouts under `root`.
    pub fn new(root: PathBuf) -> Self {
        Checkouts { root }
    }

    /// The directory of `commit`'s checkout.
    pub fn dir(&self, commit: &str) -> PathBuf {
        self.root.join("checkouts").join(commit)
    }

    /// The link to the applied commit's checkout.
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }

    /// The commit `current` points at, if any.
    pub fn current_commit(&self) -> Option<String> {
        let target = std::fs::read_link(self.current()).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Writes `path` (relative to the repository's root; empty for the root)
    /// of `commit` out, unless it already is. `None` when the commit has no
    /// directory at `path`.
    pub fn write(
        &self,
        repo: &gix::Repository,
        commit: gix::ObjectId,
        path: &str,
    ) -> Result<Option<PathBuf>, CheckoutError> {
        let dir = self.dir(&commit.to_string());
        if dir.is_dir() {
            return Ok(Some(dir));
        }
        let root = repo.find_commit(commit).and_then(|c| c.tree()).map_err(CheckoutError::Read)?;
        let tree = if path.is_empty() {
            root
        } else {
            match root.lookup_entry_by_path(path).map_err(CheckoutError::Read)? {
                Some(entry) if entry.mode().is_tree() => {
                    repo.find_tree(entry.object_id()).map_err(CheckoutError::Read)?
                }
                _ => return Ok(None),
            }
        };
        let partial = self.root.join("checkouts").join(format!("{PARTIAL}{commit}"));
        match std::fs::remove_dir_all(&partial) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(CheckoutError::Write(e)),
            _ => {}
        }
        std::fs::create_dir_all(&partial).map_err(CheckoutError::Write)?;
        write_tree(repo, &tree, &partial, 0)?;
        std::fs::rename(&partial, &dir).map_err(CheckoutError::Write)?;
        Ok(Some(dir))
    }

    /// Points `current` at `commit`'s checkout, atomically (a new link
    /// renamed over the old one).
    pub fn set_current(&self, commit: &str) -> io::Result<()> {
        let link = self.root.join(".current.new");
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::os::unix::fs::symlink(Path::new("checkouts").join(commit), &link)?;
        std::fs::rename(&link, self.current())
    }

    /// Removes every checkout but `current`'s (and partial ones left by a
    /// crash). Best effort: a checkout that cannot be removed now is
    /// tried again after the next commit.
    pub fn remove_stale(&self) {
        let keep = self.current_commit();
        let Ok(entries) = std::fs::read_dir(self.root.join("checkouts")) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if Some(&name) != keep.as_ref() {
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(checkout = %entry.path().display(), "cannot remove an old checkout: {e}");
                }
            }
        }
    }
}

/// Writes the entries of `tree` into the directory `dir`.
fn write_tree(repo: &gix::Repository, tree: &gix::Tree<'_>, dir: &Path, depth: usize) -> Result<(), CheckoutError> {
    for entry in tree.iter() {
        let entry = entry.map_err(CheckoutError::Read)?;
        let name = entry.filename().to_string();
        if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
            tracing::warn!(entry = %name, "skipping a tree entry whose name could leave the checkout");
            continue;
        }
        let target = dir.join(&name);
        match entry.mode().kind() {
            EntryKind::Tree => {
                std::fs::create_dir(&target).map_err(CheckoutError::Write)?;
                let subtree = repo.find_tree(entry.object_id()).map_err(CheckoutError::Read)?;
                write_tree(repo, &subtree, &target, depth + 1)?;
            }
            kind @ (EntryKind::Blob | EntryKind::BlobExecutable) => {
                let blob = repo.find_blob(entry.object_id()).map_err(CheckoutError::Read)?;
                std::fs::write(&target, &blob.data).map_err(CheckoutError::Write)?;
                if kind == EntryKind::BlobExecutable {
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                        .map_err(CheckoutError::Write)?;
                }
            }
            EntryKind::Link => {
                let blob = repo.find_blob(entry.object_id()).map_err(CheckoutError::Read)?;
                let link = String::from_utf8_lossy(&blob.data).into_owned();
                // A link out of the checkout would let a commit make berth
                // read any host file (an Image's context is packed with its
                // links followed): only links that stay inside, or lead into
                // a host path the policy grants, are written.
                if !stays_inside(&link, depth) {
                    // Without a policy (outside `berth serve`) nothing is granted.
                    let granted = crate::manifest::policy::current().map(|policy| policy.host_path(&link));
                    let refused = match granted {
                        Some(Ok(())) => None,
                        Some(Err(why)) => Some(why),
                        None => Some("no host path is granted".to_string()),
                    };
                    if let Some(why) = refused {
                        tracing::warn!(entry = %name, "skipping a symlink that leads out of the checkout: {why}");
                        continue;
                    }
                }
                std::os::unix::fs::symlink(link, &target).map_err(CheckoutError::Write)?;
            }
            EntryKind::Commit => tracing::debug!(entry = %name, "skipping a submodule"),
        }
    }
    Ok(())
}

/// Whether a relative symlink `link`, in a directory `depth` levels below
/// the checkout's root, resolves inside the checkout (lexically: its
/// targets are written by the same checkout, and links among them are
/// checked the same way).
fn stays_inside(link: &str, depth: usize) -> bool {
    let mut level = depth as isize;
    for component in Path::new(link).components() {
        match component {
            std::path::Component::Normal(_) => level += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                level -= 1;
                if level < 0 {
                    return false;
                }
            }
            std::path::Component::RootDir | std::path::Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::stays_inside;

    #[test]
    fn only_symlinks_that_stay_in_the_checkout_are_written() {
        for (link, depth) in [("busybox", 0), ("./a/b", 0), ("../sibling", 1), ("a/../b", 0), ("../../x", 2)] {
            assert!(stays_inside(link, depth), "{link} at depth {depth}");
        }
        for (link, depth) in [("/bin/busybox", 0), ("..", 0), ("../x", 0), ("../../x", 1), ("a/../../x", 0)] {
            assert!(!stays_inside(link, depth), "{link} at depth {depth}");
        }
    }
}
