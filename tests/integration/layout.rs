//! The shape of the source: no two files of one module use each other,
//! directly or around a circle (`cli/get.rs` ↔ `cli/sources.rs` was one).
//! A file's uses of a sibling are its `super::NAME` and
//! `crate::<module path>::NAME` paths; `mod.rs` is the module itself and
//! is left out (it declares and re-exports its children).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo_path;

/// For each directory of `src/`, its files' uses of their siblings.
fn sibling_uses() -> BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> {
    let mut graphs = BTreeMap::new();
    for entry in walkdir::WalkDir::new(repo_path("src")).into_iter().map(Result::unwrap) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") || path.file_name().is_some_and(|n| n == "mod.rs") {
            continue;
        }
        let dir = path.parent().unwrap().to_path_buf();
        let module = module_path(&dir);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let siblings: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs") || p.join("mod.rs").exists())
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|s| s != "mod" && *s != name)
            .collect();
        let text = std::fs::read_to_string(path).unwrap();
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let prefixes = ["super::".to_string(), format!("crate::{module}::")];
        let uses: BTreeSet<String> =
            used_names(&code, &prefixes).into_iter().filter(|n| siblings.contains(n)).collect();
        graphs.entry(dir).or_insert_with(BTreeMap::new).insert(name, uses);
    }
    graphs
}

/// The first names after each of `prefixes` in `code`, groups
/// (`super::{a, b::C}`) included.
fn used_names(code: &str, prefixes: &[String]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in prefixes.iter().filter(|p| p.as_str() != "crate::::") {
        for (at, _) in code.match_indices(prefix.as_str()) {
            let rest = &code[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                names.extend(group.split(',').map(|item| first_segment(item.trim())));
            } else {
                names.insert(first_segment(rest));
            }
        }
    }
    names
}

fn first_segment(path: &str) -> String {
    path.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// `a::b` for `src/a/b`.
fn module_path(dir: &Path) -> String {
    let relative = dir.strip_prefix(repo_path("src")).unwrap();
    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("::")
}

/// A circle in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_files_of_a_module_use_each_other_around_a_circle() {
    let graphs = sibling_uses();
    assert!(graphs.len() > 10, "the walk found {} directories", graphs.len());
    let circles: Vec<String> = graphs
        .iter()
        .filter_map(|(dir, graph)| circle(graph).map(|c| format!("{}: {}", module_path(dir), c.join(" → "))))
        .collect();
    assert!(circles.is_empty(), "files that use each other: {circles:#?}");
}

#[test]
fn the_circle_finder_finds_circles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let line: BTreeMap<String, BTreeSet<String>> =
        [("a".to_string(), BTreeSet::from(["b".to_string()])), ("b".to_string(), BTreeSet::new())].into();
    assert_eq!(circle(&line), None);
}
