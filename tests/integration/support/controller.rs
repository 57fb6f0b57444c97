//! Running a controller against a store and an engine in tests.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::api::{AnyObject, ConditionStatus, ObjectKey, Source};
use berth::controller::runtime::Shutdown;
use berth::controller::{Controller, ControllerConfig};
use berth::engine::Engine;
use berth::store::{Store, WriteBatch};
use tokio::sync::watch;

/// A controller running in the background.
pub struct Running {
    shutdown: watch::Sender<Shutdown>,
    task: tokio::task::JoinHandle<berth::store::Result<()>>,
}

impl Running {
    /// Starts a controller on `store` and `engine`.
    pub fn start(store: &Store, engine: Arc<dyn Engine>) -> Running {
        Running::start_with(store, engine, ControllerConfig::default())
    }

    /// Starts a controller with `config` (its resyncs put off for the test).
    pub fn start_with(store: &Store, engine: Arc<dyn Engine>, config: ControllerConfig) -> Running {
        let config = ControllerConfig { resync_interval: Duration::from_secs(3600), ..config };
        let controller = Controller::new(store.clone(), engine, config).expect("controller");
        let (shutdown, receiver) = watch::channel(Shutdown::Running);
        Running { shutdown, task: tokio::spawn(controller.run(receiver)) }
    }

    /// Stops it abruptly, as a crash would (running reconciles are aborted).
    pub async fn crash(self) {
        let _ = self.shutdown.send(Shutdown::Force);
        let _ = self.task.await;
    }

    /// Stops it gracefully.
    pub async fn stop(self) {
        let _ = self.shutdown.send(Shutdown::Drain);
        self.task.await.expect("controller task").expect("controller ran");
    }
}

/// Writes `objects` to the store as one source would.
pub fn apply(store: &Store, objects: impl IntoIterator<Item = AnyObject>) {
    let mut batch = WriteBatch::new();
    for mut object in objects {
        object.metadata_mut().source.get_or_insert_with(Source::api);
        batch = batch.put(object);
    }
    store.commit(batch).expect("apply");
}

/// The examples, loaded and defaulted.
pub fn examples() -> Vec<AnyObject> {
    berth::manifest::load_paths(&[super::repo_path("examples")])
        .expect("examples load")
        .objects
        .into_iter()
        .map(|o| o.object)
        .collect()
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(timeout, check).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `check` every 20 ms until it returns `Some`; `None` once `timeout`
/// has passed (for callers that add their own context to the failure).
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the stored object has `Ready=True`.
pub fn is_ready(store: &Store, key: &str) -> bool {
    let key = ObjectKey::parse(key).expect("key");
    let object = store.get(&key).ok().flatten();
    object
        .as_ref()
        .and_then(|o| o.status_common())
        .and_then(|s| s.condition("Ready"))
        .is_some_and(|c| c.status == ConditionStatus::True)
}
