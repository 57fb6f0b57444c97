//! The client side of the REST API, used by the CLI's client commands (and
//! the benchmarks): HTTP/1.1 over TCP or a unix socket, bearer token, and
//! the server's error body turned into an error that prints the server's
//! message rather than a stack of wrappers.

mod sse;

use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http_body_util::{BodyExt, BodyStream, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use crate::server::ErrorBody;

pub use sse::{sse_events, SseEvent};

/// A WebSocket to the server (`berth exec`).
pub type WebSocket = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Where the server is.
#[derive(Clone, Debug)]
enum Target {
    /// `host:port` over TCP.
    Tcp(String),
    /// A unix socket.
    Unix(PathBuf),
}

/// A client of one server.
#[derive(Clone, Debug)]
pub struct Client {
    target: Target,
    token: Option<String>,
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{}", render_api_error(.body))]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The error body.
        body: Box<ErrorBody>,
    },
    /// The server could not be reached or answered nonsense.
    #[error("{0}")]
    Transport(String),
}

/// The server's error in the CLI's terms: the server speaks of query
/// parameters, the user typed flags.
fn render_api_error(body: &ErrorBody) -> String {
    let owned = body.details.causes.iter().find_map(|d| Some((d.get("object")?.as_str()?, d.get("owner")?.as_str()?)));
    if let Some((object, owner)) = owned {
        return format!(
            "{object} is owned by {owner}: change it there, or rerun with --force (the owner takes it back on its next change)"
        );
    }
    let mut text = body.message.clone();
    // Manifest problems: one line each, as `berth validate` prints them.
    let lines: Vec<&str> = body.details.causes.iter().filter_map(|d| d.get("text").and_then(|t| t.as_str())).collect();
    if lines.len() > 1 {
        text = format!("{}:", text.split(':').next().unwrap_or(&text));
        for line in lines {
            text.push_str("\n  ");
            text.push_str(line);
        }
    }
    text
}

impl ClientError {
    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport(_) => None,
        }
    }
}

/// A request body.
pub struct Body {
    /// Its content type.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: Bytes,
}

impl Client {
    /// A client of `server` (`http://host:port` or `unix:/path`).
    pub fn new(server: &str, token: Option<String>) -> Result<Client, ClientError> {
        let target = if let Some(path) = server.strip_prefix("unix:") {
            Target::Unix(path.into())
        } else {
            let rest = server.strip_prefix("http://").ok_or_else(|| {
                ClientError::Transport(format!("server `{server}` is neither http://HOST:PORT nor unix:/PATH (https is not served; use a unix socket or a tunnel)"))
            })?;
            Target::Tcp(rest.trim_end_matches('/').to_string())
        };
        Ok(Client { target, token })
    }

    fn server(&self) -> String {
        match &self.target {
            Target::Tcp(address) => format!("http://{address}"),
            Target::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    /// Sends one request on a fresh connection; the response body streams.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let request = self.request(method, path)?;
        let request = match body {
            Some(body) => request.header(hyper::header::CONTENT_TYPE, body.content_type).body(Full::new(body.bytes)),
            None => request.body(Full::new(Bytes::new())),
        }
        .map_err(|e| ClientError::Transport(format!("bad request: {e}")))?;
        let response = self.round_trip(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(Self::error_of(response).await)
    }

    /// Opens a WebSocket on `path` speaking `protocol`.
    pub async fn websocket(&self, path: &str, protocol: &str) -> Result<WebSocket, ClientError> {
        use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
        let key = generate_key();
        let request = self
            .request(Method::GET, path)?
            .header(hyper::header::CONNECTION, "Upgrade")
            .header(hyper::header::UPGRADE, "websocket")
            .header(hyper::header::SEC_WEBSOCKET_VERSION, "13")
            .header(hyper::header::SEC_WEBSOCKET_KEY, &key)
            .header(hyper::header::SEC_WEBSOCKET_PROTOCOL, protocol)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Transport(format!("bad request: {e}")))?;
        let response = self.round_trip(request).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(Self::error_of(response).await);
        }
        let header = |name| response.headers().get(name).and_then(|v: &hyper::header::HeaderValue| v.to_str().ok());
        if header(hyper::header::SEC_WEBSOCKET_ACCEPT) != Some(derive_accept_key(key.as_bytes()).as_str())
            || header(hyper::header::SEC_WEBSOCKET_PROTOCOL) != Some(protocol)
        {
            return Err(ClientError::Transport(format!(
                "{} did not accept a {protocol} WebSocket; is it a berth of the same version?",
                self.server()
            )));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| ClientError::Transport(format!("the WebSocket upgrade failed: {e}")))?;
        let role = tokio_tungstenite::tungstenite::protocol::Role::Client;
        Ok(tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), role, None).await)
    }

    /// A request to `path` with the host and the token.
    fn request(&self, method: Method, path: &str) -> Result<hyper::http::request::Builder, ClientError> {
        let host = match &self.target {
            Target::Tcp(address) => address.clone(),
            Target::Unix(_) => "localhost".into(),
        };
        let mut request = Request::builder().method(method).uri(path).header(hyper::header::HOST, host);
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        Ok(request)
    }

    /// Sends `request` on a fresh connection.
    async fn round_trip(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let unreachable = |e: std::io::Error| {
            ClientError::Transport(format!(
                "cannot reach berth at {}: {e}; is `berth serve` running? (--server / BERTH_SERVER)",
                self.server()
            ))
        };
        let mut sender = match &self.target {
            Target::Tcp(address) => {
                let stream = tokio::net::TcpStream::connect(address).await.map_err(unreachable)?;
                stream.set_nodelay(true).ok();
                handshake(TokioIo::new(stream)).await?
            }
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(unreachable)?;
                handshake(TokioIo::new(stream)).await?
            }
        };
        sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Transport(format!("request to {} failed: {e}", self.server())))
    }

    /// The server's error answer, as an error.
    async fn error_of(response: hyper::Response<hyper::body::Incoming>) -> ClientError {
        let status = response.status();
        let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: "Failure".into(),
            message: format!("{status}: {}", String::from_utf8_lossy(&bytes).trim()),
            reason: String::new(),
            code: status.as_u16(),
            details: Default::default(),
            request_id: String::new(),
        });
        ClientError::Api { status, body: Box::new(body) }
    }

    /// Sends a request and decodes the JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, body).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport(format!("reading the answer failed: {e}")))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Transport(format!(
                "the server's answer does not decode ({e}); is it a berth of the same version?"
            ))
        })
    }

    /// Sends a request and streams the answer's bytes.
    pub async fn stream(&self, path: &str) -> Result<BoxStream<'static, Result<Bytes, ClientError>>, ClientError> {
        let response = self.send(Method::GET, path, None).await?;
        let frames = BodyStream::new(response.into_body()).filter_map(|frame| async move {
            match frame {
                Ok(frame) => frame.into_data().ok().map(Ok),
                Err(e) => Some(Err(ClientError::Transport(format!("the stream broke: {e}")))),
            }
        });
        Ok(frames.boxed())
    }
}

/// Percent-encodes a query parameter value (everything but RFC 3986
/// unreserved characters): for this client, and for the raw libpod requests.
pub fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn handshake<I>(io: I) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| ClientError::Transport(format!("HTTP handshake failed: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
}
