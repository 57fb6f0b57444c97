//! The OpenAPI documents Kubernetes clients read: `/openapi/v3` (the index),
//! `/openapi/v3/apis/berth.dev/v1alpha1` and `/openapi/v2`, in
//! kube-apiserver's shape for custom resources.
//!
//! kubectl reads them to decide what it may do: `apply`, `edit` and
//! `create` check that the PATCH operation of a kind takes `fieldValidation`
//! (else they validate on the client, from `/openapi/v2`), `--dry-run=server`
//! that it takes `dryRun`, client-side `apply` that it does not take a
//! strategic merge patch (so it sends a JSON merge patch, which custom
//! resources take), and `explain` reads the schemas, found by their
//! `x-kubernetes-group-version-kind`. The schemas are the CRDs' (one source:
//! the Rust types), with `metadata` as berth's `ObjectMeta`.
//!
//! Both documents are built once per process; the v3 index names the
//! group's document by its hash, as kube-apiserver does, so clients cache
//! it until berth changes.

use std::sync::{Arc, OnceLock};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::api::{Kind, ObjectMeta, GROUP, VERSION};
use crate::manifest::crd::{inline_openapi_schema, structural, structural_schema};

use super::error::{ApiError, ApiResult};
use super::query::StrictQuery;
use super::API_PREFIX;

/// The group-version's key in the v3 index.
const GROUP_VERSION_PATH: &str = "apis/berth.dev/v1alpha1";

/// The schema name of `ObjectMeta`, as in every Kubernetes document.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The schema name of a kind: `dev.berth.v1alpha1.Container`.
fn schema_name(kind: &str) -> String {
    let reversed: Vec<&str> = GROUP.rsplit('.').collect();
    format!("{}.{VERSION}.{kind}", reversed.join("."))
}

fn gvk(kind: &str) -> Value {
    json!({ "group": GROUP, "version": VERSION, "kind": kind })
}

/// `metadata`: berth's ObjectMeta, structural.
fn object_meta_schema() -> Value {
    let mut schema = inline_openapi_schema::<ObjectMeta>();
    structural(&mut schema);
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
        root.insert(
            "description".into(),
            json!("Standard object metadata: name, namespace, labels, annotations, and the fields the server sets."),
        );
    }
    schema
}

/// `ref_prefix` is `#/components/schemas/` (v3) or `#/definitions/` (v2).
fn schemas(ref_prefix: &str) -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    for kind in Kind::ALL {
        let mut schema = structural_schema(kind);
        schema["properties"]["metadata"] = json!({
            "description": "Standard object metadata.",
            "allOf": [{ "$ref": format!("{ref_prefix}{OBJECT_META}") }],
        });
        schema["x-kubernetes-group-version-kind"] = json!([gvk(kind.as_str())]);
        schemas.insert(schema_name(kind.as_str()), schema);
        let list = format!("{}List", kind.as_str());
        schemas.insert(
            schema_name(&list),
            json!({
                "description": format!("A list of {}.", kind.plural()),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": { "type": "string" },
                    "kind": { "type": "string" },
                    "metadata": { "type": "object", "description": "resourceVersion and continue of the list." },
                    "items": { "type": "array", "items": { "$ref": format!("{ref_prefix}{}", schema_name(kind.as_str())) } },
                },
                "x-kubernetes-group-version-kind": [gvk(&list)],
            }),
        );
    }
    schemas
}

/// A query or path parameter, in the v3 form.
fn parameter(name: &str, location: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": location,
        "description": description,
        "required": location == "path",
        "schema": { "type": kind },
    })
}

fn write_parameters(patch: bool) -> Vec<Value> {
    let mut parameters = vec![
        parameter("dryRun", "query", "string", "`All`: check and answer, write nothing."),
        parameter("fieldManager", "query", "string", "The writer's name, recorded in managedFields."),
        parameter(
            "fieldValidation",
            "query",
            "string",
            "`Strict`, `Warn` or `Ignore`; berth always validates strictly.",
        ),
    ];
    if patch {
        parameters.push(parameter(
            "force",
            "query",
            "boolean",
            "Server-side apply: take the fields other managers own; any write: write over the owning source.",
        ));
    }
    parameters
}

fn list_parameters() -> Vec<Value> {
    [
        ("labelSelector", "string", "Only objects whose labels match."),
        ("fieldSelector", "string", "Only objects whose metadata.name or metadata.namespace match."),
        ("limit", "integer", "At most this many objects."),
        ("continue", "string", "The token of the previous page."),
        ("resourceVersion", "string", "With watch: the changes after this version."),
        ("resourceVersionMatch", "string", "`NotOlderThan` or `Exact`."),
        ("watch", "boolean", "Stream changes."),
        ("allowWatchBookmarks", "boolean", "With watch: send BOOKMARK events."),
        ("sendInitialEvents", "boolean", "With watch: the current objects first, then a bookmark."),
        ("timeoutSeconds", "integer", "With watch: end after this many seconds."),
    ]
    .into_iter()
    .map(|(name, kind, description)| parameter(name, "query", kind, description))
    .collect()
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema }, "application/yaml": { "schema": schema } })
}

fn operation(kind: &str, action: &str, id: String, answer: &str, parameters: Vec<Value>) -> Value {
    let reference = json!({ "$ref": format!("#/components/schemas/{}", schema_name(answer)) });
    json!({
        "operationId": id,
        "parameters": parameters,
        "responses": { "200": { "description": "OK", "content": json_content(reference) } },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(kind),
    })
}

/// The paths of one kind, as kube-apiserver publishes a custom resource.
fn kind_paths(kind: Kind, paths: &mut Map<String, Value>) {
    let name = kind.as_str();
    let list = format!("{name}List");
    let object = schema_name(name);
    let body = |types: &[&str]| {
        let schema = json!({ "$ref": format!("#/components/schemas/{object}") });
        let content: Map<String, Value> =
            types.iter().map(|t| (t.to_string(), json!({ "schema": schema.clone() }))).collect();
        json!({ "required": true, "content": content })
    };
    let namespace = parameter("namespace", "path", "string", "The namespace.");
    let object_name = parameter("name", "path", "string", "The object's name.");
    paths.insert(
        format!("{API_PREFIX}/{}", kind.plural()),
        json!({
            "get": operation(name, "list", format!("list{name}ForAllNamespaces"), &list, list_parameters()),
        }),
    );
    let mut create = operation(name, "post", format!("createNamespaced{name}"), name, write_parameters(false));
    create["requestBody"] = body(&["application/json", "application/yaml"]);
    create["responses"]["201"] = create["responses"]["200"].clone();
    paths.insert(
        format!("{API_PREFIX}/namespaces/{{namespace}}/{}", kind.plural()),
        json!({
            "parameters": [namespace.clone()],
            "get": operation(name, "list", format!("listNamespaced{name}"), &list, list_parameters()),
            "post": create,
        }),
    );
    let mut replace = operation(name, "put", format!("replaceNamespaced{name}"), name, write_parameters(false));
    replace["requestBody"] = body(&["application/json", "application/yaml"]);
    let mut patch = operation(name, "patch", format!("patchNamespaced{name}"), name, write_parameters(true));
    patch["requestBody"] = json!({
        "required": true,
        "content": {
            "application/apply-patch+yaml": { "schema": { "type": "object" } },
            "application/json-patch+json": { "schema": { "type": "array", "items": { "type": "object" } } },
            "application/merge-patch+json": { "schema": { "type": "object" } },
        },
    });
    let mut delete_parameters = vec![parameter("dryRun", "query", "string", "`All`: check, delete nothing.")];
    delete_parameters.push(parameter("propagationPolicy", "query", "string", "`Background` or `Foreground`."));
    delete_parameters.push(parameter(
        "gracePeriodSeconds",
        "query",
        "integer",
        "Accepted; replicas get their stop timeout.",
    ));
    let delete = operation(name, "delete", format!("deleteNamespaced{name}"), name, delete_parameters);
    paths.insert(
        format!("{API_PREFIX}/namespaces/{{namespace}}/{}/{{name}}", kind.plural()),
        json!({
            "parameters": [namespace.clone(), object_name.clone()],
            "get": operation(name, "get", format!("readNamespaced{name}"), name, Vec::new()),
            "put": replace,
            "patch": patch,
            "delete": delete,
        }),
    );
    paths.insert(
        format!("{API_PREFIX}/namespaces/{{namespace}}/{}/{{name}}/status", kind.plural()),
        json!({
            "parameters": [namespace, object_name],
            "get": operation(name, "get", format!("readNamespaced{name}Status"), name, Vec::new()),
        }),
    );
}

/// The v3 document of berth.dev/v1alpha1.
fn group_version_document() -> Value {
    let mut paths = Map::new();
    for kind in Kind::ALL {
        kind_paths(kind, &mut paths);
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "berth", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "schemas": schemas("#/components/schemas/"),
            "securitySchemes": { "BearerToken": { "type": "apiKey", "name": "authorization", "in": "header" } },
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// Rewrites a v3 schema into Swagger 2.0's dialect: int-or-string is a
/// string of format `int-or-string`, `nullable` does not exist.
fn to_v2_schema(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.remove("nullable");
            if object.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
                object.remove("anyOf");
                object.insert("type".into(), json!("string"));
                object.insert("format".into(), json!("int-or-string"));
            }
            object.values_mut().for_each(to_v2_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(to_v2_schema),
        _ => {}
    }
}

/// The v2 document: the definitions and the read paths, for clients that
/// still read v2 as JSON (kubectl reads v3).
fn v2_document() -> Value {
    let mut definitions = Value::Object(schemas("#/definitions/"));
    to_v2_schema(&mut definitions);
    let mut paths = Map::new();
    for kind in Kind::ALL {
        let name = kind.as_str();
        let answer = |of: &str| json!({ "200": { "description": "OK", "schema": { "$ref": format!("#/definitions/{}", schema_name(of)) } } });
        let namespace = json!({ "name": "namespace", "in": "path", "required": true, "type": "string" });
        let object_name = json!({ "name": "name", "in": "path", "required": true, "type": "string" });
        paths.insert(
            format!("{API_PREFIX}/namespaces/{{namespace}}/{}", kind.plural()),
            json!({ "get": {
                "operationId": format!("listNamespaced{name}"),
                "parameters": [namespace.clone()],
                "responses": answer(&format!("{name}List")),
                "x-kubernetes-action": "list",
                "x-kubernetes-group-version-kind": gvk(name),
            }}),
        );
        paths.insert(
            format!("{API_PREFIX}/namespaces/{{namespace}}/{}/{{name}}", kind.plural()),
            json!({ "get": {
                "operationId": format!("readNamespaced{name}"),
                "parameters": [namespace, object_name],
                "responses": answer(name),
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk(name),
            }}),
        );
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "berth", "version": env!("CARGO_PKG_VERSION") },
        "produces": ["application/json"],
        "paths": paths,
        "definitions": definitions,
    })
}

/// A document serialized once, with its hash.
struct Document {
    text: Arc<str>,
    hash: String,
}

impl Document {
    fn new(value: Value) -> Document {
        let text = serde_json::to_string(&value).expect("the OpenAPI document serializes");
        let hash = format!("{:X}", Sha256::digest(text.as_bytes()));
        Document { text: text.into(), hash }
    }

    fn response(&self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json"), (header::ETAG, &format!("\"{}\"", self.hash))],
            self.text.to_string(),
        )
            .into_response()
    }
}

fn v3() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(|| Document::new(group_version_document()))
}

fn v2() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(|| Document::new(v2_document()))
}

/// Answers JSON, or 406 to a client that takes only protobuf (kubectl's v2
/// reader, which then goes on without it).
fn accepts_json(headers: &HeaderMap) -> ApiResult<()> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let json = accept.is_empty()
        || accept.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            matches!(t, "application/json" | "application/*" | "*/*")
        });
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("berth serves its OpenAPI documents as JSON only, not `{accept}`; ask for application/json"),
        ))
    }
}

/// Query of `/openapi/v3/...`: the hash the index names.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct HashQuery {
    /// The document's hash, from the index.
    pub hash: Option<String>,
}

/// `GET /openapi/v3`.
pub async fn v3_index(headers: HeaderMap, _: StrictQuery<super::query::NoParams>) -> ApiResult<Response> {
    accepts_json(&headers)?;
    let url = format!("/openapi/v3/{GROUP_VERSION_PATH}?hash={}", v3().hash);
    Ok(axum::Json(json!({ "paths": { GROUP_VERSION_PATH: { "serverRelativeURL": url } } })).into_response())
}

/// `GET /openapi/v3/apis/berth.dev/v1alpha1`.
pub async fn v3_group_version(headers: HeaderMap, StrictQuery(query): StrictQuery<HashQuery>) -> ApiResult<Response> {
    accepts_json(&headers)?;
    let mut response = v3().response();
    let immutable = query.hash.as_deref() == Some(v3().hash.as_str());
    let cache = if immutable { "public, immutable" } else { "no-cache, private" };
    response.headers_mut().insert(header::CACHE_CONTROL, cache.parse().expect("a header value"));
    Ok(response)
}

/// `GET /openapi/v2`.
pub async fn v2_document_handler(headers: HeaderMap, _: StrictQuery<super::query::NoParams>) -> ApiResult<Response> {
    accepts_json(&headers)?;
    Ok(v2().response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_schema_and_a_patch_taking_field_validation_but_no_strategic_merge() {
        let document = group_version_document();
        for kind in Kind::ALL {
            let schema = &document["components"]["schemas"][schema_name(kind.as_str())];
            assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], kind.as_str());
            let path = format!("{API_PREFIX}/namespaces/{{namespace}}/{}/{{name}}", kind.plural());
            let patch = &document["paths"][&path]["patch"];
            assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], kind.as_str());
            let names: Vec<&str> =
                patch["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
            assert!(names.contains(&"fieldValidation") && names.contains(&"dryRun"), "{names:?}");
            assert!(patch["requestBody"]["content"].get("application/strategic-merge-patch+json").is_none());
        }
        assert_eq!(schema_name("Container"), "dev.berth.v1alpha1.Container");
    }

    #[test]
    fn the_v2_document_has_no_v3_only_keywords() {
        let text = serde_json::to_string(&v2_document()).unwrap();
        assert!(!text.contains("\"anyOf\"") && !text.contains("\"nullable\""));
        assert!(text.contains("int-or-string"));
    }
}
