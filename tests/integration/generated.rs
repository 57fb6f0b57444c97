//! Generated files stay in step with the types: `crds/` (CRDs and editor
//! schemas) and the manifest reference in docs/manifests.md. Regenerate
//! both with `cargo run -- crds --out crds --reference docs/manifests.md`.

use berth::manifest::{crd, reference};
use serde_json::Value;

use crate::support::repo_path;

const REGENERATE: &str = "regenerate with `cargo run -- crds --out crds --reference docs/manifests.md`";

#[test]
fn crds_match_the_types() {
    let mut stale = Vec::new();
    for (name, content) in crd::generated_files() {
        let committed = std::fs::read_to_string(repo_path("crds").join(&name)).unwrap_or_default();
        if committed != content {
            stale.push(name);
        }
    }
    assert!(stale.is_empty(), "crds/ is out of date for {stale:?}; {REGENERATE}");
    let crds = std::fs::read_dir(repo_path("crds")).unwrap().filter(|e| e.as_ref().unwrap().path().is_file()).count();
    assert_eq!(crds, 6, "one CRD per kind");
}

#[test]
fn the_manifest_reference_matches_the_types() {
    let document = std::fs::read_to_string(repo_path("docs/manifests.md")).unwrap();
    let updated = reference::update_document(&document).expect("docs/manifests.md has the generated-reference markers");
    assert!(updated == document, "docs/manifests.md's reference is out of date; {REGENERATE}");
}

/// The README stays a newcomer's page: short, quick start first, and every
/// doc it links exists.
#[test]
fn the_readme_is_short_starts_with_the_quick_start_and_links_docs_that_exist() {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    assert!(readme.lines().count() <= 200, "README.md has {} lines; move references to docs/", readme.lines().count());
    let sections: Vec<&str> = readme.lines().filter(|l| l.starts_with("## ")).collect();
    assert!(sections.iter().position(|s| *s == "## Quick start") <= Some(1), "{sections:?}");
    let mut checked = 0;
    for document in std::iter::once("README.md".to_string()).chain(
        std::fs::read_dir(repo_path("docs"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
            .map(|e| format!("docs/{}", e.file_name().to_string_lossy())),
    ) {
        let text = std::fs::read_to_string(repo_path(&document)).unwrap();
        let base = repo_path(&document).parent().unwrap().to_path_buf();
        for link in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            let target = link.split('#').next().unwrap();
            if target.is_empty() || target.starts_with("http") {
                continue;
            }
            assert!(base.join(target).exists(), "{document} links {link}, which does not exist");
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} links checked");
}

fn editor_validator(kind: &str) -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path(&format!("crds/schemas/{kind}.json"))).unwrap())
            .unwrap();
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

#[test]
fn editor_schemas_accept_every_example_and_reject_unknown_fields() {
    let set = berth::manifest::load_paths(&[repo_path("examples")]).unwrap();
    for file in &set.files {
        let text = std::fs::read_to_string(file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize_from(document);
            let kind = value["kind"].as_str().unwrap().to_ascii_lowercase();
            let validator = editor_validator(&kind);
            let errors: Vec<String> =
                validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path)).collect();
            assert!(errors.is_empty(), "{} fails the {kind} schema: {errors:#?}", file.display());
        }
    }
    let typo = serde_json::json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Container",
        "metadata": {"name": "web"}, "spec": {"image": "busybox", "replica": 2}
    });
    assert!(!editor_validator("container").is_valid(&typo), "unknown fields must be flagged in editors too");
    let wrong_kind = serde_json::json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Volume", "metadata": {"name": "v"}, "spec": {}});
    assert!(!editor_validator("container").is_valid(&wrong_kind));
}

/// Deserializes one YAML document into JSON.
trait FromDocument {
    fn deserialize_from(document: serde_yaml::Deserializer<'_>) -> Value;
}

impl FromDocument for Value {
    fn deserialize_from(document: serde_yaml::Deserializer<'_>) -> Value {
        serde::Deserialize::deserialize(document).expect("examples are YAML")
    }
}

/// Every path in `defaulted` that `raw` lacks: the fields defaulting filled.
fn filled_paths(raw: &Value, defaulted: &Value, path: &str, out: &mut Vec<String>) {
    match (raw, defaulted) {
        (Value::Object(raw), Value::Object(defaulted)) => {
            for (key, value) in defaulted {
                let child = format!("{path}.{key}");
                match raw.get(key) {
                    Some(raw_value) => filled_paths(raw_value, value, &child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(raw), Value::Array(defaulted)) => {
            for (raw_item, item) in raw.iter().zip(defaulted) {
                filled_paths(raw_item, item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// The schema of the field at a path like `spec.ports[].protocol`.
fn schema_at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut node = schema;
    for part in path.trim_start_matches('.').split('.') {
        let (name, arrays) = (part.trim_end_matches("[]"), part.matches("[]").count());
        node = &node["properties"][name];
        for _ in 0..arrays {
            node = &node["items"];
        }
    }
    node
}

#[test]
fn every_default_is_named_in_its_field_description() {
    let maximal = "\
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: full}
spec:
  image: busybox
  ports: [{containerPort: 80}]
  dependsOn: [{container: other}]
  healthCheck: {httpGet: {port: 80}}
---
apiVersion: berth.dev/v1alpha1
kind: Image
metadata: {name: pulled}
spec: {pull: {ref: busybox}}
---
apiVersion: berth.dev/v1alpha1
kind: Route
metadata: {name: full}
spec:
  hostnames: [a.test]
  rules: [{matches: [{value: /}], backends: [{selector: {matchLabels: {a: b}}, port: 80}]}]
  healthCheck: {}
";
    let mut raw_documents: Vec<Value> = Vec::new();
    let mut objects = berth::manifest::load_text(maximal, "<test>", None).unwrap();
    for document in serde_yaml::Deserializer::from_str(maximal) {
        raw_documents.push(Value::deserialize_from(document));
    }
    let examples = berth::manifest::load_paths(&[repo_path("examples")]).unwrap();
    for file in &examples.files {
        let text = std::fs::read_to_string(file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            raw_documents.push(Value::deserialize_from(document));
        }
    }
    objects.extend(examples.objects);
    let mut undocumented = Vec::new();
    let mut checked = 0;
    for (raw, loaded) in raw_documents.iter().zip(&objects) {
        let kind = loaded.object.kind();
        let schema = crd::structural_schema(kind);
        let mut filled = Vec::new();
        filled_paths(&raw["spec"], &loaded.object.to_json()["spec"], ".spec", &mut filled);
        for path in filled {
            checked += 1;
            let description = schema_at(&schema, &path)["description"].as_str().unwrap_or_default();
            if !description.contains("Default") && !description.contains("default") {
                undocumented.push(format!("{kind} {path}: {description:?}"));
            }
        }
    }
    assert!(checked >= 20, "only {checked} defaulted fields seen; the fixtures no longer exercise defaulting");
    assert!(undocumented.is_empty(), "defaults not named in the field docs:\n{}", undocumented.join("\n"));
}
