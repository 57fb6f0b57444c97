//! Raw libpod requests over the service's unix socket, for what podman-api
//! 0.11 cannot do.
//!
//! podman-api covers most of the libpod API, but three calls berth needs
//! are out of its reach: a build from an in-memory tar (its
//! `Images::build` tars a directory path itself), a create with
//! `no_new_privileges` (its builder writes the misspelt
//! `no_new_privilages`, which libpod ignores), and events with their
//! `HealthStatus` (its `Event` model drops the field). [`Libpod`] sends
//! those as plain HTTP/1.1 requests with hyper, one connection per request,
//! and hands back the status and body (or the body as a stream).

use std::path::{Path, PathBuf};

use futures::stream::{BoxStream, StreamExt};
use http_body_util::{BodyExt, BodyStream, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};

/// libpod API version the paths are prefixed with (Podman 4.0 and later
/// serve it).
const API_VERSION: &str = "v4.0.0";

/// A failed raw request: the transport, or an answer outside 2xx.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LibpodError {
    /// The socket could not be reached or the connection broke.
    #[error("libpod connection failed")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The service answered with an error status; `message` is libpod's
    /// `message` field (or the raw body).
    #[error("HTTP {status}: {message}")]
    Status {
        /// The status code.
        status: StatusCode,
        /// libpod's words.
        message: String,
    },
}

fn transport(error: impl std::error::Error + Send + Sync + 'static) -> LibpodError {
    LibpodError::Transport(Box::new(error))
}

/// The libpod service at a unix socket.
#[derive(Clone, Debug)]
pub(crate) struct Libpod {
    socket: PathBuf,
}

impl Libpod {
    pub(crate) fn new(socket: &Path) -> Self {
        Libpod { socket: socket.to_path_buf() }
    }

    /// `/v4.0.0/libpod/<path>`.
    fn uri(path_and_query: &str) -> String {
        format!("/{API_VERSION}/libpod/{}", path_and_query.trim_start_matches('/'))
    }

    /// Sends a request and returns the response once its headers are in,
    /// with a task driving the connection until the body is read.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, LibpodError> {
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(transport)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(transport)?;
        // Ends when the response is read and `sender` is dropped; an error
        // there surfaces as an error reading the body.
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(Self::uri(path_and_query))
            .header(hyper::header::HOST, "d")
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(transport)?;
        sender.send_request(request).await.map_err(transport)
    }

    /// Sends a request and reads the whole answer; non-2xx is
    /// [`LibpodError::Status`].
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, LibpodError> {
        let response = self.send(method, path_and_query, content_type, body).await?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(transport)?.to_bytes().to_vec();
        if !status.is_success() {
            return Err(LibpodError::Status { status, message: message_of(&body) });
        }
        Ok(body)
    }

    /// POSTs `value` as JSON and parses the JSON answer.
    pub(crate) async fn post_json(
        &self,
        path_and_query: &str,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, LibpodError> {
        let body = serde_json::to_vec(value).map_err(transport)?;
        let answer = self.call(Method::POST, path_and_query, "application/json", body).await?;
        serde_json::from_slice(&answer).map_err(transport)
    }

    /// GETs a streaming endpoint: the body's chunks as they come.
    pub(crate) async fn stream(
        &self,
        path_and_query: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, LibpodError>>, LibpodError> {
        let response = self.send(Method::GET, path_and_query, "application/json", Vec::new()).await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.into_body().collect().await.map_err(transport)?.to_bytes();
            return Err(LibpodError::Status { status, message: message_of(&body) });
        }
        let frames = BodyStream::new(response.into_body());
        Ok(frames
            .filter_map(|frame| async move {
                match frame {
                    Ok(frame) => frame.into_data().ok().map(Ok),
                    Err(error) => Some(Err(transport(error))),
                }
            })
            .boxed())
    }
}

/// libpod's error body is `{"cause": ..., "message": ..., "response": N}`.
fn message_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

pub(crate) use crate::client::query_escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_and_queries() {
        assert_eq!(message_of(br#"{"cause":"x","message":"no such container","response":404}"#), "no such container");
        assert_eq!(message_of(b"plain words\n"), "plain words");
        assert_eq!(query_escape("a b/{\"k\":1}"), "a%20b%2F%7B%22k%22%3A1%7D");
        assert_eq!(Libpod::uri("/build?t=x"), "/v4.0.0/libpod/build?t=x");
    }
}
