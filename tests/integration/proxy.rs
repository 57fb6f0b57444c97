//! The HTTP proxy against in-process backends on 127.0.0.2 and 127.0.0.3
//! (two "replicas" on one port): balancing, precedence, headers, upgrades,
//! streaming, the passive retry, 404 and 503. The same proxy on real
//! busybox replicas is in `e2e` (`proxy_...`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::api::{Kind, ObjectKey};
use berth::endpoints::{Endpoint, EndpointSet};
use berth::proxy::{Proxy, ProxyConfig, RoutesReport};
use berth::store::Store;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::served::{endpoint, get, object, put, store};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A backend named `name` on `address`: echoes what it received, streams
/// on `/stream`, echoes bytes after an upgrade.
async fn backend(name: &'static str, listener: TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(respond(name, request).await)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    })
}

async fn respond(name: &str, mut request: Request<hyper::body::Incoming>) -> Response<Body> {
    let header = |h: &str| request.headers().get(h).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    if request.headers().contains_key("upgrade") {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buffer = [0u8; 1024];
            while let Ok(n) = io.read(&mut buffer).await {
                if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        });
        return Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
    }
    if request.uri().path() == "/stream" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        tokio::spawn(async move {
            for i in 0..5 {
                let _ = tx.send(Ok(Frame::data(Bytes::from(format!("chunk{i}\n"))))).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        return Response::new(StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed());
    }
    let text = format!(
        "name={name}\npath={}\nhost={}\nxff={}\nproto={}\nxhost={}\nkeepalive={}\nrealip={}\nforwarded={}\n",
        request.uri().path(),
        header("host"),
        header("x-forwarded-for"),
        header("x-forwarded-proto"),
        header("x-forwarded-host"),
        header("keep-alive"),
        header("x-real-ip"),
        header("forwarded"),
    );
    Response::new(Full::new(Bytes::from(text)).boxed())
}

struct Fixture {
    proxy: SocketAddr,
    reports: watch::Receiver<Arc<RoutesReport>>,
    endpoints: watch::Sender<Arc<EndpointSet>>,
    backends: Vec<tokio::task::JoinHandle<()>>,
    port: u16,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
    store: Store,
}

/// Backends `a` (127.0.0.2) and `b` (127.0.0.3) on one port, as replicas 0
/// and 1 of Container `web`; `api` (127.0.0.4) as Container `api`.
async fn fixture(routes: &[&str]) -> Fixture {
    let first = TcpListener::bind("127.0.0.2:0").await.expect("bind 127.0.0.2");
    let port = first.local_addr().unwrap().port();
    let second = TcpListener::bind(("127.0.0.3", port)).await.expect("the same port on 127.0.0.3");
    let third = TcpListener::bind(("127.0.0.4", port)).await.expect("the same port on 127.0.0.4");
    let backends = vec![backend("a", first).await, backend("b", second).await, backend("api", third).await];
    let (dir, store) = store();
    put(&store, routes.iter().map(|yaml| object(&yaml.replace("PORT", &port.to_string()))));
    let set = EndpointSet::new(vec![
        endpoint("web", 0, "127.0.0.2"),
        endpoint("web", 1, "127.0.0.3"),
        endpoint("api", 0, "127.0.0.4"),
    ]);
    let (proxy, endpoints, reports, stop) = start_proxy(&store, set, routes.len()).await;
    Fixture { proxy, reports, endpoints, backends, port, _stop: stop, _dir: dir, store }
}

/// The proxy (two workers) on `store` and `set`, once its table has
/// `routes` routes: its address, the endpoint set's sender, its reports,
/// and what stops it when dropped.
async fn start_proxy(
    store: &Store,
    set: EndpointSet,
    routes: usize,
) -> (SocketAddr, watch::Sender<Arc<EndpointSet>>, watch::Receiver<Arc<RoutesReport>>, tokio::sync::oneshot::Sender<()>)
{
    let (endpoints, receiver) = watch::channel(Arc::new(set));
    let (reports_tx, mut reports) = watch::channel(Arc::default());
    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        workers: 2,
        limits: berth::connections::Limits::default(),
        trusted_peers: Vec::new(),
    };
    let proxy = Proxy::bind(&config).await.expect("bind the proxy");
    let address = proxy.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(proxy.run(store.clone(), receiver, reports_tx, async move {
        let _ = stopped.await;
    }));
    reports.wait_for(|r| r.len() == routes).await.expect("the table is built");
    (address, endpoints, reports, stop)
}

const WEB: &str = "{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {name: web}, spec: {hostnames: [app.test, '*.app.test'], rules: [{backends: [{selector: {matchLabels: {app: web}}, port: PORT}]}]}}";

fn field<'a>(body: &'a str, name: &str) -> &'a str {
    body.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap_or("")
}

#[tokio::test]
async fn both_replicas_get_traffic_with_forwarded_headers_and_host_kept() {
    let f = fixture(&[WEB]).await;
    let mut names = Vec::new();
    for _ in 0..10 {
        let (status, body) = get(f.proxy, "app.test:8088", "/x").await;
        assert_eq!(status, 200, "{body}");
        names.push(field(&body, "name").to_string());
        assert_eq!(field(&body, "host"), "app.test:8088", "Host passes through");
        assert_eq!(field(&body, "xff"), "127.0.0.1");
        assert_eq!(field(&body, "proto"), "http");
        assert_eq!(field(&body, "xhost"), "app.test:8088");
        assert_eq!(field(&body, "keepalive"), "-", "hop-by-hop headers are stripped");
    }
    assert_eq!(names.iter().filter(|n| *n == "a").count(), 5, "round robin: {names:?}");
    assert_eq!(names.iter().filter(|n| *n == "b").count(), 5, "round robin: {names:?}");
    let report = f.reports.borrow().clone();
    let web = &report[&ObjectKey::new(Kind::Route, "default", "web")];
    assert_eq!(web.backends.len(), 2);
    assert!(web.backends.iter().all(|(_, _, up)| *up));
}

#[tokio::test]
async fn forwarding_headers_an_untrusted_client_sends_are_replaced_not_believed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture(&[WEB]).await;
    let mut stream = tokio::net::TcpStream::connect(f.proxy).await.unwrap();
    let spoofed = "GET /x HTTP/1.1\r\nHost: app.test:8088\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
                   Forwarded: for=6.6.6.6\r\nX-Forwarded-Host: evil.test\r\nConnection: close\r\n\r\n";
    stream.write_all(spoofed.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(field(body, "xff"), "127.0.0.1", "{answer}");
    assert_eq!(field(body, "realip"), "-", "{answer}");
    assert_eq!(field(body, "forwarded"), "-", "{answer}");
    assert_eq!(field(body, "xhost"), "app.test:8088", "{answer}");
}

#[tokio::test]
async fn the_most_specific_host_and_path_win_then_the_older_route() {
    let routes = [
        WEB,
        "{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {name: api}, spec: {hostnames: [app.test], rules: [{matches: [{type: PathPrefix, value: /api}], backends: [{selector: {matchLabels: {app: api}}, port: PORT}]}]}}",
        "{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {name: special}, spec: {hostnames: [special.app.test], rules: [{backends: [{selector: {matchLabels: {app: api}}, port: PORT}]}]}}",
        "{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {name: exact}, spec: {hostnames: [app.test], rules: [{matches: [{type: Exact, value: /api/web}], backends: [{selector: {matchLabels: {app: web}}, port: PORT, weight: 1}]}]}}",
        "{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {name: clash}, spec: {hostnames: [app.test], rules: [{matches: [{value: /api}], backends: [{selector: {matchLabels: {app: web}}, port: PORT}]}]}}",
    ];
    let f = fixture(&routes).await;
    let name = |host: &'static str, path: &'static str| async move {
        field(&get(f.proxy, host, path).await.1, "name").to_string()
    };
    assert_eq!(name("app.test", "/api/v1").await, "api", "PathPrefix /api beats /");
    assert_eq!(name("app.test", "/api").await, "api");
    assert_ne!(name("app.test", "/apix").await, "api", "prefixes match whole segments");
    assert_ne!(name("app.test", "/api/web").await, "api", "Exact beats PathPrefix");
    assert_eq!(name("special.app.test", "/").await, "api", "an exact host beats a wildcard");
    assert_ne!(name("other.app.test", "/").await, "api", "the wildcard serves other names");
    let report = f.reports.borrow().clone();
    let clash = &report[&ObjectKey::new(Kind::Route, "default", "clash")];
    assert_eq!(
        clash.conflicts,
        [("app.test PathPrefix /api".to_string(), ObjectKey::new(Kind::Route, "default", "api"))]
    );
}

#[tokio::test]
async fn unknown_hosts_get_404_and_routes_without_backends_503() {
    let f = fixture(&[
        WEB,
        "{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {name: empty}, spec: {hostnames: [empty.test], rules: [{backends: [{selector: {matchLabels: {app: none}}, port: 80}]}]}}",
    ])
    .await;
    let (status, body) = get(f.proxy, "nowhere.test", "/").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("nowhere.test"), "{body}");
    let (status, body) = get(f.proxy, "empty.test", "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("route default/empty"), "the body names the route: {body}");
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_the_other_replica() {
    let mut f = fixture(&[WEB]).await;
    // Replica b goes away without the endpoint set knowing yet.
    let b = f.backends.remove(1);
    b.abort();
    let _ = b.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..10 {
        let (status, body) = get(f.proxy, "app.test", "/").await;
        assert_eq!(status, 200, "no failed request: {body}");
        assert_eq!(field(&body, "name"), "a");
    }
    let mut reports = f.reports.clone();
    let report = reports
        .wait_for(|r| r.values().any(|route| route.backends.iter().any(|(_, _, up)| !up)))
        .await
        .expect("reports")
        .clone();
    let down: Vec<&String> =
        report.values().flat_map(|r| &r.backends).filter(|(_, _, up)| !up).map(|(t, _, _)| t).collect();
    assert_eq!(down, ["Container/default/web#1"]);
    // Once the endpoint set drops it, it is gone from the report too.
    f.endpoints.send_replace(Arc::new(EndpointSet::new(vec![endpoint("web", 0, "127.0.0.2")])));
    let report = reports.wait_for(|r| r.values().all(|route| route.backends.len() == 1)).await.unwrap().clone();
    assert_eq!(report.len(), 1);
    let _ = (&f.store, f.port);
}

#[tokio::test]
async fn upgrades_and_streaming_bodies_pass_through() {
    let f = fixture(&[WEB]).await;
    // Upgrade: raw bytes both ways after 101.
    let mut stream = TcpStream::connect(f.proxy).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    stream.write_all(b"ping over the upgraded connection").await.unwrap();
    let mut echoed = [0u8; 33];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed)).await.unwrap().unwrap();
    assert_eq!(&echoed, b"ping over the upgraded connection");

    // Streaming: the first chunk arrives long before the last is sent.
    let stream = TcpStream::connect(f.proxy).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let started = Instant::now();
    let request = Request::get("/stream").header("host", "app.test").body(Full::new(Bytes::new())).unwrap();
    let mut body = sender.send_request(request).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"chunk0\n");
    assert!(started.elapsed() < Duration::from_millis(800), "first chunk after {:?}", started.elapsed());
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"chunk1\nchunk2\nchunk3\nchunk4\n");
    assert!(started.elapsed() >= Duration::from_millis(1200));
}

/// A keep-alive backend that counts its connections and closes each one
/// left idle for 200 ms, as servers do with their keep-alive timeout.
async fn closing_backend(listener: TcpListener, accepted: Arc<std::sync::atomic::AtomicUsize>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await;
                let Ok(Ok(n @ 1..)) = read else { return };
                request.extend_from_slice(&buffer[..n]);
                while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    request.drain(..end + 4);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// Backend connections are kept alive and shared by the proxy's client
/// connections, and one the backend closed while idle is replaced without
/// failing a request (there is a single backend: nothing to fall back on).
#[tokio::test]
async fn backend_connections_are_reused_and_replaced_once_the_backend_closes_them() {
    let listener = TcpListener::bind("127.0.0.5:0").await.expect("bind 127.0.0.5");
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(closing_backend(listener, accepted.clone()));
    let (_dir, store) = store();
    let route = format!("{{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {{name: pooled}}, spec: {{hostnames: [pool.test], rules: [{{backends: [{{selector: {{matchLabels: {{app: pooled}}}}, port: {port}}}]}}]}}}}");
    put(&store, [object(&route)]);
    let (proxy, _endpoints, _reports, _stop) =
        start_proxy(&store, EndpointSet::new(vec![endpoint("pooled", 0, "127.0.0.5")]), 1).await;
    for round in 0..3 {
        for request in 0..20 {
            let (status, body) = get(proxy, "pool.test", "/").await;
            assert_eq!((status, body.as_str()), (200, "ok\n"), "round {round}, request {request}");
        }
        // Past the backend's keep-alive timeout: the pooled connections close.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let opened = accepted.load(std::sync::atomic::Ordering::SeqCst);
    // 60 requests on 60 client connections; without reuse, 60 backend
    // connections; with it, about one per worker and round (a connection
    // whose last exchange hyper has not wound up yet is not reused, hence
    // the slack for a loaded machine).
    assert!((3..=30).contains(&opened), "{opened} backend connections for 3 rounds of 20 requests");
}

/// Stopping the proxy refuses new connections, closes idle ones, and lets
/// a response in flight finish.
#[tokio::test]
async fn a_stopping_proxy_finishes_the_response_in_flight() {
    let f = fixture(&[WEB]).await;
    let connect = |proxy| async move {
        let stream = TcpStream::connect(proxy).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        let connection = tokio::spawn(connection);
        (sender, connection)
    };
    let (mut idle, idle_connection) = connect(f.proxy).await;
    let request = |path: &str| Request::get(path).header("host", "app.test").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(idle.send_request(request("/")).await.unwrap().status(), 200);
    let (mut streaming, _connection) = connect(f.proxy).await;
    let mut body = streaming.send_request(request("/stream")).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"chunk0\n");

    drop(f._stop);
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect()).await.expect("the rest in time");
    assert_eq!(&rest.unwrap().to_bytes()[..], b"chunk1\nchunk2\nchunk3\nchunk4\n", "the response in flight ends whole");
    let closed = tokio::time::timeout(Duration::from_secs(2), idle_connection).await;
    assert!(closed.is_ok(), "the idle connection is closed");
    assert!(TcpStream::connect(f.proxy).await.is_err(), "new connections are refused");
}

/// A backend named `b` that answers each request only once `release` is
/// set, counting the requests it holds.
async fn holding_backend(
    listener: TcpListener,
    release: watch::Receiver<bool>,
    held: Arc<std::sync::atomic::AtomicUsize>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let (release, held) = (release.clone(), held.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let (mut release, held) = (release.clone(), held.clone());
                async move {
                    held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = release.wait_for(|released| *released).await;
                    Ok::<_, Infallible>(respond("b", request).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Requests in flight while replica `b` holds some of them unanswered and
/// then leaves the endpoint set, `exited` or only draining (asked to stop,
/// still running; it then answers what it holds). Their statuses and
/// which replica answered.
async fn requests_across_a_leaving_replica(exited: bool) -> (usize, Vec<(u16, String)>) {
    let first = TcpListener::bind("127.0.0.6:0").await.expect("bind 127.0.0.6");
    let port = first.local_addr().unwrap().port();
    let second = TcpListener::bind(("127.0.0.7", port)).await.expect("the same port on 127.0.0.7");
    let (release, released) = watch::channel(false);
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let _a = backend("a", first).await;
    tokio::spawn(holding_backend(second, released, held.clone()));
    let (_dir, store) = store();
    let route = format!("{{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {{name: held}}, spec: {{hostnames: [held.test], rules: [{{backends: [{{selector: {{matchLabels: {{app: held}}}}, port: {port}}}]}}]}}}}");
    put(&store, [object(&route)]);
    let set = |b: Endpoint| EndpointSet::new(vec![endpoint("held", 0, "127.0.0.6"), b]);
    let (proxy, endpoints, mut reports, _stop) = start_proxy(&store, set(endpoint("held", 1, "127.0.0.7")), 1).await;
    let requests: Vec<_> = (0..6).map(|_| tokio::spawn(async move { get(proxy, "held.test", "/").await })).collect();
    let holding = tokio::time::timeout(Duration::from_secs(5), async {
        while held.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(holding.is_ok(), "replica b holds a request");
    let mut leaving = endpoint("held", 1, "127.0.0.7");
    leaving.running = false;
    leaving.exited = exited;
    endpoints.send_replace(Arc::new(set(leaving)));
    reports.wait_for(|r| r.values().all(|route| route.backends.len() == 1)).await.expect("b leaves the table");
    if !exited {
        release.send_replace(true);
    }
    let mut answers = Vec::new();
    for request in requests {
        // Well within the proxy's 5 s timeout: nothing waits it out.
        let (status, body) = tokio::time::timeout(Duration::from_secs(3), request)
            .await
            .expect("every request is answered in time")
            .expect("the request task");
        answers.push((status, field(&body, "name").to_string()));
    }
    (held.load(std::sync::atomic::Ordering::SeqCst), answers)
}

/// A killed replica on a Podman network sends no RST: a request it held
/// would wait for the proxy timeout. Once the replica has exited, such a
/// request goes to the other replica.
#[tokio::test]
async fn a_request_held_by_a_replica_that_exits_is_answered_by_the_other() {
    let (held, answers) = requests_across_a_leaving_replica(true).await;
    assert!(held > 0);
    assert!(answers.iter().all(|(status, name)| *status == 200 && name == "a"), "{answers:?}");
}

/// A replica asked to stop leaves the table but finishes what it holds:
/// its requests are not taken from it.
#[tokio::test]
async fn a_draining_replica_answers_the_requests_it_holds() {
    let (held, answers) = requests_across_a_leaving_replica(false).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert_eq!(answers.iter().filter(|(_, name)| name == "b").count(), held, "{answers:?}");
}
