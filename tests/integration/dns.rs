//! The DNS server over real UDP and TCP sockets: automatic and declared
//! records, conflicts, updates, forwarding, malformed packets.

use std::sync::Arc;
use std::time::Duration;

use berth::api::{Kind, ObjectKey};
use berth::dns::{DnsConfig, DnsReport, DnsServer, RecordProblem, Upstream};
use berth::endpoints::EndpointSet;
use berth::engine::Health;
use berth::store::Store;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::sync::watch;

use crate::support::controller::poll_until;
use crate::support::served::{
    ask_tcp, ask_udp, ask_udp_from, data, endpoint, fake_upstream, object, put, rcode, store,
};

struct Running {
    address: std::net::SocketAddr,
    endpoints: watch::Sender<Arc<EndpointSet>>,
    reports: watch::Receiver<Arc<DnsReport>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(store: &Store, set: EndpointSet, upstream: Upstream) -> Running {
    start_with(store, set, upstream, None).await
}

async fn start_with(store: &Store, set: EndpointSet, upstream: Upstream, on_networks: Option<u16>) -> Running {
    let listen = "127.0.0.1:0".parse().unwrap();
    start_on(store, set, DnsConfig { listen, zone: "berth.internal".into(), upstream, on_networks, allow: Vec::new() })
        .await
}

async fn start_on(store: &Store, set: EndpointSet, config: DnsConfig) -> Running {
    let server = DnsServer::bind(&config).await.expect("bind");
    let address = server.local_addr();
    let (endpoints, receiver) = watch::channel(Arc::new(set));
    let (reports_tx, reports) = watch::channel(Arc::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(store.clone(), receiver, reports_tx, async move {
        let _ = stopped.await;
    }));
    Running { address, endpoints, reports, _stop: stop }
}

fn web_replicas() -> EndpointSet {
    let mut unhealthy = endpoint("web", 2, "10.1.0.4");
    unhealthy.health = Some(Health::Unhealthy);
    EndpointSet::new(vec![endpoint("web", 0, "10.1.0.2"), endpoint("web", 1, "10.1.0.3"), unhealthy])
}

/// Waits until `check` holds for a fresh answer (the zones are rebuilt
/// asynchronously after a change; this bounds how long that takes).
async fn answered<F: Fn(&hickory_proto::op::Message) -> bool>(
    server: std::net::SocketAddr,
    name: &str,
    rtype: RecordType,
    check: F,
) -> hickory_proto::op::Message {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let answer = ask_udp(server, name, rtype).await;
        if check(&answer) || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn automatic_records_name_every_ready_replica_and_each_one() {
    let (_dir, store) = store();
    let dns = start(&store, web_replicas(), Upstream::Off).await;
    let all = answered(dns.address, "web.default.berth.internal.", RecordType::A, |m| m.answers.len() == 2).await;
    assert_eq!(data(&all), ["10.1.0.2", "10.1.0.3"], "the unhealthy replica is left out");
    assert!(all.metadata.authoritative);
    assert!(all.answers.iter().all(|r| r.ttl <= 5), "automatic records have a low TTL");
    let one = ask_tcp(dns.address, "1.web.default.berth.internal.", RecordType::A).await;
    assert_eq!(data(&one), ["10.1.0.3"]);
    let missing = ask_udp(dns.address, "2.web.default.berth.internal.", RecordType::A).await;
    assert_eq!(rcode(&missing), ResponseCode::NXDomain);
}

#[tokio::test]
async fn declared_records_static_and_by_selector() {
    let (_dir, store) = store();
    put(
        &store,
        [
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: db}, spec: {type: A, targets: [192.0.2.10, 192.0.2.11]}}"),
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: www}, spec: {type: CNAME, targets: [web.default]}}"),
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: note}, spec: {type: TXT, targets: [hello there]}}"),
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: srv}, spec: {name: _http._tcp.web, type: SRV, selector: {matchLabels: {app: web}}, port: 8080, ttl: 7}}"),
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: front}, spec: {type: A, selector: {matchLabels: {app: web}}, network: app}}"),
        ],
    );
    let dns = start(&store, web_replicas(), Upstream::Off).await;
    let db = answered(dns.address, "db.berth.internal.", RecordType::A, |m| !m.answers.is_empty()).await;
    assert_eq!(data(&db), ["192.0.2.10", "192.0.2.11"]);
    assert!(db.answers.iter().all(|r| r.ttl == 30), "default TTL of declared records");
    let www = ask_udp(dns.address, "www.berth.internal.", RecordType::A).await;
    assert_eq!(
        data(&www),
        ["10.1.0.2", "10.1.0.3", "web.default.berth.internal."],
        "the CNAME and its target's addresses"
    );
    let note = ask_tcp(dns.address, "note.berth.internal.", RecordType::TXT).await;
    assert_eq!(data(&note), ["hello there"]);
    let srv = ask_udp(dns.address, "_http._tcp.web.berth.internal.", RecordType::SRV).await;
    assert_eq!(data(&srv), ["10 10 8080 0.web.default.berth.internal.", "10 10 8080 1.web.default.berth.internal."]);
    assert!(srv.answers.iter().all(|r| r.ttl == 7));
    let front = ask_udp(dns.address, "front.berth.internal.", RecordType::A).await;
    assert_eq!(data(&front), ["10.1.0.2", "10.1.0.3"]);
    let report = dns.reports.borrow().clone();
    let srv_report = &report[&ObjectKey::new(Kind::DnsRecord, "default", "srv")];
    assert_eq!(srv_report.fqdn, "_http._tcp.web.berth.internal.");
    assert_eq!(srv_report.targets.len(), 2);
}

#[tokio::test]
async fn the_older_record_keeps_a_name_and_the_newer_reports_the_conflict() {
    let (_dir, store) = store();
    put(
        &store,
        [
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: first}, spec: {name: shared, type: A, targets: [192.0.2.1]}}"),
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: second}, spec: {name: shared, type: A, targets: [192.0.2.2]}}"),
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: alias}, spec: {name: shared, type: CNAME, targets: [elsewhere.example.]}}"),
            object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: text}, spec: {name: shared, type: TXT, targets: [fine]}}"),
        ],
    );
    let mut dns = start(&store, EndpointSet::default(), Upstream::Off).await;
    let answer = answered(dns.address, "shared.berth.internal.", RecordType::A, |m| !m.answers.is_empty()).await;
    assert_eq!(data(&answer), ["192.0.2.1"]);
    let report = dns.reports.wait_for(|r| r.len() == 4).await.expect("reports").clone();
    let first = ObjectKey::new(Kind::DnsRecord, "default", "first");
    let problem = |name: &str| report[&ObjectKey::new(Kind::DnsRecord, "default", name)].problem.clone();
    assert_eq!(problem("first"), None);
    assert_eq!(problem("second"), Some(RecordProblem::Conflict(first.clone())));
    assert_eq!(problem("alias"), Some(RecordProblem::Conflict(first)), "a CNAME cannot share a name");
    assert_eq!(problem("text"), None, "another type may share the name");
}

#[tokio::test]
async fn a_change_is_seen_by_the_next_query() {
    let (_dir, store) = store();
    let dns = start(&store, web_replicas(), Upstream::Off).await;
    answered(dns.address, "web.default.berth.internal.", RecordType::A, |m| m.answers.len() == 2).await;
    dns.endpoints.send_replace(Arc::new(EndpointSet::new(vec![endpoint("web", 0, "10.1.0.9")])));
    let after = answered(dns.address, "web.default.berth.internal.", RecordType::A, |m| data(m) == ["10.1.0.9"]).await;
    assert_eq!(data(&after), ["10.1.0.9"], "the replaced set within 2 s");
    put(&store, [object("{apiVersion: berth.dev/v1alpha1, kind: DnsRecord, metadata: {name: late}, spec: {type: A, targets: [192.0.2.77]}}")]);
    let late = answered(dns.address, "late.berth.internal.", RecordType::A, |m| !m.answers.is_empty()).await;
    assert_eq!(data(&late), ["192.0.2.77"]);
}

/// `--dns-on-networks`: the same answers on each live Network's gateway
/// (here loopback addresses standing in for bridges), and no longer once
/// the Network is being deleted.
#[tokio::test]
async fn the_gateways_of_the_networks_answer_until_their_network_goes() {
    let (_dir, store) = store();
    let network = |name: &str| {
        object(&format!("{{apiVersion: berth.dev/v1alpha1, kind: Network, metadata: {{name: {name}}}, spec: {{}}}}"))
    };
    put(&store, [network("front"), network("back")]);
    let gateway_of = |name: &str, ip: &str| {
        let key = ObjectKey::new(Kind::Network, "default", name);
        store.commit(berth::store::WriteBatch::new().status(key, serde_json::json!({"gateways": [ip]}))).unwrap();
    };
    gateway_of("front", "127.0.0.2");
    // A port free on the loopback addresses, as 53 is on a fresh bridge.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _dns = start_with(&store, web_replicas(), Upstream::Off, Some(port)).await;
    let front: std::net::SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let back: std::net::SocketAddr = format!("127.0.0.3:{port}").parse().unwrap();
    let name = "web.default.berth.internal.";
    let answer = answered(front, name, RecordType::A, |m| m.answers.len() == 2).await;
    assert_eq!(data(&answer), ["10.1.0.2", "10.1.0.3"]);
    gateway_of("back", "127.0.0.3");
    let answer = answered(back, name, RecordType::A, |m| m.answers.len() == 2).await;
    assert_eq!(data(&answer), ["10.1.0.2", "10.1.0.3"], "a network's gateway is served once its status has it");
    assert_eq!(data(&ask_tcp(back, name, RecordType::A).await), ["10.1.0.2", "10.1.0.3"], "over TCP too");

    store.commit(berth::store::WriteBatch::new().delete(ObjectKey::new(Kind::Network, "default", "back"))).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(back).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "{back} still answers after its network went");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(data(&ask_udp(front, name, RecordType::A).await), ["10.1.0.2", "10.1.0.3"], "the other stays");
}

#[tokio::test]
async fn other_names_are_forwarded_or_refused() {
    let (_dir, store) = store();
    let upstream = fake_upstream("198.51.100.7".parse().unwrap()).await;
    let forwarding = start(&store, EndpointSet::default(), Upstream::Servers(vec![upstream])).await;
    let forwarded = ask_udp(forwarding.address, "example.com.", RecordType::A).await;
    assert_eq!(rcode(&forwarded), ResponseCode::NoError);
    assert_eq!(data(&forwarded), ["198.51.100.7"]);
    let refusing = start(&store, EndpointSet::default(), Upstream::Off).await;
    let refused = ask_udp(refusing.address, "example.com.", RecordType::A).await;
    assert_eq!(rcode(&refused), ResponseCode::Refused);
}

/// An address of this host that is not loopback (a client the DNS server
/// must not take for a local one).
fn non_loopback_address() -> std::net::IpAddr {
    let output = std::process::Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output();
    let text = String::from_utf8_lossy(&output.expect("`ip addr` (iproute2) runs").stdout).into_owned();
    let address = text.split_whitespace().skip_while(|word| *word != "inet").nth(1);
    let address = address.and_then(|cidr| cidr.split('/').next()?.parse().ok());
    address.unwrap_or_else(|| panic!("this host has no global IPv4 address to test with:\n{text}"))
}

/// Forwarding is for loopback, berth's own networks and `--dns-allow`:
/// another client gets berth's names but REFUSED for the rest, until its
/// address is on a berth Network's subnet or allowed.
#[tokio::test]
async fn other_names_are_forwarded_only_for_local_clients_and_allowed_ranges() {
    let (_dir, store) = store();
    let upstream = fake_upstream("198.51.100.7".parse().unwrap()).await;
    let stranger = non_loopback_address();
    let config = |allow: Vec<ipnet::IpNet>| DnsConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        zone: "berth.internal".into(),
        upstream: Upstream::Servers(vec![upstream]),
        on_networks: None,
        allow,
    };
    let dns = start_on(&store, web_replicas(), config(Vec::new())).await;
    let at = |ip: std::net::IpAddr| std::net::SocketAddr::new(ip, dns.address.port());
    let local = ask_udp(at("127.0.0.1".parse().unwrap()), "example.com.", RecordType::A).await;
    assert_eq!(data(&local), ["198.51.100.7"], "loopback is forwarded for");
    let refused = ask_udp_from(stranger, at(stranger), "example.com.", RecordType::A).await;
    assert_eq!(rcode(&refused), ResponseCode::Refused, "{stranger} had a name forwarded");
    let own = ask_udp_from(stranger, at(stranger), "web.default.berth.internal.", RecordType::A).await;
    assert_eq!(data(&own), ["10.1.0.2", "10.1.0.3"], "berth's own names are answered to anyone");

    // On a berth Network's subnet, the client is one of berth's containers.
    put(&store, [object("{apiVersion: berth.dev/v1alpha1, kind: Network, metadata: {name: lan}, spec: {}}")]);
    let key = ObjectKey::new(Kind::Network, "default", "lan");
    let subnet = format!("{stranger}/32");
    store.commit(berth::store::WriteBatch::new().status(key, serde_json::json!({"subnets": [subnet]}))).unwrap();
    let forwarded = poll_until(Duration::from_secs(5), || async {
        let answer = ask_udp_from(stranger, at(stranger), "example.com.", RecordType::A).await;
        (rcode(&answer) == ResponseCode::NoError).then_some(answer)
    })
    .await
    .expect("forwarded once the client is on a berth Network");
    assert_eq!(data(&forwarded), ["198.51.100.7"]);

    let (_other_dir, empty) = crate::support::served::store();
    let allowing = start_on(&empty, web_replicas(), config(vec![format!("{stranger}/32").parse().unwrap()])).await;
    let at = std::net::SocketAddr::new(stranger, allowing.address.port());
    assert_eq!(data(&ask_udp_from(stranger, at, "example.com.", RecordType::A).await), ["198.51.100.7"]);
}

#[tokio::test]
async fn malformed_packets_do_no_harm() {
    let (_dir, store) = store();
    let dns = start(&store, web_replicas(), Upstream::Off).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for garbage in [
        &b""[..],
        b"\x00",
        b"\x12\x34\x01\x00\x00\x01",
        &[0xffu8; 600][..],
        b"\x12\x34\x01\x00\x00\x05\x00\x00\x00\x00\x00\x00\x03www",
    ] {
        socket.send_to(garbage, dns.address).await.unwrap();
    }
    let mut tcp = tokio::net::TcpStream::connect(dns.address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"\x00\x04\xde\xad\xbe\xef").await.unwrap();
    let answer = answered(dns.address, "web.default.berth.internal.", RecordType::A, |m| m.answers.len() == 2).await;
    assert_eq!(data(&answer), ["10.1.0.2", "10.1.0.3"], "still answering");
}
