//! [`MeteredEngine`]: times every engine call.
//!
//! A decorator rather than code in each backend: Docker, Podman and the fake
//! are timed the same way, and a backend added later is timed without
//! knowing it. The controller wraps whatever engine it is given.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::time::Instant;

use super::families::EngineLabels;
use super::Metrics;
use crate::engine::{
    BuildOutput, BuildRequest, ContainerConfig, ContainerInfo, Engine, EngineError, EngineEvent, EngineInfo,
    ExecRequest, ExecSession, ImageInfo, Labels, NetworkConfig, NetworkInfo, Result, TerminalSize, VolumeConfig,
    VolumeInfo,
};

/// An [`Engine`] that delegates to another and records the duration and
/// outcome of each call in `berth_engine_request_duration_seconds`.
/// For [`Engine::events`] and [`Engine::stream_logs`] only the call that
/// opens the stream is timed, not the stream's life.
pub struct MeteredEngine {
    inner: Arc<dyn Engine>,
    metrics: Metrics,
}

impl MeteredEngine {
    /// Times the calls to `inner` into `metrics`.
    pub fn new(inner: Arc<dyn Engine>, metrics: Metrics) -> Self {
        MeteredEngine { inner, metrics }
    }

    fn observe<T>(&self, operation: &'static str, result: &Result<T>, took: Duration) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(EngineError::NotFound { .. }) => "not_found",
            Err(EngineError::Conflict { .. }) => "conflict",
            Err(_) => "error",
        };
        let labels = EngineLabels { operation, outcome };
        self.metrics.families().engine_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }
}

/// Implements [`Engine`] for [`MeteredEngine`] from the trait's signatures:
/// each method calls the inner engine's and observes how long it took. The
/// operation label is the method's name.
macro_rules! metered {
    ($(fn $method:ident(&self $(, $arg:ident: $ty:ty)*) -> $ok:ty;)*) => {
        #[async_trait]
        impl Engine for MeteredEngine {
            $(
                async fn $method(&self $(, $arg: $ty)*) -> Result<$ok> {
                    let started = Instant::now();
                    let result = self.inner.$method($($arg),*).await;
                    self.observe(stringify!($method), &result, started.elapsed());
                    result
                }
            )*
        }
    };
}

metered! {
    fn info(&self) -> EngineInfo;
    fn list_containers(&self, labels: &Labels) -> Vec<ContainerInfo>;
    fn inspect_container(&self, id: &str) -> ContainerInfo;
    fn create_container(&self, config: &ContainerConfig) -> String;
    fn start_container(&self, id: &str) -> ();
    fn stop_container(&self, id: &str, grace: Duration) -> ();
    fn remove_container(&self, id: &str) -> ();
    fn container_logs(&self, id: &str, tail: usize) -> Vec<String>;
    fn stream_logs(&self, id: &str, tail: usize, follow: bool) -> BoxStream<'static, Result<String>>;
    fn inspect_image(&self, reference: &str) -> Option<ImageInfo>;
    fn build_image(&self, request: &BuildRequest) -> BuildOutput;
    fn pull_image(&self, reference: &str) -> ();
    fn remove_image(&self, reference: &str) -> ();
    fn list_volumes(&self, labels: &Labels) -> Vec<VolumeInfo>;
    fn create_volume(&self, config: &VolumeConfig) -> VolumeInfo;
    fn remove_volume(&self, name: &str) -> ();
    fn list_networks(&self, labels: &Labels) -> Vec<NetworkInfo>;
    fn create_network(&self, config: &NetworkConfig) -> NetworkInfo;
    fn remove_network(&self, name: &str) -> ();
    fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> ();
    fn disconnect_network(&self, network: &str, container: &str) -> ();
    fn exec(&self, container: &str, request: &ExecRequest) -> ExecSession;
    fn resize_exec(&self, exec: &str, size: TerminalSize) -> ();
    fn exec_exit_code(&self, exec: &str) -> Option<i64>;
    fn copy_from(&self, container: &str, path: &str) -> BoxStream<'static, Result<bytes::Bytes>>;
    fn copy_to(&self, container: &str, directory: &str, tar: bytes::Bytes) -> ();
    fn stats(&self, container: &str) -> crate::engine::ContainerStats;
    fn events(&self) -> BoxStream<'static, Result<EngineEvent>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::metrics::assert_renders;

    #[tokio::test(start_paused = true)]
    async fn calls_are_timed_by_operation_and_outcome() {
        let metrics = Metrics::new();
        let fake = FakeEngine::new();
        fake.set_latency(Duration::from_millis(20));
        let engine = MeteredEngine::new(Arc::new(fake.clone()), metrics.clone());
        engine.info().await.unwrap();
        assert!(engine.inspect_container("missing").await.unwrap_err().is_not_found());
        fake.fail_next("remove_volume", 1);
        engine.remove_volume("data").await.unwrap_err();
        let _stream = engine.events().await.unwrap();
        assert_renders(
            &metrics,
            &[
                "berth_engine_request_duration_seconds_count{operation=\"info\",outcome=\"ok\"} 1",
                "berth_engine_request_duration_seconds_sum{operation=\"info\",outcome=\"ok\"} 0.02",
                "berth_engine_request_duration_seconds_count{operation=\"inspect_container\",outcome=\"not_found\"} 1",
                "berth_engine_request_duration_seconds_count{operation=\"remove_volume\",outcome=\"error\"} 1",
                "berth_engine_request_duration_seconds_count{operation=\"events\",outcome=\"ok\"} 1",
            ],
        );
    }
}
