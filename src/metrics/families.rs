//! The metric families, their labels, help texts and buckets.
//!
//! Names, labels and reconcile buckets are controller-runtime's
//! (`pkg/internal/controller/metrics`, `pkg/metrics/workqueue.go`), so that
//! existing dashboards read berth's series as they read a Kubernetes
//! controller's. Everything is registered once, up front:
//! [`Metrics`](super::Metrics) keeps the registry read-only afterwards.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// controller-runtime's buckets for `reconcile_time_seconds`: fine below a
/// second, where most reconciles fall, and up to a minute.
const RECONCILE_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
    1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0,
];

/// Engine calls range from a millisecond (inspect) to minutes (a build or
/// a pull), so the buckets reach further than a reconcile's.
const ENGINE_BUCKETS: [f64; 17] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// controller-runtime's workqueue histograms: powers of ten from 10 ns to 1000 s.
fn queue_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-8, 10.0, 12))
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

fn engine_histogram() -> Histogram {
    Histogram::new(ENGINE_BUCKETS)
}

/// `controller="container"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ControllerLabels {
    pub controller: &'static str,
}

/// `controller="container",result="success"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabels {
    pub controller: &'static str,
    pub result: &'static str,
}

/// `name="berth"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct QueueLabels {
    pub name: &'static str,
}

impl QueueLabels {
    pub const BERTH: QueueLabels = QueueLabels { name: super::QUEUE };
}

/// `operation="create_container",outcome="ok"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EngineLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
}

/// `kind="Container"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabels {
    pub kind: &'static str,
}

/// `transport="mqtt",outcome="ok"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct IngressLabels {
    pub transport: &'static str,
    pub outcome: &'static str,
}

/// `transport="mqtt"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TransportLabels {
    pub transport: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
/// A gauge of seconds.
type Seconds = Gauge<f64, AtomicU64>;

/// Declares [`Families`] and its `register` from one table: field, type,
/// constructor, name and help of each family. Counters are named without
/// `_total`: the encoder appends it.
macro_rules! families {
    ($($field:ident: $ty:ty = $new:expr, $name:literal, $help:literal;)*) => {
        /// Every family, as registered.
        pub(super) struct Families {
            $(pub $field: $ty,)*
        }

        impl Families {
            /// Creates every family and registers it in `registry`.
            pub fn register(registry: &mut Registry) -> Families {
                let families = Families { $($field: $new,)* };
                $(registry.register($name, $help, families.$field.clone());)*
                families
            }
        }
    };
}

families! {
    reconcile_total: Family<ResultLabels, Counter> = Family::default(),
        "controller_runtime_reconcile", "Total number of reconciliations per controller";
    reconcile_errors: Family<ControllerLabels, Counter> = Family::default(),
        "controller_runtime_reconcile_errors", "Total number of reconciliation errors per controller";
    terminal_errors: Family<ControllerLabels, Counter> = Family::default(),
        "controller_runtime_terminal_reconcile_errors", "Total number of terminal reconciliation errors per controller";
    reconcile_panics: Family<ControllerLabels, Counter> = Family::default(),
        "controller_runtime_reconcile_panics", "Total number of reconciliation panics per controller";
    reconcile_time: Histograms<ControllerLabels> = Family::new_with_constructor(reconcile_histogram),
        "controller_runtime_reconcile_time_seconds", "Length of time per reconciliation per controller";
    active_workers: Family<ControllerLabels, Gauge> = Family::default(),
        "controller_runtime_active_workers", "Number of currently used workers per controller";
    max_concurrent: Family<ControllerLabels, Gauge> = Family::default(),
        "controller_runtime_max_concurrent_reconciles",
        "Maximum number of concurrent reconciles per controller (one limit shared by every kind)";
    depth: Family<QueueLabels, Gauge> = Family::default(),
        "workqueue_depth", "Current depth of workqueue";
    adds: Family<QueueLabels, Counter> = Family::default(),
        "workqueue_adds", "Total number of adds handled by workqueue";
    queue_duration: Histograms<QueueLabels> = Family::new_with_constructor(queue_histogram),
        "workqueue_queue_duration_seconds", "How long in seconds an item stays in workqueue before being requested";
    work_duration: Histograms<QueueLabels> = Family::new_with_constructor(queue_histogram),
        "workqueue_work_duration_seconds", "How long in seconds processing an item from workqueue takes";
    retries: Family<QueueLabels, Counter> = Family::default(),
        "workqueue_retries", "Total number of retries handled by workqueue";
    unfinished_work: Family<QueueLabels, Seconds> = Family::default(),
        "workqueue_unfinished_work_seconds",
        "How many seconds of work has been done that is in progress and hasn't been observed by work_duration";
    longest_running: Family<QueueLabels, Seconds> = Family::default(),
        "workqueue_longest_running_processor_seconds",
        "How many seconds has the longest running processor for workqueue been running";
    engine_duration: Histograms<EngineLabels> = Family::new_with_constructor(engine_histogram),
        "berth_engine_request_duration_seconds",
        "Duration of container engine calls by trait method and outcome (ok, not_found, conflict, error)";
    store_objects: Family<KindLabels, Gauge> = Family::default(),
        "berth_store_objects", "Objects in the store by kind";
    ingress_requests: Family<IngressLabels, Counter> = Family::default(),
        "berth_ingress_requests",
        "Requests by transport and outcome: ok, error (refused or failed), undecryptable (not opened: bad envelope, key, channel, replay or plaintext where encryption is required)";
    ingress_duration: Histograms<TransportLabels> = Family::new_with_constructor(engine_histogram),
        "berth_ingress_request_duration_seconds", "Time from a request's arrival to its reply, by transport";
}
