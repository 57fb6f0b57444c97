//! The web dashboard, served by `berth serve` at `/ui/` on the API's
//! listeners: the objects live, one object's conditions, replicas, spec and
//! events, the audit log, and a terminal in any replica.
//!
//! Pages are HTML rendered here ([`pages`]) with a small ES module each
//! (`ui/assets`, embedded by [`assets`]); they read the REST API itself
//! (watches as Server-Sent Events, the exec WebSocket) with the session
//! cookie of [`session`] instead of the token, and one stream of their own,
//! [`stream`], that merges every kind into table rows so the overview holds
//! one connection rather than six (browsers allow six per host). Nothing
//! polls: every page follows the store's changes.
//!
//! Everything under `/ui/` but the login page and the assets needs a
//! session; without one a page redirects to the login.

pub mod assets;
mod host;
mod host_pages;
mod pages;
pub mod session;
mod stats;
mod stream;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use crate::api::{Kind, ObjectKey};
use crate::server::{AppState, OverTls, Token};

pub use session::Sessions;
pub use stats::MAX_STREAMS as MAX_STATS_STREAMS;

/// The dashboard's routes: the login page and the assets for anyone, every
/// other page behind [`require_session`].
pub(crate) fn routes(sessions: Sessions) -> Router<AppState> {
    let pages = Router::new()
        .route("/ui/", get(overview))
        .route("/ui/events", get(events))
        .route("/ui/stream", get(stream::rows))
        .route("/ui/objects/{namespace}/{plural}/{name}", get(object))
        .route("/ui/terminal/{namespace}/{name}", get(terminal))
        .route("/ui/logs/{namespace}/{name}", get(logs))
        .route("/ui/files/{namespace}/{name}", get(files))
        .route("/ui/stats/{namespace}/{name}", get(stats::follow))
        .route("/ui/apply", get(host::apply))
        .route("/ui/sources", get(host::sources))
        .route("/ui/sources/stream", get(host::sources_stream))
        .route("/ui/network", get(host::network))
        .route_layer(axum::middleware::from_fn_with_state(sessions, require_session));
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/{*path}", get(assets::asset))
        .merge(pages)
}

/// Sends a request without a live session to the login page: one check
/// for every page and stream, before its handler runs.
async fn require_session(
    State(sessions): State<Sessions>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if sessions.check(request.headers()).is_none() {
        return Redirect::to("/ui/login").into_response();
    }
    next.run(request).await
}

fn html(status: StatusCode, page: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        // Scripts, styles and connections from this origin only; no framing.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (status, headers, page).into_response()
}

async fn overview() -> Response {
    html(StatusCode::OK, pages::overview())
}

async fn login_page(tls: Option<Extension<OverTls>>) -> Response {
    html(StatusCode::OK, pages::login(None, tls.is_some()))
}

/// The login form.
#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    Extension(token): Extension<Token>,
    tls: Option<Extension<OverTls>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let over_tls = tls.is_some();
    // A login from another site's form would log the browser into
    // whatever token that site chose.
    if !session::same_origin(&headers) {
        return html(
            StatusCode::FORBIDDEN,
            pages::login(Some("this login did not come from berth's own page"), over_tls),
        );
    }
    if !token.matches(form.token.trim()) {
        tracing::info!("dashboard login refused: wrong token");
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That is not the API token. Copy the whole token file."), over_tls),
        );
    }
    let id = state.dashboard.open();
    tracing::info!("dashboard login: session {}", &id[..8]);
    let cookie = session::set_cookie(&id, over_tls);
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, "/ui/".to_string())]).into_response()
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !session::same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "a logout must come from berth's own page").into_response();
    }
    state.dashboard.close(&headers);
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, session::clear_cookie()), (header::LOCATION, "/ui/login".to_string())],
    )
        .into_response()
}

async fn events(State(state): State<AppState>) -> Response {
    // The latest 200 entries, then what follows.
    let newest = *state.store.watch_events().borrow();
    html(StatusCode::OK, pages::events(newest.saturating_sub(200)))
}

/// `/ui/objects/{namespace}/{plural}/{name}`.
#[derive(Deserialize)]
struct ObjectPath {
    namespace: String,
    plural: String,
    name: String,
}

async fn object(State(state): State<AppState>, Path(path): Path<ObjectPath>) -> Response {
    let not_found = |what: String| {
        html(
            StatusCode::NOT_FOUND,
            pages::layout("Not found", true, &format!("<h1>Not found</h1><p>{}</p>", pages::escape(&what)), None),
        )
    };
    let Some(kind) = Kind::ALL.into_iter().find(|k| k.plural() == path.plural) else {
        return not_found(format!("no kind is called {}", path.plural));
    };
    let key = ObjectKey::new(kind, &path.namespace, &path.name);
    match state.store.get(&key) {
        Ok(Some(object)) => {
            let spec = serde_yaml::to_string(&object.spec_json()).unwrap_or_default();
            // A repository's objects say which commit they were read from.
            let source = object.metadata().source.as_ref().map_or("-".into(), |s| match &s.commit {
                Some(commit) => format!("{} at commit {}", s.id(), &commit[..commit.len().min(12)]),
                None => s.id(),
            });
            html(StatusCode::OK, pages::object(&key, &source, &spec))
        }
        Ok(None) => not_found(format!("{key} is not in the store")),
        Err(error) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::layout("Error", true, &pages::escape(&error.to_string()), None),
        ),
    }
}

/// `?replica=N&command=sh`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalQuery {
    #[serde(default)]
    replica: u32,
    command: Option<String>,
}

async fn terminal(Path((namespace, name)): Path<(String, String)>, Query(query): Query<TerminalQuery>) -> Response {
    let command = query.command.filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "sh".into());
    html(StatusCode::OK, pages::terminal(&namespace, &name, query.replica, &command))
}

/// `?replica=N`: one replica; without it, every replica the status lists.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    replica: Option<u32>,
}

/// Replicas followed at once on the logs page: each holds one of the six
/// connections a browser opens to a host.
const MAX_FOLLOWED: usize = 4;

async fn logs(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let key = ObjectKey::new(Kind::Container, &namespace, &name);
    let replicas: Vec<u32> = match (query.replica, state.store.get(&key)) {
        (Some(replica), _) => vec![replica],
        (None, Ok(Some(crate::api::AnyObject::Container(container)))) => {
            let mut indexes: Vec<u32> =
                container.status.map(|s| s.replicas.iter().map(|r| r.index).collect()).unwrap_or_default();
            indexes.sort_unstable();
            indexes.dedup();
            indexes.truncate(MAX_FOLLOWED);
            if indexes.is_empty() {
                vec![0]
            } else {
                indexes
            }
        }
        _ => vec![0],
    };
    html(StatusCode::OK, pages::logs(&namespace, &name, &replicas))
}

/// `?replica=N&path=/DIR`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesQuery {
    #[serde(default)]
    replica: u32,
    path: Option<String>,
}

async fn files(Path((namespace, name)): Path<(String, String)>, Query(query): Query<FilesQuery>) -> Response {
    let path = query.path.filter(|p| p.starts_with('/')).unwrap_or_else(|| "/".into());
    html(StatusCode::OK, pages::files(&namespace, &name, query.replica, &path))
}
