//! The controller's metrics after it converges the examples on the fake
//! engine, with one engine failure scripted: reconcile results, errors,
//! retries and engine latency carry the right labels and counts.

use std::sync::Arc;
use std::time::Duration;

use berth::controller::ControllerConfig;
use berth::engine::fake::FakeEngine;
use berth::metrics::{Metrics, CONTENT_TYPE};
use berth::store::Store;

use crate::support::controller::{apply, eventually, examples, is_ready, Running};

const WAIT: Duration = Duration::from_secs(20);

/// The value of the sample `series` (name and labels, as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_errors_retries_and_engine_calls_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fake = FakeEngine::new();
    fake.fail_next("create_container", 1);
    apply(&store, examples());
    let metrics = Metrics::new();
    let config = ControllerConfig { metrics: metrics.clone(), ..ControllerConfig::default() };
    let running = Running::start_with(&store, Arc::new(fake.clone()), config);
    eventually(WAIT, "every example Container ready", || async {
        (is_ready(&store, "Container/default/web") && is_ready(&store, "Container/default/api")).then_some(())
    })
    .await;
    // The reconcile that wrote Ready is counted when it returns: wait for it.
    eventually(WAIT, "the Container reconciles counted", || async {
        let text = metrics.render();
        let successes =
            sample(&text, r#"controller_runtime_reconcile_total{controller="container",result="success"}"#)?;
        (successes >= 2.0).then_some(())
    })
    .await;
    // Drained: nothing runs any more.
    running.stop().await;
    let text = metrics.render();

    assert_eq!(sample(&text, r#"controller_runtime_reconcile_errors_total{controller="container"}"#), Some(1.0));
    assert_eq!(
        sample(&text, r#"controller_runtime_reconcile_total{controller="container",result="error"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&text, r#"controller_runtime_reconcile_errors_total{controller="volume"}"#), Some(0.0));
    assert!(sample(&text, r#"workqueue_retries_total{name="berth"}"#) >= Some(1.0), "{text}");
    let adds = sample(&text, r#"workqueue_adds_total{name="berth"}"#).unwrap();
    let starts = sample(&text, r#"workqueue_queue_duration_seconds_count{name="berth"}"#).unwrap();
    assert!(adds >= starts && starts >= examples().len() as f64, "{adds} adds, {starts} starts");
    assert_eq!(sample(&text, r#"controller_runtime_max_concurrent_reconciles{controller="container"}"#), Some(8.0));
    assert_eq!(sample(&text, r#"controller_runtime_active_workers{controller="container"}"#), Some(0.0));
    assert!(sample(&text, r#"controller_runtime_reconcile_time_seconds_count{controller="network"}"#) >= Some(1.0));

    // Every create_container call was timed, the injected failure as an error.
    let creates = fake.calls().iter().filter(|c| c.op == "create_container").count() as f64;
    let created = |outcome: &str| {
        let series = format!(
            r#"berth_engine_request_duration_seconds_count{{operation="create_container",outcome="{outcome}"}}"#
        );
        sample(&text, &series).unwrap_or(0.0)
    };
    assert_eq!(created("error"), 1.0);
    assert_eq!(created("ok") + created("error"), creates);
    assert!(
        sample(&text, r#"berth_engine_request_duration_seconds_count{operation="info",outcome="ok"}"#) >= Some(1.0)
    );
    assert_eq!(sample(&text, r#"berth_store_objects{kind="Container"}"#), Some(2.0));
    assert!(CONTENT_TYPE.starts_with("application/openmetrics-text"));
}
