//! Prometheus metrics, under the names controller-runtime and client-go's
//! workqueue use.
//!
//! berth's reconcile loop is the same machine as a Kubernetes controller's,
//! so it reports under the same names and labels: the dashboards and alerts
//! people already have for `controller_runtime_reconcile_*` and
//! `workqueue_*` work on berth unchanged. What differs is said here:
//!
//! - `controller` is the kind a key belongs to, in lower case
//!   (`controller="container"`): all kinds share one queue and one
//!   concurrency limit, but a failing kind is what an operator looks for.
//!   `controller_runtime_max_concurrent_reconciles` therefore shows the
//!   shared limit under every kind.
//! - The one queue is `name="berth"`. Its depth counts keys that are due and
//!   not started; keys waiting for a later deadline (a requeue, a backoff)
//!   are not counted, as client-go's delaying queue does not count them.
//! - `workqueue_queue_duration_seconds` runs from a key's deadline to the
//!   start of its reconcile.
//!
//! berth adds `berth_engine_request_duration_seconds{operation,outcome}`
//! (every [`Engine`](crate::engine::Engine) call, see [`MeteredEngine`]) and
//! `berth_store_objects{kind}` (counted when rendered), and per ingress
//! transport `berth_ingress_requests_total{transport,outcome}` and
//! `berth_ingress_request_duration_seconds{transport}`.
//!
//! - [`Metrics`]: the handle owning the registry, cheap to clone.
//! - [`runtime`]: what the reconcile runtime records.
//! - [`MeteredEngine`]: the timing decorator around an engine.

pub mod containers;
mod engine;
mod families;
mod ingress;
pub mod runtime;
mod text_format;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::api::Kind;
use crate::store::Store;

pub use engine::MeteredEngine;
use families::{Families, KindLabels, QueueLabels};
pub use runtime::RuntimeMetrics;
pub use text_format::{to_text_format, TEXT_CONTENT_TYPE};

/// The `Content-Type` of [`Metrics::render`]'s output: OpenMetrics text,
/// served to clients that ask for it (Prometheus does); others get
/// [`to_text_format`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The name of berth's one work queue (`workqueue_*{name="berth"}`).
pub const QUEUE: &str = "berth";

/// Every berth metric, behind a handle: clones share one registry, so the
/// controller records into the same families the REST server renders.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// Read only after construction: every family is registered up front,
    /// and families synchronize their own updates.
    registry: Registry,
    families: Families,
    /// Start of each running reconcile, by id: the unfinished-work gauges are
    /// computed from it when rendered, as client-go does on a ticker.
    in_flight: Mutex<HashMap<u64, Instant>>,
    next_id: AtomicU64,
    /// The store whose objects `berth_store_objects` counts, once known.
    store: OnceLock<Store>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every family registered (and no series yet).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let families = Families::register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                registry,
                families,
                in_flight: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                store: OnceLock::new(),
            }),
        }
    }

    /// Counts `store`'s objects by kind in `berth_store_objects` from now
    /// on. The first store given wins: one registry serves one process.
    pub fn observe_store(&self, store: &Store) {
        let _ = self.inner.store.set(store.clone());
    }

    /// Every metric in OpenMetrics text, ending with `# EOF`; serve it as
    /// [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        self.refresh();
        let mut text = String::new();
        // Writing to a String cannot fail; encoding our own labels neither.
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
            .expect("metrics encode into a String");
        text
    }

    /// Sets the gauges that are computed rather than recorded.
    fn refresh(&self) {
        let families = &self.inner.families;
        let now = Instant::now();
        let (unfinished, longest) = {
            let in_flight = self.in_flight();
            let ages = in_flight.values().map(|started| now.duration_since(*started).as_secs_f64());
            ages.fold((0.0, 0.0), |(sum, max): (f64, f64), age| (sum + age, max.max(age)))
        };
        families.unfinished_work.get_or_create(&QueueLabels::BERTH).set(unfinished);
        families.longest_running.get_or_create(&QueueLabels::BERTH).set(longest);
        if let Some(store) = self.inner.store.get() {
            for kind in Kind::ALL {
                // An unreadable store leaves the last count: the scrape still works.
                if let Ok(objects) = store.list(Some(kind), None) {
                    families.store_objects.get_or_create(&KindLabels { kind: kind.as_str() }).set(objects.len() as i64);
                }
            }
        }
    }

    fn families(&self) -> &Families {
        &self.inner.families
    }

    fn in_flight(&self) -> MutexGuard<'_, HashMap<u64, Instant>> {
        // A std mutex: held for a map operation, never across an await.
        self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a reconcile that started now; returns its id.
    fn begin_work(&self) -> (u64, Instant) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        self.in_flight().insert(id, started);
        (id, started)
    }

    fn end_work(&self, id: u64) {
        self.in_flight().remove(&id);
    }
}

/// Panics unless `metrics` render every one of `samples`, each a whole line.
#[cfg(test)]
pub(crate) fn assert_renders(metrics: &Metrics, samples: &[&str]) {
    let text = metrics.render();
    for sample in samples {
        assert!(text.lines().any(|line| line == *sample), "{sample} not in\n{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family berth documents, as its `# TYPE` line names it
    /// (OpenMetrics names a counter's family without `_total`).
    const FAMILIES: [(&str, &str); 18] = [
        ("controller_runtime_reconcile", "counter"),
        ("controller_runtime_reconcile_errors", "counter"),
        ("controller_runtime_terminal_reconcile_errors", "counter"),
        ("controller_runtime_reconcile_panics", "counter"),
        ("controller_runtime_reconcile_time_seconds", "histogram"),
        ("controller_runtime_active_workers", "gauge"),
        ("controller_runtime_max_concurrent_reconciles", "gauge"),
        ("workqueue_depth", "gauge"),
        ("workqueue_adds", "counter"),
        ("workqueue_queue_duration_seconds", "histogram"),
        ("workqueue_work_duration_seconds", "histogram"),
        ("workqueue_retries", "counter"),
        ("workqueue_unfinished_work_seconds", "gauge"),
        ("workqueue_longest_running_processor_seconds", "gauge"),
        ("berth_engine_request_duration_seconds", "histogram"),
        ("berth_store_objects", "gauge"),
        ("berth_ingress_requests", "counter"),
        ("berth_ingress_request_duration_seconds", "histogram"),
    ];

    /// A family is rendered once it has a series: the controller declares
    /// its series at start, its first engine call is `info`, and it hands
    /// over its store.
    #[tokio::test]
    async fn render_describes_every_family_and_ends_with_eof() {
        let metrics = Metrics::new();
        let empty = metrics.render();
        assert!(empty.ends_with("# EOF\n"));
        RuntimeMetrics::new(&metrics, |_: &u32| "test").declare(&["test"], 1);
        let engine = MeteredEngine::new(Arc::new(crate::engine::fake::FakeEngine::new()), metrics.clone());
        crate::engine::Engine::info(&engine).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        metrics.observe_store(&Store::open(dir.path()).unwrap());
        metrics.ingress_request("mqtt", true, false, std::time::Duration::from_millis(3));
        let text = metrics.render();
        for (name, kind) in FAMILIES {
            assert!(
                text.contains(&format!("\n# HELP {name} ")) || text.starts_with(&format!("# HELP {name} ")),
                "{name}:\n{text}"
            );
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name} {kind}:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn unfinished_work_is_the_age_of_running_reconciles() {
        let metrics = Metrics::new();
        let (first, _) = metrics.begin_work();
        let (second, _) = metrics.begin_work();
        metrics.end_work(first);
        let text = metrics.render();
        assert!(text.contains("workqueue_unfinished_work_seconds{name=\"berth\"} "), "{text}");
        metrics.end_work(second);
        let text = metrics.render();
        assert!(text.contains("workqueue_unfinished_work_seconds{name=\"berth\"} 0.0\n"), "{text}");
        assert!(text.contains("workqueue_longest_running_processor_seconds{name=\"berth\"} 0.0\n"), "{text}");
    }

    #[test]
    fn store_objects_are_counted_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let metrics = Metrics::new();
        metrics.observe_store(&store);
        let text = metrics.render();
        assert!(text.contains("berth_store_objects{kind=\"Container\"} 0\n"), "{text}");
    }
}
