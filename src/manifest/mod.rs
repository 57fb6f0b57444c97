//! Reading manifests: files, directories and request bodies into validated,
//! defaulted objects, or every problem with its `file:line:column`.
//!
//! A set of manifests is accepted whole or not at all: any problem rejects
//! the set, so that a half-valid directory never tears down what runs. All
//! problems of a set are reported together. Loading never panics, whatever
//! the input (a property test feeds it arbitrary bytes).
//!
//! The module also generates the CRDs and JSON Schemas of the kinds
//! ([`crd`]) and the manifest reference of docs/manifests.md ([`reference`]).

mod context;
pub mod crd;
mod discover;
mod document;
mod error;
pub mod limits;
pub mod policy;
pub mod reference;
pub mod yaml_tree;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::api::{AnyObject, FieldPath, ObjectKey};

pub use discover::{is_manifest_name, manifest_files};
pub use document::{decode_bytes, decode_file, decode_text, LoadedObject, MAX_FILE_BYTES};
pub use error::{ManifestError, ManifestErrors};
pub use yaml_tree::Position;

/// Objects read from a set of manifests.
#[derive(Clone, Debug, Default)]
pub struct ManifestSet {
    /// The objects, in file and document order.
    pub objects: Vec<LoadedObject>,
    /// The files read.
    pub files: Vec<PathBuf>,
}

/// Loads every manifest under `paths` (files, or directories walked
/// recursively) as one set.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<ManifestSet, ManifestErrors> {
    let mut set = ManifestSet::default();
    let mut errors = Vec::new();
    for path in paths {
        match manifest_files(path.as_ref()) {
            Ok(files) => set.files.extend(files),
            Err(e) => errors.push(*e),
        }
    }
    for file in &set.files {
        let (mut objects, mut found) = decode_file(file);
        set.objects.append(&mut objects);
        errors.append(&mut found);
    }
    errors.extend(check_set(&set.objects));
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Loads what a command line names: files, directories and `-` (standard
/// input, read once, its relative build contexts resolved against the
/// working directory), as one set.
pub fn load_inputs(paths: &[PathBuf]) -> Result<Vec<LoadedObject>, ManifestErrors> {
    let (files, stdin): (Vec<&PathBuf>, Vec<&PathBuf>) = paths.iter().partition(|p| p.as_os_str() != "-");
    let (mut objects, mut errors) = match load_paths(&files) {
        Ok(set) => (set.objects, Vec::new()),
        Err(found) => (Vec::new(), found.0),
    };
    if !stdin.is_empty() {
        let mut text = String::new();
        match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            Ok(_) => {
                let (mut read, mut found) = decode_text(&text, STDIN, std::env::current_dir().ok().as_deref());
                objects.append(&mut read);
                errors.append(&mut found);
            }
            Err(e) => {
                errors.push(ManifestError::at(STDIN, Position { line: 1, column: 1 }, format!("cannot read: {e}")))
            }
        }
        errors.extend(check_set(&objects));
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// The name standard input goes by in messages.
const STDIN: &str = "<stdin>";

/// Loads the documents of one text (a request body, standard input) as one set.
pub fn load_text(text: &str, label: &str, base_dir: Option<&Path>) -> Result<Vec<LoadedObject>, ManifestErrors> {
    load_text_in(text, label, base_dir, None)
}

/// [`load_text`], placing objects that name no namespace in `namespace`.
pub fn load_text_in(
    text: &str,
    label: &str,
    base_dir: Option<&Path>,
    namespace: Option<&str>,
) -> Result<Vec<LoadedObject>, ManifestErrors> {
    let (objects, mut errors) = document::decode_text_in(text, label, base_dir, namespace);
    errors.extend(check_set(&objects));
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Problems that only show across objects: the same object declared twice,
/// and Containers that depend on themselves or on each other in a cycle.
pub fn check_set(objects: &[LoadedObject]) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let mut first_seen: BTreeMap<ObjectKey, &LoadedObject> = BTreeMap::new();
    for loaded in objects {
        let key = loaded.object.key();
        match first_seen.get(&key) {
            None => {
                first_seen.insert(key, loaded);
            }
            Some(first) => {
                let where_first = format!("{}:{}", first.file, first.position().line);
                let where_again = format!("{}:{}", loaded.file, loaded.position().line);
                errors.push(object_error(
                    loaded,
                    None,
                    format!("declared twice: also at {where_first}; names must be unique per kind and namespace"),
                ));
                errors.push(object_error(
                    first,
                    None,
                    format!("declared twice: also at {where_again}; names must be unique per kind and namespace"),
                ));
            }
        }
    }
    errors.extend(dependency_cycles(objects));
    errors
}

fn object_error(loaded: &LoadedObject, field: Option<&FieldPath>, message: String) -> ManifestError {
    ManifestError {
        file: loaded.file.clone(),
        position: field.map_or_else(|| loaded.position(), |f| loaded.tree.position_of(f)),
        document: Some(loaded.document),
        object: Some(loaded.object.key()),
        field: field.map(ToString::to_string),
        message,
    }
}

/// Reports each `dependsOn` cycle once, at its first member in file order.
fn dependency_cycles(objects: &[LoadedObject]) -> Vec<ManifestError> {
    let mut graph: BTreeMap<ObjectKey, (Vec<ObjectKey>, &LoadedObject)> = BTreeMap::new();
    for loaded in objects {
        if let AnyObject::Container(container) = &loaded.object {
            let namespace = container.metadata.namespace();
            let needs = container
                .spec
                .depends_on
                .iter()
                .map(|d| ObjectKey::new(crate::api::Kind::Container, namespace, &d.container))
                .collect();
            graph.entry(container.key()).or_insert((needs, loaded));
        }
    }
    let mut errors = Vec::new();
    let mut reported: BTreeSet<ObjectKey> = BTreeSet::new();
    for loaded in objects {
        let start = loaded.object.key();
        if !graph.contains_key(&start) || reported.contains(&start) {
            continue;
        }
        if let Some(cycle) = find_cycle(&graph, &start) {
            // Point at the entry of `start` that leads into the cycle.
            let entry = graph[&start].0.iter().position(|needed| *needed == cycle[1]).unwrap_or(0);
            let field = FieldPath::root().key("spec").key("dependsOn").index(entry).key("container");
            let message = if cycle.len() == 2 {
                "depends on itself; remove it from dependsOn".to_string()
            } else {
                let names: Vec<&str> = cycle.iter().map(|k| k.name.as_str()).collect();
                format!("dependency cycle {}; remove one of these dependsOn entries", names.join(" → "))
            };
            errors.push(object_error(loaded, Some(&field), message));
            reported.extend(cycle);
        }
    }
    errors
}

/// A path `start → … → start` through the graph, if there is one.
fn find_cycle(
    graph: &BTreeMap<ObjectKey, (Vec<ObjectKey>, &LoadedObject)>,
    start: &ObjectKey,
) -> Option<Vec<ObjectKey>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut visited = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).map(|(needs, _)| needs.as_slice()).unwrap_or_default() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.clone());
                return Some(cycle);
            }
            if visited.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}
