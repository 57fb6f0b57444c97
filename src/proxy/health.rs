//! Backend health: active HTTP checks per Route and passive marks from
//! failed connections.
//!
//! A backend is up when its last active checks say so (a new backend starts
//! up: the endpoint set already holds only ready replicas) and no passive
//! mark is pending. A refused or failed connection marks it down for one
//! check interval; `unhealthyThreshold` failed checks in a row take it out
//! until `healthyThreshold` pass. Every change wakes the report writer.
//!
//! A backend whose replica has exited is told so ([`BackendState::exited`]):
//! a request waiting on it goes to another replica at once. A killed
//! replica on a Podman network sends no RST, so otherwise the wait would
//! last until the kernel gives up on the address (about 3 s) or the proxy
//! timeout. A replica that is only draining (asked to stop, still running)
//! is not told: what it has in hand it answers.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

use crate::api::route::RouteHealthCheck;
use crate::api::ObjectKey;

/// Active check settings, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Path requested.
    pub path: String,
    /// Host header sent.
    pub host: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Passes before a down backend is used again.
    pub healthy_threshold: u32,
    /// Failures before a backend is taken out.
    pub unhealthy_threshold: u32,
}

/// How long a passive mark lasts without active checks.
pub const PASSIVE_DOWN: Duration = Duration::from_secs(5);

impl CheckConfig {
    fn from_spec(check: &RouteHealthCheck, hostnames: &[String]) -> Self {
        let duration = |d: Option<&crate::api::DurationSpec>, default| {
            d.and_then(|d| d.duration().ok()).filter(|d| !d.is_zero()).unwrap_or(default)
        };
        let threshold =
            |t: Option<i64>, default| t.and_then(|t| u32::try_from(t).ok()).filter(|t| *t > 0).unwrap_or(default);
        CheckConfig {
            path: check.path.clone().unwrap_or_else(|| "/".into()),
            host: hostnames.iter().find(|h| !h.starts_with('*')).cloned().unwrap_or_default(),
            interval: duration(check.interval.as_ref(), Duration::from_secs(5)),
            timeout: duration(check.timeout.as_ref(), Duration::from_secs(2)),
            healthy_threshold: threshold(check.healthy_threshold, 1),
            unhealthy_threshold: threshold(check.unhealthy_threshold, 2),
        }
    }
}

/// The health of one backend of one Route.
pub struct BackendState {
    /// What the active checks say.
    checked_up: AtomicBool,
    /// Passive mark: down until this many ms after `epoch` (0: none).
    down_until: AtomicU64,
    epoch: Instant,
    /// How long a passive mark lasts.
    passive_window: Duration,
    changed: Arc<Notify>,
    /// Set once its replica's process is gone.
    exited: watch::Sender<bool>,
}

impl BackendState {
    fn new(passive_window: Duration, changed: Arc<Notify>) -> Self {
        BackendState {
            checked_up: AtomicBool::new(true),
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
            passive_window,
            changed,
            exited: watch::Sender::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether requests may go to it.
    pub fn up(&self) -> bool {
        self.checked_up.load(Ordering::Relaxed)
            && self.now_ms() >= self.down_until.load(Ordering::Relaxed)
            && !*self.exited.borrow()
    }

    /// Completes once its replica has exited: nothing it was sent will be
    /// answered.
    pub(super) async fn exited(&self) {
        let mut exited = self.exited.subscribe();
        // The sender is `self`: it outlives the wait.
        let _ = exited.wait_for(|gone| *gone).await;
    }

    /// A connection to it failed: out for one check interval.
    pub fn mark_failed(&self) {
        let until = self.now_ms() + u64::try_from(self.passive_window.as_millis()).unwrap_or(u64::MAX);
        self.down_until.store(until.max(1), Ordering::Relaxed);
        self.changed.notify_one();
        // Up again when the window ends: the report says so then too.
        let changed = self.changed.clone();
        let window = self.passive_window;
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            changed.notify_one();
        });
    }

    fn set_checked(&self, up: bool) {
        let was = self.checked_up.swap(up, Ordering::Relaxed);
        // A passing check also ends a passive mark: the backend answers again.
        let cleared = up && self.down_until.swap(0, Ordering::Relaxed) != 0;
        if was != up || cleared {
            self.changed.notify_one();
        }
    }
}

struct Entry {
    state: Arc<BackendState>,
    config: Option<CheckConfig>,
    checker: Option<AbortHandle>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(checker) = &self.checker {
            checker.abort();
        }
    }
}

/// Health state of every backend, kept across table builds.
pub struct Registry {
    entries: HashMap<(ObjectKey, SocketAddr), Entry>,
    seen: HashSet<(ObjectKey, SocketAddr)>,
    changed: Arc<Notify>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Registry {
    /// An empty registry; `changed` is notified when a backend goes up or down.
    pub fn new(changed: Arc<Notify>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1).build(connector);
        Registry { entries: HashMap::new(), seen: HashSet::new(), changed, client }
    }

    pub(super) fn begin(&mut self) {
        self.seen.clear();
    }

    /// The state of `address` under `route`, started (with its checker) if new.
    pub(super) fn state(
        &mut self,
        route: &ObjectKey,
        address: SocketAddr,
        check: Option<&RouteHealthCheck>,
        hostnames: &[String],
    ) -> Arc<BackendState> {
        let config = check.map(|c| CheckConfig::from_spec(c, hostnames));
        let key = (route.clone(), address);
        self.seen.insert(key.clone());
        if let Some(entry) = self.entries.get(&key).filter(|e| e.config == config) {
            return entry.state.clone();
        }
        let window = config.as_ref().map_or(PASSIVE_DOWN, |c| c.interval);
        let state = Arc::new(BackendState::new(window, self.changed.clone()));
        let checker = config.clone().map(|config| {
            tokio::spawn(check_forever(self.client.clone(), address, config, state.clone())).abort_handle()
        });
        self.entries.insert(key, Entry { state: state.clone(), config, checker });
        state
    }

    /// Drops the backends this build did not see; those whose address no
    /// process answers any more (not in `live`) are told they exited.
    pub(super) fn end(&mut self, live: &HashSet<IpAddr>) {
        let seen = std::mem::take(&mut self.seen);
        self.entries.retain(|key, entry| {
            let kept = seen.contains(key);
            if !kept && !live.contains(&key.1.ip()) {
                entry.state.exited.send_replace(true);
            }
            kept
        });
    }
}

async fn check_forever(
    client: Client<HttpConnector, Empty<Bytes>>,
    address: SocketAddr,
    config: CheckConfig,
    state: Arc<BackendState>,
) {
    let (mut passes, mut failures) = (0u32, 0u32);
    let mut timer = tokio::time::interval(config.interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let mut request = hyper::Request::get(format!("http://{address}{}", config.path));
        if !config.host.is_empty() {
            request = request.header(hyper::header::HOST, &config.host);
        }
        let Ok(request) = request.body(Empty::new()) else { return };
        let passed = matches!(
            tokio::time::timeout(config.timeout, client.request(request)).await,
            Ok(Ok(response)) if response.status().is_success() || response.status().is_redirection()
        );
        if passed {
            (passes, failures) = (passes.saturating_add(1), 0);
            if passes >= config.healthy_threshold {
                state.set_checked(true);
            }
        } else {
            (passes, failures) = (0, failures.saturating_add(1));
            if failures >= config.unhealthy_threshold {
                state.set_checked(false);
            }
        }
    }
}
