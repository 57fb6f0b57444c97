//! `timeout`, the query parameter every Kubernetes client may add to any
//! request (client-go sends `?timeout=32s` with discovery and OpenAPI
//! reads, kubectl with `--request-timeout`): a deadline for the answer, as
//! kube-apiserver keeps it. It is read and taken off the query here, so the
//! handlers' strict queries never see it. A streamed answer (a watch, a
//! log) counts as answered once its head is sent.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The longest deadline a request may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The request's `timeout`, and its URI without it.
fn take_timeout(uri: &Uri) -> Result<(Option<Duration>, Option<Uri>), ApiError> {
    let Some(query) = uri.query() else { return Ok((None, None)) };
    let (timeouts, rest): (Vec<&str>, Vec<&str>) =
        query.split('&').partition(|pair| pair.split('=').next() == Some("timeout"));
    let Some(last) = timeouts.last() else { return Ok((None, None)) };
    let value = last.split_once('=').map_or("", |(_, v)| v);
    let timeout = humantime::parse_duration(value).map_err(|e| {
        let shown: String = value.chars().take(40).collect();
        ApiError::bad_request(format!(
            "invalid query parameter `timeout`: `{shown}` is not a duration ({e}); write it as 30s, 1m0s or 500ms"
        ))
    })?;
    let path = uri.path();
    let rewritten = if rest.is_empty() { path.to_string() } else { format!("{path}?{}", rest.join("&")) };
    let uri = rewritten.parse().map_err(|e| ApiError::bad_request(format!("invalid request URI: {e}")))?;
    Ok((Some(timeout.min(MAX_TIMEOUT)), Some(uri)))
}

/// The middleware.
pub async fn deadline(mut request: Request, next: Next) -> Response {
    let (timeout, uri) = match take_timeout(request.uri()) {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    if let Some(uri) = uri {
        *request.uri_mut() = uri;
    }
    let Some(timeout) = timeout else { return next.run(request).await };
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "no answer within the request's timeout of {}; retry with a longer one",
                humantime::format_duration(timeout)
            ),
        )
        .with_reason("Timeout")
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_read_and_taken_off_the_query() {
        let uri: Uri = "/openapi/v3?timeout=32s".parse().unwrap();
        let (timeout, rest) = take_timeout(&uri).unwrap();
        assert_eq!((timeout, rest.unwrap().to_string()), (Some(Duration::from_secs(32)), "/openapi/v3".to_string()));
        let uri: Uri = "/x?limit=5&timeout=1m0s&watch=true".parse().unwrap();
        let (timeout, rest) = take_timeout(&uri).unwrap();
        assert_eq!(
            (timeout, rest.unwrap().to_string()),
            (Some(Duration::from_secs(60)), "/x?limit=5&watch=true".into())
        );
        assert_eq!(take_timeout(&"/x?limit=5".parse().unwrap()).unwrap(), (None, None));
        assert!(take_timeout(&"/x?timeout=soon".parse().unwrap()).unwrap_err().message.contains("30s"));
        let (long, _) = take_timeout(&"/x?timeout=48h".parse().unwrap()).unwrap();
        assert_eq!(long, Some(MAX_TIMEOUT));
    }
}
