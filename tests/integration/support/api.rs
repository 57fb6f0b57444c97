//! The REST API as a router in the test's process, on a real store and the
//! fake engine with a running controller: requests go through `oneshot`,
//! the same tower service `berth serve` puts on a socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use berth::client::{sse_events, ClientError, SseEvent};
use berth::controller::runtime::Shutdown;
use berth::controller::{Controller, ControllerConfig};
use berth::engine::fake::FakeEngine;
use berth::metrics::Metrics;
use berth::server::{app, Connected, EngineSlot, ServerState, Token};
use berth::store::Store;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt;

/// The token the test server wants.
pub const TOKEN: &str = "test-token";
/// The object endpoints' prefix.
pub const PREFIX: &str = "/apis/berth.dev/v1alpha1";

/// A server and what it runs on.
pub struct Api {
    /// The router.
    pub router: axum::Router,
    /// Its store.
    pub store: Store,
    /// Its engine.
    pub engine: FakeEngine,
    shutdown: watch::Sender<Shutdown>,
    _dir: tempfile::TempDir,
}

/// An answer.
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status and the error shape, returns the error message.
    pub fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        for field in ["kind", "apiVersion", "status", "reason", "code", "message", "details", "requestId"] {
            assert!(body.get(field).is_some(), "error without `{field}`: {body}");
        }
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["code"], status.as_u16(), "{body}");
        assert_eq!(self.headers["x-request-id"].to_str().unwrap(), body["requestId"].as_str().unwrap());
        body["message"].as_str().unwrap().to_string()
    }
}

impl Api {
    /// A server with a running controller on a fresh store and fake engine.
    pub async fn start() -> Api {
        Api::start_with(berth::source::git::GitHooks::default()).await
    }

    /// The same, with git webhooks going to `git_hooks`.
    pub async fn start_with(git_hooks: berth::source::git::GitHooks) -> Api {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(dir.path()).expect("store");
        let engine = FakeEngine::new();
        engine.preload_image("busybox");
        let config = ControllerConfig { resync_interval: Duration::from_secs(3600), ..ControllerConfig::default() };
        let controller = Controller::new(store.clone(), Arc::new(engine.clone()), config).expect("controller");
        let slot = EngineSlot::default();
        slot.set(Connected { ctx: controller.context(), observed: controller.observed() });
        let state = ServerState {
            store: store.clone(),
            metrics: controller.metrics().clone(),
            engine: slot,
            git_hooks,
            ingress: Default::default(),
            exec_sessions: Default::default(),
            dashboard: Default::default(),
        };
        let router = app(state, Token::from_secret(TOKEN));
        let (shutdown, receiver) = watch::channel(Shutdown::Running);
        tokio::spawn(controller.run(receiver));
        Api { router, store, engine, shutdown, _dir: dir }
    }

    /// A server whose engine has not answered yet (no controller runs).
    pub fn without_engine() -> Api {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(dir.path()).expect("store");
        let state = ServerState {
            store: store.clone(),
            metrics: Metrics::new(),
            engine: EngineSlot::default(),
            git_hooks: Default::default(),
            ingress: Default::default(),
            exec_sessions: Default::default(),
            dashboard: Default::default(),
        };
        let router = app(state, Token::from_secret(TOKEN));
        Api { router, store, engine: FakeEngine::new(), shutdown: watch::channel(Shutdown::Running).0, _dir: dir }
    }

    fn request(method: &str, uri: &str, token: Option<&str>, body: Option<(&str, Vec<u8>)>) -> Request<Body> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        match body {
            Some((content_type, bytes)) => request.header("content-type", content_type).body(Body::from(bytes)),
            None => request.body(Body::empty()),
        }
        .expect("request")
    }

    /// Sends a request with any token (or none) and body.
    pub async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: Option<(&str, Vec<u8>)>) -> Reply {
        self.send(Self::request(method, uri, token, body)).await
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    }

    /// An authorized GET.
    pub async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, Some(TOKEN), None).await
    }

    /// An authorized GET with an `Accept` header.
    pub async fn get_accepting(&self, uri: &str, accept: &str) -> Reply {
        let mut request = Self::request("GET", uri, Some(TOKEN), None);
        request.headers_mut().insert("accept", accept.parse().expect("header value"));
        self.send(request).await
    }

    /// An authorized request with a YAML body.
    pub async fn send_yaml(&self, method: &str, uri: &str, yaml: &str) -> Reply {
        self.call(method, uri, Some(TOKEN), Some(("application/yaml", yaml.as_bytes().to_vec()))).await
    }

    /// An authorized streaming GET, as Server-Sent Events.
    pub async fn events(&self, uri: &str) -> BoxStream<'static, Result<SseEvent, ClientError>> {
        self.events_after(uri, None).await
    }

    /// The same, resuming with `Last-Event-ID` as browsers' EventSource does.
    pub async fn events_after(
        &self,
        uri: &str,
        last_event_id: Option<u64>,
    ) -> BoxStream<'static, Result<SseEvent, ClientError>> {
        let mut request = Self::request("GET", uri, Some(TOKEN), None);
        request.headers_mut().insert("accept", "text/event-stream".parse().expect("header value"));
        if let Some(id) = last_event_id {
            request.headers_mut().insert("last-event-id", id.to_string().parse().expect("header value"));
        }
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let frames =
            response.into_body().into_data_stream().map(|f| f.map_err(|e| ClientError::Transport(e.to_string())));
        sse_events(frames)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.shutdown.send(Shutdown::Force);
    }
}

/// The next event of a stream, failing after `timeout`.
pub async fn next_event(events: &mut BoxStream<'static, Result<SseEvent, ClientError>>, timeout: Duration) -> SseEvent {
    tokio::time::timeout(timeout, events.next()).await.expect("an event in time").expect("stream open").expect("event")
}

/// A Container manifest with one env value.
pub fn container(name: &str, value: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n  image: busybox\n  command: [sh, -c, 'echo greeting $GREETING; sleep 3600']\n  stopGracePeriod: 1s\n  env:\n    - name: GREETING\n      value: {value}\n"
    )
}

/// A `berth serve` process on the fake engine (or, from
/// [`ServedFake::start_docker`], on a Docker the test names), listening on a
/// free port, with its log (stderr) in `berth.log` of its directory.
pub struct ServedFake {
    child: std::process::Child,
    /// Its temporary directory (its log, and its state unless given one).
    pub dir: tempfile::TempDir,
    /// Its state directory (with the token).
    state: std::path::PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl ServedFake {
    /// Starts it on a free TCP port and waits for its API.
    pub fn start() -> ServedFake {
        ServedFake::start_on(|_| "127.0.0.1:0".to_string(), &[])
    }

    /// Starts it with more `berth serve` arguments.
    pub fn start_with(args: &[&str]) -> ServedFake {
        ServedFake::start_on(|_| "127.0.0.1:0".to_string(), args)
    }

    /// Starts it listening where `listen` says (given its temporary
    /// directory), with more `berth serve` arguments, and waits for its API.
    pub fn start_on(listen: impl FnOnce(&std::path::Path) -> String, args: &[&str]) -> ServedFake {
        ServedFake::spawn("fake", &[], listen, None, args)
    }

    /// Starts it with its state directory at `state` (e.g. on a small file
    /// system), with more `berth serve` arguments.
    pub fn start_in(state: &std::path::Path, args: &[&str]) -> ServedFake {
        ServedFake::spawn("fake", &[], |_| "127.0.0.1:0".to_string(), Some(state), args)
    }

    /// Starts it on the Docker at `docker_host` (`unix:///...`), with more
    /// `berth serve` arguments, and waits for its API (not for the engine).
    pub fn start_docker(docker_host: &str, args: &[&str]) -> ServedFake {
        ServedFake::spawn("docker", &[("DOCKER_HOST", docker_host)], |_| "127.0.0.1:0".to_string(), None, args)
    }

    /// Spawns it on `engine` with `env` added and its state directory at
    /// `state` (default: in its temporary directory), and waits for its API.
    fn spawn(
        engine: &str,
        env: &[(&str, &str)],
        listen: impl FnOnce(&std::path::Path) -> String,
        state: Option<&std::path::Path>,
        args: &[&str],
    ) -> ServedFake {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("berth.log");
        let state = state.map_or_else(|| dir.path().join("state"), std::path::Path::to_path_buf);
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--engine", engine, "--dns-listen", "off", "--proxy-listen", "off"])
            .args(["--listen", &listen(dir.path()), "--tls-listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::fs::File::create(dir.path().join("stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawning berth");
        let started = std::time::Instant::now();
        let url = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(url) = text.split("REST API on ").nth(1).and_then(|rest| rest.split_whitespace().next()) {
                break url.to_string();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "berth serve did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        ServedFake { child, dir, state, url }
    }

    /// The state directory.
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.state.clone()
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berth.log")).unwrap_or_default()
    }

    /// Its process id, for `/proc/PID/...`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `berth` with this server and its token's directory in the environment.
    pub fn cli(&self) -> assert_cmd::Command {
        cli(&self.url, &self.state_dir())
    }

    /// `GET path` on a new connection with the state directory's token:
    /// the status code and the body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let token = std::fs::read_to_string(self.state_dir().join("token")).unwrap();
        let mut stream = std::net::TcpStream::connect(self.url.trim_start_matches("http://")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            token.trim()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, answer.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
    }

    /// A kubeconfig for its TLS listener, as `berth kubeconfig` prints it,
    /// once the listener is up.
    pub fn kubeconfig(&self) -> String {
        let url_file = self.state_dir().join("tls/url");
        let started = std::time::Instant::now();
        while !url_file.exists() {
            assert!(started.elapsed() < Duration::from_secs(20), "no tls/url:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = self.cli().args(["kubeconfig"]).output().expect("berth kubeconfig runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("a UTF-8 kubeconfig")
    }
}

/// `berth` pointed at `url`, reading the token from `state_dir`.
pub fn cli(url: &str, state_dir: &std::path::Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("berth").expect("the berth binary");
    command.env("BERTH_SERVER", url).env("BERTH_STATE_DIR", state_dir).env("NO_COLOR", "1").env_remove("BERTH_TOKEN");
    command
}

impl Drop for ServedFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
