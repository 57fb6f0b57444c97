//! `POST /hooks/git`: push webhooks from GitHub, Gitea or GitLab wake the
//! git sources of the pushed repository (see
//! [`webhook`](crate::source::git::webhook)).
//!
//! The one endpoint that the bearer token does not guard
//! ([`auth`](super::auth)): forges cannot send it. The webhook secret
//! guards it instead, checked before the body is looked at; a refused hook
//! does nothing at all. Accepted hooks answer 202: the poll runs in the
//! background, and its outcome shows in `GET /sources`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::source::git::webhook::{Refusal, DELIVERY_HEADERS};

use super::error::{ApiError, ApiResult};
use super::query::{NoParams, StrictQuery};
use super::AppState;

/// GitHub's (and Gitea's) signature header.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
/// GitLab's token header.
pub const GITLAB_TOKEN: &str = "x-gitlab-token";

/// What an accepted hook did.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct HookAccepted {
    /// The sources polled now (their ids).
    pub triggered: Vec<String>,
    /// The delivery was seen in the last ten minutes (by its delivery id or
    /// its body): nothing was polled (answered 200 instead of 202).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Authenticates a push webhook and polls the sources it is about.
pub async fn git(
    State(state): State<AppState>,
    _: StrictQuery<NoParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let hooks = &state.git_hooks;
    match hooks.authenticate(header(GITHUB_SIGNATURE), header(GITLAB_TOKEN), &body) {
        Ok(()) => {}
        Err(Refusal::NoSecret) => {
            return Err(ApiError::not_found(
                "git webhooks are off: start berth serve with --git-webhook-secret-file FILE",
            ))
        }
        Err(Refusal::Missing) => return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the hook is not signed: set the webhook's secret (GitHub: X-Hub-Signature-256; GitLab: X-Gitlab-Token)",
        )),
        Err(Refusal::Bad) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the hook's signature does not match the secret of --git-webhook-secret-file",
            ))
        }
    }
    let delivery = DELIVERY_HEADERS.iter().find_map(|name| header(name));
    if !hooks.first_delivery(delivery, &body) {
        tracing::info!(delivery = ?delivery.map(String::from_utf8_lossy), "git webhook ignored: a duplicate delivery");
        return Ok((StatusCode::OK, Json(HookAccepted { triggered: Vec::new(), duplicate: true })).into_response());
    }
    let triggered = hooks.trigger(&body);
    tracing::info!(sources = ?triggered, "git webhook accepted");
    Ok((StatusCode::ACCEPTED, Json(HookAccepted { triggered, duplicate: false })).into_response())
}
