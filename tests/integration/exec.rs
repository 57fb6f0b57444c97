//! `berth exec` and the exec WebSocket behind it; `berth cp` and the
//! archive endpoints behind it.
//!
//! On real Docker and Podman (one scenario list per engine): the command's
//! stdout and stderr stay apart, its exit code is berth's, stdin reaches it
//! with `-i`, and `-it` through a real pseudo-terminal (driven by
//! `tests/clients/pty_exec.py`) gives an interactive shell whose size
//! follows the window. On the fake engine, where only the protocol is the
//! point: what the endpoint refuses, before and after the upgrade, and the
//! bound on open sessions.

use std::time::Duration;

use berth::server::channels;
use futures::{SinkExt, StreamExt};
use predicates::str::contains;
use tokio_tungstenite::tungstenite::Message;

use crate::support::api::{container, ServedFake};
use crate::support::engines::EngineKind;
use crate::support::repo_path;
use crate::support::serve::Stack;

macro_rules! exec_scenarios {
    ($engine:ident, $kind:expr) => {
        mod $engine {
            use super::*;
            #[tokio::test]
            async fn berth_exec_keeps_streams_apart_and_exits_with_the_code() {
                super::berth_exec_keeps_streams_apart_and_exits_with_the_code($kind).await
            }
            #[tokio::test]
            async fn berth_exec_it_is_a_terminal_that_follows_the_window() {
                super::berth_exec_it_is_a_terminal_that_follows_the_window($kind).await
            }
            #[tokio::test]
            async fn replica_stats_are_prometheus_metrics() {
                super::replica_stats_are_prometheus_metrics($kind).await
            }
            #[tokio::test]
            async fn berth_cp_copies_files_and_directories_both_ways() {
                super::berth_cp_copies_files_and_directories_both_ways($kind).await
            }
        }
    };
}

exec_scenarios!(docker, EngineKind::Docker);
exec_scenarios!(podman, EngineKind::Podman);

/// The examples converged on `kind`, with `berth` pointed at them.
async fn converged_stack(kind: EngineKind) -> Option<(Stack, impl Fn(&[&str]) -> assert_cmd::Command)> {
    let mut stack = Stack::examples(kind).await?;
    stack.start();
    stack.converged().await;
    let url = stack.server_url().await;
    let state = stack.state_dir();
    let ns = stack.namespace.clone();
    let berth = move |args: &[&str]| {
        let mut command = crate::support::api::cli(&url, &state);
        // The namespace goes before a `--`, after the subcommand.
        command.arg(args[0]).args(["-n", &ns]).args(&args[1..]).timeout(Duration::from_secs(60));
        command
    };
    Some((stack, berth))
}

async fn berth_exec_keeps_streams_apart_and_exits_with_the_code(kind: EngineKind) {
    let Some((stack, berth)) = converged_stack(kind).await else { return };
    let script = "echo out $(hostname); echo err >&2; exit 3";
    let run = berth(&["exec", "web", "--replica", "1", "--", "sh", "-c", script]);
    let output = tokio::task::spawn_blocking(move || {
        let mut run = run;
        run.output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let replica = stack
        .replicas("web")
        .await
        .into_iter()
        .find(|c| c.labels.get("berth.dev/replica").map(String::as_str) == Some("1"));
    let hostname = &replica.expect("web replica 1").id[..12];
    assert_eq!(stdout, format!("out {hostname}\n"), "stdout of replica 1");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    assert_eq!(output.status.code(), Some(3));
    // -i: stdin reaches the command, and its end ends the command.
    let mut piped = berth(&["exec", "-i", "api", "--", "sh", "-c", "read a; read b; echo $((a*b)); cat"]);
    piped.write_stdin("6\n7\nrest\n");
    tokio::task::spawn_blocking(move || piped.assert().success().stdout("42\nrest\n")).await.unwrap();
    let missing = berth(&["exec", "web", "--replica", "7", "--", "true"]);
    tokio::task::spawn_blocking(move || {
        let mut m = missing;
        m.assert().code(1).stderr(contains("has no replica 7; it has 0, 1"))
    })
    .await
    .unwrap();
    let events = berth(&["events", "container", "web"]);
    tokio::task::spawn_blocking(move || {
        let mut events = events;
        events.assert().success().stdout(contains("started by the API token")).stdout(contains("exited with code 3"))
    })
    .await
    .unwrap();
}

async fn berth_exec_it_is_a_terminal_that_follows_the_window(kind: EngineKind) {
    let Some((stack, _)) = converged_stack(kind).await else { return };
    let url = stack.server_url().await;
    let output = tokio::process::Command::new("python3")
        .arg(repo_path("tests/clients/pty_exec.py"))
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(["exec", "-it", "web", "-n", &stack.namespace, "--", "sh"])
        .env("BERTH_SERVER", &url)
        .env("BERTH_STATE_DIR", stack.state_dir())
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(90), output).await.expect("the terminal session ended").unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(shown.contains("exit=4"), "berth exits with the shell's code: {shown}");
}

/// Runs `berth` with `args` off the async runtime.
async fn blocking(mut command: assert_cmd::Command) -> assert_cmd::assert::Assert {
    tokio::task::spawn_blocking(move || command.assert()).await.expect("berth ran")
}

async fn berth_cp_copies_files_and_directories_both_ways(kind: EngineKind) {
    let Some((stack, berth)) = converged_stack(kind).await else { return };
    let local = tempfile::tempdir().unwrap();
    let (file, dir) = (local.path().join("note.txt"), local.path().join("site"));
    std::fs::write(&file, "hello from the host\n").unwrap();
    std::fs::create_dir_all(dir.join("css")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>copied</h1>\n").unwrap();
    std::fs::write(dir.join("css/a.css"), "h1 {}\n").unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    // In: a file into a directory (it keeps its name), a directory to a new name.
    blocking(berth(&["cp", &path(&file), "web:/www/"])).await.success();
    blocking(berth(&["cp", &path(&dir), "web:/www/new-site"])).await.success();
    let read =
        berth(&["exec", "web", "--", "sh", "-c", "cat /www/note.txt /www/new-site/index.html /www/new-site/css/a.css"]);
    blocking(read).await.success().stdout("hello from the host\n<h1>copied</h1>\nh1 {}\n");
    // Out: a file to a new name, a directory into an existing directory.
    let out = local.path().join("out");
    std::fs::create_dir(&out).unwrap();
    blocking(berth(&["cp", "web:/www/note.txt", &path(&out.join("copy.txt"))])).await.success();
    assert_eq!(std::fs::read_to_string(out.join("copy.txt")).unwrap(), "hello from the host\n");
    blocking(berth(&["cp", "web:/www/new-site", &path(&out)])).await.success();
    assert_eq!(std::fs::read_to_string(out.join("new-site/css/a.css")).unwrap(), "h1 {}\n");
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no staging directory is left: {leftovers:?}");
    // `-`: the archive itself.
    let tar = blocking(berth(&["cp", "web:/www/note.txt", "-"])).await.success();
    let mut archive = tar::Archive::new(tar.get_output().stdout.as_slice());
    let names: Vec<String> =
        archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    assert_eq!(names, ["note.txt"]);
    // Mistakes, each said plainly.
    blocking(berth(&["cp", "web:/www/missing", &path(&out)])).await.code(1).stderr(contains("/www/missing"));
    blocking(berth(&["cp", &path(&file), "web:relative"])).await.code(1).stderr(contains("NAME:/PATH"));
    blocking(berth(&["cp", &path(&file), "web:/www/", "--replica", "9"]))
        .await
        .code(1)
        .stderr(contains("has no replica 9"));
    let events = blocking(berth(&["events", "container", "web"])).await.success();
    let events = String::from_utf8_lossy(&events.get_output().stdout).to_string();
    assert!(events.contains("copied into /www of replica 0 by the API token"), "{events}");
    drop(stack);
}

async fn replica_stats_are_prometheus_metrics(kind: EngineKind) {
    let Some((stack, _)) = converged_stack(kind).await else { return };
    let url = stack.server_url().await;
    let token = std::fs::read_to_string(stack.state_dir().join("token")).unwrap().trim().to_string();
    let client = berth::client::Client::new(&url, Some(token)).unwrap();
    let text = String::from_utf8(
        futures::StreamExt::collect::<Vec<_>>(client.stream("/metrics").await.unwrap())
            .await
            .into_iter()
            .flat_map(|chunk| chunk.unwrap().to_vec())
            .collect(),
    )
    .unwrap();
    let value = |family: &str, name: &str, replica: &str| -> f64 {
        let wanted = format!("{family}{{namespace=\"{}\",name=\"{name}\",replica=\"{replica}\"}} ", stack.namespace);
        let line = text.lines().find(|l| l.starts_with(&wanted)).unwrap_or_else(|| panic!("no {wanted} in\n{text}"));
        line[wanted.len()..].parse().unwrap()
    };
    for (name, replica) in [("web", "0"), ("web", "1"), ("api", "0")] {
        assert!(value("berth_container_memory_bytes", name, replica) > 0.0, "{name} {replica} uses memory");
        assert!(value("berth_container_memory_limit_bytes", name, replica) > 0.0);
        assert!(value("berth_container_cpu_seconds_total", name, replica) > 0.0, "{name} {replica} used CPU");
        value("berth_container_network_receive_bytes_total", name, replica);
        value("berth_container_block_write_bytes_total", name, replica);
    }
    assert!(
        text.contains("# TYPE berth_container_cpu_seconds_total counter"),
        "text format 0.0.4 names counters with _total"
    );
    let Some(tools) = crate::clients::tools() else { return };
    let mut check = std::process::Command::new(tools.join("bin/promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&checked.stderr).to_string() + &String::from_utf8_lossy(&checked.stdout);
    assert!(!said.contains("berth_container_"), "promtool on the replica families: {said}");
}

/// A fake server with one Container running `sleep`.
fn fake_with_a_container() -> ServedFake {
    let server = ServedFake::start();
    server.cli().args(["apply", "--wait", "-f", "-"]).write_stdin(container("sleeper", "hi")).assert().success();
    server
}

fn exec_path(name: &str, query: &str) -> String {
    format!("/apis/berth.dev/v1alpha1/namespaces/default/containers/{name}/exec?{query}")
}

/// The session's messages until it closes: (channel, data) pairs.
async fn messages(socket: &mut berth::client::WebSocket) -> Vec<(u8, String)> {
    let mut seen = Vec::new();
    let reading = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Binary(data)) => seen.push((data[0], String::from_utf8_lossy(&data[1..]).to_string())),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), reading).await.expect("the session closes");
    seen
}

#[tokio::test]
async fn the_exec_socket_refuses_what_it_does_not_understand() {
    let server = fake_with_a_container();
    let token = std::fs::read_to_string(server.state_dir().join("token")).unwrap().trim().to_string();
    let client = berth::client::Client::new(&server.url, Some(token)).unwrap();
    // Before the upgrade: ordinary HTTP errors.
    let (status, body) = server.http_get(&exec_path("sleeper", "command=true"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("exec needs a WebSocket"), "{body}");
    let refused =
        client.websocket(&exec_path("sleeper", "command=true&shell=bash"), channels::PROTOCOL).await.unwrap_err();
    assert!(refused.to_string().contains("unknown query parameter `shell`"), "{refused}");
    let refused = client.websocket(&exec_path("sleeper", "tty=true"), channels::PROTOCOL).await.unwrap_err();
    assert!(refused.to_string().contains("no command"), "{refused}");
    let refused = client.websocket(&exec_path("ghost", "command=true"), channels::PROTOCOL).await.unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(404), "{refused}");
    let anonymous = berth::client::Client::new(&server.url, None).unwrap();
    let refused = anonymous.websocket(&exec_path("sleeper", "command=true"), channels::PROTOCOL).await.unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(401), "{refused}");
    // A command's output, then its status.
    let mut socket = client
        .websocket(&exec_path("sleeper", "command=sh&command=-c&command=echo%20hi%3B%20exit%202"), channels::PROTOCOL)
        .await
        .unwrap();
    let seen = messages(&mut socket).await;
    assert_eq!(seen.first(), Some(&(channels::STDOUT, "hi\n".to_string())), "{seen:?}");
    let status = seen.iter().find(|(channel, _)| *channel == channels::STATUS).expect("a status");
    assert_eq!(channels::exit_code_of(status.1.as_bytes()), Ok(2));
    // After the upgrade: a text message, an unknown channel, a bad resize
    // each end the session with a status that says what to send.
    for (message, says) in [
        (Message::Text("hello".into()), "send binary messages"),
        (Message::Binary(vec![9, 1].into()), "unknown channel"),
        (Message::Binary(channels::frame(channels::RESIZE, b"{\"Width\":0,\"Height\":5}").into()), "a resize is"),
    ] {
        let path = exec_path("sleeper", "command=sleep&command=600&stdin=true");
        let mut socket = client.websocket(&path, channels::PROTOCOL).await.unwrap();
        socket.send(message).await.unwrap();
        let seen = messages(&mut socket).await;
        assert!(
            seen.iter().any(|(channel, data)| *channel == channels::STATUS && data.contains(says)),
            "{says}: {seen:?}"
        );
    }
    let events = server.cli().args(["events", "container", "sleeper"]).assert().success();
    let events = String::from_utf8_lossy(&events.get_output().stdout).to_string();
    assert!(events.contains("`sh -c echo hi; exit 2` in replica 0 exited with code 2"), "{events}");
    assert!(events.contains("was left by its client (sent a text message)"), "{events}");
}

#[tokio::test]
async fn open_exec_sessions_are_bounded_and_freed_on_close() {
    let server = fake_with_a_container();
    let token = std::fs::read_to_string(server.state_dir().join("token")).unwrap().trim().to_string();
    let client = berth::client::Client::new(&server.url, Some(token)).unwrap();
    let path = exec_path("sleeper", "command=sleep&command=600");
    let mut open = Vec::new();
    for _ in 0..berth::server::MAX_EXEC_SESSIONS {
        open.push(client.websocket(&path, channels::PROTOCOL).await.expect("a session within the bound"));
    }
    let refused = client.websocket(&path, channels::PROTOCOL).await.unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(429), "{refused}");
    assert!(refused.to_string().contains("close one and retry"), "{refused}");
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.websocket(&path, channels::PROTOCOL).await {
            Ok(_) => break,
            Err(error) => {
                assert!(std::time::Instant::now() < deadline, "a closed session's place was not freed: {error}")
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_archive_endpoints_refuse_what_they_cannot_use() {
    let server = fake_with_a_container();
    let token = std::fs::read_to_string(server.state_dir().join("token")).unwrap().trim().to_string();
    let path = "/apis/berth.dev/v1alpha1/namespaces/default/containers/sleeper/archive";
    let send = |method: &str, query: &str, content_type: &str, body: &[u8]| {
        use std::io::{Read, Write};
        let address = server.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        let head = format!(
            "{method} {path}?{query} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(body);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status: u16 = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, answer)
    };
    let (status, answer) = send("GET", "path=etc/hostname", "application/json", b"");
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("not an absolute path"), "{answer}");
    let (status, answer) = send("GET", "path=/x&mode=fast", "application/json", b"");
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("unknown query parameter `mode`"), "{answer}");
    let (status, answer) = send("PUT", "path=/", "application/json", b"{}");
    assert_eq!(status, 415, "{answer}");
    let (status, answer) = send("GET", "path=/no-such-file", "application/json", b"");
    assert_eq!(status, 404, "{answer}");
}
