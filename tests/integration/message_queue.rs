//! The POSIX message-queue transport against a peer written with Python's
//! `posix_ipc` (`tests/clients/mq.py`): plain, chunked, protobuf and
//! encrypted requests (AES-256-GCM and ChaCha20-Poly1305 from
//! `cryptography`), chunked replies, and every refusal — tampered, wrong
//! key, replayed, stale, plaintext where encryption is required, a queue
//! the system's limits do not allow.

use std::ffi::CString;
use std::path::Path;

use serde_json::Value;

use crate::support::api::ServedFake;
use crate::support::ingress::{example_stack, exists, file_with, keyring, peer, EXAMPLE_OBJECTS};
use crate::support::tools::venv_python;

/// A queue name of this test, unlinked when dropped (berth leaves its
/// queue in place across restarts).
struct QueueName(String);

impl QueueName {
    fn new() -> QueueName {
        QueueName(format!("/berth-test-{}-{:08x}", std::process::id(), fastrand::u32(..)))
    }
}

impl Drop for QueueName {
    fn drop(&mut self) {
        let name = CString::new(self.0.clone()).unwrap();
        unsafe { libc::mq_unlink(name.as_ptr()) };
    }
}

fn berth_on(queue: &QueueName, extra: &[&str]) -> ServedFake {
    let examples = crate::support::repo_path("examples");
    let mut args = vec!["--mq", queue.0.as_str(), "--allow-host-paths", examples.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = ServedFake::start_with(&args);
    let started = std::time::Instant::now();
    while !server.log().contains("POSIX message queue requests on") {
        assert!(started.elapsed().as_secs() < 30, "the queue transport did not start:\n{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}

fn mq(python: &Path, queue: &QueueName, args: &[&str]) -> Value {
    let all: Vec<&str> = ["--queue", queue.0.as_str()].into_iter().chain(args.iter().copied()).collect();
    peer(python, "mq.py", &all)
}

#[test]
fn a_posix_ipc_peer_sends_plain_chunked_and_protobuf_requests_and_reads_the_replies() {
    let Some(python) = venv_python() else { return };
    let queue = QueueName::new();
    // 1 KiB messages: the example stack needs several chunks, and so does its plan.
    let server = berth_on(&queue, &["--mq-msgsize", "1KiB", "--mq-maxmsg", "10"]);
    let dir = tempfile::tempdir().unwrap();

    let one = file_with(dir.path(), "one.yaml", &crate::support::api::container("small", "1"));
    let reply = mq(&python, &queue, &["--verb", "apply", "-f", one.to_str().unwrap()]);
    assert_eq!(reply["code"], 200, "{reply}");
    assert_eq!(reply["sent_chunks"], 1, "{reply}");
    assert!(exists(&server, "container", "small"));

    let stack = file_with(dir.path(), "stack.yaml", &example_stack());
    let args = ["--verb", "apply", "-f", stack.to_str().unwrap(), "--id", "stack-1", "--reply-msgsize", "1024"];
    let reply = mq(&python, &queue, &args);
    assert_eq!(reply["code"], 200, "{reply}");
    assert!(reply["sent_chunks"].as_u64().unwrap() > 3, "{reply}");
    assert!(reply["chunks"].as_u64().unwrap() > 1, "the plan came back in chunks: {reply}");
    assert_eq!(reply["json"]["items"].as_array().unwrap().len(), EXAMPLE_OBJECTS, "{reply}");
    assert!(exists(&server, "container", "web"));

    // Protobuf, from the committed .proto: a typed reply.
    let reply = mq(&python, &queue, &["--verb", "get", "--text", "{kind: Container, name: web}", "--protobuf"]);
    assert_eq!(reply["protobuf"], true, "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["json"]["metadata"]["name"], "web", "{reply}");
    let reply = mq(&python, &queue, &["--verb", "delete", "--text", "{kind: Container, name: small}", "--protobuf"]);
    assert_eq!(reply["ok"], true, "{reply}");

    // A positioned error, and an unknown header key, each answered.
    let bad = file_with(
        dir.path(),
        "bad.yaml",
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: x\nspec:\n  imgae: busybox\n",
    );
    let reply = mq(&python, &queue, &["--verb", "apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(reply["code"], 422, "{reply}");
    let text = reply["json"].to_string();
    assert!(text.contains("imgae") && text.contains("\"line\":6"), "{reply}");
    let reply = mq(&python, &queue, &["--verb", "apply", "-f", one.to_str().unwrap(), "--header", "prune=true"]);
    assert_eq!(reply["code"], 400, "{reply}");
    assert!(reply["json"]["message"].as_str().unwrap().contains("not a header key berth reads"), "{reply}");
}

#[test]
fn encrypted_queue_requests_are_opened_and_every_bad_one_is_refused_with_nothing_applied() {
    let Some(python) = venv_python() else { return };
    let queue = QueueName::new();
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(dir.path());
    let keys = keys.to_str().unwrap();
    let server = berth_on(&queue, &["--keyring", keys, "--require-encryption", "mq", "--mq-msgsize", "2KiB"]);
    let stack = file_with(dir.path(), "stack.yaml", &example_stack());
    let stack = stack.to_str().unwrap();

    // Plaintext is refused.
    let reply = mq(&python, &queue, &["--verb", "apply", "-f", stack, "--id", "p1"]);
    assert_eq!(reply["code"], 403, "{reply}");
    assert!(reply["json"]["message"].as_str().unwrap().contains("plaintext is refused"), "{reply}");

    // Tampered, wrong key, stale, bound elsewhere: each refused, nothing applied.
    let refusals: [(&[&str], &str); 4] = [
        (&["--tamper"], "authenticate"),
        (&["--key-id", "nope"], "nope"),
        (&["--stale"], "more than 5m ago"),
        (&["--channel", "mq:/elsewhere"], "/elsewhere"),
    ];
    for (extra, expected) in refusals {
        let mut args = vec!["--verb", "apply", "-f", stack, "--keyring", keys, "--id", "e1"];
        args.extend_from_slice(extra);
        let reply = mq(&python, &queue, &args);
        assert_eq!(reply["code"], 403, "{extra:?}: {reply}");
        let message = reply["json"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(expected) && message.contains("nothing was applied"), "{extra:?}: {message}");
    }
    assert!(!exists(&server, "container", "web"), "a refused request applied something");
    // The verb is bound too: a `get` sealed for this queue, sent as `delete`.
    let channel = format!("mq:{}/get", queue.0);
    let args = ["--verb", "delete", "--text", "{kind: Container, name: web}", "--keyring", keys, "--channel", &channel];
    let reply = mq(&python, &queue, &args);
    assert_eq!(reply["code"], 403, "{reply}");

    // AES-256-GCM and ChaCha20-Poly1305 from `cryptography`, chunked:
    // applied once; the same bytes again are a replay.
    for (algorithm, id) in [("aes-256-gcm", "g1"), ("chacha20-poly1305", "c1")] {
        let args =
            ["--verb", "apply", "-f", stack, "--keyring", keys, "--algorithm", algorithm, "--id", id, "--times", "2"];
        let replies = mq(&python, &queue, &args);
        let (first, again) = (&replies[0], &replies[1]);
        assert_eq!(first["code"], 200, "{algorithm}: {first}");
        assert_eq!(first["encrypted"], true, "the reply is sealed: {first}");
        assert!(first["sent_chunks"].as_u64().unwrap() > 1, "{first}");
        assert_eq!(again["code"], 403, "{algorithm}: {again}");
        assert!(again["json"]["message"].as_str().unwrap().contains("replay"), "{again}");
    }
    assert!(exists(&server, "container", "web"));
    // Refused unopened: the plaintext, the four bad envelopes, the verb
    // sealed for another, the two replays.
    let (_, metrics) = server.http_get("/metrics");
    assert!(metrics.contains(r#"berth_ingress_requests_total{transport="mq",outcome="undecryptable"} 8"#), "{metrics}");
    assert!(metrics.contains(r#"berth_ingress_requests_total{transport="mq",outcome="ok"} 2"#), "{metrics}");
}

#[test]
fn a_queue_the_system_does_not_allow_fails_the_start_with_the_limit_named() {
    let queue = QueueName::new();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--engine", "fake", "--dns-listen", "off", "--proxy-listen", "off", "--listen", "127.0.0.1:0"])
        .args(["--mq", &queue.0, "--mq-msgsize", "64MiB"])
        .arg("--state-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("msgsize_max") && said.contains("--mq-msgsize"), "{said}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--engine", "fake", "--mq", "berth-requests"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a queue name"));
}

#[test]
fn garbage_floods_and_half_sent_chunks_on_the_queue_leave_berth_serving() {
    use nix::mqueue::{mq_open, mq_send, MQ_OFlag};
    let Some(python) = venv_python() else { return };
    let queue = QueueName::new();
    // The system's default size and depth (created without --mq-msgsize).
    let server = berth_on(&queue, &[]);
    let sender = mq_open(queue.0.as_str(), MQ_OFlag::O_WRONLY, nix::sys::stat::Mode::empty(), None).unwrap();
    let mut rng = fastrand::Rng::with_seed(16);
    let frames: Vec<Vec<u8>> = (0..200)
        .map(|i| match i % 5 {
            0 => (0..rng.usize(1..1024)).map(|_| rng.u8(..)).collect(),
            1 => format!("berth/1 apply reply=/nonexistent-{i}\n{{").into_bytes(),
            2 => format!("berth/1 apply id=half-{i} chunk=1/3\nkind: Container").into_bytes(),
            3 => vec![b'x'; 1024],
            _ => b"berth/1 status reply=/x/y chunk=0/0 id=\n".to_vec(),
        })
        .collect();
    for frame in &frames {
        // Blocking sends: berth drains the queue as fast as it can.
        mq_send(&sender, frame, 0).unwrap();
    }
    nix::mqueue::mq_close(sender).unwrap();
    let reply = mq(&python, &queue, &["--verb", "status", "--text", ""]);
    assert_eq!(reply["code"], 200, "{reply}");
    assert!(server.cli().args(["get", "containers"]).output().unwrap().status.success());
    let log = server.log();
    assert!(log.contains("reply queue /nonexistent-1 does not exist"), "{log}");
    assert!(log.lines().count() < 1000, "a flood of log lines: {}", log.lines().count());
}

/// The hostile-YAML catalogue through the queue, chunked where it is
/// large: each refused with its limit named, nothing applied.
#[test]
fn hostile_yaml_through_the_queue_is_refused_with_the_limit_named() {
    let Some(python) = venv_python() else { return };
    let queue = QueueName::new();
    let server = berth_on(&queue, &[]);
    let dir = tempfile::tempdir().unwrap();
    for (n, (what, text, expected)) in crate::hostile_yaml::catalogue().into_iter().enumerate() {
        let file = file_with(dir.path(), "hostile.yaml", &text);
        let id = format!("h{n}");
        let reply = mq(&python, &queue, &["--verb", "apply", "-f", file.to_str().unwrap(), "--id", &id]);
        assert_eq!(reply["code"], 422, "{what}: {reply}");
        assert!(reply["json"].to_string().contains(expected), "{what}: {reply}");
    }
    assert!(!exists(&server, "container", "bomb"));
}
