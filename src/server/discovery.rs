//! Kubernetes discovery, so kubectl and client-go find berth's kinds:
//! `/version`, `/apis` (the legacy documents; a client asking
//! for aggregated discovery reads them too, as it does from any server that
//! answers plain `application/json`), `/apis/berth.dev` and
//! `/apis/berth.dev/v1alpha1` with each kind's plural, singular, short
//! names, categories (`berth`, `all`), verbs and status subresource.
//! `/api` (the core group, where berth serves events) is [`super::core_events`].

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::api::{Kind, GROUP, VERSION};

/// The Kubernetes release whose API conventions berth follows.
const KUBERNETES_MINOR: &str = "32";

/// What every kind supports (`create` is POST, `update` PUT).
const VERBS: [&str; 7] = ["create", "delete", "get", "list", "patch", "update", "watch"];

/// `GET /version`.
pub async fn version() -> Response {
    Json(json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0+berth.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
    .into_response()
}

fn group() -> Value {
    let version = json!({ "groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION });
    json!({ "name": GROUP, "versions": [version.clone()], "preferredVersion": version })
}

/// `GET /apis`.
pub async fn groups() -> Response {
    Json(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": [group()] })).into_response()
}

/// `GET /apis/berth.dev`.
pub async fn berth_group() -> Response {
    let mut group = group();
    group["kind"] = "APIGroup".into();
    group["apiVersion"] = "v1".into();
    Json(group).into_response()
}

/// `GET /apis/berth.dev/v1alpha1`.
pub async fn resources() -> Response {
    let mut resources = Vec::new();
    for kind in Kind::ALL {
        resources.push(json!({
            "name": kind.plural(),
            "singularName": kind.as_str().to_ascii_lowercase(),
            "namespaced": true,
            "kind": kind.as_str(),
            "verbs": VERBS,
            "shortNames": kind.short_names(),
            "categories": ["berth", "all"],
        }));
        resources.push(json!({
            "name": format!("{}/status", kind.plural()),
            "singularName": "",
            "namespaced": true,
            "kind": kind.as_str(),
            "verbs": ["get"],
        }));
    }
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": resources,
    }))
    .into_response()
}
