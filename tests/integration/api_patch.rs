//! Creating and patching through the Kubernetes verbs, on the router with
//! the fake engine: POST to a collection (409 AlreadyExists), merge and
//! JSON patches, server-side apply with field managers and their
//! conflicts, dry runs that write nothing, and patches that would leave an
//! invalid object refused with the field named.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::api::{container, Api, PREFIX, TOKEN};

const WEB: &str = "/apis/berth.dev/v1alpha1/namespaces/default/containers/web";

async fn patch(api: &Api, uri: &str, content_type: &str, body: &str) -> crate::support::api::Reply {
    api.call("PATCH", uri, Some(TOKEN), Some((content_type, body.as_bytes().to_vec()))).await
}

fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| (e["manager"].as_str().unwrap().to_string(), e["operation"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn post_creates_once_and_fills_the_namespace_from_the_path() {
    let api = Api::start().await;
    let collection = format!("{PREFIX}/namespaces/test/containers");
    let created = api.send_yaml("POST", &format!("{collection}?fieldManager=ci"), &container("web", "1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let object = created.json();
    assert_eq!(object["metadata"]["namespace"], "test");
    assert_eq!(managers(&object), [("ci".to_string(), "Update".to_string())]);
    let again = api.send_yaml("POST", &collection, &container("web", "2")).await;
    assert!(again.error(StatusCode::CONFLICT).contains("already exists"), "{}", again.text());
    assert_eq!(again.json()["reason"], "AlreadyExists");
    assert_eq!(again.json()["details"]["name"], "web");
    let elsewhere = container("web", "1").replace("  name: web", "  name: web\n  namespace: prod");
    let reply = api.send_yaml("POST", &collection, &elsewhere).await;
    assert!(reply.error(StatusCode::UNPROCESSABLE_ENTITY).contains("namespace test"));
    let dry = api.send_yaml("POST", &format!("{collection}?dryRun=All"), &container("api", "1")).await;
    assert_eq!(dry.status, StatusCode::CREATED);
    api.get(&format!("{collection}/api")).await.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn merge_and_json_patches_change_what_they_name() {
    let api = Api::start().await;
    api.send_yaml("PUT", WEB, &container("web", "1")).await;
    let merged = patch(
        &api,
        WEB,
        "application/merge-patch+json",
        r#"{"spec":{"replicas":3},"metadata":{"labels":{"tier":"front"}}}"#,
    )
    .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.text());
    let object = merged.json();
    assert_eq!(object["spec"]["replicas"], 3);
    assert_eq!(object["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
    assert_eq!(object["spec"]["env"][0]["value"], "1", "a merge patch keeps what it does not name");
    let ops = r#"[{"op":"test","path":"/spec/replicas","value":3},{"op":"replace","path":"/spec/env/0/value","value":"2"},{"op":"remove","path":"/metadata/labels/tier"}]"#;
    let patched = patch(&api, &format!("{WEB}?fieldManager=ops"), "application/json-patch+json", ops).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    let object = patched.json();
    assert_eq!(object["spec"]["env"][0]["value"], "2");
    assert_eq!(object["metadata"]["labels"], json!({"app": "web"}));
    assert!(managers(&object).contains(&("ops".to_string(), "Update".to_string())));
    // A failed test operation changes nothing.
    let failed =
        patch(&api, WEB, "application/json-patch+json", r#"[{"op":"test","path":"/spec/replicas","value":9}]"#).await;
    assert!(failed.error(StatusCode::UNPROCESSABLE_ENTITY).contains("does not apply"), "{}", failed.text());
    // A patch leaving an invalid object is refused with the field named.
    let invalid = patch(&api, WEB, "application/merge-patch+json", r#"{"spec":{"replicas":-1}}"#).await;
    let message = invalid.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(message.contains("replicas"), "{message}");
    let unknown = patch(&api, WEB, "application/merge-patch+json", r#"{"spec":{"replica":2}}"#).await;
    assert!(unknown.error(StatusCode::UNPROCESSABLE_ENTITY).contains("replica"), "{}", unknown.text());
    // A patch cannot rename; a stale resourceVersion conflicts.
    let rename = patch(&api, WEB, "application/merge-patch+json", r#"{"metadata":{"name":"other"}}"#).await;
    rename.error(StatusCode::UNPROCESSABLE_ENTITY);
    let stale = patch(
        &api,
        WEB,
        "application/merge-patch+json",
        r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":1}}"#,
    )
    .await;
    stale.error(StatusCode::CONFLICT);
    let strategic = patch(&api, WEB, "application/strategic-merge-patch+json", "{}").await;
    assert!(strategic.error(StatusCode::UNSUPPORTED_MEDIA_TYPE).contains("--type merge"));
    let missing = patch(&api, &WEB.replace("/web", "/nope"), "application/merge-patch+json", "{}").await;
    missing.error(StatusCode::NOT_FOUND);
    let dry =
        patch(&api, &format!("{WEB}?dryRun=All"), "application/merge-patch+json", r#"{"spec":{"replicas":5}}"#).await;
    assert_eq!(dry.json()["spec"]["replicas"], 5);
    assert_eq!(api.get(WEB).await.json()["spec"]["replicas"], 3, "a dry-run patch wrote");
}

#[tokio::test]
async fn server_side_apply_tracks_managers_and_reports_conflicts() {
    let api = Api::start().await;
    let applied = |replicas: u32| {
        format!("apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  replicas: {replicas}\n")
    };
    let apply = "application/apply-patch+yaml";
    let needs_manager = patch(&api, WEB, apply, &applied(1)).await;
    assert!(needs_manager.error(StatusCode::BAD_REQUEST).contains("fieldManager"));
    let created = patch(&api, &format!("{WEB}?fieldManager=ci"), apply, &applied(2)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(managers(&created.json()), [("ci".to_string(), "Apply".to_string())]);
    // Another manager setting replicas elsewhere conflicts, naming the owner.
    let other = patch(&api, &format!("{WEB}?fieldManager=ops"), apply, &applied(4)).await;
    let message = other.error(StatusCode::CONFLICT);
    assert_eq!(message, "Apply failed with 1 conflict: conflict with \"ci\": .spec.replicas");
    let cause = &other.json()["details"]["causes"][0];
    assert_eq!(
        (cause["reason"].as_str(), cause["field"].as_str()),
        (Some("FieldManagerConflict"), Some(".spec.replicas"))
    );
    assert_eq!(api.get(WEB).await.json()["spec"]["replicas"], 2, "a conflicted apply wrote");
    // The same value is shared; force takes the field.
    let shared = patch(&api, &format!("{WEB}?fieldManager=ops"), apply, &applied(2)).await;
    assert_eq!(shared.status, StatusCode::OK, "{}", shared.text());
    let forced = patch(&api, &format!("{WEB}?fieldManager=ops&force=true"), apply, &applied(4)).await;
    assert_eq!(forced.json()["spec"]["replicas"], 4);
    // An edit (a merge patch) takes the field from the appliers.
    let edit = patch(
        &api,
        &format!("{WEB}?fieldManager=kubectl-edit"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":1}}"#,
    )
    .await;
    let owners = managers(&edit.json());
    assert!(owners.contains(&("kubectl-edit".to_string(), "Update".to_string())), "{owners:?}");
    // Unknown fields in an applied object are errors, not ignored.
    let unknown =
        patch(&api, &format!("{WEB}?fieldManager=ci"), apply, &applied(1).replace("spec:", "data: {}\nspec:")).await;
    assert!(unknown.error(StatusCode::UNPROCESSABLE_ENTITY).contains("`data`"));
    let wrong_name =
        patch(&api, &format!("{WEB}?fieldManager=ci"), apply, &applied(1).replace("name: web", "name: api")).await;
    wrong_name.error(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_applied_value_equal_to_the_stored_one_once_defaulted_is_shared_not_a_conflict() {
    let api = Api::start().await;
    let ports = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  ports:\n    - containerPort: 8080\n";
    let put = api
        .call(
            "PUT",
            &format!("{WEB}?fieldManager=first"),
            Some(TOKEN),
            Some(("application/yaml", ports.as_bytes().to_vec())),
        )
        .await;
    assert_eq!(put.json()["spec"]["ports"][0]["protocol"], "TCP", "the stored port is defaulted");
    let applied = patch(&api, &format!("{WEB}?fieldManager=second"), "application/apply-patch+yaml", ports).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.text());
    let changed = ports.replace("8080", "9090");
    let conflict = patch(&api, &format!("{WEB}?fieldManager=second"), "application/apply-patch+yaml", &changed).await;
    let message = conflict.error(StatusCode::CONFLICT);
    assert_eq!(message, "Apply failed with 1 conflict: conflict with \"first\" using berth.dev/v1alpha1: .spec.ports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_without_a_version_are_all_applied() {
    let api = std::sync::Arc::new(Api::start().await);
    // Server-side applies racing to create one object: one creates, the
    // others apply to what it created; none is refused.
    let applied = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n";
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let uri = format!("{WEB}?fieldManager=ci");
                patch(&api, &uri, "application/apply-patch+yaml", applied).await.status
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let status = task.await.unwrap();
        assert!(status == StatusCode::OK || status == StatusCode::CREATED, "{status}");
        created += usize::from(status == StatusCode::CREATED);
    }
    assert_eq!(created, 1);
    // Merge patches of different labels at once: every one lands.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                let body = format!(r#"{{"metadata":{{"labels":{{"l{i}":"x"}}}}}}"#);
                patch(&api, WEB, "application/merge-patch+json", &body).await.status
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let labels = api.get(WEB).await.json()["metadata"]["labels"].as_object().unwrap().len();
    assert_eq!(labels, 16, "a merge patch was lost");
}
