//! Git repositories made by the tests: a bare "remote" on disk, pushed to
//! from a work tree with the `git` command (as a user would), fetched by
//! berth through `file://` or HTTP ([`HttpRemote`], `git http-backend`
//! behind a loopback server).
//!
//! git runs isolated from the machine's configuration (`GIT_CONFIG_GLOBAL`,
//! `GIT_CONFIG_NOSYSTEM`), with a fixed author.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A bare repository and a work tree that pushes to it.
pub struct Remote {
    _dir: tempfile::TempDir,
    /// The bare repository.
    pub bare: PathBuf,
    /// The work tree.
    pub work: PathBuf,
}

/// Runs git in `dir`; panics with its output on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .stdin(Stdio::null())
        .output()
        .expect("running git (is it installed? scripts/setup-engines.sh installs it)");
    assert!(
        output.status.success(),
        "git {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl Remote {
    /// An empty repository whose default branch is `main`.
    pub fn new() -> Remote {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = std::fs::canonicalize(dir.path()).expect("canonical temporary directory");
        let (bare, work) = (root.join("remote.git"), root.join("work"));
        git(&root, &["init", "--quiet", "--bare", "--initial-branch=main", "remote.git"]);
        git(&root, &["init", "--quiet", "--initial-branch=main", "work"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Remote { _dir: dir, bare, work }
    }

    /// The remote's `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes a file of the work tree (directories created).
    pub fn write(&self, path: &str, text: &str) -> &Self {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).expect("directory in the work tree");
        std::fs::write(file, text).expect("writing a file of the work tree");
        self
    }

    /// Removes a file of the work tree.
    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.work.join(path)).expect("removing a file of the work tree");
        self
    }

    /// Commits everything and pushes `main`; returns the commit.
    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "--allow-empty", "-m", message]);
        git(&self.work, &["push", "--quiet", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Moves `main` back to `commit` and force-pushes it.
    pub fn force_push(&self, commit: &str) {
        git(&self.work, &["reset", "--quiet", "--hard", commit]);
        git(&self.work, &["push", "--quiet", "--force", "origin", "main"]);
    }
}

/// A Container manifest whose env says `value`.
pub fn container(name: &str, value: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: {name}\nspec:\n  image: busybox\n  command: [sh, -c, 'sleep 3600']\n  stopGracePeriod: 1s\n  env:\n    - name: VALUE\n      value: {value}\n"
    )
}
