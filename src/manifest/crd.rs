//! CustomResourceDefinitions and JSON Schemas generated from the Rust types.
//!
//! The types are the single source of truth: their doc comments become the
//! schema descriptions, their serde attributes the field names. The files in
//! `crds/` are this module's output, committed so that users can
//! `kubectl apply` them or point their editor at the schemas; a test fails
//! when they drift from the types.
//!
//! schemars produces JSON Schema; Kubernetes wants *structural* OpenAPI v3
//! schemas. [`structural`] bridges the two: it collapses documented enums
//! (which schemars writes as `oneOf` of constants) into `enum`, drops
//! `additionalProperties: false` (Kubernetes prunes unknown fields itself),
//! maps unsigned formats to Kubernetes' `int32`/`int64`, and reduces
//! `metadata` to `type: object` as every CRD must.

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::api::{
    ContainerSpec, DnsRecordSpec, ImageSpec, Kind, NetworkSpec, Object, RouteSpec, Spec, VolumeSpec, API_VERSION,
    GROUP, VERSION,
};

/// The JSON Schema of `T` in the OpenAPI dialect, every subschema inline,
/// before the structural rewrite.
pub fn inline_openapi_schema<T: schemars::JsonSchema>() -> Value {
    let settings = SchemaSettings::openapi3().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    settings.into_generator().into_root_schema_for::<T>().to_value()
}

/// The JSON Schema of a kind's objects, in the OpenAPI dialect, before the
/// structural rewrite.
fn openapi_schema(kind: Kind) -> Value {
    fn of<S: Spec>() -> Value {
        inline_openapi_schema::<Object<S>>()
    }
    match kind {
        Kind::Container => of::<ContainerSpec>(),
        Kind::Volume => of::<VolumeSpec>(),
        Kind::Network => of::<NetworkSpec>(),
        Kind::Image => of::<ImageSpec>(),
        Kind::DnsRecord => of::<DnsRecordSpec>(),
        Kind::Route => of::<RouteSpec>(),
    }
}

/// The structural OpenAPI v3 schema of a kind, as a CRD embeds it.
pub fn structural_schema(kind: Kind) -> Value {
    let mut schema = openapi_schema(kind);
    structural(&mut schema);
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
        root.insert("description".into(), json!(format!("{} is a berth.dev/v1alpha1 resource.", kind.as_str())));
        if let Some(properties) = root.get_mut("properties").and_then(Value::as_object_mut) {
            properties.insert("metadata".into(), json!({ "type": "object" }));
            properties.insert(
                "apiVersion".into(),
                json!({ "type": "string", "description": format!("Always `{API_VERSION}`.") }),
            );
            properties.insert(
                "kind".into(),
                json!({ "type": "string", "description": format!("Always `{}`.", kind.as_str()) }),
            );
        }
    }
    schema
}

/// Rewrites a schemars schema into a Kubernetes structural schema, in place.
pub fn structural(schema: &mut Value) {
    rewrite(schema);
    append_variant_notes(schema);
}

/// Key under which enum variant docs wait until the enum is merged into its
/// field, so that they end up after the field's own description.
const VARIANT_NOTES: &str = "x-berth-variant-notes";

/// Calls `visit` on every JSON object of `value`, children before parents
/// (so a parent sees its subschemas already rewritten).
fn walk_objects(value: &mut Value, visit: &mut dyn FnMut(&mut Map<String, Value>)) {
    match value {
        Value::Object(object) => {
            for child in object.values_mut() {
                walk_objects(child, visit);
            }
            visit(object);
        }
        Value::Array(items) => items.iter_mut().for_each(|item| walk_objects(item, visit)),
        _ => {}
    }
}

fn rewrite(schema: &mut Value) {
    walk_objects(schema, &mut rewrite_one);
}

fn rewrite_one(object: &mut Map<String, Value>) {
    collapse_constant_one_of(object);
    unwrap_optional(object);
    unwrap_description(object);
    object.remove("nullable");
    object.remove("$schema");
    if object.contains_key("properties") {
        object.remove("additionalProperties");
    }
    if object.get("default").is_some_and(Value::is_null) {
        object.remove("default");
    }
    if let Some(format) = object.get("format").and_then(Value::as_str) {
        let mapped = match format {
            "uint" | "uint64" => Some("int64"),
            "uint8" | "uint16" | "uint32" | "int8" | "int16" => Some("int32"),
            _ => None,
        };
        if let Some(mapped) = mapped {
            object.insert("format".into(), json!(mapped));
        }
    }
}

/// Doc comments are wrapped at 120 columns; descriptions read better as
/// paragraphs, so single line breaks become spaces.
fn unwrap_description(object: &mut Map<String, Value>) {
    if let Some(Value::String(text)) = object.get_mut("description") {
        *text = text
            .split("\n\n")
            .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
}

/// `anyOf: [T, null]` (how schemars writes `Option<T>` for a complex `T`)
/// becomes `T` itself: an optional field is simply one that may be absent.
fn unwrap_optional(object: &mut Map<String, Value>) {
    let Some(Value::Array(variants)) = object.get_mut("anyOf") else { return };
    let is_null = |v: &Value| v.get("type") == Some(&json!("null")) || v.get("enum") == Some(&json!([null]));
    if !variants.iter().any(is_null) {
        return;
    }
    variants.retain(|v| !is_null(v));
    if variants.len() != 1 {
        return;
    }
    let Some(Value::Object(inner)) = variants.pop() else { return };
    object.remove("anyOf");
    for (key, value) in inner {
        if !(key == "description" && object.contains_key("description")) {
            object.insert(key, value);
        }
    }
}

/// `oneOf: [{const: A, description}, …]` (how schemars writes an enum whose
/// variants are documented) becomes `enum: [A, …]`; the variant docs are
/// kept for the description.
fn collapse_constant_one_of(object: &mut Map<String, Value>) {
    let Some(Value::Array(variants)) = object.get("oneOf") else { return };
    let constant = |v: &Value| {
        v.get("enum")
            .and_then(Value::as_array)
            .filter(|e| e.len() == 1)
            .map(|e| e[0].clone())
            .or_else(|| v.get("const").cloned())
    };
    let Some(values) = variants.iter().map(constant).collect::<Option<Vec<Value>>>() else { return };
    let notes: Vec<String> = variants
        .iter()
        .zip(&values)
        .filter_map(|(v, value)| {
            let doc = v.get("description")?.as_str()?;
            Some(format!("`{}`: {}", value.as_str().unwrap_or_default(), doc.trim_end_matches('.')))
        })
        .collect();
    object.remove("oneOf");
    object.insert("type".into(), json!("string"));
    object.insert("enum".into(), Value::Array(values));
    if !notes.is_empty() {
        object.insert(VARIANT_NOTES.into(), json!(notes.join("; ")));
    }
}

/// Rewrites only the documented enums of `schema` into string enums (as
/// [`structural`] does), for documents that keep the rest of JSON Schema:
/// client generators read `enum` where a `oneOf` of constants trips them.
pub fn enums_as_strings(schema: &mut Value) {
    walk_objects(schema, &mut collapse_constant_one_of);
    append_variant_notes(schema);
}

fn append_variant_notes(schema: &mut Value) {
    walk_objects(schema, &mut append_variant_notes_one);
}

fn append_variant_notes_one(object: &mut Map<String, Value>) {
    if let Some(Value::String(notes)) = object.remove(VARIANT_NOTES) {
        let description = object.get("description").and_then(Value::as_str).unwrap_or_default();
        let joined =
            if description.is_empty() { format!("{notes}.") } else { format!("{description} Values: {notes}.") };
        object.insert("description".into(), json!(joined));
    }
}

/// Extra `kubectl get` columns of a kind, besides READY and AGE.
fn printer_columns(kind: Kind) -> Vec<Value> {
    let column = |name: &str, kind: &str, path: &str| json!({ "name": name, "type": kind, "jsonPath": path });
    let mut columns = vec![column("Ready", "string", ".status.conditions[?(@.type==\"Ready\")].status")];
    columns.extend(match kind {
        Kind::Container => vec![
            column("Replicas", "integer", ".spec.replicas"),
            column("Available", "integer", ".status.readyReplicas"),
            column("Image", "string", ".spec.image"),
        ],
        Kind::Volume => {
            vec![column("Driver", "string", ".spec.driver"), column("Reclaim", "string", ".spec.reclaimPolicy")]
        }
        Kind::Network => vec![column("Driver", "string", ".spec.driver"), column("Subnet", "string", ".spec.subnet")],
        Kind::Image => vec![column("Tag", "string", ".spec.tag"), column("Id", "string", ".status.imageId")],
        Kind::DnsRecord => vec![column("Type", "string", ".spec.type"), column("Name", "string", ".status.fqdn")],
        Kind::Route => vec![column("Hostnames", "string", ".spec.hostnames")],
    });
    columns.push(column("Age", "date", ".metadata.creationTimestamp"));
    columns
}

/// The CustomResourceDefinition of a kind.
pub fn crd(kind: Kind) -> Value {
    let singular = kind.as_str().to_ascii_lowercase();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{}.{GROUP}", kind.plural()) },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.as_str(),
                "listKind": format!("{}List", kind.as_str()),
                "plural": kind.plural(),
                "singular": singular,
                "shortNames": kind.short_names(),
                "categories": ["berth"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "additionalPrinterColumns": printer_columns(kind),
                "schema": { "openAPIV3Schema": structural_schema(kind) },
            }],
        },
    })
}

/// The JSON Schema of a kind for editors (yaml-language-server): the
/// structural schema plus the constants that tell kinds apart and the
/// unknown-field rule berth enforces.
pub fn editor_schema(kind: Kind) -> Value {
    let mut schema = structural_schema(kind);
    forbid_unknown_fields(&mut schema);
    if let Some(root) = schema.as_object_mut() {
        root.insert("$schema".into(), json!("http://json-schema.org/draft-07/schema#"));
        root.insert("title".into(), json!(kind.as_str()));
        if let Some(properties) = root.get_mut("properties").and_then(Value::as_object_mut) {
            properties.insert("apiVersion".into(), json!({ "const": API_VERSION }));
            properties.insert("kind".into(), json!({ "const": kind.as_str() }));
            properties.insert("metadata".into(), metadata_schema());
        }
    }
    schema
}

/// `metadata` as users write it, for editors.
fn metadata_schema() -> Value {
    let mut schema = SchemaSettings::draft07()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator()
        .into_root_schema_for::<crate::api::ObjectMeta>()
        .to_value();
    structural(&mut schema);
    forbid_unknown_fields(&mut schema);
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
    }
    schema
}

/// Marks every object schema with properties as closed, as serde's
/// `deny_unknown_fields` makes it.
fn forbid_unknown_fields(schema: &mut Value) {
    walk_objects(schema, &mut |object| {
        if object.contains_key("properties") {
            object.insert("additionalProperties".into(), json!(false));
        }
    });
}

/// A schema that accepts a document of any berth kind, for editors that
/// map one schema to every manifest. No schema carries an `$id`: the
/// kinds' files are found relative to this one wherever it lies, so
/// validators work offline.
pub fn editor_schema_any() -> Value {
    let refs: Vec<Value> =
        Kind::ALL.iter().map(|k| json!({ "$ref": format!("{}.json", k.as_str().to_ascii_lowercase()) })).collect();
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "berth manifest",
        "description": "Any berth.dev/v1alpha1 object.",
        "anyOf": refs,
    })
}

/// Every generated file: relative path and content. `berth crds` writes
/// them; the drift test compares them with the committed ones.
pub fn generated_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for kind in Kind::ALL {
        let yaml = serde_yaml::to_string(&crd(kind)).expect("CRDs serialize to YAML");
        files.push((format!("{}.{GROUP}.yaml", kind.plural()), yaml));
        let schema = serde_json::to_string_pretty(&editor_schema(kind)).expect("schemas serialize") + "\n";
        files.push((format!("schemas/{}.json", kind.as_str().to_ascii_lowercase()), schema));
    }
    let any = serde_json::to_string_pretty(&editor_schema_any()).expect("schemas serialize") + "\n";
    files.push(("schemas/all.json".to_string(), any));
    files
}

/// Writes every generated file under `dir`; returns the paths written.
pub fn write_all(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for (name, content) in generated_files() {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kubernetes rejects CRD schemas with these; none may survive the rewrite.
    fn assert_structural(value: &Value, path: &str) {
        let Some(object) = value.as_object() else { return };
        for forbidden in ["oneOf", "$ref", "definitions", "$defs", "const"] {
            assert!(!object.contains_key(forbidden), "{forbidden} at {path}");
        }
        if object.contains_key("properties") {
            assert!(!object.contains_key("additionalProperties"), "additionalProperties beside properties at {path}");
        }
        let int_or_string = object.get("x-kubernetes-int-or-string").is_some();
        let is_schema =
            object.contains_key("description") || object.contains_key("properties") || object.contains_key("items");
        if is_schema && !int_or_string && !path.ends_with("anyOf") {
            assert!(object.contains_key("type"), "no type at {path}: {value}");
        }
        for (key, child) in object {
            match child {
                Value::Object(_) if key == "properties" => {
                    for (name, schema) in child.as_object().into_iter().flatten() {
                        assert_structural(schema, &format!("{path}.{name}"));
                    }
                }
                Value::Object(_) => assert_structural(child, &format!("{path}/{key}")),
                Value::Array(items) => items.iter().for_each(|i| assert_structural(i, &format!("{path}/{key}"))),
                _ => {}
            }
        }
    }

    #[test]
    fn every_crd_schema_is_structural() {
        for kind in Kind::ALL {
            assert_structural(&structural_schema(kind), kind.as_str());
        }
    }

    #[test]
    fn enums_become_string_enums_with_their_docs() {
        let schema = structural_schema(Kind::Container);
        let policy = &schema["properties"]["spec"]["properties"]["restartPolicy"];
        assert_eq!(policy["type"], "string");
        assert_eq!(policy["enum"], json!(["Always", "OnFailure", "Never"]));
        assert!(policy["description"].as_str().unwrap().contains("`OnFailure`: Restart it when it exits"));
    }
}
