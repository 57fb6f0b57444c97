//! The REST API through its router (`oneshot`), on a real store and the
//! fake engine with a running controller: every endpoint, every error
//! status, watches that resume, and concurrent writers.

use std::time::Duration;

use axum::http::StatusCode;
use berth::api::ObjectKey;
use berth::store::{WriteBatch, WriteOp};
use serde_json::Value;

use crate::support::api::{container, next_event, Api, PREFIX, TOKEN};
use crate::support::controller::eventually;

const WAIT: Duration = Duration::from_secs(10);

fn containers_path(ns: &str) -> String {
    format!("{PREFIX}/namespaces/{ns}/containers")
}

async fn ready(api: &Api, name: &str) {
    let uri = format!("{}/{name}", containers_path("default"));
    eventually(WAIT, &format!("{name} ready"), || async {
        let object = api.get(&uri).await.json();
        let conditions = object["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True").then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_endpoint_but_healthz_needs_the_token() {
    let api = Api::start().await;
    let healthz = api.call("GET", "/healthz", None, None).await;
    assert_eq!(healthz.status, StatusCode::OK);
    for uri in ["/readyz", "/metrics", "/openapi.json", "/events", &containers_path("default"), "/no/such/route"] {
        let message = api.call("GET", uri, None, None).await.error(StatusCode::UNAUTHORIZED);
        assert!(message.contains("Authorization: Bearer"), "{uri}: {message}");
        let reply = api.call("GET", uri, Some("wrong"), None).await;
        assert!(reply.error(StatusCode::UNAUTHORIZED).contains("wrong"), "{uri}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
    let reply = api.call("POST", "/apply", None, Some(("application/yaml", container("x", "y").into_bytes()))).await;
    reply.error(StatusCode::UNAUTHORIZED);
    assert!(api.store.list(None, None).unwrap().is_empty(), "an unauthorized apply wrote");
}

#[tokio::test]
async fn apply_creates_lists_gets_and_reports_a_plan() {
    let api = Api::start().await;
    let reply =
        api.send_yaml("POST", "/apply", &format!("{}---\n{}", container("web", "a"), container("api", "b"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["dryRun"], false);
    let actions: Vec<(&str, &str)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["object"].as_str().unwrap(), i["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("Container/default/web", "create"), ("Container/default/api", "create")]);
    assert_eq!(body["items"][0]["operations"][0]["operation"], "create and start replica 0");
    ready(&api, "web").await;

    let list = api.get(&containers_path("default")).await.json();
    assert_eq!(list["kind"], "ContainerList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap() >= 2);
    let all = api.get(&format!("{PREFIX}/containers")).await.json();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let selected = api.get(&format!("{PREFIX}/containers?labelSelector=app%3Dweb")).await.json();
    let names: Vec<&str> =
        selected["items"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web"]);
    let other_ns = api.get(&containers_path("other")).await.json();
    assert!(other_ns["items"].as_array().unwrap().is_empty());

    let web = api.get(&format!("{}/web", containers_path("default"))).await;
    assert_eq!(web.status, StatusCode::OK);
    assert_eq!(web.json()["metadata"]["source"]["type"], "api");
    let status = api.get(&format!("{}/web/status", containers_path("default"))).await.json();
    assert_eq!(status["status"]["readyReplicas"], 1);

    // The same again changes nothing.
    let again = api.send_yaml("POST", "/apply", &container("web", "a")).await.json();
    assert_eq!(again["items"][0]["action"], "unchanged");
}

#[tokio::test]
async fn a_dry_run_plans_the_recreate_and_writes_nothing() {
    let api = Api::start().await;
    api.send_yaml("POST", "/apply", &container("web", "one")).await;
    ready(&api, "web").await;
    let version = api.store.resource_version();
    let calls = api.engine.mutating_calls().len();
    let plan = api.send_yaml("POST", "/apply?dryRun=true", &container("web", "two")).await.json();
    assert_eq!(plan["dryRun"], true);
    let item = &plan["items"][0];
    assert_eq!(item["action"], "update");
    assert_eq!(item["changedFields"], serde_json::json!(["spec.env[0].value"]));
    assert_eq!(item["operations"][0]["operation"], "recreate replica 0");
    assert_eq!(item["operations"][0]["reason"], "spec changed: env");
    assert_eq!(item["current"]["env"][0]["value"], "one");
    assert_eq!(item["desired"]["env"][0]["value"], "two");
    assert_eq!(api.store.resource_version(), version, "a dry run wrote to the store");
    assert_eq!(api.engine.mutating_calls().len(), calls, "a dry run changed the engine");

    // A named source plans deletions of what it no longer declares.
    api.send_yaml("POST", "/apply?source=ci", &format!("{}---\n{}", container("a", "1"), container("b", "1"))).await;
    let plan = api.send_yaml("POST", "/apply?source=ci&dryRun=true", &container("a", "1")).await.json();
    let actions: Vec<&str> = plan["items"].as_array().unwrap().iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["unchanged", "delete"]);
    let applied = api.send_yaml("POST", "/apply?source=ci", &container("a", "1")).await;
    assert_eq!(applied.status, StatusCode::OK);
    let b = api.store.get(&ObjectKey::parse("Container/default/b").unwrap()).unwrap();
    assert!(b.is_none_or(|b| b.metadata().deletion_timestamp.is_some()), "the pruned object stayed");
}

#[tokio::test]
async fn a_dry_run_of_an_image_the_engine_lacks_pulls_nothing_and_writes_nothing() {
    let api = Api::start().await;
    api.send_yaml("POST", "/apply", &container("web", "one")).await;
    ready(&api, "web").await;
    let version = api.store.resource_version();
    api.engine.clear_calls();
    let absent = container("web", "one").replace("image: busybox", "image: registry.invalid/absent:1");
    let new = container("api", "one").replace("image: busybox", "image: registry.invalid/absent:2");
    let plan = api.send_yaml("POST", "/apply?dryRun=true", &format!("{absent}---\n{new}")).await.json();
    let edit = &plan["items"][0]["operations"][0];
    assert_eq!(edit["operation"], "pull image registry.invalid/absent:1", "{plan}");
    assert_eq!(edit["reason"], "it is not present", "{plan}");
    let then = &plan["items"][0]["operations"][1]["operation"];
    assert_eq!(then, "then create or replace the replicas the pulled image changes", "{plan}");
    assert_eq!(plan["items"][1]["operations"][0]["operation"], "create and start replica 0", "{plan}");
    let calls = api.engine.calls();
    assert!(calls.iter().all(|c| !c.mutating && c.op != "pull_image"), "the dry run called {calls:?}");
    assert_eq!(api.store.resource_version(), version, "the dry run wrote to the store");
    assert!(api.store.get(&ObjectKey::parse("Container/default/api").unwrap()).unwrap().is_none());
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx_and_change_nothing() {
    let api = Api::start().await;
    let apply = |ct: &'static str, body: Vec<u8>| {
        let api = &api;
        async move { api.call("POST", "/apply", Some(TOKEN), Some((ct, body))).await }
    };
    // Malformed YAML: 422 with line and column, as berth validate says it.
    let reply = apply("application/yaml", b"apiVersion: berth.dev/v1alpha1\nkind: [unclosed\n".to_vec()).await;
    let message = reply.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(message.contains("request:") && message.contains("YAML syntax error"), "{message}");
    let detail = &reply.json()["details"]["causes"][0];
    assert!(detail["line"].as_u64().is_some() && detail["column"].as_u64().is_some(), "{detail}");
    // Unknown kind.
    let reply = apply(
        "application/yaml",
        b"apiVersion: berth.dev/v1alpha1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n".to_vec(),
    )
    .await;
    assert!(reply.error(StatusCode::UNPROCESSABLE_ENTITY).contains("unknown kind `Pod`"));
    // A second document's problem names its document.
    let body = format!("{}---\n{}", container("ok", "1"), container("Bad_Name", "1"));
    let reply = apply("application/yaml", body.into_bytes()).await;
    reply.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["details"]["causes"][0]["document"], 2);
    // Wrong or missing content type.
    assert!(apply("text/plain", b"x".to_vec())
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .contains("application/yaml"));
    assert!(apply("application/x-www-form-urlencoded", b"a=b".to_vec())
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .contains("form"));
    // Over the size limit.
    let big = vec![b'#'; berth::server::MAX_BODY_BYTES + 1];
    assert!(apply("application/yaml", big).await.error(StatusCode::PAYLOAD_TOO_LARGE).contains("limit"));
    // Not UTF-8; JSON syntax; nothing at all.
    apply("application/yaml", vec![0xff, 0xfe]).await.error(StatusCode::BAD_REQUEST);
    assert!(apply("application/json", b"{\"kind\": ".to_vec()).await.error(StatusCode::BAD_REQUEST).contains("JSON"));
    apply("application/yaml", Vec::new()).await.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(api.store.list(None, None).unwrap().is_empty(), "a rejected request wrote");

    // JSON works too: one object, or a List.
    let object: Value = serde_yaml::from_str(&container("j", "1")).unwrap();
    let reply = apply("application/json", serde_json::to_vec(&object).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let list = serde_json::json!({"kind": "List", "items": [object]});
    assert_eq!(apply("application/json", serde_json::to_vec(&list).unwrap()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn paths_are_checked_before_anything_is_looked_up() {
    let api = Api::start().await;
    for uri in [
        format!("{PREFIX}/namespaces/default/containers/..%2F..%2Fetc"),
        format!("{PREFIX}/namespaces/..%2F/containers"),
        format!("{PREFIX}/namespaces/default/containers/{}", "a".repeat(300)),
        format!("{PREFIX}/namespaces/default/containers/UPPER"),
    ] {
        assert!(api.get(&uri).await.error(StatusCode::BAD_REQUEST).contains("not a valid name"), "{uri}");
    }
    let message = api.get(&format!("{PREFIX}/pods")).await.error(StatusCode::NOT_FOUND);
    assert!(message.contains("unknown resource type `pods`") && message.contains("containers"), "{message}");
    api.get(&format!("{}/missing", containers_path("default"))).await.error(StatusCode::NOT_FOUND);
    assert!(api.get("/nope").await.error(StatusCode::NOT_FOUND).contains("/apis/berth.dev/v1alpha1"));
    api.call("POST", &format!("{}/x", containers_path("default")), Some(TOKEN), None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
    api.get(&format!("{PREFIX}/containers?labelSelector=a%20b")).await.error(StatusCode::BAD_REQUEST);
    api.get(&format!("{PREFIX}/containers?watch=maybe")).await.error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn put_is_conditional_on_the_resource_version() {
    let api = Api::start().await;
    let uri = format!("{}/web", containers_path("default"));
    let created = api.send_yaml("PUT", &uri, &container("web", "1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let version = created.json()["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap();
    let replaced = api.send_yaml("PUT", &uri, &container("web", "2")).await;
    assert_eq!(replaced.status, StatusCode::OK);
    // A write based on the first version is stale now.
    let stale = container("web", "3").replace("  labels:", &format!("  resourceVersion: {version}\n  labels:"));
    let reply = api.send_yaml("PUT", &uri, &stale).await;
    assert!(reply.error(StatusCode::CONFLICT).contains(&format!("expected resourceVersion {version}")));
    let current = reply.json()["details"]["causes"][0]["currentResourceVersion"].as_u64().unwrap();
    assert!(current > version);
    let fresh = container("web", "3").replace("  labels:", &format!("  resourceVersion: {current}\n  labels:"));
    assert_eq!(api.send_yaml("PUT", &uri, &fresh).await.status, StatusCode::OK);
    // The body must be the object of the path.
    let reply = api.send_yaml("PUT", &uri, &container("other", "1")).await;
    assert!(reply.error(StatusCode::UNPROCESSABLE_ENTITY).contains("the path names Container/default/web"));
    let two = format!("{}---\n{}", container("web", "1"), container("web2", "1"));
    api.send_yaml("PUT", &uri, &two).await.error(StatusCode::UNPROCESSABLE_ENTITY);
    // A stale version in /apply conflicts too, dry run or not.
    let plan = api.send_yaml("POST", "/apply?dryRun=true", &stale).await;
    plan.error(StatusCode::CONFLICT);
    api.send_yaml("POST", "/apply", &stale).await.error(StatusCode::CONFLICT);
}

#[tokio::test]
async fn objects_a_file_owns_are_refused_unless_forced() {
    let api = Api::start().await;
    let object = berth::manifest::load_text(&container("web", "file"), "x", None).unwrap().remove(0).object;
    berth::source::apply::apply_source(&api.store, &berth::api::Source::file("/srv/manifests/web.yaml"), vec![object])
        .unwrap();
    let uri = format!("{}/web", containers_path("default"));
    for reply in [
        api.send_yaml("PUT", &uri, &container("web", "api")).await,
        api.send_yaml("POST", "/apply", &container("web", "api")).await,
        api.send_yaml("POST", "/apply?dryRun=true", &container("web", "api")).await,
        api.call("DELETE", &uri, Some(TOKEN), None).await,
    ] {
        let message = reply.error(StatusCode::CONFLICT);
        assert!(message.contains("file:/srv/manifests/web.yaml") && message.contains("force=true"), "{message}");
    }
    let forced = api.send_yaml("PUT", &format!("{uri}?force=true"), &container("web", "api")).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text());
    let object = forced.json();
    assert_eq!(object["spec"]["env"][0]["value"], "api");
    assert_eq!(object["metadata"]["source"]["path"], "/srv/manifests/web.yaml", "the file keeps ownership");
}

#[tokio::test]
async fn delete_marks_the_object_and_its_replicas_go() {
    let api = Api::start().await;
    api.send_yaml("POST", "/apply", &container("web", "1")).await;
    ready(&api, "web").await;
    let uri = format!("{}/web", containers_path("default"));
    let stale = api.call("DELETE", &format!("{uri}?resourceVersion=1"), Some(TOKEN), None).await;
    stale.error(StatusCode::CONFLICT);
    let reply = api.call("DELETE", &uri, Some(TOKEN), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.json()["metadata"]["deletionTimestamp"].is_string());
    eventually(WAIT, "web gone", || async { (api.get(&uri).await.status == StatusCode::NOT_FOUND).then_some(()) })
        .await;
    assert!(api.engine.containers().is_empty(), "replicas left behind");
    api.call("DELETE", &uri, Some(TOKEN), None).await.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn events_logs_health_metrics_and_openapi() {
    let api = Api::start().await;
    api.send_yaml("POST", "/apply", &container("web", "1")).await;
    ready(&api, "web").await;

    let events = api.get("/events").await.json();
    assert!(events["items"].as_array().unwrap().iter().any(|e| e["action"] == "applied"), "{events}");
    let mine = api.get("/events?object=Container/default/web").await.json();
    let items = mine["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|e| e["object"] == "Container/default/web"));
    let after = items[0]["seq"].as_u64().unwrap();
    let later = api.get(&format!("/events?object=Container/default/web&after={after}")).await.json();
    assert_eq!(later["items"].as_array().unwrap().len(), items.len() - 1);
    api.get("/events?object=nonsense").await.error(StatusCode::BAD_REQUEST);

    let logs = api.get(&format!("{}/web/logs", containers_path("default"))).await;
    assert_eq!(logs.status, StatusCode::OK);
    assert!(logs.text().contains("greeting 1"), "{}", logs.text());
    let missing =
        api.get(&format!("{}/web/logs?replica=3", containers_path("default"))).await.error(StatusCode::NOT_FOUND);
    assert!(missing.contains("no replica 3; it has 0"), "{missing}");
    api.get(&format!("{}/nope/logs", containers_path("default"))).await.error(StatusCode::NOT_FOUND);

    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());

    // The text format 0.0.4 by default: a counter's family is its _total name.
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(metrics.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = metrics.text();
    assert!(text.contains("\n# TYPE controller_runtime_reconcile_total counter\n"), "{text}");
    assert!(!text.contains("# EOF"));
    for family in ["controller_runtime_reconcile_total", "workqueue_depth", "berth_engine_request_duration_seconds"] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family} has no HELP");
    }
    // OpenMetrics when asked, as Prometheus asks.
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let reply = api.get_accepting("/metrics", accept).await;
    assert!(reply.headers["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let openmetrics = reply.text();
    assert!(openmetrics.ends_with("# EOF\n") && openmetrics.contains("# TYPE controller_runtime_reconcile counter\n"));

    let openapi = api.get("/openapi.json").await.json();
    let paths = openapi["paths"].as_object().unwrap();
    for path in [
        "/apply",
        "/events",
        "/readyz",
        "/apis/berth.dev/v1alpha1/{plural}",
        "/apis/berth.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}",
        "/apis/berth.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}/logs",
    ] {
        assert!(paths.contains_key(path), "{path} not in the OpenAPI document");
    }
    let put = &paths["/apis/berth.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}"]["put"];
    assert!(put["requestBody"]["content"].get("application/yaml").is_some(), "{put}");
}

#[tokio::test]
async fn the_event_log_can_be_followed() {
    let api = Api::start().await;
    api.send_yaml("POST", "/apply", &container("web", "1")).await;
    let mut follow = api.events("/events?follow=true&object=Container/default/web").await;
    let first = next_event(&mut follow, WAIT).await;
    let entry: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(entry["object"], "Container/default/web");
    assert_eq!(first.id.as_deref(), Some(entry["seq"].to_string().as_str()));
    // Entries written after the follow began arrive too.
    api.call("DELETE", &format!("{}/web", containers_path("default")), Some(TOKEN), None).await;
    loop {
        let event = next_event(&mut follow, WAIT).await;
        let entry: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(entry["object"], "Container/default/web", "the filter let another object through");
        if entry["reason"] == "ApiDelete" {
            break;
        }
    }
}

#[tokio::test]
async fn readiness_is_false_until_the_engine_has_been_observed() {
    let api = Api::start().await;
    api.engine.set_latency(Duration::from_millis(2500));
    let message = api.get("/readyz").await.error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("engine"), "{message}");
}

#[tokio::test]
async fn before_the_engine_answers_the_store_is_served_and_readiness_says_why_not() {
    let api = Api::without_engine();
    let message = api.get("/readyz").await.error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("not connected yet"), "{message}");
    let plan = api.send_yaml("POST", "/apply", &container("web", "1")).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.text());
    let operation = &plan.json()["items"][0]["operations"][0];
    assert_eq!(operation["operation"], "unknown until the engine answers");
    assert_eq!(api.get(&containers_path("default")).await.json()["items"].as_array().unwrap().len(), 1);
    let logs = api.get(&format!("{}/web/logs", containers_path("default"))).await;
    assert!(logs.error(StatusCode::SERVICE_UNAVAILABLE).contains("not connected yet"));
}

#[tokio::test]
async fn a_watch_sends_the_objects_then_their_changes() {
    let api = Api::start().await;
    api.send_yaml("POST", "/apply", &container("web", "1")).await;
    let mut events = api.events(&format!("{}?watch=true&labelSelector=app%3Dweb", containers_path("default"))).await;
    let first = next_event(&mut events, WAIT).await;
    assert_eq!(first.event, "ADDED");
    let data: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(data["object"]["metadata"]["name"], "web");
    api.send_yaml("POST", "/apply", &container("api", "1")).await; // not selected
    api.send_yaml("POST", "/apply", &container("web", "2")).await;
    loop {
        let event = next_event(&mut events, WAIT).await;
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["object"]["metadata"]["name"], "web", "the selector let another object through");
        if data["object"]["spec"]["env"][0]["value"] == "2" {
            assert_eq!(event.event, "MODIFIED");
            break;
        }
    }
}

#[tokio::test]
async fn a_watch_that_resumes_from_its_last_version_misses_nothing() {
    let api = Api::start().await;
    api.send_yaml("POST", "/apply", &format!("{}---\n{}", container("a", "1"), container("b", "1"))).await;
    let mut events = api.events(&format!("{PREFIX}/containers?watch=true")).await;
    let mut last = 0;
    let mut seen = 0;
    while seen < 2 {
        let event = next_event(&mut events, WAIT).await;
        last = last.max(event.id.unwrap().parse::<u64>().unwrap());
        seen += (event.event == "ADDED") as usize;
    }
    // Drain what the controller writes meanwhile, then disconnect.
    while let Ok(Some(Ok(event))) =
        tokio::time::timeout(Duration::from_millis(500), futures::StreamExt::next(&mut events)).await
    {
        last = last.max(event.id.unwrap().parse().unwrap());
    }
    drop(events);
    // While away: a changes, c appears, b is removed for good.
    api.send_yaml("POST", "/apply", &container("a", "2")).await;
    api.send_yaml("POST", "/apply", &container("c", "1")).await;
    let b = ObjectKey::parse("Container/default/b").unwrap();
    api.store
        .commit(WriteBatch::new().op(WriteOp::Remove { key: b, precondition: berth::store::Precondition::None }))
        .unwrap();
    let mut resumed = api.events(&format!("{PREFIX}/containers?watch=true&resourceVersion={last}")).await;
    let (mut a_changed, mut c_added, mut b_deleted) = (false, false, false);
    while !(a_changed && c_added && b_deleted) {
        let event = next_event(&mut resumed, WAIT).await;
        assert!(event.id.unwrap().parse::<u64>().unwrap() > last, "an event from before the resume point");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        let name = data["object"]["metadata"]["name"].as_str().unwrap().to_string();
        match (event.event.as_str(), name.as_str()) {
            ("MODIFIED", "a") if data["object"]["spec"]["env"][0]["value"] == "2" => a_changed = true,
            ("MODIFIED" | "ADDED", "c") => c_added = true,
            ("DELETED", "b") => b_deleted = true,
            _ => {}
        }
    }
    // Last-Event-ID resumes the same way: the removal of b is there again.
    let mut resumed = api.events_after(&format!("{PREFIX}/containers?watch=true"), Some(last)).await;
    loop {
        let event = next_event(&mut resumed, WAIT).await;
        assert!(event.id.unwrap().parse::<u64>().unwrap() > last, "an event from before the resume point");
        if event.event == "DELETED" {
            break;
        }
    }
    // A version that is not a number is refused, not treated as "from now".
    let reply =
        api.call("GET", &format!("{PREFIX}/containers?watch=true&resourceVersion=notanumber"), Some(TOKEN), None).await;
    reply.error(StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_writers_lose_no_update() {
    let api = std::sync::Arc::new(Api::start().await);
    // Fifty applies of different objects at once: all land.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { api.send_yaml("POST", "/apply", &container(&format!("c{i}"), "1")).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(api.store.list(Some(berth::api::Kind::Container), None).unwrap().len(), 50);

    // Fifty writers of one object, all from the same version: one wins, 49 get 409.
    let uri = format!("{}/shared", containers_path("default"));
    assert_eq!(api.send_yaml("PUT", &uri, &container("shared", "0")).await.status, StatusCode::CREATED);
    // The version the writers race from is read once the controller's
    // status writes (which move it too) are done.
    eventually(Duration::from_secs(10), "shared ready", || async {
        crate::support::controller::is_ready(&api.store, "Container/default/shared").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let version = api.get(&uri).await.json()["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (api, uri) = (api.clone(), uri.clone());
            tokio::spawn(async move {
                let body = container("shared", &format!("w{i}"))
                    .replace("  labels:", &format!("  resourceVersion: {version}\n  labels:"));
                api.send_yaml("PUT", &uri, &body).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        if reply.status == StatusCode::CONFLICT {
            reply.error(StatusCode::CONFLICT);
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 49, "{statuses:?}");

    // Fifty read-modify-write loops each add one to a counter label: with
    // every conflict retried, the counter ends at exactly 50.
    let uri = format!("{}/counter", containers_path("default"));
    api.send_yaml("PUT", &uri, &container("counter", "0").replace("app: counter", "app: counter\n    count: '0'"))
        .await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (api, uri) = (api.clone(), uri.clone());
            tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let object = api.get(&uri).await.json();
                    let count: u64 = object["metadata"]["labels"]["count"].as_str().unwrap().parse().unwrap();
                    let version = object["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap();
                    let body = container("counter", "0").replace(
                        "app: counter",
                        &format!("app: counter\n    count: '{}'\n  resourceVersion: {version}", count + 1),
                    );
                    let reply = api.send_yaml("PUT", &uri, &body).await;
                    match reply.status {
                        StatusCode::OK => return conflicts,
                        StatusCode::CONFLICT => conflicts += 1,
                        other => panic!("{other}: {}", reply.text()),
                    }
                }
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let object = api.get(&uri).await.json();
    assert_eq!(object["metadata"]["labels"]["count"], "50", "lost updates ({conflicts} conflicts retried)");
}

/// Pieces random requests are made of: paths that traverse, encode, overflow
/// or miss; queries of every parameter with bad values; bodies of YAML,
/// JSON and garbage.
const PATH_PIECES: &[&str] = &[
    "apis",
    "berth.dev",
    "v1alpha1",
    "namespaces",
    "default",
    "containers",
    "volumes",
    "pods",
    "web",
    "status",
    "logs",
    "..",
    "%2e%2e",
    "%2F",
    "%00",
    "%ff",
    "é",
    "UPPER",
    "a-",
    "-a",
    "",
    "apply",
    "events",
    "readyz",
    "metrics",
    "openapi.json",
    "healthz",
    "LONG",
];
const QUERY_PIECES: &[&str] = &[
    "watch=true",
    "watch=maybe",
    "resourceVersion=0",
    "resourceVersion=-1",
    "resourceVersion=99999999999999999999",
    "labelSelector=a%3Db",
    "labelSelector=%28%28",
    "labelSelector=a%20in%20%28",
    "dryRun=true",
    "force=1",
    "source=..",
    "source=ci",
    "follow=false",
    "after=x",
    "limit=0",
    "limit=100000",
    "replica=7",
    "tail=-5",
    "object=Container/default/web",
    "object=%00",
    "a=b&&&",
];
const BODIES: &[&str] = &[
    "",
    "{}",
    "[]",
    "null",
    "{\"kind\":\"List\",\"items\":[1,2]}",
    "kind: List\nitems: [1]",
    "---\n---\n",
    "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox}\n",
    "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web, resourceVersion: -3}\nspec: {}\n",
    "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: web}\nspec: {driver: ''}\n",
    "a: &a [*a]",
    "\t\t: :",
    "{\"apiVersion\": \"berth.dev/v1alpha1\", \"kind\": \"Network\"}",
    "\u{feff}kind: x",
];

#[tokio::test]
async fn random_requests_never_make_a_server_error() {
    let api = Api::start().await;
    let mut rng = fastrand::Rng::with_seed(0xbe27);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..600 {
        let mut piece = || PATH_PIECES[rng.usize(..PATH_PIECES.len())];
        let (ns, plural, name, suffix) = (piece(), piece(), piece(), piece());
        let plural = if rng.bool() { "containers" } else { plural };
        let mut uri = match rng.u8(..5) {
            0 => format!("{PREFIX}/namespaces/{ns}/{plural}/{name}"),
            1 => format!("{PREFIX}/namespaces/{ns}/{plural}/{name}/{suffix}"),
            2 => format!("{PREFIX}/namespaces/{ns}/{plural}"),
            3 => ["/apply", "/events", "/readyz", "/metrics", "/openapi.json"][rng.usize(..5)].to_string(),
            _ => format!("/{ns}/{plural}/{name}"),
        }
        .replace("LONG", &"x".repeat(300));
        if rng.bool() {
            let query: Vec<&str> =
                (0..rng.usize(1..4)).map(|_| QUERY_PIECES[rng.usize(..QUERY_PIECES.len())]).collect();
            uri = format!("{uri}?{}", query.join("&"));
        }
        if uri.contains("watch=true") || uri.contains("follow=true") {
            continue; // streams do not end; watches have their own tests
        }
        let method = ["GET", "PUT", "POST", "DELETE", "PATCH"][rng.usize(..5)];
        let content_type = ["application/yaml", "application/json", "text/plain", "application/x-yaml"][rng.usize(..4)];
        let body = match rng.u8(..4) {
            0 => None,
            1 => Some((content_type, (0..rng.usize(..64)).map(|_| rng.u8(..)).collect())),
            _ => Some((content_type, BODIES[rng.usize(..BODIES.len())].as_bytes().to_vec())),
        };
        let reply = api.call(method, &uri, Some(TOKEN), body).await;
        assert!(
            reply.status.as_u16() < 500 || reply.status == StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}: {}",
            reply.text()
        );
        if reply.status.as_u16() >= 400 {
            reply.error(reply.status);
        }
        seen.insert(reply.status.as_u16());
    }
    // The requests reached every layer, not only the router's 404.
    for status in [200, 400, 404, 405, 415, 422] {
        assert!(seen.contains(&status), "no request got {status}: {seen:?}");
    }
}

#[tokio::test]
async fn lists_page_with_continue_and_select_by_field() {
    let api = Api::start().await;
    for name in ["a", "b", "c"] {
        api.send_yaml("POST", "/apply", &container(name, "1")).await;
    }
    let (mut names, mut token) = (Vec::new(), None::<String>);
    loop {
        let uri = match &token {
            Some(t) => format!("{}?limit=2&continue={t}", containers_path("default")),
            None => format!("{}?limit=2", containers_path("default")),
        };
        let page = api.get(&uri).await.json();
        names.extend(
            page["items"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(next) => {
                assert_eq!(page["metadata"]["remainingItemCount"], 1);
                token = Some(next.to_string());
            }
            None => break,
        }
    }
    assert_eq!(names, ["a", "b", "c"]);
    let selected = api.get(&format!("{PREFIX}/containers?fieldSelector=metadata.name%3Db")).await.json();
    assert_eq!(selected["items"].as_array().unwrap().len(), 1);
    let refused = api.get(&format!("{PREFIX}/containers?fieldSelector=spec.image%3Dx")).await;
    assert!(refused.error(StatusCode::BAD_REQUEST).contains("supported: metadata.name, metadata.namespace"));
    let bad = api.get(&format!("{PREFIX}/containers?limit=1&continue=forged")).await;
    assert!(bad.error(StatusCode::BAD_REQUEST).contains("not one berth gave out"));
}

#[tokio::test]
async fn a_watch_is_a_kubernetes_json_stream_unless_events_are_asked_for() {
    let api = Api::start().await;
    api.send_yaml("POST", "/apply", &container("web", "1")).await;
    let uri =
        format!("{PREFIX}/containers?watch=true&timeoutSeconds=1&allowWatchBookmarks=true&sendInitialEvents=true");
    let reply = api.get(&uri).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    let events: Vec<Value> = reply.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events[0]["type"], "ADDED", "{events:?}");
    assert_eq!(events[0]["object"]["metadata"]["name"], "web");
    let end = events.iter().find(|e| e["type"] == "BOOKMARK").expect("the initial-events-end bookmark");
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}
