//! The MQTT transport against a real broker and other people's clients:
//! a private Debian `mosquitto`, `mosquitto_pub`/`mosquitto_sub` (MQTT
//! 3.1.1: replies on `berth/<node>/reply/<id>`) and a Python paho-mqtt
//! MQTT 5 client (`tests/clients/mqtt5.py`: response topic, correlation
//! data, user properties, protobuf and encrypted payloads), driving
//! `berth serve --engine fake --mqtt`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::api::ServedFake;
use crate::support::broker::Broker;
use crate::support::ingress::{example_stack, exists, file_with, keyring, peer, EXAMPLE_OBJECTS};
use crate::support::repo_path;
use crate::support::tools::venv_python;

const NODE: &str = "testbox";

/// `berth serve --engine fake` on `broker`, once it has connected.
fn berth_on(broker: &Broker, extra: &[&str]) -> ServedFake {
    let (url, examples) = (broker.url(), repo_path("examples"));
    let mut args = vec!["--mqtt", &url, "--node", NODE, "--allow-host-paths", examples.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = ServedFake::start_with(&args);
    wait_for_log(&server, "MQTT connected", 1);
    server
}

fn wait_for_log(server: &ServedFake, text: &str, times: usize) {
    let started = Instant::now();
    while server.log().matches(text).count() < times {
        assert!(started.elapsed() < Duration::from_secs(30), "no `{text}` ×{times} in berth's log:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one `topic payload` line a subscription got, as (topic, JSON).
fn reply_of(lines: &[String]) -> (String, Value) {
    assert_eq!(lines.len(), 1, "one reply expected: {lines:?}");
    let (topic, payload) = lines[0].split_once(' ').expect("topic and payload");
    (topic.to_string(), serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {payload}")))
}

/// Runs the MQTT 5 peer with `args`; its reply.
fn mqtt5(python: &Path, broker: &Broker, args: &[&str]) -> Value {
    let port = broker.port.to_string();
    let all: Vec<&str> = ["--port", port.as_str()].into_iter().chain(args.iter().copied()).collect();
    peer(python, "mqtt5.py", &all)
}

#[test]
fn mosquitto_clients_apply_the_example_stack_and_read_the_reply_and_the_retained_status() {
    let Some(broker) = Broker::start() else { return };
    let server = berth_on(&broker, &[]);
    assert_eq!(broker.retained(&format!("berth/{NODE}/online")), "online");
    let dir = tempfile::tempdir().unwrap();
    let stack = file_with(dir.path(), "stack.yaml", &example_stack());
    let replies = broker.subscribe(&format!("berth/{NODE}/reply/1"), 1, Duration::from_secs(20));
    broker.publish(&["-t", &format!("berth/{NODE}/cmd/apply/1"), "-f", stack.to_str().unwrap()]);
    let (topic, reply) = reply_of(&replies.lines());
    assert_eq!(topic, format!("berth/{NODE}/reply/1"));
    let items = reply["items"].as_array().unwrap_or_else(|| panic!("a plan: {reply}"));
    assert_eq!(items.len(), EXAMPLE_OBJECTS, "{reply}");
    assert!(items.iter().all(|i| i["action"] == "create"), "{reply}");

    // The retained status follows the store until the fake engine has it running.
    let status_topic = format!("berth/{NODE}/status/default/container/web");
    let started = Instant::now();
    loop {
        let status = broker.retained(&status_topic);
        if !status.is_empty() {
            let status: Value = serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {status}"));
            if status["ready"] == true {
                assert_eq!(status["object"], "Container/default/web");
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "web never Ready in {status_topic}: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deleting the object clears its retained status.
    let replies = broker.subscribe(&format!("berth/{NODE}/reply/2"), 1, Duration::from_secs(20));
    broker.publish(&["-t", &format!("berth/{NODE}/cmd/delete/2"), "-m", "{kind: Route, name: demo}"]);
    let (_, reply) = reply_of(&replies.lines());
    assert_eq!(reply["metadata"]["name"], "demo", "{reply}");
    let route_topic = format!("berth/{NODE}/status/default/route/demo");
    let started = Instant::now();
    while !broker.retained(&route_topic).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "the deleted Route's status stayed retained");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.log();
    assert!(log.contains("MQTT commands on berth/testbox/cmd/#"), "{log}");
}

#[test]
fn a_duplicate_delivery_is_applied_once_and_a_retained_command_is_refused_and_cleared() {
    let Some(broker) = Broker::start() else { return };
    let server = berth_on(&broker, &[]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = file_with(dir.path(), "c.yaml", &crate::support::api::container("once", "1"));
    let topic = format!("berth/{NODE}/cmd/apply/dup-1");
    let replies = broker.subscribe(&format!("berth/{NODE}/reply/dup-1"), 2, Duration::from_secs(20));
    broker.publish(&["-t", &topic, "-f", manifest.to_str().unwrap()]);
    broker.publish(&["-t", &topic, "-f", manifest.to_str().unwrap()]);
    let lines = replies.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: Value = serde_json::from_str(lines[0].split_once(' ').unwrap().1).unwrap();
    let second: Value = serde_json::from_str(lines[1].split_once(' ').unwrap().1).unwrap();
    assert_eq!(first["items"][0]["action"], "create", "{first}");
    assert_eq!(second["code"], 409, "{second}");
    assert!(second["message"].as_str().unwrap().contains("executed once already"), "{second}");
    let events = server.cli().args(["events", "container", "once"]).output().unwrap();
    let events = String::from_utf8_lossy(&events.stdout).into_owned();
    assert_eq!(events.matches("apply over mqtt").count(), 1, "one audited apply: {events}");

    // A retained command: refused, nothing applied, and cleared at the broker.
    let retained_topic = format!("berth/{NODE}/cmd/apply/r1");
    let other = file_with(dir.path(), "r.yaml", &crate::support::api::container("retained", "1"));
    let replies = broker.subscribe(&format!("berth/{NODE}/reply/r1"), 1, Duration::from_secs(20));
    broker.publish(&["-r", "-t", &retained_topic, "-f", other.to_str().unwrap()]);
    let (_, reply) = reply_of(&replies.lines());
    assert_eq!(reply["code"], 400, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("retained commands are refused"), "{reply}");
    let get = server.cli().args(["get", "container", "retained"]).output().unwrap();
    assert!(!get.status.success(), "a refused command applied nothing");
    let started = Instant::now();
    while !broker.retained(&retained_topic).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the retained command was not cleared");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A topic berth cannot read gets an answer that says how to fix it.
    let replies = broker.subscribe(&format!("berth/{NODE}/reply/x"), 1, Duration::from_secs(20));
    broker.publish(&["-t", &format!("berth/{NODE}/cmd/launch/x"), "-m", "{}"]);
    let (_, reply) = reply_of(&replies.lines());
    assert!(reply["message"].as_str().unwrap().contains("`launch` is not a verb"), "{reply}");
}

#[test]
fn an_mqtt5_client_gets_replies_on_its_response_topic_in_json_protobuf_and_encrypted() {
    let Some(broker) = Broker::start() else { return };
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(dir.path());
    let server = berth_on(&broker, &["--keyring", keys.to_str().unwrap()]);
    let stack = file_with(dir.path(), "stack.yaml", &example_stack());
    let apply = format!("berth/{NODE}/cmd/apply");

    // A dry run through a user property: the plan, and nothing written.
    let reply =
        mqtt5(&python, &broker, &["--topic", &apply, "-f", stack.to_str().unwrap(), "--property", "dryRun=true"]);
    assert_eq!(reply["correlation_ok"], true, "{reply}");
    assert_eq!(reply["code"], 200, "{reply}");
    assert_eq!(reply["json"]["dryRun"], true, "{reply}");
    assert!(!exists(&server, "container", "web"));

    // Protobuf, encrypted with ChaCha20-Poly1305: applied; the reply is
    // sealed with the primary key, bound to the request.
    let reply = mqtt5(
        &python,
        &broker,
        &["--topic", &apply, "-f", stack.to_str().unwrap(), "--protobuf", "--id", "pb-1"]
            .into_iter()
            .chain(["--keyring", keys.to_str().unwrap(), "--algorithm", "chacha20-poly1305"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(reply["encrypted"], true, "{reply}");
    assert!(reply["channel"].as_str().unwrap().starts_with("reply:"), "{reply}");
    assert_eq!(reply["protobuf"], true, "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["items"].as_array().unwrap().len(), EXAMPLE_OBJECTS, "{reply}");
    assert!(exists(&server, "container", "web"));

    // An envelope bound to another topic is refused, and so is an unknown option.
    let reply = mqtt5(
        &python,
        &broker,
        &["--topic", &apply, "-f", stack.to_str().unwrap(), "--keyring", keys.to_str().unwrap()]
            .into_iter()
            .chain(["--channel", "mqtt:berth/elsewhere/cmd/apply"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(reply["code"], 403, "{reply}");
    // Tampered, stale, an unknown key: each refused, nothing applied.
    let never = file_with(dir.path(), "never.yaml", &crate::support::api::container("never", "1"));
    for (extra, expected) in [("--tamper", "authenticate"), ("--stale", "ago"), ("--key-id=k9", "k9")] {
        let keys = keys.to_str().unwrap();
        let reply =
            mqtt5(&python, &broker, &["--topic", &apply, "-f", never.to_str().unwrap(), "--keyring", keys, extra]);
        assert_eq!(reply["code"], 403, "{extra}: {reply}");
        assert!(reply["json"]["message"].as_str().unwrap().contains(expected), "{extra}: {reply}");
    }
    assert!(!exists(&server, "container", "never"), "a refused request applied something");
    let reply =
        mqtt5(&python, &broker, &["--topic", &apply, "-f", stack.to_str().unwrap(), "--property", "prune=true"]);
    assert_eq!(reply["code"], 400, "{reply}");
    assert!(reply["json"]["message"].as_str().unwrap().contains("not one berth reads"), "{reply}");

    // status over MQTT 5, with an object argument.
    let status = format!("berth/{NODE}/cmd/status");
    let reply = mqtt5(&python, &broker, &["--topic", &status, "--text", "{kind: Container, name: web}"]);
    assert_eq!(reply["json"]["object"], "Container/default/web", "{reply}");
}

#[test]
fn a_reply_over_the_packet_limit_is_answered_413_and_options_outside_an_envelope_are_refused() {
    let Some(broker) = Broker::start() else { return };
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(dir.path());
    let server = berth_on(&broker, &["--mqtt-max-packet", "2KiB", "--keyring", keys.to_str().unwrap()]);
    let stack = file_with(dir.path(), "stack.yaml", &example_stack());
    let applied = server.cli().args(["apply", "-f"]).arg(&stack).output().unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let apply = format!("berth/{NODE}/cmd/apply");
    // Every object's status is over 2 KiB: a 413 that says the request ran.
    let all = format!("berth/{NODE}/cmd/status");
    let reply = mqtt5(&python, &broker, &["--topic", &all, "--text", ""]);
    assert_eq!(reply["code"], 413, "{reply}");
    assert!(reply["json"]["message"].as_str().unwrap().contains("was executed"), "{reply}");
    // Still connected and serving: the oversized reply was never sent.
    let status = format!("berth/{NODE}/cmd/status");
    let reply = mqtt5(&python, &broker, &["--topic", &status, "--text", "{kind: Container, name: web}"]);
    assert_eq!(reply["code"], 200, "{reply}");
    assert_eq!(server.log().matches("MQTT connected").count(), 1, "{}", server.log());

    // dryRun as a user property is outside the envelope: not authenticated, refused.
    let one = file_with(dir.path(), "one.yaml", &crate::support::api::container("outside", "1"));
    let args = [
        "--topic",
        &apply,
        "-f",
        one.to_str().unwrap(),
        "--keyring",
        keys.to_str().unwrap(),
        "--property",
        "dryRun=true",
    ];
    let reply = mqtt5(&python, &broker, &args);
    assert_eq!(reply["code"], 400, "{reply}");
    assert!(reply["json"]["message"].as_str().unwrap().contains("not authenticated"), "{reply}");
    assert!(!exists(&server, "container", "outside"));
}

#[test]
fn require_encryption_refuses_plaintext_over_mqtt() {
    let Some(broker) = Broker::start() else { return };
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(dir.path());
    let server = berth_on(&broker, &["--keyring", keys.to_str().unwrap(), "--require-encryption", "mqtt"]);
    let manifest = file_with(dir.path(), "c.yaml", &crate::support::api::container("plain", "1"));
    let apply = format!("berth/{NODE}/cmd/apply");
    let reply = mqtt5(&python, &broker, &["--topic", &apply, "-f", manifest.to_str().unwrap()]);
    assert_eq!(reply["code"], 403, "{reply}");
    assert!(reply["json"]["message"].as_str().unwrap().contains("plaintext is refused"), "{reply}");
    assert!(!exists(&server, "container", "plain"));
    let reply = mqtt5(
        &python,
        &broker,
        &["--topic", &apply, "-f", manifest.to_str().unwrap(), "--keyring", keys.to_str().unwrap()],
    );
    assert_eq!(reply["code"], 200, "{reply}");
}

#[test]
fn berth_reconnects_after_a_broker_restart_and_resumes() {
    let Some(mut broker) = Broker::start() else { return };
    let server = berth_on(&broker, &[]);
    broker.restart();
    wait_for_log(&server, "MQTT connected", 2);
    let dir = tempfile::tempdir().unwrap();
    let manifest = file_with(dir.path(), "c.yaml", &crate::support::api::container("after", "1"));
    let replies = broker.subscribe(&format!("berth/{NODE}/reply/a1"), 1, Duration::from_secs(20));
    broker.publish(&["-t", &format!("berth/{NODE}/cmd/apply/a1"), "-f", manifest.to_str().unwrap()]);
    let (_, reply) = reply_of(&replies.lines());
    assert_eq!(reply["items"][0]["action"], "create", "{reply}");
    assert_eq!(broker.retained(&format!("berth/{NODE}/online")), "online");

    // While the broker is down, berth retries with backoff: a bounded
    // number of log lines, not one per poll.
    broker.stop();
    std::thread::sleep(Duration::from_secs(4));
    let retries = server.log().matches("MQTT broker unavailable").count();
    assert!((1..=6).contains(&retries), "{retries} retry lines in 4 s:\n{}", server.log());
    broker.restart();
    wait_for_log(&server, "MQTT connected", 3);

    // A clean stop says offline.
    drop(server);
    assert_eq!(broker.retained(&format!("berth/{NODE}/online")), "offline");
}

/// The end-to-end case: the example stack, sealed by the Python peer and
/// sent over MQTT 5 to a berth that requires encryption, converges on
/// real Docker.
#[tokio::test]
async fn the_example_stack_sent_encrypted_over_mqtt_converges_on_real_docker() {
    use crate::support::engines::EngineKind;
    use crate::support::serve::Stack;
    let Some(mut stack) = Stack::examples(EngineKind::Docker).await else { return };
    let Some(broker) = Broker::start() else { return };
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.yaml");
    let made =
        std::process::Command::new(env!("CARGO_BIN_EXE_berth")).args(["keygen", "-o"]).arg(&keys).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (url, node) = (broker.url(), format!("e2e-{}", fastrand::u32(..)));
    let keys_flag = keys.to_str().unwrap();
    stack.start_api_only_with(&[
        "--mqtt",
        &url,
        "--node",
        &node,
        "--keyring",
        keys_flag,
        "--require-encryption",
        "mqtt",
    ]);
    stack
        .eventually(Duration::from_secs(30), "MQTT connected", || async {
            stack.log().contains("MQTT connected").then_some(())
        })
        .await;

    let manifest = file_with(dir.path(), "stack.yaml", &stack.as_one_manifest());
    let topic = format!("berth/{node}/cmd/apply");
    let args =
        ["--topic", &topic, "-f", manifest.to_str().unwrap(), "--keyring", keys_flag, "--algorithm", "aes-256-gcm"];
    let reply = mqtt5(&python, &broker, &args);
    assert_eq!(reply["code"], 200, "{reply}");
    assert_eq!(reply["encrypted"], true, "{reply}");
    let containers = stack.converged().await;
    assert!(containers.contains_key("web#1") && containers.contains_key("api#0"), "{:?}", containers.keys());
    let status = broker.retained(&format!("berth/{node}/status/{}/container/web", stack.namespace));
    let status: Value = serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {status}"));
    assert_eq!(status["object"], format!("Container/{}/web", stack.namespace), "{status}");
}

/// A TLS broker (certificate from a CA the test makes) that wants a user
/// name and password: berth connects with --mqtt-ca and
/// --mqtt-credentials; with a wrong password it says so, boundedly, and
/// keeps serving its API.
#[test]
fn berth_speaks_tls_with_credentials_and_a_refused_login_is_reported_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (dir.path().join("ca.pem"), dir.path().join("server.pem"), dir.path().join("server.key"));
    let openssl = |args: &[&str]| {
        let made = std::process::Command::new("openssl").args(args).current_dir(dir.path()).output().unwrap();
        assert!(made.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&made.stderr));
    };
    let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let ca_args = ["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=berth test CA", "-days", "1"];
    openssl(&[&["req", "-x509"], &curve[..], &ca_args[..]].concat());
    openssl(
        &[&["req"], &curve[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
    );
    std::fs::write(dir.path().join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-out", "server.pem"]
            .into_iter()
            .chain(["-CAcreateserial", "-days", "1", "-extfile", "ext"])
            .collect::<Vec<_>>(),
    );
    // mosquitto started as root reads its files as the `mosquitto` user.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let passwords = dir.path().join("passwords");
    let made = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args(["device", "s3cret"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let Some(mut broker) = Broker::start_with(|_| {
        format!(
            "certfile {}\nkeyfile {}\nallow_anonymous false\npassword_file {}\n",
            cert.display(),
            key.display(),
            passwords.display()
        )
    }) else {
        return;
    };
    broker.client_args =
        ["--cafile", ca.to_str().unwrap(), "-u", "device", "-P", "s3cret", "--insecure"].map(String::from).to_vec();
    let credentials = file_with(dir.path(), "credentials", "device:s3cret\n");
    let url = format!("mqtts://localhost:{}", broker.port);
    let ca_flag = ca.to_str().unwrap();
    let tls_berth = |credentials: &Path, ca: &[&str]| {
        let mut args = vec!["--mqtt", &url, "--node", NODE, "--mqtt-credentials", credentials.to_str().unwrap()];
        args.extend_from_slice(ca);
        ServedFake::start_with(&args)
    };
    let server = tls_berth(&credentials, &["--mqtt-ca", ca_flag]);
    wait_for_log(&server, "MQTT connected to mqtts://localhost", 1);
    let manifest = file_with(dir.path(), "c.yaml", &crate::support::api::container("over-tls", "1"));
    let replies = broker.subscribe(&format!("berth/{NODE}/reply/t1"), 1, Duration::from_secs(20));
    broker.publish(&["-t", &format!("berth/{NODE}/cmd/apply/t1"), "-f", manifest.to_str().unwrap()]);
    let (_, reply) = reply_of(&replies.lines());
    assert_eq!(reply["items"][0]["action"], "create", "{reply}");
    drop(server);

    let wrong = file_with(dir.path(), "wrong", "device:guess\n");
    let server = tls_berth(&wrong, &["--mqtt-ca", ca_flag]);
    std::thread::sleep(Duration::from_secs(3));
    let log = server.log();
    let refused = log.matches("MQTT broker unavailable").count();
    assert!((1..=5).contains(&refused), "{refused} lines in 3 s:\n{log}");
    assert!(log.contains("NotAuthorized") || log.contains("BadUserNamePassword"), "the refusal names why:\n{log}");
    assert!(server.cli().args(["get", "containers"]).output().unwrap().status.success(), "the API stopped");
    drop(server);

    // Against the system's roots the test CA is unknown: no connection.
    let server = tls_berth(&credentials, &[]);
    std::thread::sleep(Duration::from_secs(2));
    let log = server.log();
    assert!(!log.contains("MQTT connected") && log.contains("MQTT broker unavailable"), "{log}");
}

/// The hostile-YAML catalogue (alias and merge-key bombs, 10,000
/// documents, deep nesting, a 2 MiB string) sent as MQTT commands: each
/// refused with its limit named, nothing applied, berth still serving.
#[test]
fn hostile_yaml_over_mqtt_is_refused_with_the_limit_named() {
    let Some(broker) = Broker::start() else { return };
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = berth_on(&broker, &[]);
    let apply = format!("berth/{NODE}/cmd/apply");
    for (what, text, expected) in crate::hostile_yaml::catalogue() {
        let file = file_with(dir.path(), "hostile.yaml", &text);
        let reply = mqtt5(&python, &broker, &["--topic", &apply, "-f", file.to_str().unwrap()]);
        assert_eq!(reply["code"], 422, "{what}: {reply}");
        assert!(reply["json"].to_string().contains(expected), "{what}: {reply}");
    }
    assert!(!exists(&server, "container", "bomb"));
    let reply = mqtt5(&python, &broker, &["--topic", &format!("berth/{NODE}/cmd/status"), "--text", ""]);
    assert_eq!(reply["code"], 200, "{reply}");
}
