//! The web dashboard.
//!
//! In a real browser (`tests/browser/dashboard.mjs`: Debian's Chromium
//! driven by playwright-core, both installed by `scripts/setup-clients.sh`)
//! against `berth serve` on real Docker: log in, the stack Ready, a replica
//! removed by hand and repaired without a reload, the object page with live
//! usage, files, a terminal (`echo`, `stty size` following the window,
//! exit), the events, logs, apply (a line:column error, a plan confirmed, a
//! replica recreated), restart, suspend, resume and delete, the sources
//! (a broken file's error, live), DNS and routes, and the refusals (no
//! cookie, another origin, after logout). On real Podman: files and the
//! terminal. Screenshots go to `target/screenshots/dashboard/<engine>/`.
//!
//! Without a browser, on the fake engine: the login and session rules over
//! raw HTTP, and the embedded assets against the npm lockfile.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::api::ServedFake;
use crate::support::engines::EngineKind;
use crate::support::repo_path;
use crate::support::serve::Stack;

#[tokio::test]
async fn the_dashboard_in_chromium_on_docker() {
    in_chromium(EngineKind::Docker, "full").await
}

#[tokio::test]
async fn the_dashboard_terminal_and_files_in_chromium_on_podman() {
    in_chromium(EngineKind::Podman, "replica").await
}

/// Runs `tests/browser/dashboard.mjs` in `mode` against the examples on
/// `kind`; screenshots go to `target/screenshots/dashboard/<engine>/`.
async fn in_chromium(kind: EngineKind, mode: &str) {
    let Some(mut stack) = Stack::examples(kind).await else { return };
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && repo_path("tests/browser/node_modules/playwright-core").exists(),
        "the browser test needs Debian's chromium and tests/browser's npm packages: run scripts/setup-clients.sh"
    );
    stack.start();
    stack.converged().await;
    let url = stack.server_url().await;
    let token = std::fs::read_to_string(stack.state_dir().join("token")).unwrap().trim().to_string();
    let replica = stack
        .replicas("web")
        .await
        .into_iter()
        .find(|c| c.labels.get("berth.dev/replica").map(String::as_str) == Some("0"))
        .expect("web replica 0");
    let engine = format!("{kind:?}").to_lowercase();
    let screenshots = repo_path(&format!("target/screenshots/dashboard/{engine}"));
    let run = tokio::process::Command::new("node")
        .arg(repo_path("tests/browser/dashboard.mjs"))
        .current_dir(repo_path("tests/browser"))
        .env("BERTH_URL", &url)
        .env("BERTH_TOKEN", &token)
        .env("NAMESPACE", &stack.namespace)
        .env("KILL", &replica.name)
        .env("MANIFESTS", stack.manifests())
        .env("MODE", mode)
        .env("SCREENSHOTS", &screenshots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run).await.expect("the browser test finished").unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{stdout}");
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{stderr}\nberth's log:\n{}", stack.log());
    let pages: &[&str] = match mode {
        "full" => &[
            "login",
            "overview",
            "object",
            "files",
            "terminal",
            "events",
            "logs",
            "apply-error",
            "apply-plan",
            "suspended",
            "sources",
            "network",
        ],
        _ => &["login", "files", "terminal"],
    };
    for page in pages {
        assert!(screenshots.join(format!("{page}.png")).exists(), "no screenshot of the {page} page");
    }
}

/// One HTTP/1.1 request on a fresh connection: the status, the headers and
/// the body.
fn request(
    server: &ServedFake,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let address = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn logins_sessions_and_origins() {
    let server = ServedFake::start();
    let token = std::fs::read_to_string(server.state_dir().join("token")).unwrap().trim().to_string();
    let origin = server.url.clone();
    let form = ("content-type", "application/x-www-form-urlencoded");
    // Pages send a browser without a session to the login; assets need none.
    let (status, head, _) = request(&server, "GET", "/ui/", &[], "");
    assert_eq!((status, head.contains("location: /ui/login")), (303, true), "{head}");
    let (status, head, body) = request(&server, "GET", "/ui/login", &[], "");
    assert_eq!(status, 200);
    assert!(body.contains("not encrypted") && head.contains("content-security-policy: default-src 'self'"), "{head}");
    for asset in berth::dashboard::assets::names() {
        let (status, _, _) = request(&server, "GET", &format!("/ui/assets/{asset}"), &[], "");
        assert_eq!(status, 200, "{asset}");
    }
    assert_eq!(request(&server, "GET", "/ui/assets/../token", &[], "").0, 400);
    assert_eq!(request(&server, "GET", "/ui/../apis/berth.dev/v1alpha1/containers", &[], "").0, 400);
    // A wrong token, or a login from another site's form, gets no session.
    let (status, head, _) = request(&server, "POST", "/ui/login", &[form, ("origin", &origin)], "token=wrong");
    assert_eq!((status, head.contains("set-cookie")), (401, false));
    let login = format!("token={token}");
    let (status, head, _) = request(&server, "POST", "/ui/login", &[form, ("origin", "http://evil.example")], &login);
    assert_eq!((status, head.contains("set-cookie")), (403, false));
    let (status, head, _) = request(&server, "POST", "/ui/login", &[form, ("origin", &origin)], &login);
    assert_eq!(status, 303, "{head}");
    let set_cookie = head.lines().find(|l| l.starts_with("set-cookie:")).expect("a session cookie").to_string();
    assert!(
        set_cookie.contains("httponly") && set_cookie.contains("samesite=strict") && !set_cookie.contains("secure"),
        "{set_cookie}"
    );
    let cookie = set_cookie.trim_start_matches("set-cookie:").trim().split(';').next().unwrap().to_string();
    let with_cookie = [("cookie", cookie.as_str())];
    // The cookie reads the API and the pages; what writes needs the origin too.
    assert_eq!(request(&server, "GET", "/ui/", &with_cookie, "").0, 200);
    assert_eq!(request(&server, "GET", "/apis/berth.dev/v1alpha1/containers", &with_cookie, "").0, 200);
    let yaml = crate::support::api::container("web", "hi");
    let apply = |headers: &[(&str, &str)]| request(&server, "POST", "/apply", headers, &yaml).0;
    assert_eq!(apply(&[with_cookie[0], ("content-type", "application/yaml")]), 403, "no Origin");
    assert_eq!(apply(&[with_cookie[0], ("content-type", "application/yaml"), ("origin", "http://evil.example")]), 403);
    assert_eq!(apply(&[with_cookie[0], ("content-type", "application/yaml"), ("origin", &origin)]), 200);
    assert_eq!(request(&server, "POST", "/ui/logout", &with_cookie, "").0, 403, "a logout from nowhere");
    assert_eq!(request(&server, "POST", "/ui/logout", &[with_cookie[0], ("origin", &origin)], "").0, 303);
    assert_eq!(request(&server, "GET", "/apis/berth.dev/v1alpha1/containers", &with_cookie, "").0, 401, "after logout");
    assert_eq!(request(&server, "GET", "/ui/", &with_cookie, "").0, 303, "after logout");
    // The one apply that came from the dashboard's origin was written.
    let (_, _, events) = request(&server, "GET", "/events", &[("authorization", &format!("Bearer {token}"))], "");
    assert!(events.contains("container/web") || events.contains("Container/default/web"), "{events}");
}

#[test]
fn the_embedded_assets_are_the_lockfile_s() {
    let check = std::process::Command::new(repo_path("scripts/ui-assets.sh"))
        .arg("--check")
        .output()
        .expect("ui-assets.sh runs");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn on_the_tls_listener_the_session_cookie_is_secure() {
    let server = ServedFake::start();
    server.kubeconfig(); // waits for the TLS listener
    let state = server.state_dir();
    let url = std::fs::read_to_string(state.join("tls/url")).unwrap().trim().to_string();
    let token = std::fs::read_to_string(state.join("token")).unwrap().trim().to_string();
    let curl = |args: &[&str]| {
        let output = std::process::Command::new("curl")
            .args(["-sS", "-i", "--cacert"])
            .arg(state.join("tls/ca.crt"))
            .args(args)
            .output()
            .expect("curl runs");
        assert!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_lowercase()
    };
    let page = curl(&[&format!("{url}/ui/login")]);
    assert!(page.starts_with("http/1.1 200") || page.starts_with("http/2 200"), "{page}");
    assert!(!page.contains("not encrypted"), "the TLS login page warns of plain HTTP: {page}");
    let answer = curl(&[
        "-H",
        &format!("Origin: {url}"),
        "--data-urlencode",
        &format!("token={token}"),
        &format!("{url}/ui/login"),
    ]);
    let set_cookie = answer.lines().find(|l| l.starts_with("set-cookie:")).unwrap_or_else(|| panic!("{answer}"));
    assert!(
        set_cookie.contains("; secure") && set_cookie.contains("httponly") && set_cookie.contains("samesite=strict"),
        "{set_cookie}"
    );
}

/// Logs in over raw HTTP; the `berth_session=…` cookie.
fn session_cookie(server: &ServedFake) -> String {
    let token = std::fs::read_to_string(server.state_dir().join("token")).unwrap().trim().to_string();
    let form = ("content-type", "application/x-www-form-urlencoded");
    let (_, head, _) =
        request(server, "POST", "/ui/login", &[form, ("origin", &server.url)], &format!("token={token}"));
    let line = head.lines().find(|l| l.starts_with("set-cookie:")).expect("a session cookie");
    line.trim_start_matches("set-cookie:").trim().split(';').next().unwrap().to_string()
}

#[test]
fn replica_usage_streams_are_bounded() {
    let server = ServedFake::start();
    server
        .cli()
        .args(["apply", "--wait", "-f", "-"])
        .write_stdin(crate::support::api::container("web", "hi"))
        .assert()
        .success();
    let cookie = session_cookie(&server);
    let open = |path: &str| {
        let address = server.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let text = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\n\r\n");
        stream.write_all(text.as_bytes()).unwrap();
        let mut head = [0u8; 4096];
        let read = stream.read(&mut head).unwrap();
        (String::from_utf8_lossy(&head[..read]).to_string(), stream)
    };
    let mut held = Vec::new();
    for _ in 0..berth::dashboard::MAX_STATS_STREAMS {
        let (head, stream) = open("/ui/stats/default/web");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(stream);
    }
    let (head, mut refused) = open("/ui/stats/default/web");
    let mut said = head;
    while !said.contains("retry:") {
        let mut more = [0u8; 1024];
        match refused.read(&mut more) {
            Ok(read) if read > 0 => said.push_str(&String::from_utf8_lossy(&more[..read])),
            _ => break,
        }
    }
    assert!(said.contains("event: problem") && said.contains("close one") && said.contains("retry: 30000"), "{said}");
    // A closed page frees its place; a sample names the replica and its memory.
    drop(held.pop());
    let started = std::time::Instant::now();
    let seen = loop {
        let (head, mut stream) = open("/ui/stats/default/web");
        let mut seen = head;
        let reading = std::time::Instant::now();
        while !seen.contains("memoryBytes")
            && !seen.contains("event: problem")
            && reading.elapsed() < Duration::from_secs(10)
        {
            let mut more = [0u8; 4096];
            let read = stream.read(&mut more).unwrap_or(0);
            seen.push_str(&String::from_utf8_lossy(&more[..read]));
        }
        if !seen.contains("event: problem") || started.elapsed() > Duration::from_secs(5) {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen.contains("event: stats") && seen.contains("\"replica\":0"), "{seen}");
}
