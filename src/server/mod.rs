//! The REST API, served by `berth serve`: Kubernetes-shaped object
//! endpoints, `/apply` with plans, watches and the event log as
//! Server-Sent Events, container logs, health, and the OpenAPI document
//! generated from the handlers and types ([`aide`] over schemars).
//!
//! Every endpoint but `/healthz` and `/hooks/git` (which the webhook secret
//! guards, [`hooks`]) needs the bearer token ([`auth`]); every
//! error has one JSON shape ([`error`]); every request gets an id that is in
//! the answer and in the log ([`request`]). Handlers never panic on input:
//! paths, queries and bodies are checked before use, bodies are
//! size-limited ([`body`]); should one panic anyway (a bug), the request
//! gets a 500 with its id and the server goes on.

mod actions;
mod apply;
mod archive;
pub mod auth;
mod body;
pub mod channels;
mod core_events;
mod deadline;
mod discovery;
pub mod error;
mod events;
mod exec;
mod files;
mod health;
mod hooks;
mod kube_openapi;
mod list_options;
mod listen;
mod logs;
mod negotiate;
mod objects;
mod patch;
mod query;
mod replica;
pub mod request;
mod sources;
mod table;
pub mod tls;
mod watch;
mod write;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use aide::axum::routing::{get_with, post_with};
use aide::axum::ApiRouter;
use aide::openapi::{Info, OpenApi};
use axum::Extension;

use crate::controller::Context;
use crate::store::Store;

pub use actions::ActionDone;
pub(crate) use apply::apply_objects;
pub use apply::{ApplyQuery, ApplyResponse};
pub use archive::MAX_UPLOAD_BYTES;
pub use auth::Token;
pub use body::MAX_BODY_BYTES;
pub use error::{ApiError, ErrorBody, StatusDetails};
pub use events::{EventEntry, EventList};
pub use exec::{ExecSessions, MAX_SESSIONS as MAX_EXEC_SESSIONS};
pub use files::{FileEntry, FileListing};
pub use hooks::HookAccepted;
pub use listen::{Bound, Listen};
pub use query::DryRun;
pub use sources::{SourceList, SourceStatus, SyncRequested};
pub(crate) use write::mark_deleted;

/// Prefix of the object endpoints.
pub const API_PREFIX: &str = "/apis/berth.dev/v1alpha1";

/// What the handlers share.
pub struct ServerState {
    /// The store.
    pub store: Store,
    /// The controller's metrics.
    pub metrics: crate::metrics::Metrics,
    /// The engine side, once connected.
    pub engine: EngineSlot,
    /// The git sources webhooks can wake, and the webhook secret.
    pub git_hooks: crate::source::git::GitHooks,
    /// The keyring, replay window and plaintext policy of encrypted
    /// payloads, on `/apply` and every ingress transport.
    pub ingress: crate::ingress::Security,
    /// The exec sessions' limit.
    pub exec_sessions: ExecSessions,
    /// The dashboard's logins.
    pub dashboard: crate::dashboard::Sessions,
}

/// Marks a request that came over the TLS listener (the dashboard's cookie
/// is `Secure` there).
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

/// The controller's view of the engine, once it is connected.
#[derive(Clone)]
pub struct Connected {
    /// The store, engine and instance the controller uses.
    pub ctx: Context,
    /// Set once the controller has observed the engine in full.
    pub observed: Arc<AtomicBool>,
}

/// Where the engine side appears once `berth serve` has connected: the API
/// serves the store from the start, so objects can be applied and read
/// while the engine is still coming up (at boot, say); what needs the
/// engine answers 503 until then.
#[derive(Clone, Default)]
pub struct EngineSlot(Arc<OnceLock<Connected>>);

impl EngineSlot {
    /// Fills the slot (once; later calls are ignored).
    pub fn set(&self, connected: Connected) {
        let _ = self.0.set(connected);
    }

    /// The engine side, if connected.
    pub fn get(&self) -> Option<&Connected> {
        self.0.get()
    }

    /// The engine side, or 503.
    fn require(&self) -> Result<&Connected, ApiError> {
        self.get().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the engine is not connected yet; berth serve is waiting for it (see its log)",
            )
        })
    }
}

/// The handlers' state.
pub type AppState = Arc<ServerState>;

/// Prometheus metrics: the controller-runtime and workqueue families, engine
/// call latency by operation, objects by kind. OpenMetrics when the client
/// accepts it (Prometheus asks for it first), else the text format 0.0.4.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    _: query::StrictQuery<query::NoParams>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let openmetrics = accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let refused = parts.clone().any(|p| p.replace(' ', "") == "q=0");
        parts.next() == Some("application/openmetrics-text") && !refused
    });
    let mut text = state.metrics.render();
    if let Some(connected) = state.engine.get() {
        let replicas = crate::metrics::containers::render(&*connected.ctx.engine, &connected.ctx.instance).await;
        text = crate::metrics::containers::spliced(text, &replicas);
    }
    if openmetrics {
        ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
    } else {
        let text = crate::metrics::to_text_format(&text);
        ([(axum::http::header::CONTENT_TYPE, crate::metrics::TEXT_CONTENT_TYPE)], text).into_response()
    }
}

/// The OpenAPI document, serialized once.
#[derive(Clone)]
struct OpenApiDocument(Arc<str>);

async fn openapi(
    Extension(document): Extension<OpenApiDocument>,
    _: query::StrictQuery<query::NoParams>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document.0.to_string()).into_response()
}

/// Gives every operation the answers it has: the success its handler's
/// type cannot tell (a handler answering a streamed or negotiated body),
/// and the `meta/v1 Status` of every error, so generated clients know both.
fn complete_responses(document: &mut serde_json::Value) {
    let status = schemars::generate::SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator()
        .into_root_schema_for::<ErrorBody>()
        .to_value();
    let mut status = status;
    // The Status schema's own definitions join the document's.
    if let Some(definitions) = status.as_object_mut().and_then(|s| s.remove("$defs")) {
        if let Some(definitions) = definitions.as_object() {
            for (name, schema) in definitions {
                document["components"]["schemas"][name] = schema.clone();
            }
        }
    }
    let text = status.to_string().replace("#/$defs/", "#/components/schemas/");
    let mut schema: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    // A default on a field holding a model trips generators; the
    // property's docs say it is optional.
    if let Some(properties) = schema.get_mut("properties").and_then(serde_json::Value::as_object_mut) {
        properties.values_mut().filter_map(serde_json::Value::as_object_mut).for_each(|p| {
            p.remove("default");
        });
    }
    document["components"]["schemas"]["ErrorBody"] = schema;
    let error = serde_json::json!({
        "description": "A meta/v1 Status saying what is wrong and how to fix it",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
    });
    let Some(paths) = document.get_mut("paths").and_then(serde_json::Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        for method in ["get", "put", "post", "patch", "delete"] {
            let Some(operation) = item.get_mut(method).and_then(serde_json::Value::as_object_mut) else { continue };
            let responses = operation.entry("responses").or_insert_with(|| serde_json::json!({}));
            if responses.as_object().is_some_and(|r| !r.keys().any(|code| code.starts_with('2'))) {
                responses["200"] = serde_json::json!({ "description": "OK" });
            }
            responses["default"] = error.clone();
        }
    }
}

/// The whole API as a router: every route, the token check, request ids and
/// JSON errors.
pub fn app(state: impl Into<AppState>, token: Token) -> axum::Router {
    let state: AppState = state.into();
    let dashboard = state.dashboard.clone();
    let object = format!("{API_PREFIX}/namespaces/{{namespace}}/{{plural}}/{{name}}");
    let router: ApiRouter<AppState> = ApiRouter::new()
        .api_route("/healthz", get_with(health::healthz, |op| op.id("healthz").summary("Liveness; needs no token")))
        .api_route(
            "/readyz",
            get_with(health::readyz, |op| op.id("readyz").summary("Readiness: the engine answers and has been observed in full")),
        )
        .api_route(
            "/apply",
            post_with(apply::apply, |op| {
                op.id("apply")
                    .summary("Apply objects as one transaction, or plan them with dryRun=true")
                    .response::<200, axum::Json<ApplyResponse>>()
            }),
        )
        .api_route(
            "/metrics",
            get_with(metrics, |op| op.id("metrics").summary("Prometheus metrics: OpenMetrics if accepted, else text format 0.0.4")),
        )
        .api_route("/events", get_with(events::events, |op| op.id("listEvents").summary("The audit log; follow=true streams it (SSE)")))
        .api_route(
            "/sources",
            get_with(sources::list, |op| op.id("listSources").summary("The sources: files, API sets, git repositories and their commits")),
        )
        .api_route(
            "/sources/sync",
            post_with(sources::sync, |op| op.id("syncSources").summary("Fetch git sources now (source=ID: one of them)")),
        )
        .api_route(
            "/hooks/git",
            post_with(hooks::git, |op| {
                op.id("gitWebhook").summary("Push webhook (GitHub, Gitea, GitLab): polls the pushed repository; needs its signature, not the token")
            }),
        )
        .api_route(
            &format!("{API_PREFIX}/{{plural}}"),
            get_with(objects::list_all, |op| {
                op.id("listAllNamespaces")
                    .summary("List (or watch=true: watch) objects in every namespace")
                    .response::<200, axum::Json<crate::api::ObjectList>>()
            }),
        )
        .api_route(
            &format!("{API_PREFIX}/namespaces/{{namespace}}/{{plural}}"),
            get_with(objects::list_namespaced, |op| {
                op.id("listNamespaced")
                    .summary("List (or watch=true: watch) objects of a namespace")
                    .response::<200, axum::Json<crate::api::ObjectList>>()
            })
                .post_with(write::create, |op| op.id("create").summary("Create one object; 409 AlreadyExists if the name is taken")),
        )
        .api_route(
            &object,
            get_with(objects::get, |op| {
                op.id("read")
                    .summary("Read (or watch=true: watch) one object")
                    .response::<200, axum::Json<crate::api::AnyObject>>()
            })
                .put_with(write::put, |op| {
                    op.id("replace").summary("Create or replace one object; metadata.resourceVersion makes it conditional")
                })
                .patch_with(patch::patch, |op| {
                    op.id("patch").summary("Patch one object: merge patch, JSON patch, or server-side apply (which may create it)")
                })
                .delete_with(write::delete, |op| op.id("delete").summary("Delete one object (its engine objects are torn down)")),
        )
        .api_route(&format!("{object}/status"), get_with(objects::status, |op| op.id("readStatus").summary("Read one object's status")))
        .api_route(
            &format!("{object}/logs"),
            get_with(logs::logs, |op| op.id("readLogs").summary("A Container replica's logs; follow=true streams them")),
        );
    let mut api = OpenApi {
        info: Info {
            title: "berth".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: Some(
                "Declarative controller for a single Docker or Podman host. Every endpoint but /healthz and \
                 /hooks/git (signed with the webhook secret) needs `Authorization: Bearer <token>`."
                    .into(),
            ),
            ..Info::default()
        },
        ..OpenApi::default()
    };
    let router = router.finish_api(&mut api);
    let bearer = aide::openapi::SecurityScheme::Http {
        scheme: "bearer".into(),
        bearer_format: None,
        description: Some("The token in `<state-dir>/token` of the server.".into()),
        extensions: Default::default(),
    };
    let components = api.components.get_or_insert_with(Default::default);
    components.security_schemes.insert("bearer".into(), aide::openapi::ReferenceOr::Item(bearer));
    api.security = vec![[("bearer".to_string(), Vec::new())].into_iter().collect()];
    let mut document = serde_json::to_value(&api).expect("the OpenAPI document serializes");
    complete_responses(&mut document);
    crate::manifest::crd::enums_as_strings(&mut document["components"]["schemas"]);
    let document = OpenApiDocument(document.to_string().into());
    router
        // A WebSocket: not in the OpenAPI document (docs/rest-api.md).
        .route(&format!("{object}/exec"), axum::routing::get(exec::exec))
        .route(&format!("{object}/restart"), axum::routing::post(actions::restart))
        .route(&format!("{object}/suspend"), axum::routing::post(actions::suspend))
        .route(&format!("{object}/resume"), axum::routing::post(actions::resume))
        .route(&format!("{object}/archive"), axum::routing::get(archive::download).put(archive::upload))
        .route(&format!("{object}/files"), axum::routing::get(files::listing))
        .route(&format!("{object}/file"), axum::routing::get(files::download).put(files::upload))
        .route("/openapi.json", axum::routing::get(openapi))
        .route("/version", axum::routing::get(discovery::version))
        .route("/openapi/v2", axum::routing::get(kube_openapi::v2_document_handler))
        .route("/openapi/v3", axum::routing::get(kube_openapi::v3_index))
        .route(
            &format!("/openapi/v3/apis/{}/{}", crate::api::GROUP, crate::api::VERSION),
            axum::routing::get(kube_openapi::v3_group_version),
        )
        .route("/api", axum::routing::get(core_events::versions))
        .route("/api/v1", axum::routing::get(core_events::resources))
        .route("/api/v1/events", axum::routing::get(core_events::list_all))
        .route("/api/v1/namespaces/{namespace}/events", axum::routing::get(core_events::list_namespaced))
        .route("/apis", axum::routing::get(discovery::groups))
        .route(&format!("/apis/{}", crate::api::GROUP), axum::routing::get(discovery::berth_group))
        .route(API_PREFIX, axum::routing::get(discovery::resources))
        .merge(crate::dashboard::routes(dashboard.clone()))
        .fallback(request::fallback)
        .layer(Extension(document))
        .layer(Extension(token.clone()))
        .with_state(state)
        .layer(axum::middleware::from_fn(deadline::deadline))
        .layer(axum::middleware::from_fn_with_state(auth::Auth { token, sessions: dashboard }, auth::require_token))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(request::panicked))
        .layer(axum::middleware::from_fn(request::context))
}
