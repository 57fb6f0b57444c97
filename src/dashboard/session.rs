//! Dashboard sessions: the API token pasted once on the login page buys an
//! opaque session id in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure`
//! over TLS), so the page's scripts never hold the token and a stolen page
//! cannot read it.
//!
//! A cookie travels with any request the browser makes, so the cookie alone
//! is not enough for what changes state: every request that is not a plain
//! read, and every WebSocket (a terminal), must also come from the page's
//! own origin (`Origin` equal to the request's `Host`). `SameSite=Strict`
//! already keeps other sites' requests cookie-less; the origin check holds
//! even for a browser that ignores it. Sessions live in memory (a restart
//! logs everyone out), at most [`MAX_SESSIONS`] (the oldest goes), each for
//! [`IDLE_LIMIT`] without use and [`LIFETIME`] at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderMap, Method};
use tokio::time::Instant;

/// The cookie's name.
pub const COOKIE: &str = "berth_session";
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 256;
/// A session unused this long ends.
pub const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);
/// No session outlives this.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// One login.
#[derive(Clone, Copy, Debug)]
struct Session {
    created: Instant,
    used: Instant,
}

/// The sessions of one server (every listener shares them).
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Session>>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session; returns its id (256 random bits, hex).
    pub fn open(&self) -> String {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the system has randomness");
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| alive(s, now));
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.used).map(|(id, _)| id.clone()) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), Session { created: now, used: now });
        id
    }

    /// Whether the request's cookie names a live session (which counts as
    /// a use). Returns a short, non-secret name for the audit log.
    pub fn check(&self, headers: &HeaderMap) -> Option<String> {
        let id = cookie(headers)?;
        let now = Instant::now();
        let mut sessions = self.lock();
        let session = sessions.get_mut(&id)?;
        if !alive(session, now) {
            sessions.remove(&id);
            return None;
        }
        session.used = now;
        Some(format!("dashboard session {}", &id[..8]))
    }

    /// Ends the request's session, if it has one.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.lock().remove(&id);
        }
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.duration_since(session.used) < IDLE_LIMIT && now.duration_since(session.created) < LIFETIME
}

/// The session id in the request's cookies.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(_, value)| value.to_string())
}

/// The `Set-Cookie` value that opens session `id`.
pub fn set_cookie(id: &str, over_tls: bool) -> String {
    let secure = if over_tls { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LIFETIME.as_secs())
}

/// The `Set-Cookie` value that ends it in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether a cookie-authenticated request needs the origin check: it
/// changes state, or it opens a WebSocket.
pub fn needs_same_origin(method: &Method, headers: &HeaderMap) -> bool {
    let upgrade =
        headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    upgrade || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request comes from a page of this server: its `Origin`'s
/// host and port are the request's `Host`. A request without `Origin` is
/// refused (browsers send it with every such request).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends_on_close() {
        let sessions = Sessions::default();
        let id = sessions.open();
        let request = headers(&[("cookie", &format!("theme=dark; {COOKIE}={id}"))]);
        assert!(sessions.check(&request).unwrap().starts_with("dashboard session "));
        assert!(sessions.check(&headers(&[("cookie", &format!("{COOKIE}={}", "0".repeat(64)))])).is_none());
        assert!(sessions.check(&headers(&[("cookie", "berth_session=short")])).is_none());
        sessions.close(&request);
        assert!(sessions.check(&request).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::default();
        let first = sessions.open();
        for _ in 0..MAX_SESSIONS {
            sessions.open();
        }
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        assert!(sessions.check(&headers(&[("cookie", &format!("{COOKIE}={first}"))])).is_none(), "the oldest went");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_expires() {
        let sessions = Sessions::default();
        let cookie = format!("{COOKIE}={}", sessions.open());
        tokio::time::advance(IDLE_LIMIT / 2).await;
        assert!(sessions.check(&headers(&[("cookie", &cookie)])).is_some());
        tokio::time::advance(IDLE_LIMIT + Duration::from_secs(1)).await;
        assert!(sessions.check(&headers(&[("cookie", &cookie)])).is_none());
    }

    #[test]
    fn the_origin_must_be_the_host() {
        assert!(same_origin(&headers(&[("origin", "http://127.0.0.1:7777"), ("host", "127.0.0.1:7777")])));
        assert!(same_origin(&headers(&[("origin", "https://berth.lan:7443"), ("host", "berth.lan:7443")])));
        assert!(!same_origin(&headers(&[("origin", "http://evil.example"), ("host", "127.0.0.1:7777")])));
        assert!(!same_origin(&headers(&[("origin", "null"), ("host", "127.0.0.1:7777")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:7777")])));
        assert!(needs_same_origin(&Method::POST, &HeaderMap::new()));
        assert!(needs_same_origin(&Method::GET, &headers(&[("upgrade", "websocket")])));
        assert!(!needs_same_origin(&Method::GET, &HeaderMap::new()));
    }
}
