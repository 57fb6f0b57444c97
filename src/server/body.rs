//! Manifest request bodies: YAML (one or more documents) or JSON (one
//! object, an array, or a `List` with `items`), size-limited, decoded and
//! validated exactly as `berth validate` does, so a request gets the same
//! messages a file would, with document index, line and column.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use indexmap::IndexMap;
use serde_json::Value;

use crate::manifest::{self, LoadedObject, MAX_FILE_BYTES};

use super::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = MAX_FILE_BYTES;

/// The label errors carry instead of a file name.
const LABEL: &str = "request";

/// Content types of manifests.
const YAML_TYPES: [&str; 4] = ["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"];

/// A manifest body, read and checked for type, size and encoding.
pub struct ManifestBody {
    text: String,
    json: bool,
}

/// The media type of a request, lowercase, without parameters; empty when
/// it names none.
pub(super) fn media_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The whole body: at most [`MAX_BODY_BYTES`] (413 past it).
pub(super) async fn read_bytes(body: axum::body::Body) -> Result<Vec<u8>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over the {MAX_BODY_BYTES}-byte limit; split it into several requests"),
            )
        } else {
            ApiError::bad_request(format!("cannot read the body: {e}"))
        }
    })?;
    Ok(bytes.to_vec())
}

/// The whole body as text: at most [`MAX_BODY_BYTES`] (413 past it), UTF-8.
pub(super) async fn read_text(body: axum::body::Body) -> Result<String, ApiError> {
    utf8(read_bytes(body).await?)
}

fn utf8(bytes: Vec<u8>) -> Result<String, ApiError> {
    String::from_utf8(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

impl<S: Send + Sync> FromRequest<S> for ManifestBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = media_type(request.headers());
        ManifestBody::check_type(&content_type)?;
        let text = read_text(request.into_body()).await?;
        Ok(ManifestBody::new(&content_type, text))
    }
}

impl ManifestBody {
    /// Refuses a media type that is not a manifest's.
    fn check_type(content_type: &str) -> Result<(), ApiError> {
        if !content_type.is_empty() && content_type != "application/json" && !YAML_TYPES.contains(&content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content type `{content_type}` is not a manifest; send `Content-Type: application/yaml` or `application/json`"),
            ));
        }
        Ok(())
    }

    fn new(content_type: &str, text: String) -> ManifestBody {
        // No content type: JSON, as kube-apiserver reads it (a YAML body
        // that is not JSON still reads as YAML: JSON is YAML too).
        let json = content_type == "application/json"
            || (content_type.is_empty() && text.trim_start().starts_with(['{', '[']));
        ManifestBody { text, json }
    }

    /// A body already read, of `content_type`.
    pub(super) fn from_bytes(content_type: &str, bytes: Vec<u8>) -> Result<ManifestBody, ApiError> {
        ManifestBody::check_type(content_type)?;
        Ok(ManifestBody::new(content_type, utf8(bytes)?))
    }
}

/// The body of `POST /apply`: manifests, or a payload only the ingress
/// executor reads (an encrypted envelope, whatever its label says, or a
/// protobuf `berth.ingress.v1.Request`).
pub enum ApplyBody {
    /// YAML or JSON manifests.
    Manifest(ManifestBody),
    /// An encrypted or protobuf payload.
    Payload {
        /// Its media type, lowercase, without parameters.
        content_type: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
}

/// Media types only the ingress executor reads.
const PAYLOAD_TYPES: [&str; 4] = [
    "application/x-protobuf",
    "application/protobuf",
    crate::ingress::ENCRYPTED_CONTENT_TYPE,
    "application/octet-stream",
];

impl<S: Send + Sync> FromRequest<S> for ApplyBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = media_type(request.headers());
        let bytes = read_bytes(request.into_body()).await?;
        if PAYLOAD_TYPES.contains(&content_type.as_str()) || crate::ingress::is_encrypted(&bytes) {
            return Ok(ApplyBody::Payload { content_type, bytes });
        }
        Ok(ApplyBody::Manifest(ManifestBody::from_bytes(&content_type, bytes)?))
    }
}

impl aide::OperationInput for ApplyBody {
    fn operation_input(ctx: &mut aide::generate::GenContext, operation: &mut aide::openapi::Operation) {
        ManifestBody::operation_input(ctx, operation);
        let binary = |description: &str| {
            media(serde_json::json!({ "type": "string", "format": "binary", "description": description }))
        };
        if let Some(aide::openapi::ReferenceOr::Item(body)) = operation.request_body.as_mut() {
            body.content.insert(
                "application/x-protobuf".into(),
                binary("A berth.ingress.v1.Request (proto/berth/ingress/v1/ingress.proto)"),
            );
            body.content.insert(
                crate::ingress::ENCRYPTED_CONTENT_TYPE.into(),
                binary("An encrypted envelope of manifests or a Request (docs/encryption.md)"),
            );
        }
    }
}

/// A request body's media type in the OpenAPI document, with `schema`.
pub(super) fn media(schema: serde_json::Value) -> aide::openapi::MediaType {
    aide::openapi::MediaType {
        schema: Some(aide::openapi::SchemaObject {
            json_schema: schemars::Schema::try_from(schema).expect("a schema object"),
            external_docs: None,
            example: None,
        }),
        ..Default::default()
    }
}

impl aide::OperationInput for ManifestBody {
    fn operation_input(ctx: &mut aide::generate::GenContext, operation: &mut aide::openapi::Operation) {
        let yaml = media(serde_json::json!({ "type": "string", "description": "YAML documents" }));
        let json = media(serde_json::json!({ "type": "object", "additionalProperties": true }));
        let content: IndexMap<String, aide::openapi::MediaType> =
            [("application/yaml".to_string(), yaml), ("application/json".to_string(), json)].into_iter().collect();
        let body = aide::openapi::RequestBody {
            description: Some("Manifests: YAML documents, or JSON (an object, an array, or a List)".into()),
            content,
            required: true,
            extensions: IndexMap::default(),
        };
        aide::operation::set_body(ctx, operation, body);
    }
}

impl ManifestBody {
    /// The objects of the body, validated and defaulted, or every problem.
    pub fn objects(&self) -> Result<Vec<LoadedObject>, ApiError> {
        self.objects_in(None)
    }

    /// The one object of a PUT or POST body, placed in the path's
    /// `namespace` when it names none (as kube-apiserver does).
    pub(super) fn one_object(&self, namespace: &str, verb: &str) -> Result<crate::api::AnyObject, ApiError> {
        let mut objects = self.objects_in(Some(namespace))?;
        if objects.len() != 1 {
            return Err(ApiError::invalid(format!(
                "{verb} takes exactly one object, the body has {}; use POST /apply for several",
                objects.len()
            )));
        }
        Ok(objects.remove(0).object)
    }

    fn objects_in(&self, namespace: Option<&str>) -> Result<Vec<LoadedObject>, ApiError> {
        let load = |text: &str| manifest::load_text_in(text, LABEL, None, namespace);
        if !self.json {
            return Ok(load(&self.text)?);
        }
        let value: Value = serde_json::from_str(&self.text).map_err(|e| {
            ApiError::bad_request(format!("{LABEL}:{}:{}: JSON syntax error: {e}", e.line(), e.column()))
        })?;
        let items = match value {
            Value::Array(items) => items,
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                map.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
            }
            // One object: JSON is YAML, so positions point into the body itself.
            _ => return Ok(load(&self.text)?),
        };
        // Each item becomes its own document; positions count in it, the
        // document index is the item's place in the list.
        let text: Vec<String> =
            items.iter().map(|item| serde_json::to_string_pretty(item).unwrap_or_default()).collect();
        Ok(load(&text.join("\n---\n"))?)
    }
}
