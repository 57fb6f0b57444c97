//! Around every request: an id (the client's `X-Request-Id` when it sends a
//! sane one), a log line with method, path, status and duration, and errors
//! in the API's one JSON shape even when axum itself rejected the request.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::{ApiError, REQUEST_ID};

/// Header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Plain-text error bodies longer than this are cut when rewritten.
const MAX_REWRITTEN_BODY: usize = 4096;

fn request_id(request: &Request) -> String {
    let given = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    match given {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            id.to_string()
        }
        _ => new_request_id(),
    }
}

/// A fresh request id: 16 hex digits, as the logs and replies show them.
pub(crate) fn new_request_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The request middleware.
pub async fn context(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), async move { as_json_error(next.run(request).await).await }.instrument(span.clone()))
        .await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(status, took_ms = started.elapsed().as_secs_f64() * 1e3, "served");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Rewrites an error response in plain text or none (an axum rejection)
/// into an [`ApiError`]. Errors in another form are the answer itself: a
/// protobuf `Reply`, or one sealed for the key holder.
async fn as_json_error(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let bytes = axum::body::to_bytes(response.into_body(), MAX_REWRITTEN_BODY).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = match (status.as_u16(), text.is_empty()) {
        (404, true) => "no such endpoint; the API is under /apis/berth.dev/v1alpha1 (see /openapi.json)".to_string(),
        (405, _) => "method not allowed on this endpoint (see /openapi.json)".to_string(),
        (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text,
    };
    ApiError::new(status, message).into_response()
}

/// An empty 404 for unknown routes, turned into JSON by [`context`].
pub async fn fallback() -> Response {
    (axum::http::StatusCode::NOT_FOUND, Body::empty()).into_response()
}

/// The answer to a request whose handler panicked: a bug, logged with the
/// request id; the server goes on.
pub fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(format!("the handler panicked ({what}); this is a bug in berth, please report it"))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_a_json_500_with_the_request_id() {
        let response = REQUEST_ID.scope("req-1".into(), async { panicked(Box::new("index out of bounds")) }).await;
        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["reason"], "InternalError");
        assert_eq!(body["code"], 500);
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["requestId"], "req-1");
        assert!(body["message"].as_str().unwrap().contains("index out of bounds"), "{body}");
    }
}
