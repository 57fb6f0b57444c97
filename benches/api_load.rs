//! REST API throughput and latency under load, on loopback.
//!
//! Starts the release `berth serve --engine fake` (so the engine costs
//! nothing and the API is what is measured), seeds it with `--objects`
//! Containers, then for each scenario runs `--connections` keep-alive HTTP/1.1
//! clients as fast as they go for `--secs` seconds, recording each request's
//! latency. `GET /healthz` (no store, no token check) is the server's floor:
//! every other scenario is printed beside it as a ratio.
//!
//! Scenarios: `GET /healthz`; `GET` one object; `GET` the list of all
//! Containers; `POST /apply` of one unchanged object (validate + plan, no
//! write); `POST /apply` that changes its object each time (a durable store
//! commit per request, fsync included).
//!
//! Options: `--connections 8 --secs 5 --objects 100`.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use support::{fake_container_manifest, percentile, Args, Berth};

/// What one scenario sends.
#[derive(Clone)]
struct Scenario {
    name: &'static str,
    method: &'static str,
    path: String,
    /// Body per request (`worker`, `sequence`), if any.
    body: Option<fn(usize, u64) -> String>,
}

struct Figures {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

async fn worker(
    address: String,
    token: String,
    scenario: Scenario,
    worker: usize,
    until: Instant,
) -> (Vec<Duration>, usize) {
    let stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let (mut latencies, mut errors) = (Vec::new(), 0);
    let mut sequence = 0u64;
    while Instant::now() < until {
        sequence += 1;
        let body = scenario.body.map(|make| make(worker, sequence)).unwrap_or_default();
        let request = Request::builder()
            .method(scenario.method)
            .uri(&scenario.path)
            .header("host", &address)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/yaml")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let started = Instant::now();
        sender.ready().await.expect("connection ready");
        let response = sender.send_request(request).await.expect("response");
        let ok = response.status().is_success();
        response.into_body().collect().await.expect("body");
        latencies.push(started.elapsed());
        errors += usize::from(!ok);
    }
    (latencies, errors)
}

async fn run(address: &str, token: &str, scenario: &Scenario, connections: usize, secs: u64) -> Figures {
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..connections)
        .map(|i| tokio::spawn(worker(address.to_string(), token.to_string(), scenario.clone(), i, until)))
        .collect();
    let mut figures = Figures { requests: 0, errors: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    for task in tasks {
        let (latencies, errors) = task.await.expect("worker");
        figures.requests += latencies.len();
        figures.errors += errors;
        figures.latencies.extend(latencies);
    }
    figures.elapsed = started.elapsed();
    figures
}

fn changing_apply(worker: usize, sequence: u64) -> String {
    fake_container_manifest(&format!("load-{worker}"))
        .replace("stopGracePeriod: 1s", &format!("stopGracePeriod: {}s", 1 + sequence % 50))
}

fn unchanged_apply(_worker: usize, _sequence: u64) -> String {
    fake_container_manifest("seed-0")
}

/// Milliseconds with the precision sub-millisecond latencies need.
fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args = Args::from_env();
    let connections: usize = args.get("connections", 8);
    let secs: u64 = args.get("secs", 5);
    let objects: usize = args.get("objects", 100);
    let state = support::temp_dir("berth-api-bench");
    let state_path = state.path().to_str().unwrap().to_string();
    let mut args = vec!["--engine", "fake", "--state-dir", &state_path];
    args.extend_from_slice(&support::FREE_PORTS);
    let mut berth = Berth::spawn(&args, "info");
    let line = berth.wait_for(Duration::from_secs(30), |l| l.message.starts_with("REST API on http://"));
    let address = line.message.trim_start_matches("REST API on http://").to_string();
    let token = std::fs::read_to_string(state.path().join("token")).unwrap().trim().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let seed: Vec<String> = (0..objects).map(|i| fake_container_manifest(&format!("seed-{i}"))).collect();
        let client = berth::client::Client::new(&format!("http://{address}"), Some(token.clone())).unwrap();
        // In requests of 1,000 documents, berth's per-request limit.
        for chunk in seed.chunks(1_000) {
            let body = berth::client::Body { content_type: "application/yaml", bytes: chunk.join("---\n").into() };
            let _: serde_json::Value = client.json(hyper::Method::POST, "/apply", Some(body)).await.expect("seeding");
        }
    });
    let prefix = "/apis/berth.dev/v1alpha1";
    let scenarios = [
        Scenario { name: "GET /healthz (floor)", method: "GET", path: "/healthz".into(), body: None },
        Scenario {
            name: "GET one object",
            method: "GET",
            path: format!("{prefix}/namespaces/default/containers/seed-0"),
            body: None,
        },
        Scenario { name: "GET list", method: "GET", path: format!("{prefix}/containers"), body: None },
        Scenario { name: "POST /apply unchanged", method: "POST", path: "/apply".into(), body: Some(unchanged_apply) },
        Scenario { name: "POST /apply writing", method: "POST", path: "/apply".into(), body: Some(changing_apply) },
    ];
    println!("berth REST API on loopback, fake engine, {objects} Containers stored, {connections} keep-alive connections, {secs} s each");
    println!(
        "{:<24} {:>10} {:>9} {:>9} {:>9} {:>12} {:>10}",
        "scenario", "req/s", "p50", "p99", "errors", "vs floor/s", "p50 ratio"
    );
    let mut floor: Option<(f64, Duration)> = None;
    for scenario in &scenarios {
        let figures = runtime.block_on(run(&address, &token, scenario, connections, secs));
        let p50 = percentile(&figures.latencies, 50.0);
        let p99 = percentile(&figures.latencies, 99.0);
        let (floor_rate, floor_p50) = *floor.get_or_insert((figures.per_second(), p50));
        println!(
            "{:<24} {:>10.0} {:>9} {:>9} {:>9} {:>11.2}x {:>9.1}x",
            scenario.name,
            figures.per_second(),
            ms(p50),
            ms(p99),
            figures.errors,
            figures.per_second() / floor_rate,
            p50.as_secs_f64() / floor_p50.as_secs_f64()
        );
    }
    berth.stop();
}
