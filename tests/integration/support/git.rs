//! Git repositories made by the tests: a bare "remote" on disk, pushed to
//! from a work tree with the `git` command (as a user would), fetched by
//! berth through `file://` or HTTP ([`HttpRemote`], `git http-backend`
//! behind a loopback server).
//!
//! git runs isolated from the machine's configuration (`GIT_CONFIG_GLOBAL`,
//! `GIT_CONFIG_NOSYSTEM`), with a fixed author.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A bare repository and a work tree that pushes to it.
pub struct Remote {
    _dir: tempfile::TempDir,
    /// The bare repository.
    pub bare: PathBuf,
    /// The work tree.
    pub work: PathBuf,
}

/// Runs git in `dir`; panics with its output on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .stdin(Stdio::null())
        .output()
        .expect("running git (is it installed? scripts/setup-engines.sh installs it)");
    assert!(
        output.status.success(),
        "git {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl Remote {
    /// An empty repository whose default branch is `main`.
    pub fn new() -> Remote {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = std::fs::canonicalize(dir.path()).expect("canonical temporary directory");
        let (bare, work) = (root.join("remote.git"), root.join("work"));
        git(&root, &["init", "--quiet", "--bare", "--initial-branch=main", "remote.git"]);
        git(&root, &["init", "--quiet", "--initial-branch=main", "work"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Remote { _dir: dir, bare, work }
    }

    /// The remote's `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes a file of the work tree (directories created).
    pub fn write(&self, path: &str, text: &str) -> &Self {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).expect("directory in the work tree");
        std::fs::write(file, text).expect("writing a file of the work tree");
        self
    }

    /// Removes a file of the work tree.
    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.work.join(path)).expect("removing a file of the work tree");
        self
    }

    /// Commits everything and pushes `main`; returns the commit.
    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "--allow-empty", "-m", message]);
        git(&self.work, &["push", "--quiet", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Moves `main` back to `commit` and force-pushes it.
    pub fn force_push(&self, commit: &str) {
        git(&self.work, &["reset", "--quiet", "--hard", commit]);
        git(&self.work, &["push", "--quiet", "--force", "origin", "main"]);
    }
}

/// A Container manifest whose env says `value`.
pub fn container(name: &str, value: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: {name}\nspec:\n  image: busybox\n  command: [sh, -c, 'sleep 3600']\n  stopGracePeriod: 1s\n  env:\n    - name: VALUE\n      value: {value}\n"
    )
}

/// A remote served over smart HTTP by `git http-backend` (CGI) behind a
/// loopback server on a thread of its own (berth's HTTP fetch blocks, so
/// the test calling it must not be inside this server's runtime). With a
/// token, requests without `Authorization: Basic x-access-token:<token>`
/// get 401, as a forge's would.
pub struct HttpRemote {
    /// `http://127.0.0.1:PORT/remote.git`.
    pub url: String,
    /// Requests answered, with their status.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<(String, u16)>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpRemote {
    /// Serves `remote`'s bare repository.
    pub fn serve(remote: &Remote, token: Option<&str>) -> HttpRemote {
        let root = remote.bare.parent().unwrap().to_path_buf();
        let expected = token.map(|t| format!("Basic {}", base64(format!("x-access-token:{t}").as_bytes())));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/remote.git", listener.local_addr().unwrap());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let requests = log.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
                    let (root, expected, requests) = (root.clone(), expected.clone(), requests.clone());
                    async move {
                        let line = format!("{} {}", request.method(), request.uri());
                        let response = cgi(&root, expected.as_deref(), request).await;
                        requests.lock().unwrap().push((line, response.status().as_u16()));
                        response
                    }
                });
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        HttpRemote { url, log, shutdown: Some(shutdown), thread: Some(thread) }
    }
}

impl Drop for HttpRemote {
    fn drop(&mut self) {
        let _ = self.shutdown.take().map(|s| s.send(()));
        let _ = self.thread.take().map(std::thread::JoinHandle::join);
    }
}

/// Runs one request through `git http-backend`, the CGI program that
/// serves git's smart HTTP protocol.
async fn cgi(root: &Path, expected: Option<&str>, request: axum::extract::Request) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    // In a block: a reference to the request (not Sync) must not live
    // across the awaits below.
    let [authorization, content_type, encoding, protocol] = {
        let headers = request.headers();
        ["authorization", "content-type", "content-encoding", "git-protocol"]
            .map(|name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string())
    };
    if expected.is_some_and(|expected| authorization != expected) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")], "").into_response();
    }
    let (method, uri) = (request.method().to_string(), request.uri().clone());
    let body = axum::body::to_bytes(request.into_body(), 64 << 20).await.unwrap();
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", encoding)
        .env("GIT_PROTOCOL", protocol)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running git http-backend");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let output = child.wait_with_output().await.expect("git http-backend output");
    let _ = writer.await;
    let split = output.stdout.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    let split = split.or_else(|| output.stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)));
    let Some((end, start)) = split else {
        return (StatusCode::BAD_GATEWAY, "no CGI headers").into_response();
    };
    let mut response = axum::response::Response::new(axum::body::Body::from(output.stdout[start..].to_vec()));
    for line in String::from_utf8_lossy(&output.stdout[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(500);
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
        } else if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name), header::HeaderValue::try_from(value))
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Standard base64, for a Basic authorization header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
