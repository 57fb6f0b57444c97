//! Fixtures for the DNS server and proxy tests: hand-made endpoint sets,
//! objects from YAML, and a DNS client over real sockets.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use berth::api::{AnyObject, Kind, ObjectKey};
use berth::endpoints::Endpoint;
use berth::store::{Store, WriteBatch};
use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running replica of Container `default/<name>` labelled `app: <name>`,
/// at `ip` on network `app`.
pub fn endpoint(name: &str, replica: u32, ip: &str) -> Endpoint {
    let container = ObjectKey::new(Kind::Container, "default", name);
    let labels = BTreeMap::from([("app".into(), name.into())]);
    Endpoint::running(container, replica, labels, vec![("app".into(), ip.parse().expect("an IP"))])
}

/// An object from YAML.
pub fn object(yaml: &str) -> AnyObject {
    let value: serde_json::Value = serde_yaml::from_str(yaml).expect("YAML");
    AnyObject::from_json(value).expect("an object")
}

/// Writes objects one commit each (so their creation times are ordered).
pub fn put(store: &Store, objects: impl IntoIterator<Item = AnyObject>) {
    for object in objects {
        store.commit(WriteBatch::new().put(object)).expect("commit");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A temporary store.
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(dir.path()).expect("store");
    (dir, store)
}

/// A query message.
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).expect("a name"), rtype));
    message
}

/// Asks `server` over UDP.
pub async fn ask_udp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    ask_udp_from("127.0.0.1".parse().unwrap(), server, name, rtype).await
}

/// Asks `server` over UDP from a socket bound to `source`.
pub async fn ask_udp_from(source: std::net::IpAddr, server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let socket = tokio::net::UdpSocket::bind((source, 0)).await.expect("socket");
    let request = query(name, rtype);
    socket.send_to(&request.to_vec().expect("encode"), server).await.expect("send");
    let mut buffer = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .expect("an answer within 5 s")
        .expect("recv");
    let answer = Message::from_vec(&buffer[..n]).expect("a DNS message");
    assert_eq!(answer.metadata.id, request.metadata.id);
    answer
}

/// Asks `server` over TCP.
pub async fn ask_tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut stream = tokio::net::TcpStream::connect(server).await.expect("connect");
    let bytes = query(name, rtype).to_vec().expect("encode");
    stream.write_all(&(bytes.len() as u16).to_be_bytes()).await.expect("write");
    stream.write_all(&bytes).await.expect("write");
    let mut length = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut length)).await.expect("answer").expect("read");
    let mut buffer = vec![0u8; u16::from_be_bytes(length) as usize];
    stream.read_exact(&mut buffer).await.expect("read");
    Message::from_vec(&buffer).expect("a DNS message")
}

/// The answers' data in presentation form, sorted.
pub fn data(message: &Message) -> Vec<String> {
    let mut data: Vec<String> = message.answers.iter().map(|r| r.data.to_string()).collect();
    data.sort();
    data
}

/// The response code.
pub fn rcode(message: &Message) -> ResponseCode {
    message.metadata.response_code
}

/// A tiny upstream resolver: answers every A question with `answer`.
pub async fn fake_upstream(answer: IpAddr) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    let address = socket.local_addr().expect("address");
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
            let Ok(request) = Message::from_vec(&buffer[..n]) else { continue };
            let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            for q in &request.queries {
                response.add_query(q.clone());
                if q.query_type() == RecordType::A {
                    if let IpAddr::V4(v4) = answer {
                        let rdata = hickory_proto::rr::RData::A(v4.into());
                        response.add_answer(hickory_proto::rr::Record::from_rdata(q.name().clone(), 60, rdata));
                    }
                }
            }
            let _ = socket.send_to(&response.to_vec().expect("encode"), from).await;
        }
    });
    address
}

/// GET through the proxy on a fresh connection: (status, body).
pub async fn get(proxy: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(proxy).await.expect("connect to the proxy");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", host)
        .header("keep-alive", "timeout=5")
        .header("connection", "keep-alive")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.expect("a response");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("the body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
