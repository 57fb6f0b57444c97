//! The bearer token: generated on first start into `<state-dir>/token`
//! (mode 0600, readable by the user running berth and nobody else), required
//! on every endpoint but `/healthz` and `/hooks/git`.
//!
//! Whoever can read the state directory can already change what berth runs,
//! so the token adds no privilege there; it keeps other local users and
//! browsers (a page cannot read the file) from driving the engine.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::start_error::Doing as _;

/// Name of the token file in the state directory.
pub const TOKEN_FILE: &str = "token";

/// The server's token.
#[derive(Clone)]
pub struct Token {
    secret: Arc<str>,
    /// Where it is kept, for error messages.
    path: PathBuf,
}

impl Token {
    /// Reads the token of `state_dir`, creating it (256 random bits) if absent.
    pub fn load_or_create(state_dir: &Path) -> crate::start_error::Result<Token> {
        let path = state_dir.join(TOKEN_FILE);
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).doing(|| "no randomness for the API token")?;
        let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(mut file) => {
                file.write_all(format!("{fresh}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .doing(|| format!("cannot write {}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Whatever its history, the file is for the owner alone.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .doing(|| format!("cannot restrict {} to mode 0600", path.display()))?;
            }
            Err(e) => return Err(e).doing(|| format!("cannot create {}", path.display())),
        }
        let secret = read(&path)?;
        Ok(Token { secret: secret.into(), path })
    }

    /// A token with this secret (tests).
    pub fn from_secret(secret: &str) -> Token {
        Token { secret: secret.into(), path: PathBuf::from("<given>") }
    }

    /// Whether `presented` is the token, compared in constant time.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Reads a token file, as the CLI does.
pub fn read(path: &Path) -> crate::start_error::Result<String> {
    let text = std::fs::read_to_string(path).doing(|| format!("cannot read the API token {}", path.display()))?;
    let token = text.trim().to_string();
    crate::start_error::ensure(!token.is_empty(), || {
        format!("the API token file {} is empty; delete it and restart berth serve", path.display())
    })?;
    Ok(token)
}

/// Paths the token does not guard: liveness, and the git webhook, which
/// forges cannot send a token to and which checks the webhook secret itself
/// before doing anything.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/hooks/git"];

/// Who a request comes from, in the audit log's words (`the API token`).
#[derive(Clone, Debug)]
pub struct Caller(pub Arc<str>);

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the token check needs: the token, and the dashboard's sessions,
/// whose cookie stands for the token.
#[derive(Clone)]
pub struct Auth {
    /// The token.
    pub token: Token,
    /// The dashboard's logins.
    pub sessions: crate::dashboard::Sessions,
}

/// Requires the token on every request but [`OPEN_PATHS`] and the
/// dashboard's pages (which check their session themselves, and send the
/// browser to the login page without one). A dashboard session's cookie
/// counts as the token, for requests from the dashboard's own origin when
/// they change state or open a WebSocket.
pub async fn require_token(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // Paths are routed as they are written; `.` and `..` segments would only
    // blur what the checks below see.
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return ApiError::bad_request("the path has `.` or `..` segments; send it without them").into_response();
    }
    if OPEN_PATHS.contains(&path) || path == "/ui" || path.starts_with("/ui/") {
        return next.run(request).await;
    }
    let token = auth.token;
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    match presented {
        Some(presented) if token.matches(presented.trim()) => {
            request.extensions_mut().insert(Caller("the API token".into()));
            next.run(request).await
        }
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the bearer token is wrong; use the one in the server's state directory (`token`) or BERTH_TOKEN",
        )
        .into_response(),
        None => match auth.sessions.check(request.headers()) {
            Some(_) if crate::dashboard::session::needs_same_origin(request.method(), request.headers())
                && !crate::dashboard::session::same_origin(request.headers()) =>
            {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a dashboard session may change things or open a terminal only from the dashboard's own page (Origin must be this server)",
                )
                .into_response()
            }
            Some(session) => {
                request.extensions_mut().insert(Caller(session.into()));
                next.run(request).await
            }
            None => ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("missing `Authorization: Bearer <token>`; the token is in {} on the server", token.path.display()),
            )
            .into_response(),
        },
    }
}
