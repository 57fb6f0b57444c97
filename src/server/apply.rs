//! `POST /apply`: one or more objects written as one transaction, or with
//! `dryRun=true` only planned. The answer is the plan either way: per
//! object `create | update | unchanged | delete`, the changed fields, and
//! the engine operations that follow with their reasons.
//!
//! With `source=NAME` the request is the complete set of that named source:
//! objects it declared before and no longer does are deleted (what a CI job
//! applying a directory wants). Without it, apply only adds and changes.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{AnyObject, Source};
use crate::controller::plan::{self, PlanItem};
use crate::source::{apply_set, check_set, pruned, SetOptions};

use crate::ingress::{ApplyOptions, Handler, Ingress, Message, Transport, Verb};

use super::body::ApplyBody;
use super::error::{ApiError, ApiResult};
use super::objects::checked_name;
use super::query::{DryRun, StrictQuery};
use super::{AppState, ServerState};

/// Query of `/apply`.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    /// Plan only: write nothing (`true`, or Kubernetes' `All`).
    #[serde(default)]
    pub dry_run: DryRun,
    /// Write objects that a file or repository owns (it takes them back on
    /// its next change).
    #[serde(default)]
    pub force: bool,
    /// The request is the complete set of this named source: what it
    /// declared before and no longer does is deleted.
    pub source: Option<String>,
}

/// The answer of `/apply`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    /// True when nothing was written.
    pub dry_run: bool,
    /// The store's resourceVersion after the apply (before it, for a dry run).
    pub resource_version: u64,
    /// The plan, one item per object.
    pub items: Vec<PlanItem>,
}

/// Applies (or plans) the objects of the body. An encrypted or protobuf
/// body goes through the ingress executor, which answers in its form.
pub async fn apply(
    State(state): State<AppState>,
    StrictQuery(query): StrictQuery<ApplyQuery>,
    body: ApplyBody,
) -> ApiResult<Response> {
    let body = match body {
        ApplyBody::Manifest(_) if state.ingress.requires_encryption(Transport::Rest) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "plaintext is refused on POST /apply (berth serve --require-encryption rest); encrypt the \
                 manifests with `berth encrypt --keyring FILE -f MANIFEST` and post its output",
            ))
        }
        ApplyBody::Manifest(body) => body,
        ApplyBody::Payload { content_type, bytes } => {
            return Ok(through_ingress(state, query, content_type, bytes).await)
        }
    };
    let objects: Vec<AnyObject> = body.objects()?.into_iter().map(|loaded| loaded.object).collect();
    Ok(Json(apply_objects(&state, objects, &query).await?).into_response())
}

async fn through_ingress(state: AppState, query: ApplyQuery, content_type: String, bytes: Vec<u8>) -> Response {
    let message = Message {
        transport: Transport::Rest,
        channel: "rest:/apply".to_string(),
        verb: Some(Verb::Apply),
        options: ApplyOptions { dry_run: query.dry_run.0, force: query.force, source: query.source },
        content_type: Some(content_type),
        payload: bytes,
        sender: "the API token's holder".to_string(),
        id: None,
    };
    let answer = Ingress::new(state).handle(message).await;
    let status = StatusCode::from_u16(answer.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, answer.content_type)], answer.payload).into_response()
}

/// Applies (or, with `dryRun`, plans) `objects` as the API's: the one
/// apply path of the REST API and of every ingress transport.
pub(crate) async fn apply_objects(
    state: &ServerState,
    objects: Vec<AnyObject>,
    query: &ApplyQuery,
) -> ApiResult<ApplyResponse> {
    let source = match &query.source {
        Some(name) => {
            checked_name("source", name)?;
            Source::api_set(name)
        }
        None if objects.is_empty() => {
            return Err(ApiError::invalid("the request declares no objects; send at least one document"))
        }
        None => Source::api(),
    };
    let store = &state.store;
    let named = query.source.is_some();
    let deleted = if named { pruned(store, &source, &objects)? } else { Vec::new() };
    let options =
        SetOptions { prune: named, force: query.force, preconditions: true, record: named, create_only: false };
    if query.dry_run.0 {
        // A dry run fails exactly where the apply would.
        check_set(store, &source, objects.clone(), options)?;
    }
    let resource_version = store.resource_version();
    let connected = state.engine.get().map(|c| &c.ctx);
    let plan = plan::plan(store, connected, &objects, &deleted).await.map_err(ApiError::internal)?;
    if query.dry_run.0 {
        return Ok(ApplyResponse { dry_run: true, resource_version, items: plan.items });
    }
    let applied = apply_set(store, &source, objects, options)?;
    Ok(ApplyResponse { dry_run: false, resource_version: applied.resource_version, items: plan.items })
}
