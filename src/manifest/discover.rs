//! Which files of a directory are manifests.
//!
//! Directories are walked recursively in a stable (sorted) order. Only
//! `*.yaml` and `*.yml` count; dotfiles and dot-directories (`.git`) and the
//! temporary files editors write next to the file being edited are skipped,
//! so that saving a file in vim or emacs never makes berth read half a file.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::error::ManifestError;
use super::yaml_tree::Position;

/// Whether a file name is a manifest berth should read.
pub fn is_manifest_name(name: &str) -> bool {
    let editor_temp = name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp");
    !editor_temp && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// The manifest files under `path`: the path itself when it is a file
/// (whatever its name: the user asked for it), else every manifest below it.
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, Box<ManifestError>> {
    let display = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|e| {
        Box::new(ManifestError::at(&display, Position { line: 1, column: 1 }, format!("cannot read: {e}")))
    })?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let walker = WalkDir::new(path).follow_links(true).sort_by_file_name().into_iter();
    let skip_hidden =
        |entry: &walkdir::DirEntry| entry.depth() > 0 && entry.file_name().to_string_lossy().starts_with('.');
    for entry in walker.filter_entry(|e| !skip_hidden(e)) {
        let entry = entry.map_err(|e| {
            let at = e.path().map_or(display.clone(), |p| p.display().to_string());
            Box::new(ManifestError::at(&at, Position { line: 1, column: 1 }, format!("cannot read: {e}")))
        })?;
        if entry.file_type().is_file() && is_manifest_name(&entry.file_name().to_string_lossy()) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_temp_files_and_other_extensions_are_skipped() {
        for name in ["web.yaml", "db.yml"] {
            assert!(is_manifest_name(name), "{name}");
        }
        for name in [
            ".web.yaml.swp",
            ".#web.yaml",
            "#web.yaml#",
            "web.yaml~",
            "web.yaml.tmp",
            ".hidden.yaml",
            "notes.txt",
            "4913",
        ] {
            assert!(!is_manifest_name(name), "{name}");
        }
    }
}
