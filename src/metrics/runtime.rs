//! What the reconcile runtime records: the work queue and the reconciles.
//!
//! The runtime is generic over its key, so it cannot name a controller
//! itself: [`RuntimeMetrics`] carries a function from key to controller
//! label (berth passes the key's kind). The runtime calls it at each step
//! of a key's life: scheduled ([`added`](RuntimeMetrics::added)), started
//! ([`started`](RuntimeMetrics::started), which returns the [`Work`] that
//! tracks the running reconcile), finished, retried.

use std::time::Duration;

use tokio::time::Instant;

use super::families::{ControllerLabels, QueueLabels, ResultLabels};
use super::Metrics;

/// How a reconcile ended, as controller-runtime counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded and waits for a change (`result="success"`).
    Success,
    /// It succeeded and asked to look again later (`result="requeue_after"`).
    RequeueAfter,
    /// It failed, timed out, or will be retried (`result="error"`).
    Error,
    /// It failed in a way only a change of the object can fix (`result="error"`, and
    /// `controller_runtime_terminal_reconcile_errors_total`).
    Terminal,
    /// It panicked (`result="error"`, and `controller_runtime_reconcile_panics_total`).
    Panic,
}

/// Every `result` label value controller-runtime uses; `requeue` stays at
/// zero (berth's reconcilers always say when to look again), but exists so
/// queries written for controller-runtime find it.
const RESULTS: [&str; 4] = ["success", "error", "requeue", "requeue_after"];

/// The runtime's recorder: a [`Metrics`] handle and how to name a key's controller.
pub struct RuntimeMetrics<K> {
    metrics: Metrics,
    controller: fn(&K) -> &'static str,
}

impl<K> Clone for RuntimeMetrics<K> {
    fn clone(&self) -> Self {
        RuntimeMetrics { metrics: self.metrics.clone(), controller: self.controller }
    }
}

/// A running reconcile. Dropping it without [`RuntimeMetrics::finished`]
/// (an aborted reconcile, at a forced shutdown) still frees its worker.
pub struct Work {
    metrics: Metrics,
    controller: &'static str,
    id: u64,
    started: Instant,
}

impl Drop for Work {
    fn drop(&mut self) {
        self.metrics.end_work(self.id);
        self.metrics.families().active_workers.get_or_create(&ControllerLabels { controller: self.controller }).dec();
    }
}

impl<K> RuntimeMetrics<K> {
    /// Records into `metrics`, labelling each key's reconciles `controller(key)`.
    pub fn new(metrics: &Metrics, controller: fn(&K) -> &'static str) -> Self {
        RuntimeMetrics { metrics: metrics.clone(), controller }
    }

    /// Creates every series of `controllers` at zero, and their shared
    /// limit of `concurrency` reconciles, so that rates and alerts work
    /// before the first reconcile of a kind (as controller-runtime does).
    pub fn declare(&self, controllers: &[&'static str], concurrency: usize) {
        let families = self.metrics.families();
        // `get_or_create` creates the series; the guard it returns is not needed.
        for &controller in controllers {
            let labels = ControllerLabels { controller };
            for result in RESULTS {
                let _ = families.reconcile_total.get_or_create(&ResultLabels { controller, result });
            }
            let _ = families.reconcile_errors.get_or_create(&labels);
            let _ = families.terminal_errors.get_or_create(&labels);
            let _ = families.reconcile_panics.get_or_create(&labels);
            let _ = families.active_workers.get_or_create(&labels);
            let _ = families.reconcile_time.get_or_create(&labels);
            families.max_concurrent.get_or_create(&labels).set(concurrency as i64);
        }
        let _ = families.depth.get_or_create(&QueueLabels::BERTH);
        let _ = families.adds.get_or_create(&QueueLabels::BERTH);
        let _ = families.retries.get_or_create(&QueueLabels::BERTH);
        let _ = families.queue_duration.get_or_create(&QueueLabels::BERTH);
        let _ = families.work_duration.get_or_create(&QueueLabels::BERTH);
    }

    /// A key entered the queue (it was not waiting already).
    pub fn added(&self) {
        self.metrics.families().adds.get_or_create(&QueueLabels::BERTH).inc();
    }

    /// Keys due and not started.
    pub fn set_depth(&self, depth: usize) {
        self.metrics.families().depth.get_or_create(&QueueLabels::BERTH).set(depth as i64);
    }

    /// A failed key was scheduled again after its backoff.
    pub fn retried(&self) {
        self.metrics.families().retries.get_or_create(&QueueLabels::BERTH).inc();
    }

    /// `key` starts, `queued` after its deadline.
    pub fn started(&self, key: &K, queued: Duration) -> Work {
        let controller = (self.controller)(key);
        let families = self.metrics.families();
        families.queue_duration.get_or_create(&QueueLabels::BERTH).observe(queued.as_secs_f64());
        families.active_workers.get_or_create(&ControllerLabels { controller }).inc();
        let (id, started) = self.metrics.begin_work();
        Work { metrics: self.metrics.clone(), controller, id, started }
    }

    /// The reconcile of `work` ended with `outcome`.
    pub fn finished(&self, work: Work, outcome: Outcome) {
        let took = work.started.elapsed().as_secs_f64();
        let controller = work.controller;
        let labels = ControllerLabels { controller };
        let families = self.metrics.families();
        families.work_duration.get_or_create(&QueueLabels::BERTH).observe(took);
        families.reconcile_time.get_or_create(&labels).observe(took);
        let result = match outcome {
            Outcome::Success => "success",
            Outcome::RequeueAfter => "requeue_after",
            Outcome::Error | Outcome::Terminal | Outcome::Panic => "error",
        };
        families.reconcile_total.get_or_create(&ResultLabels { controller, result }).inc();
        if result == "error" {
            families.reconcile_errors.get_or_create(&labels).inc();
        }
        match outcome {
            Outcome::Terminal => families.terminal_errors.get_or_create(&labels).inc(),
            Outcome::Panic => families.reconcile_panics.get_or_create(&labels).inc(),
            _ => 0,
        };
        drop(work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::assert_renders;

    fn recorder() -> (Metrics, RuntimeMetrics<u32>) {
        let metrics = Metrics::new();
        let recorder = RuntimeMetrics::new(&metrics, |key: &u32| if *key < 10 { "small" } else { "large" });
        (metrics, recorder)
    }

    #[test]
    fn declared_series_start_at_zero() {
        let (metrics, recorder) = recorder();
        recorder.declare(&["small", "large"], 8);
        let text = metrics.render();
        for result in RESULTS {
            let line = format!("controller_runtime_reconcile_total{{controller=\"large\",result=\"{result}\"}} 0\n");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(text.contains("controller_runtime_max_concurrent_reconciles{controller=\"small\"} 8\n"));
        assert!(text.contains("workqueue_adds_total{name=\"berth\"} 0\n"));
        assert!(text.contains("workqueue_depth{name=\"berth\"} 0\n"));
    }

    #[test]
    fn outcomes_are_counted_by_controller_and_result() {
        let (metrics, recorder) = recorder();
        let outcomes =
            [(1, Outcome::Success), (2, Outcome::RequeueAfter), (11, Outcome::Terminal), (12, Outcome::Panic)];
        for (key, outcome) in outcomes {
            recorder.added();
            let work = recorder.started(&key, Duration::from_millis(3));
            recorder.finished(work, outcome);
        }
        recorder.retried();
        assert_renders(
            &metrics,
            &[
                "controller_runtime_reconcile_total{controller=\"small\",result=\"success\"} 1",
                "controller_runtime_reconcile_total{controller=\"small\",result=\"requeue_after\"} 1",
                "controller_runtime_reconcile_total{controller=\"large\",result=\"error\"} 2",
                "controller_runtime_reconcile_errors_total{controller=\"large\"} 2",
                "controller_runtime_terminal_reconcile_errors_total{controller=\"large\"} 1",
                "controller_runtime_reconcile_panics_total{controller=\"large\"} 1",
                "controller_runtime_reconcile_time_seconds_count{controller=\"small\"} 2",
                "controller_runtime_active_workers{controller=\"small\"} 0",
                "workqueue_adds_total{name=\"berth\"} 4",
                "workqueue_retries_total{name=\"berth\"} 1",
                "workqueue_queue_duration_seconds_count{name=\"berth\"} 4",
                "workqueue_queue_duration_seconds_sum{name=\"berth\"} 0.012",
                "workqueue_work_duration_seconds_count{name=\"berth\"} 4",
            ],
        );
        assert!(!metrics.render().contains("controller_runtime_reconcile_errors_total{controller=\"small\"}"));
    }

    #[test]
    fn a_dropped_work_frees_its_worker() {
        let (metrics, recorder) = recorder();
        let work = recorder.started(&1, Duration::ZERO);
        assert!(metrics.render().contains("controller_runtime_active_workers{controller=\"small\"} 1\n"));
        drop(work);
        let text = metrics.render();
        assert!(text.contains("controller_runtime_active_workers{controller=\"small\"} 0\n"));
        assert!(
            !text.contains("controller_runtime_reconcile_time_seconds_count"),
            "an aborted reconcile has no result"
        );
    }
}
