//! Every error the API returns is a Kubernetes `meta/v1 Status`
//! (`kind: Status`, `status: Failure`, a `reason` word, the HTTP `code`, and
//! `details.causes` with field paths), so kubectl, client-go and the Python
//! client show berth's message as they show kube-apiserver's. berth adds
//! `requestId` (the id in the server's log) and keeps its own facts in the
//! causes: a manifest problem's document, line and column, the owner of an
//! object, the current resourceVersion of a conflict.
//!
//! Handlers return [`ApiError`]; the request middleware also rewrites
//! axum's own plain-text rejections (bad path, bad query, unknown route,
//! wrong method) into this shape, so a client parses one format whatever
//! went wrong.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error_chain::Chain;
use crate::manifest::ManifestErrors;
use crate::store::StoreError;

tokio::task_local! {
    /// The id of the request being served.
    pub(super) static REQUEST_ID: String;
}

/// The body of every error response: a `meta/v1 Status`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Always `Status`.
    #[serde(default)]
    pub kind: String,
    /// Always `v1`.
    #[serde(default)]
    pub api_version: String,
    /// Always `Failure`.
    #[serde(default)]
    pub status: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The status in one CamelCase word, as Kubernetes names it: `NotFound`,
    /// `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `Expired`, …
    #[serde(default)]
    pub reason: String,
    /// The HTTP status code.
    #[serde(default)]
    pub code: u16,
    /// The object concerned and the causes.
    #[serde(default)]
    pub details: StatusDetails,
    /// The request's id, as in the server's log.
    #[serde(default)]
    pub request_id: String,
}

/// `details` of a Status.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name, when the error is about one object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `berth.dev`, when the error is about one object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The object's kind, lowercase plural as Kubernetes sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Each problem: `reason`, `message`, `field` (a path such as
    /// `spec.ports[0].hostPort`), and berth's own keys: `document`, `line`,
    /// `column`, `object`, `text` for a manifest problem; `object`, `owner`
    /// for an ownership refusal; `currentResourceVersion` for a conflict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Map<String, Value>>")]
    pub causes: Vec<Value>,
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Structured causes (`details.causes`).
    pub details: Vec<Value>,
    /// The object concerned, if one is.
    object: Option<Box<crate::api::ObjectKey>>,
    /// The reason word when the status alone does not say it (409 is
    /// `Conflict` unless it is `AlreadyExists`).
    reason: Option<&'static str>,
    /// Whether answering it is worth a log line at `error` (5xx) or `info`
    /// (4xx); else it goes to `debug`. See [`ApiError::expected`].
    logged: bool,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), details: Vec::new(), object: None, reason: None, logged: true }
    }

    /// The same error, logged at `debug` only: for an answer that reports a
    /// state berth logs itself when it changes (`/readyz` while the engine
    /// is away), which a client polling every second would otherwise repeat
    /// into the log once a second for as long as the state lasts.
    pub fn expected(mut self) -> Self {
        self.logged = false;
        self
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409 `AlreadyExists`, the reason kube-apiserver gives a create of a
    /// name that is taken.
    pub fn already_exists(key: &crate::api::ObjectKey, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
            .about(key)
            .detail(json!({ "object": key.to_string() }))
            .with_reason("AlreadyExists")
    }

    /// 422.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 500: the message is logged, the client gets it with the request id.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {error}"))
    }

    /// Names the object the error is about (`details.name` and `kind`).
    pub fn about(mut self, key: &crate::api::ObjectKey) -> Self {
        self.object = Some(Box::new(key.clone()));
        self
    }

    /// Sets the reason word (`Expired`, `AlreadyExists`, …) where the
    /// status alone does not say it.
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Adds a detail.
    pub fn detail(mut self, detail: Value) -> Self {
        self.details.push(detail);
        self
    }

    /// Whether this is a write refused because the object changed since it
    /// was read (a stale `resourceVersion`).
    pub(super) fn is_stale_version(&self) -> bool {
        self.status == StatusCode::CONFLICT && self.details.iter().any(|d| d.get("currentResourceVersion").is_some())
    }

    /// Whether this is a create refused because the name is taken.
    pub(super) fn is_already_exists(&self) -> bool {
        self.reason == Some("AlreadyExists")
    }

    /// The reason word of a status, as kube-apiserver names it.
    fn reason(status: StatusCode) -> String {
        match status {
            StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
            StatusCode::INTERNAL_SERVER_ERROR => "InternalError",
            StatusCode::GONE => "Expired",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
            StatusCode::INSUFFICIENT_STORAGE => "InsufficientStorage",
            status => return status.canonical_reason().unwrap_or("Unknown").split_whitespace().collect(),
        }
        .to_string()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::Conflict { key, found, .. } => ApiError::new(StatusCode::CONFLICT, format!(
                "{message}; read the object again and retry with its resourceVersion"
            ))
            .about(&key)
            .detail(json!({ "object": key.to_string(), "currentResourceVersion": found })),
            StoreError::AlreadyExists { key } => ApiError::already_exists(&key, message),
            StoreError::OwnedByOther { key, owner } => ApiError::new(
                StatusCode::CONFLICT,
                format!("{key} is owned by {owner}: change it there, or repeat the request with the query parameter `force=true` (the owner takes it back on its next change)"),
            )
            .about(&key)
            .detail(json!({ "object": key.to_string(), "owner": owner })),
            StoreError::NotFound { key } => {
                ApiError::not_found(message).about(&key).detail(json!({ "object": key.to_string() }))
            }
            StoreError::Expired { kept_from, .. } => {
                ApiError::new(StatusCode::GONE, message).detail(json!({ "keptFrom": kept_from }))
            }
            full if full.is_disk_full() => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!("nothing was written: {}; free space on that disk and try again", Chain(&full)),
            ),
            io @ StoreError::Io { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("nothing was written: {}", Chain(&io)),
            ),
            other => ApiError::internal(Chain(&other).to_string()),
        }
    }
}

impl From<ManifestErrors> for ApiError {
    fn from(errors: ManifestErrors) -> Self {
        let count = errors.0.len();
        let first = errors.0.first().map(ToString::to_string).unwrap_or_default();
        let more = if count > 1 { format!(" (and {} more)", count - 1) } else { String::new() };
        let mut error =
            ApiError::invalid(format!("the request has {count} problem(s), nothing was applied: {first}{more}"));
        for e in errors.0 {
            let text = e.to_string();
            error = error.detail(json!({
                "reason": "FieldValueInvalid",
                "document": e.document,
                "line": e.position.line,
                "column": e.position.column,
                "object": e.object.map(|o| o.to_string()),
                "field": e.field,
                "message": e.message,
                "text": text,
            }));
        }
        error
    }
}

impl ApiError {
    /// The `meta/v1 Status` this error is answered as, with `request_id`:
    /// what HTTP answers carry, and what every other transport replies.
    pub fn into_body(self, request_id: String) -> ErrorBody {
        let details = StatusDetails {
            name: self.object.as_ref().map(|k| k.name.clone()),
            group: self.object.as_ref().map(|_| crate::api::GROUP.to_string()),
            kind: self.object.as_ref().map(|k| k.kind.plural().to_string()),
            causes: self.details,
        };
        ErrorBody {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: "Failure".into(),
            message: self.message,
            reason: self.reason.map_or_else(|| Self::reason(self.status), str::to_string),
            code: self.status.as_u16(),
            details,
            request_id,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        if !self.logged {
            tracing::debug!(request_id = %request_id, status = self.status.as_u16(), "{}", self.message);
        } else if self.status.is_server_error() {
            tracing::error!(request_id = %request_id, status = self.status.as_u16(), "{}", self.message);
        } else {
            tracing::info!(request_id = %request_id, status = self.status.as_u16(), "refused: {}", self.message);
        }
        let status = self.status;
        let body = self.into_body(request_id);
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl aide::OperationOutput for ApiError {
    type Inner = ErrorBody;

    fn operation_response(
        ctx: &mut aide::generate::GenContext,
        operation: &mut aide::openapi::Operation,
    ) -> Option<aide::openapi::Response> {
        axum::Json::<ErrorBody>::operation_response(ctx, operation)
    }

    fn inferred_responses(
        ctx: &mut aide::generate::GenContext,
        operation: &mut aide::openapi::Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, aide::openapi::Response)> {
        Self::operation_response(ctx, operation).map(|r| vec![(None, r)]).unwrap_or_default()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_in_words_and_other_io_failures_503() {
        let full = StoreError::Io { path: "/srv/berth/db".into(), source: std::io::Error::from_raw_os_error(28) };
        let error = ApiError::from(full);
        assert_eq!(error.status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(
            error.message,
            "nothing was written: cannot use /srv/berth/db: No space left on device (os error 28); free space on \
             that disk and try again"
        );
        let denied = StoreError::Io { path: "/srv/berth/db".into(), source: std::io::Error::from_raw_os_error(13) };
        assert_eq!(ApiError::from(denied).status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
