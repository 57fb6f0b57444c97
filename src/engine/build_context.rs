//! In-memory, deterministic tar build contexts for engine image builds.
//!
//! Both Docker's `/build` and Podman's `/libpod/build` take the build context
//! as a tar body. berth assembles that tar in memory rather than from a
//! directory on disk, so an `Image` object's context is exactly the files the
//! manifest and berth put in it, nothing that happens to lie next to them.
//!
//! The tar is deterministic: entries are sorted by path and every header has
//! mtime 0, uid/gid 0 and no user or group names, so the same entries always
//! give byte-identical tar. [`BuildContext::content_hash`] is therefore a
//! stable fingerprint the `Image` reconciler can compare with the hash it
//! recorded for the image it last built, to decide whether to rebuild.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Errors of building a context or writing its tar.
#[derive(Debug, thiserror::Error)]
pub enum BuildContextError {
    /// A path that would escape the context or name nothing.
    #[error("build context path `{path}` is invalid: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A host file meant for the context could not be read.
    #[error("could not read `{}` for the build context", path.display())]
    Read {
        /// The host file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The tar could not be written (only possible for entries the tar format
    /// cannot encode).
    #[error("could not write the build context tar")]
    Tar(#[source] io::Error),
}

/// Result of this module's operations.
pub type Result<T, E = BuildContextError> = std::result::Result<T, E>;

/// The files of a build context, keyed by normalized relative path.
///
/// A `BTreeMap` rather than a `Vec` because it keeps the entries sorted
/// (the tar's order must not depend on insertion order) and makes a later
/// [`file`](BuildContext::file) for the same path replace the earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildContext {
    /// Path (relative, `/`-separated, no `.` or `..`) to contents and unix
    /// permission bits.
    entries: BTreeMap<String, (Vec<u8>, u32)>,
}

impl BuildContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the regular file `path` with `bytes` and unix
    /// permission bits `mode` (only the low 12 bits, `0o7777`, are kept).
    ///
    /// `path` is relative to the context root; `.` components and repeated
    /// slashes are dropped.
    ///
    /// # Errors
    ///
    /// [`BuildContextError::InvalidPath`] if `path` is absolute, contains a
    /// `..` component, or names nothing (empty or only `.`).
    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Result<Self> {
        let path = normalize(path)?;
        self.entries.insert(path, (bytes.into(), mode & 0o7777));
        Ok(self)
    }

    /// The normalized paths of the entries, in tar order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Writes the context as an uncompressed tar: one regular-file entry per
    /// file, sorted by path, with mtime 0 and uid/gid 0. Paths longer than
    /// the ustar limit use GNU long-name entries.
    ///
    /// # Errors
    ///
    /// [`BuildContextError::Tar`] if an entry cannot be encoded.
    pub fn to_tar(&self) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, (bytes, mode)) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(bytes.len() as u64);
            header.set_mode(*mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            // `append_data` sets the path (with a long-name entry if needed)
            // and the checksum.
            builder.append_data(&mut header, path, bytes.as_slice()).map_err(BuildContextError::Tar)?;
        }
        builder.into_inner().map_err(BuildContextError::Tar)
    }

    /// Lowercase hex SHA-256 of [`to_tar`](BuildContext::to_tar)'s bytes:
    /// equal contexts give equal hashes, any change to a path, a file's
    /// bytes or its mode changes it.
    ///
    /// # Errors
    ///
    /// As [`to_tar`](BuildContext::to_tar).
    pub fn content_hash(&self) -> Result<String> {
        let tar = self.to_tar()?;
        Ok(format!("{:x}", Sha256::digest(&tar)))
    }
}

/// The Dockerfile of [`busybox_context`].
const BUSYBOX_DOCKERFILE: &str = "\
FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
";

/// A context that builds a registry-free image: a `FROM scratch` Dockerfile
/// that copies the static busybox at `busybox` (on the host, usually
/// `/bin/busybox`) to `/bin/busybox` and runs
/// `RUN ["/bin/busybox","--install","-s","/bin"]`, so the image has `sh`,
/// `sleep`, `wget`, `httpd`, `nc` and the rest of busybox's applets.
///
/// `busybox` must be statically linked: the image has no libc.
///
/// Every file under `dir` (recursively, following symlinks, so a context
/// may link to host files such as `/bin/busybox`), skipping `.git`.
///
/// # Errors
///
/// [`BuildContextError::Read`] if a file or directory cannot be read.
pub fn from_dir(dir: &Path) -> Result<BuildContext> {
    use std::os::unix::fs::PermissionsExt;
    let mut context = BuildContext::new();
    let walker = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name().into_iter();
    for entry in walker.filter_entry(|e| e.file_name() != ".git") {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            BuildContextError::Read {
                path,
                source: e.into_io_error().unwrap_or_else(|| io::Error::other("symlink loop")),
            }
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let read = |source| BuildContextError::Read { path: path.to_path_buf(), source };
        let bytes = std::fs::read(path).map_err(read)?;
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
        let relative = path.strip_prefix(dir).unwrap_or(path).to_string_lossy().into_owned();
        context = context.file(&relative, bytes, mode)?;
    }
    Ok(context)
}

/// # Errors
///
/// [`BuildContextError::Read`] if `busybox` cannot be read.
pub fn busybox_context(busybox: &Path) -> Result<BuildContext> {
    let bytes = std::fs::read(busybox).map_err(|source| BuildContextError::Read { path: busybox.into(), source })?;
    BuildContext::new().file("Dockerfile", BUSYBOX_DOCKERFILE, 0o644)?.file("busybox", bytes, 0o755)
}

/// Normalizes a context path to `a/b/c`, rejecting anything that is not a
/// plain relative path inside the context.
fn normalize(path: &str) -> Result<String> {
    let invalid = |reason| BuildContextError::InvalidPath { path: path.to_string(), reason };
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().ok_or_else(|| invalid("not UTF-8"))?),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("`..` would leave the context")),
            Component::RootDir | Component::Prefix(_) => return Err(invalid("must be relative to the context root")),
        }
    }
    if parts.is_empty() {
        return Err(invalid("names no file"));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// (path, mode, contents) of every entry of `tar`, in order, with the
    /// header fields that must be fixed checked on the way.
    fn entries(tar: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        let mut out = Vec::new();
        for entry in archive.entries().expect("tar is readable") {
            let mut entry = entry.expect("entry is readable");
            let header = entry.header();
            assert_eq!(header.mtime().expect("mtime"), 0);
            assert_eq!(header.uid().expect("uid"), 0);
            assert_eq!(header.gid().expect("gid"), 0);
            assert_eq!(header.entry_type(), tar::EntryType::Regular);
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            let mode = header.mode().expect("mode");
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("contents");
            out.push((path, mode, bytes));
        }
        out
    }

    fn sample() -> BuildContext {
        BuildContext::new()
            .file("Dockerfile", "FROM scratch\n", 0o644)
            .expect("valid path")
            .file("bin/tool", vec![1, 2, 3], 0o755)
            .expect("valid path")
    }

    #[test]
    fn same_entries_in_any_order_give_identical_tar() {
        let reversed = BuildContext::new()
            .file("bin/tool", vec![1, 2, 3], 0o755)
            .expect("valid path")
            .file("Dockerfile", "FROM scratch\n", 0o644)
            .expect("valid path");
        let tar = sample().to_tar().expect("tar");
        assert_eq!(tar, reversed.to_tar().expect("tar"));
        assert_eq!(tar, sample().to_tar().expect("tar"), "two runs give the same bytes");
        assert_eq!(sample().content_hash().expect("hash"), reversed.content_hash().expect("hash"));
    }

    #[test]
    fn hash_is_hex_sha256_and_changes_with_contents_mode_and_path() {
        let base = sample().content_hash().expect("hash");
        assert_eq!(base.len(), 64);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

        let contents = sample().file("bin/tool", vec![1, 2, 4], 0o755).expect("valid path");
        let mode = sample().file("bin/tool", vec![1, 2, 3], 0o700).expect("valid path");
        let extra = sample().file("extra", "", 0o644).expect("valid path");
        for changed in [contents, mode, extra] {
            assert_ne!(changed.content_hash().expect("hash"), base, "{changed:?}");
        }
    }

    #[test]
    fn tar_lists_sorted_entries_with_contents_and_modes() {
        let tar = sample().to_tar().expect("tar");
        assert_eq!(
            entries(&tar),
            vec![
                ("Dockerfile".to_string(), 0o644, b"FROM scratch\n".to_vec()),
                ("bin/tool".to_string(), 0o755, vec![1, 2, 3]),
            ]
        );
        assert_eq!(sample().paths().collect::<Vec<_>>(), ["Dockerfile", "bin/tool"]);
    }

    #[test]
    fn long_paths_survive_the_round_trip() {
        let long = format!("{}/file", "d".repeat(150));
        let tar = BuildContext::new().file(&long, "x", 0o644).expect("valid path").to_tar().expect("tar");
        assert_eq!(entries(&tar)[0].0, long);
    }

    #[test]
    fn paths_are_normalized_and_later_files_replace_earlier_ones() {
        let context = BuildContext::new()
            .file("./a//b", "old", 0o644)
            .expect("valid path")
            .file("a/b", "new", 0o600)
            .expect("valid path");
        assert_eq!(entries(&context.to_tar().expect("tar")), vec![("a/b".to_string(), 0o600, b"new".to_vec())]);
    }

    #[test]
    fn rejects_absolute_parent_and_empty_paths() {
        for path in ["/etc/passwd", "../outside", "a/../../b", "a/..", "", ".", "./"] {
            match BuildContext::new().file(path, "x", 0o644) {
                Err(BuildContextError::InvalidPath { path: got, .. }) => assert_eq!(got, path),
                other => panic!("`{path}` should be rejected, got {other:?}"),
            }
        }
    }

    #[test]
    fn busybox_context_has_dockerfile_and_executable_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = dir.path().join("busybox");
        std::fs::write(&fake, b"\x7fELF fake").expect("write fake busybox");

        let tar = busybox_context(&fake).expect("context").to_tar().expect("tar");
        let entries = entries(&tar);
        assert_eq!(entries.len(), 2);
        let (path, mode, dockerfile) = &entries[0];
        assert_eq!((path.as_str(), *mode), ("Dockerfile", 0o644));
        let dockerfile = String::from_utf8_lossy(dockerfile);
        assert!(dockerfile.starts_with("FROM scratch\n"), "{dockerfile}");
        assert!(dockerfile.contains(r#"RUN ["/bin/busybox", "--install", "-s", "/bin"]"#), "{dockerfile}");
        assert_eq!(entries[1], ("busybox".to_string(), 0o755, b"\x7fELF fake".to_vec()));
    }

    #[test]
    fn busybox_context_reports_an_unreadable_binary() {
        let missing = Path::new("/nonexistent/busybox");
        match busybox_context(missing) {
            Err(BuildContextError::Read { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected a read error, got {other:?}"),
        }
    }
}
