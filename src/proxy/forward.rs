//! One proxied request: route lookup, backend choice, header rewriting,
//! the passive retry, upgrades.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::Uri;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::pool::{Pool, ProxyBody, SendError};
use super::table::RouteTable;

/// What the request handlers of one worker share.
pub(super) struct Forwarder {
    /// The current table, replaced whole by the table builder.
    pub table: Arc<ArcSwap<RouteTable>>,
    /// Keep-alive connections to backends (the worker's own).
    pub pool: Pool,
    /// Longest wait for a backend's response headers.
    pub timeout: Duration,
    /// Peers (other proxies) whose forwarding headers are believed.
    pub trusted_peers: Arc<[ipnet::IpNet]>,
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// A short plain-text answer from the proxy itself.
pub(super) fn answer(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(message + "\n")).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// The host a request is for: the Host header (or the URI's authority),
/// without port, lower case.
fn request_host(request: &Request<Incoming>) -> String {
    let raw = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| request.uri().host());
    let raw = raw.unwrap_or_default();
    let without_port = if let Some(bracketed) = raw.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or(bracketed)
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => raw,
        }
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Proxies one request.
pub(super) async fn handle(
    shared: Arc<Forwarder>,
    mut request: Request<Incoming>,
    client: SocketAddr,
) -> Result<Response<ProxyBody>, Infallible> {
    let host = request_host(&request);
    let path = request.uri().path().to_string();
    let rule = {
        let table = shared.table.load();
        match table.find(&host, &path) {
            Some(rule) => rule.clone(),
            None if table.knows_host(&host) => {
                return Ok(answer(StatusCode::NOT_FOUND, format!("no rule for {host} matches {path}")));
            }
            None => return Ok(answer(StatusCode::NOT_FOUND, format!("no route for host `{host}`"))),
        }
    };
    let upgrade = is_upgrade(request.headers()).then(|| {
        let protocol = request.headers().get(header::UPGRADE).cloned();
        (hyper::upgrade::on(&mut request), protocol)
    });
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    let original_host = headers.get(header::HOST).cloned();
    strip_hop_by_hop(&mut headers);
    if let Some((_, Some(protocol))) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    // Forwarding headers from a client are claims, not facts: only a
    // trusted proxy in front may add to them; anyone else's are replaced,
    // so a backend never takes a spoofed address for the client's.
    let trusted = shared.trusted_peers.iter().any(|net| net.contains(&client.ip()));
    if !trusted {
        for name in ["x-real-ip", "forwarded", "x-forwarded-host", "x-forwarded-proto"] {
            headers.remove(name);
        }
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).filter(|_| trusted) {
        Some(earlier) => format!("{earlier}, {}", client.ip()),
        None => client.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(host) = original_host {
        headers.insert("x-forwarded-host", host);
    }
    // Origin-form (`/path?query`), also for a request that came in absolute-form.
    let uri = parts.uri.path_and_query().cloned().map_or_else(|| Uri::from_static("/"), Uri::from);
    // A request without a body can be sent again; one with a body cannot
    // (it is streamed, not kept). A refused connection is retried for any
    // method (nothing was sent), a broken one only for idempotent methods.
    let retryable = body.is_end_stream();
    let mut body = Some(body.boxed());
    let mut exclude = None;
    let route = rule.route_name();
    for attempt in 0..2 {
        let Some(backend) = rule.pick(exclude) else {
            let message = if exclude.is_some() {
                format!("route {route}: backend failed and no other backend is available")
            } else {
                format!("route {route}: no healthy backend")
            };
            return Ok(answer(StatusCode::SERVICE_UNAVAILABLE, message));
        };
        let mut outgoing =
            Request::new(body.take().unwrap_or_else(|| Empty::new().map_err(|never| match never {}).boxed()));
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = uri.clone();
        *outgoing.headers_mut() = headers.clone();
        if !outgoing.headers().contains_key(header::HOST) {
            if let Ok(host) = HeaderValue::from_str(&backend.address.to_string()) {
                outgoing.headers_mut().insert(header::HOST, host);
            }
        }
        // A request another backend could take gets a short connect budget.
        let quick = retryable && attempt == 0 && rule.has_other(backend.address);
        let exchange = async {
            tokio::select! {
                biased;
                sent = shared.pool.send(backend.address, outgoing, quick) => sent,
                () = backend.state.exited() => Err(SendError::Exited),
            }
        };
        match tokio::time::timeout(shared.timeout, exchange).await {
            Err(_) => {
                let message =
                    format!("route {route}: backend {} did not answer within {:?}", backend.address, shared.timeout);
                return Ok(answer(StatusCode::GATEWAY_TIMEOUT, message));
            }
            Ok(Err(SendError::Connect(error))) => {
                backend.state.mark_failed();
                tracing::debug!(route, backend = %backend.address, "connection failed: {error}");
                if retryable && attempt == 0 {
                    exclude = Some(backend.address);
                    continue;
                }
                let message = format!("route {route}: cannot connect to backend {}", backend.address);
                return Ok(answer(StatusCode::BAD_GATEWAY, message));
            }
            Ok(Err(error @ (SendError::Exchange(_) | SendError::Exited))) => {
                tracing::debug!(route, backend = %backend.address, "request failed: {error}");
                // A connection that broke, or whose replica exited, before
                // any answer (a pooled keep-alive connection to a replica
                // that was just killed): a bodiless idempotent request is
                // safe to send elsewhere.
                if retryable && parts.method.is_idempotent() && attempt == 0 {
                    exclude = Some(backend.address);
                    continue;
                }
                let message = format!("route {route}: backend {} failed", backend.address);
                return Ok(answer(StatusCode::BAD_GATEWAY, message));
            }
            Ok(Ok(mut response)) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some((client_side, _)) = upgrade {
                        let backend_side = hyper::upgrade::on(&mut response);
                        tokio::spawn(splice(client_side, backend_side));
                    }
                } else {
                    strip_hop_by_hop(response.headers_mut());
                }
                return Ok(response.map(BodyExt::boxed));
            }
        }
    }
    Ok(answer(StatusCode::BAD_GATEWAY, format!("route {route}: no backend answered")))
}

/// Copies bytes both ways between an upgraded client and backend connection.
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (Ok(client), Ok(backend)) = (client.await, backend.await) else { return };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
}
