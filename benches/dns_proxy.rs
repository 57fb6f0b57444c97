//! berth's DNS server against dnsmasq, and berth's HTTP proxy against
//! nginx, on loopback, in one run.
//!
//! DNS: berth's server (in this process, release build) serves the
//! automatic A records of `--names` Containers with two replicas each
//! (`c<i>.bench.berth.internal.` → two addresses); dnsmasq serves the same
//! names and addresses from a hosts file. `dnsperf` sends the same query
//! list to each for `--secs` seconds; queries per second and the ratio are
//! printed.
//!
//! Proxy: the backend is an nginx answering `return 200 "ok"` (a static
//! reply from memory, far faster than either proxy, so the proxy is what is
//! measured). berth's proxy (a Route for `bench.test` whose backend is a
//! Container "replica" at 127.0.0.1) and another nginx as a reverse proxy
//! (upstream keep-alive, the same X-Forwarded headers) sit in front of it,
//! each in its own process as a container's backend would be. `wrk` drives
//! each with `--connections` keep-alive connections for `--secs` seconds,
//! `--rounds` times, alternating which goes first (the machines are
//! noisy); requests per second, p99 latency, the ratio per round and the
//! median ratio are printed (goal: berth at least 0.8x nginx).
//!
//! Needs the Debian packages `dnsperf`, `dnsmasq-base` (or `dnsmasq`),
//! `nginx` and `wrk`. Options: `--secs 10 --names 100 --connections 32
//! --rounds 3 --workers N` (proxy threads; default one per core) and
//! `--only dns|proxy` (one half alone, e.g. under a profiler).

mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berth::api::{AnyObject, Kind, ObjectKey};
use berth::dns::{DnsConfig, DnsServer, Upstream};
use berth::endpoints::{Endpoint, EndpointSet};
use berth::proxy::{Proxy, ProxyConfig};
use berth::store::{Store, WriteBatch};
use support::Args;
use tokio::sync::watch;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn replica(name: &str, replica: u32, ip: &str) -> Endpoint {
    let container = ObjectKey::new(Kind::Container, "bench", name);
    let labels = BTreeMap::from([("app".into(), name.into())]);
    Endpoint::running(container, replica, labels, vec![("app".into(), ip.parse().expect("an IP"))])
}

/// Kills the child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

/// The number after `label` on the line of `text` that has it.
fn figure(text: &str, label: &str) -> f64 {
    text.lines()
        .find_map(|line| line.split_once(label).map(|(_, rest)| rest.trim().to_string()))
        .and_then(|rest| rest.split_whitespace().next().map(str::to_string))
        .map(|number| {
            let (digits, unit) = number.split_at(number.find(|c: char| c.is_alphabetic()).unwrap_or(number.len()));
            let value: f64 = digits.parse().unwrap_or(f64::NAN);
            match unit {
                "us" => value / 1000.0,
                "s" => value * 1000.0,
                _ => value,
            }
        })
        .unwrap_or(f64::NAN)
}

fn dnsperf(port: u16, queries: &Path, secs: u64) -> f64 {
    let output = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(queries)
        .args(["-l", &secs.to_string(), "-c", "4", "-q", "200"])
        .output()
        .expect("running dnsperf (apt-get install dnsperf)");
    let text = String::from_utf8_lossy(&output.stdout);
    let lost = figure(&text, "Queries lost:");
    if lost > 0.0 {
        eprintln!("dnsperf: {lost} queries lost on port {port}");
    }
    figure(&text, "Queries per second:")
}

/// Requests per second and p99 in ms.
fn wrk(port: u16, connections: u32, secs: u64) -> (f64, f64) {
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{secs}s"), "--latency", "-H", "Host: bench.test"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("running wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("wrk on {port}:\n{text}");
    }
    (figure(&text, "Requests/sec:"), figure(&text, "99%"))
}

fn main() {
    let args = Args::from_env();
    let secs: u64 = args.get("secs", 10);
    let names: usize = args.get("names", 100);
    let connections: u32 = args.get("connections", 32);
    let only: String = args.get("only", String::new());
    let rounds: usize = args.get::<usize>("rounds", 3).max(1);
    let workers: usize = args.get("workers", berth::proxy::default_workers());
    let dir = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = Store::open(&dir.path().join("state")).expect("store");

    // The same names and addresses for berth and dnsmasq.
    let mut endpoints = Vec::new();
    let mut hosts = String::new();
    let mut queries = String::new();
    for i in 0..names {
        for r in 0..2u32 {
            let ip = format!("10.{}.{}.{}", 1 + r, i / 250, 1 + i % 250);
            hosts.push_str(&format!("{ip} c{i}.bench.berth.internal\n"));
            endpoints.push(replica(&format!("c{i}"), r, &ip));
        }
        queries.push_str(&format!("c{i}.bench.berth.internal A\n"));
    }
    let backend_port = free_port();
    endpoints.push(replica("backend", 0, "127.0.0.1"));
    let route = format!(
        "{{apiVersion: berth.dev/v1alpha1, kind: Route, metadata: {{name: bench, namespace: bench}}, \
         spec: {{hostnames: [bench.test], rules: [{{backends: [{{selector: {{matchLabels: {{app: backend}}}}, port: {backend_port}}}]}}]}}}}"
    );
    let value: serde_json::Value = serde_yaml::from_str(&route).expect("route YAML");
    store.commit(WriteBatch::new().put(AnyObject::from_json(value).expect("a Route"))).expect("commit");
    let hosts_file = dir.path().join("hosts");
    let queries_file = dir.path().join("queries");
    std::fs::write(&hosts_file, hosts).expect("hosts file");
    std::fs::write(&queries_file, queries).expect("queries file");

    let (_endpoints_tx, endpoints_rx) = watch::channel(Arc::new(EndpointSet::new(endpoints)));
    let dns_port = free_port();
    let proxy_port = free_port();
    runtime.block_on(async {
        let listen: SocketAddr = ([127, 0, 0, 1], dns_port).into();
        let dns = DnsServer::bind(&DnsConfig {
            listen,
            zone: "berth.internal".into(),
            upstream: Upstream::Off,
            on_networks: None,
            allow: Vec::new(),
        })
        .await
        .expect("berth DNS");
        let (reports, _) = watch::channel(Arc::default());
        tokio::spawn(dns.run(store.clone(), endpoints_rx.clone(), reports, std::future::pending()));
        let config = ProxyConfig {
            listen: ([127, 0, 0, 1], proxy_port).into(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            workers,
            limits: berth::connections::Limits::default(),
            trusted_peers: Vec::new(),
        };
        let proxy = Proxy::bind(&config).await.expect("berth proxy");
        let (reports, _) = watch::channel(Arc::default());
        tokio::spawn(proxy.run(store.clone(), endpoints_rx.clone(), reports, std::future::pending()));
    });

    // dnsmasq on the same records.
    let dnsmasq_port = free_port();
    let _dnsmasq = Guard(
        Command::new("dnsmasq")
            .args(["-k", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1"])
            .arg(format!("--port={dnsmasq_port}"))
            .arg(format!("--addn-hosts={}", hosts_file.display()))
            .args(["--user=root", "--pid-file=", "--cache-size=10000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dnsmasq (apt-get install dnsmasq-base)"),
    );

    // nginx twice: the backend, and in a process of its own the reverse
    // proxy, so that nginx, like berth, reaches the backend in another
    // process (in one nginx, the proxy would answer from its own worker).
    let nginx_port = free_port();
    let _backend = nginx(
        dir.path(),
        "backend",
        &format!("server {{ listen 127.0.0.1:{backend_port}; keepalive_requests 1000000; location / {{ return 200 \"ok\\n\"; }} }}"),
    );
    let _nginx = nginx(
        dir.path(),
        "proxy",
        &format!(
            "upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{nginx_port}; keepalive_requests 1000000;
    location / {{
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_set_header Host $http_host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host;
    }}
  }}"
        ),
    );
    for port in [proxy_port, nginx_port, backend_port] {
        wait_for_port(port);
    }
    std::thread::sleep(Duration::from_millis(500));

    if only != "proxy" {
        dns_figures(names, secs, dns_port, dnsmasq_port, &queries_file);
    }
    if only != "dns" {
        proxy_figures(connections, secs, rounds, proxy_port, nginx_port, backend_port);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// An nginx with `server` blocks, its files under `dir/name`.
fn nginx(dir: &Path, name: &str, servers: &str) -> Guard {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("nginx directory");
    let conf = format!(
        "worker_processes auto; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir}; uwsgi_temp_path {dir}; scgi_temp_path {dir};
  {servers}
}}
",
        dir = dir.display()
    );
    let conf_file = dir.join("nginx.conf");
    std::fs::write(&conf_file, conf).expect("nginx.conf");
    Guard(
        Command::new("nginx")
            .arg("-c")
            .arg(&conf_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx (apt-get install nginx)"),
    )
}

fn dns_figures(names: usize, secs: u64, dns_port: u16, dnsmasq_port: u16, queries_file: &Path) {
    println!("DNS: {names} names x 2 A records, dnsperf -c 4 -q 200 for {secs} s each");
    let berth_qps = dnsperf(dns_port, queries_file, secs);
    let dnsmasq_qps = dnsperf(dnsmasq_port, queries_file, secs);
    println!("| server | queries/s | ratio to dnsmasq |");
    println!("|---|---|---|");
    println!("| berth (hickory-server) | {berth_qps:.0} | {:.2}x |", berth_qps / dnsmasq_qps);
    println!("| dnsmasq | {dnsmasq_qps:.0} | 1.00x |");
    println!();
}

fn proxy_figures(connections: u32, secs: u64, rounds: usize, proxy_port: u16, nginx_port: u16, backend_port: u16) {
    println!(
        "Proxy: backend nginx `return 200` on 127.0.0.1:{backend_port} (its own process); \
         wrk -t2 -c{connections} for {secs} s per run, {rounds} rounds alternating which proxy goes first"
    );
    let (direct_rps, direct_p99) = wrk(backend_port, connections, secs);
    println!("| round | berth req/s | berth p99 ms | nginx req/s | nginx p99 ms | berth/nginx (req/s) |");
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (berth, nginx) = if round % 2 == 0 {
            let berth = wrk(proxy_port, connections, secs);
            (berth, wrk(nginx_port, connections, secs))
        } else {
            let nginx = wrk(nginx_port, connections, secs);
            (wrk(proxy_port, connections, secs), nginx)
        };
        let ratio = berth.0 / nginx.0;
        ratios.push(ratio);
        println!("| {} | {:.0} | {:.2} | {:.0} | {:.2} | {ratio:.2}x |", round + 1, berth.0, berth.1, nginx.0, nginx.1);
    }
    ratios.sort_by(f64::total_cmp);
    println!();
    println!("berth proxy / nginx proxy, median of {rounds} rounds: {:.2}x (goal: 0.80x)", ratios[rounds / 2]);
    println!("backend direct (no proxy): {direct_rps:.0} req/s, p99 {direct_p99:.2} ms");
}
