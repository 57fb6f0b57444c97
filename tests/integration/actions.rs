//! `berth restart | suspend | resume` and the endpoints behind them, on a
//! `berth serve` process on the fake engine with a watched manifest file:
//! a suspension holds against the file's edits until it is resumed, a
//! replica restart replaces that replica only, a restart of all replaces
//! every one, each is in the audit log with who and why, and what they
//! cannot do is refused with what to do instead.

use std::time::{Duration, Instant};

use predicates::str::contains;
use serde_json::Value;

use crate::support::api::ServedFake;

fn manifest(replicas: u32, greeting: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  \
         replicas: {replicas}\n  command: [sleep, '3600']\n  stopGracePeriod: 1s\n  env:\n    - name: GREETING\n      \
         value: {greeting}\n"
    )
}

fn web(server: &ServedFake) -> Value {
    let output = server.cli().args(["get", "container", "web", "-o", "json"]).output().unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// Waits until `web` satisfies `test`; panics with the object otherwise.
fn wait_for(server: &ServedFake, what: &str, test: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let object = web(server);
        if test(&object) {
            return object;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{what}: {object:#}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn reason(object: &Value) -> String {
    let conditions = object["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let ready = conditions.iter().find(|c| c["type"] == "Ready").cloned().unwrap_or_default();
    ready["reason"].as_str().unwrap_or_default().to_string()
}

fn replica_ids(object: &Value) -> Vec<(u64, String)> {
    let replicas = object["status"]["replicas"].as_array().cloned().unwrap_or_default();
    replicas.iter().map(|r| (r["index"].as_u64().unwrap(), r["containerId"].as_str().unwrap().to_string())).collect()
}

fn ready_with(object: &Value, replicas: u64) -> bool {
    reason(object) == "AllReplicasReady" && object["status"]["readyReplicas"] == replicas
}

#[test]
fn a_suspension_holds_against_its_source_until_resumed_and_restarts_replace_what_they_name() {
    let manifests = tempfile::tempdir().unwrap();
    let file = manifests.path().join("web.yaml");
    std::fs::write(&file, manifest(2, "one")).unwrap();
    let server = ServedFake::start_with(&["--manifests", manifests.path().to_str().unwrap()]);
    wait_for(&server, "two replicas", |o| ready_with(o, 2));

    server
        .cli()
        .args(["suspend", "web", "--reason", "disk maintenance"])
        .assert()
        .success()
        .stdout(contains("suspended"));
    let suspended = wait_for(&server, "suspended", |o| reason(o) == "Suspended" && replica_ids(o).is_empty());
    let note = suspended["metadata"]["annotations"]["berth.dev/suspended"].as_str().unwrap_or_default().to_string();
    assert!(note.contains("by the API token: disk maintenance"), "{note}");
    // The file changes (more replicas, another value): the spec is taken,
    // the suspension stays.
    std::fs::write(&file, manifest(3, "two")).unwrap();
    wait_for(&server, "the edit taken", |o| o["spec"]["replicas"] == 3);
    std::thread::sleep(Duration::from_millis(500));
    let still = web(&server);
    assert_eq!(reason(&still), "Suspended", "{still:#}");
    assert!(replica_ids(&still).is_empty(), "{still:#}");
    assert!(still["metadata"]["annotations"]["berth.dev/suspended"].is_string(), "{still:#}");
    // A restart of a suspended Container has nothing to restart.
    server.cli().args(["restart", "web"]).assert().failure().stderr(contains("resume it first"));

    server.cli().args(["resume", "web"]).assert().success().stdout(contains("resumed"));
    let resumed = wait_for(&server, "three replicas", |o| ready_with(o, 3));
    assert!(resumed["metadata"]["annotations"].get("berth.dev/suspended").is_none(), "{resumed:#}");

    // One replica: only its container is new.
    let before = replica_ids(&resumed);
    server.cli().args(["restart", "web", "--replica", "1", "--reason", "stuck"]).assert().success();
    let after = wait_for(&server, "replica 1 replaced", |o| {
        ready_with(o, 3) && replica_ids(o).len() == 3 && replica_ids(o)[1] != before[1]
    });
    let after = replica_ids(&after);
    assert_eq!((&after[0], &after[2]), (&before[0], &before[2]), "only replica 1 is new");
    // Every replica: all new, as for a spec change.
    server.cli().args(["restart", "web"]).assert().success();
    let all = wait_for(&server, "every replica replaced", |o| {
        let ids = replica_ids(o);
        ready_with(o, 3) && ids.len() == 3 && ids.iter().zip(&after).all(|(new, old)| new.1 != old.1)
    });
    assert!(all["metadata"]["annotations"]["berth.dev/restartedAt"].is_string(), "{all:#}");
    // The file's next edit (a label) keeps the restart: no second round of
    // replacements, and the override is still there.
    let events_before = event_count(&server);
    std::fs::write(
        &file,
        manifest(3, "two").replace("metadata:\n  name: web\n", "metadata:\n  name: web\n  labels: {tier: front}\n"),
    )
    .unwrap();
    let labelled = wait_for(&server, "the label taken", |o| o["metadata"]["labels"]["tier"] == "front");
    assert!(labelled["metadata"]["annotations"]["berth.dev/restartedAt"].is_string(), "{labelled:#}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(replica_ids(&web(&server)), replica_ids(&all), "a label edit replaces nothing");
    // Another file's change rescans this one: it declares what is stored
    // (its copy has no overrides), so nothing is written or recorded.
    let events_labelled = event_count(&server);
    assert!(events_labelled > events_before, "the label edit is recorded");
    std::fs::write(manifests.path().join("other.yaml"), "# nothing yet\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(event_count(&server), events_labelled, "a rescan recorded a change to an unchanged file's object");
    // An API write over the file's version keeps the override too.
    let forced =
        manifest(3, "two").replace("metadata:\n  name: web\n", "metadata:\n  name: web\n  labels: {tier: front}\n");
    server.cli().args(["apply", "--force", "-f", "-"]).write_stdin(forced).assert().success();
    assert!(web(&server)["metadata"]["annotations"]["berth.dev/restartedAt"].is_string());

    let events = server.cli().args(["events", "container", "web"]).assert().success();
    let events = String::from_utf8_lossy(&events.get_output().stdout).to_string();
    for said in [
        "suspended by the API token: disk maintenance",
        "resumed by the API token",
        "replica 1 restarted by the API token: stuck",
        "every replica restarted by the API token",
        "restart requested",
    ] {
        assert!(events.contains(said), "the audit log lacks {said:?}:\n{events}");
    }
}

/// How many entries the audit log holds.
fn event_count(server: &ServedFake) -> usize {
    let (status, body) = server.http_get("/events?limit=500");
    assert_eq!(status, 200, "{body}");
    body.matches("\"seq\":").count()
}

#[test]
fn actions_refuse_what_they_cannot_do() {
    let server = ServedFake::start();
    let volume = "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: data\nspec: {}\n";
    server.cli().args(["apply", "--wait", "-f", "-"]).write_stdin(volume).assert().success();
    server.cli().args(["apply", "--wait", "-f", "-"]).write_stdin(manifest(1, "x")).assert().success();
    server.cli().args(["restart", "web", "--replica", "7"]).assert().failure().stderr(contains("has no replica 7"));
    server.cli().args(["suspend", "ghost"]).assert().failure().stderr(contains("not found"));
    let path = "/apis/berth.dev/v1alpha1/namespaces/default/volumes/data/suspend";
    let (status, body) = post(&server, path, "{}");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("only Containers can be suspended"), "{body}");
    let path = "/apis/berth.dev/v1alpha1/namespaces/default/containers/web/suspend";
    let (status, body) = post(&server, path, r#"{"reason": "x", "replica": 1}"#);
    assert_eq!((status, body.contains("`replica` is for restart only")), (400, true), "{body}");
    let (status, body) = post(&server, path, r#"{"why": "x"}"#);
    assert_eq!((status, body.contains("unknown field `why`")), (400, true), "{body}");
    // A manifest cannot set an annotation under berth's prefix it does not know.
    let forged = manifest(1, "x")
        .replace("metadata:\n  name: web\n", "metadata:\n  name: web\n  annotations:\n    berth.dev/paused: 'yes'\n");
    server
        .cli()
        .args(["apply", "-f", "-"])
        .write_stdin(forged)
        .assert()
        .failure()
        .stderr(contains("annotation `berth.dev/paused` is reserved"));
    // One it knows is the store's: a manifest sending it changes nothing.
    let sneaky = manifest(1, "x").replace(
        "metadata:\n  name: web\n",
        "metadata:\n  name: web\n  annotations:\n    berth.dev/suspended: 'yes'\n",
    );
    server.cli().args(["apply", "--wait", "-f", "-"]).write_stdin(sneaky).assert().success();
    let object = web(&server);
    assert!(object["metadata"]["annotations"].get("berth.dev/suspended").is_none(), "{object:#}");
    assert_eq!(reason(&object), "AllReplicasReady", "{object:#}");
}

/// `POST path` with the token and a JSON body: the status and the body.
fn post(server: &ServedFake, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let token = std::fs::read_to_string(server.state_dir().join("token")).unwrap();
    let mut stream = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        token.trim(),
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}
