//! The manifest reference (docs/manifests.md), generated from the schemas.
//!
//! Each kind gets a table of its fields (path, type, description), walked
//! from the same structural schema the CRDs embed, so the reference cannot
//! describe a field that does not exist or miss one that does. A test
//! compares the committed section with this output.

use serde_json::Value;

use crate::api::Kind;

/// Marks the start of the generated section in docs/manifests.md.
pub const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE (berth crds --out crds --reference docs/manifests.md) -->";
/// Marks its end.
pub const END: &str = "<!-- END GENERATED REFERENCE -->";

/// The reference of every kind, in Markdown.
pub fn markdown() -> String {
    let mut out = String::new();
    for kind in Kind::ALL {
        let schema = super::crd::structural_schema(kind);
        out.push_str(&format!("### {}\n\n", kind.as_str()));
        out.push_str("| Field | Type | Description |\n|---|---|---|\n");
        let spec = &schema["properties"]["spec"];
        walk(spec, "spec", is_required(&schema, "spec"), &mut out);
        out.push('\n');
    }
    out
}

fn is_required(parent: &Value, name: &str) -> bool {
    parent["required"].as_array().is_some_and(|r| r.iter().any(|v| v == name))
}

fn type_name(schema: &Value) -> String {
    if schema.get("x-kubernetes-int-or-string").is_some() {
        return "int or string".into();
    }
    if let Some(values) = schema["enum"].as_array() {
        return values.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" \\| ");
    }
    match schema["type"].as_str() {
        Some("array") => format!("list of {}", type_name(&schema["items"])),
        Some("object") if schema.get("properties").is_none() && schema.get("additionalProperties").is_some() => {
            format!("map of {}", type_name(&schema["additionalProperties"]))
        }
        Some(other) => other.to_string(),
        None => "any".into(),
    }
}

fn walk(schema: &Value, path: &str, required: bool, out: &mut String) {
    let description = schema["description"].as_str().unwrap_or_default().replace('\n', " ").replace('|', "\\|");
    let required_mark = if required { " (required)" } else { "" };
    if path != "spec" {
        out.push_str(&format!("| `{path}` | {}{required_mark} | {description} |\n", type_name(schema)));
    }
    let (object, prefix) = match schema["type"].as_str() {
        Some("array") => (&schema["items"], format!("{path}[]")),
        _ => (schema, path.to_string()),
    };
    if let Some(properties) = object["properties"].as_object() {
        for (name, child) in properties {
            walk(child, &format!("{prefix}.{name}"), is_required(object, name), out);
        }
    }
}

/// `document` with its generated section replaced by the current
/// reference; `None` when the markers are missing.
pub fn update_document(document: &str) -> Option<String> {
    let start = document.find(BEGIN)? + BEGIN.len();
    let end = document[start..].find(END)? + start;
    Some(format!("{}\n\n{}{}", &document[..start], markdown(), &document[end..]))
}
