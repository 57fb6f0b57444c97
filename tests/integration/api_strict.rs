//! Strict requests: a dry run (`true` or Kubernetes' `All`) on every write
//! endpoint writes nothing and does nothing, and a query parameter berth
//! does not understand is a 400 naming it, never ignored.

use axum::http::StatusCode;
use berth::api::ObjectKey;

use crate::support::api::{container, Api, PREFIX, TOKEN};
use crate::support::controller::eventually;

const WEB: &str = "/apis/berth.dev/v1alpha1/namespaces/default/containers/web";

/// What a dry run must leave as it was: the store's version, the event
/// log, the engine's mutating calls.
fn footprint(api: &Api) -> (u64, usize, usize) {
    let events = api.store.events(None, 0, 100_000).unwrap().len();
    (api.store.resource_version(), events, api.engine.mutating_calls().len())
}

async fn started_with_web() -> Api {
    let api = Api::start().await;
    assert_eq!(api.send_yaml("POST", "/apply", &container("web", "one")).await.status, StatusCode::OK);
    eventually(std::time::Duration::from_secs(10), "web ready", || async {
        crate::support::controller::is_ready(&api.store, "Container/default/web").then_some(())
    })
    .await;
    // Let the controller's last status write land before measuring.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    api
}

#[tokio::test]
async fn dry_run_all_on_every_write_endpoint_writes_nothing_and_acts_on_nothing() {
    let api = started_with_web().await;
    let before = footprint(&api);
    for dry_run in ["All", "true"] {
        // PUT over an existing object: the object as it would be.
        let reply = api.send_yaml("PUT", &format!("{WEB}?dryRun={dry_run}"), &container("web", "two")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["spec"]["env"][0]["value"], "two");
        // PUT of a new object: 201 as a create would answer, nothing made.
        let new = "/apis/berth.dev/v1alpha1/namespaces/default/containers/new";
        let reply = api.send_yaml("PUT", &format!("{new}?dryRun={dry_run}"), &container("new", "1")).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        assert!(api.store.get(&ObjectKey::parse("Container/default/new").unwrap()).unwrap().is_none());
        // DELETE: the object as it would be marked.
        let reply = api.call("DELETE", &format!("{WEB}?dryRun={dry_run}"), Some(TOKEN), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.json()["metadata"]["deletionTimestamp"].is_string(), "{}", reply.text());
        // /apply: the plan.
        let reply = api.send_yaml("POST", &format!("/apply?dryRun={dry_run}"), &container("web", "three")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["dryRun"], true);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(footprint(&api), before, "(store version, events, engine mutations) moved under a dry run");
    let web = api.store.get(&ObjectKey::parse("Container/default/web").unwrap()).unwrap().unwrap();
    assert!(web.metadata().deletion_timestamp.is_none());
    assert_eq!(web.to_json()["spec"]["env"][0]["value"], "one");
}

#[tokio::test]
async fn an_unknown_query_parameter_is_refused_on_every_endpoint_and_changes_nothing() {
    let api = started_with_web().await;
    let before = footprint(&api);
    let body = container("web", "changed");
    let cases: Vec<(&str, String, bool)> = vec![
        ("GET", format!("{PREFIX}/containers?bogus=1"), false),
        ("GET", format!("{PREFIX}/namespaces/default/containers?bogus=1"), false),
        ("GET", format!("{WEB}?bogus=1"), false),
        ("GET", format!("{WEB}/status?bogus=1"), false),
        ("GET", format!("{WEB}/logs?bogus=1"), false),
        ("PUT", format!("{WEB}?bogus=1"), true),
        ("PUT", format!("{WEB}?dryrun=All"), true),
        ("DELETE", format!("{WEB}?bogus=1"), false),
        ("DELETE", format!("{WEB}?grace_period_seconds=0"), false),
        ("POST", "/apply?bogus=1".to_string(), true),
        ("POST", "/apply?dry_run=true".to_string(), true),
        ("GET", "/events?bogus=1".to_string(), false),
        ("GET", "/sources?bogus=1".to_string(), false),
        ("GET", "/readyz?bogus=1".to_string(), false),
        ("GET", "/metrics?bogus=1".to_string(), false),
        ("GET", "/openapi.json?bogus=1".to_string(), false),
    ];
    for (method, uri, with_body) in cases {
        let reply = match with_body {
            true => api.send_yaml(method, &uri, &body).await,
            false => api.call(method, &uri, Some(TOKEN), None).await,
        };
        let message = reply.error(StatusCode::BAD_REQUEST);
        let name = uri.split('?').nth(1).unwrap().split('=').next().unwrap();
        assert!(message.contains(&format!("unknown query parameter `{name}`")), "{method} {uri}: {message}");
        assert!(
            message.contains("this endpoint accepts") || message.contains("takes no parameters"),
            "{method} {uri}: {message}"
        );
    }
    // /healthz needs no token and is strict too.
    let reply = api.call("GET", "/healthz?bogus=1", None, None).await;
    assert!(reply.error(StatusCode::BAD_REQUEST).contains("takes no parameters"));
    // The accepted ones are named.
    let message = api.send_yaml("POST", "/apply?bogus=1", &body).await.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("`dryRun`, `force`, `source`"), "{message}");
    // A bad value of a known one is refused too.
    let message = api.send_yaml("POST", "/apply?dryRun=maybe", &body).await.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("dryRun must be `true`, `false` or `All`"), "{message}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(footprint(&api), before, "a refused request changed something");
}

#[tokio::test]
async fn a_json_body_without_a_content_type_is_read_as_json() {
    let api = Api::start().await;
    let object = serde_json::json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Volume", "metadata": {"name": "data"}, "spec": {}
    });
    let reply = api.call("POST", "/apply", Some(TOKEN), Some(("", object.to_string().into_bytes()))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(api.store.get(&ObjectKey::parse("Volume/default/data").unwrap()).unwrap().is_some());
    // Broken JSON without a content type gets JSON's message.
    let reply = api.call("POST", "/apply", Some(TOKEN), Some(("", b"{\"kind\": ".to_vec()))).await;
    assert!(reply.error(StatusCode::BAD_REQUEST).contains("JSON"));
}

#[tokio::test]
async fn a_dry_run_of_a_container_whose_image_is_absent_pulls_nothing_and_writes_nothing() {
    let api = started_with_web().await;
    let before = footprint(&api);
    let absent = |name: &str| container(name, "1").replace("image: busybox", "image: registry.test/absent:1");
    for uri in ["/apply?dryRun=All", "/apply?dryRun=true"] {
        // A new Container: its creation is planned.
        let reply = api.send_yaml("POST", uri, &absent("fresh")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        // web moved to an absent image: the plan says the pull comes first.
        let reply = api.send_yaml("POST", uri, &absent("web")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let plan = reply.json();
        let operation = &plan["items"][0]["operations"][0];
        assert_eq!(operation["operation"], "pull image registry.test/absent:1", "{plan}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(footprint(&api), before, "(store version, events, engine mutations) moved under a dry run");
    assert!(!api.engine.calls().iter().any(|c| c.op == "pull_image"), "a dry run pulled");
}
