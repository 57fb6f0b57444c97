//! The replicas' resource use as Prometheus metrics, read from the engine
//! when `/metrics` is scraped (nothing is sampled between scrapes, so an
//! unscraped berth spends nothing on it):
//! `berth_container_cpu_seconds_total`, `berth_container_memory_bytes`,
//! `berth_container_memory_limit_bytes`,
//! `berth_container_network_{receive,transmit}_bytes_total` and
//! `berth_container_block_{read,write}_bytes_total`, each labelled by
//! `namespace`, `name` and `replica`.
//!
//! A scrape asks at most [`CONCURRENCY`] replicas at once, each within
//! [`PER_CONTAINER`], all within [`DEADLINE`]; a replica that does not
//! answer in time is left out of that scrape, not waited for.

use std::fmt::Write;
use std::time::Duration;

use futures::StreamExt;

use crate::engine::{labels, ContainerInfo, ContainerState, ContainerStats, Engine};

/// Replicas asked at once.
const CONCURRENCY: usize = 8;
/// How long one replica's stats may take.
const PER_CONTAINER: Duration = Duration::from_secs(2);
/// How long all of them may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// The families: name (without `_total`), type, help, and the figure.
type Figure = fn(&ContainerStats) -> f64;
const FAMILIES: [(&str, &str, &str, Figure); 7] = [
    ("berth_container_cpu_seconds", "counter", "CPU time a replica used, user and system.", |s| s.cpu_seconds),
    ("berth_container_memory_bytes", "gauge", "Memory a replica uses.", |s| s.memory_bytes as f64),
    ("berth_container_memory_limit_bytes", "gauge", "A replica's memory limit (the host's memory without one).", |s| {
        s.memory_limit_bytes as f64
    }),
    ("berth_container_network_receive_bytes", "counter", "Bytes a replica received.", |s| {
        s.network_receive_bytes as f64
    }),
    ("berth_container_network_transmit_bytes", "counter", "Bytes a replica sent.", |s| s.network_transmit_bytes as f64),
    ("berth_container_block_read_bytes", "counter", "Bytes a replica read from block devices.", |s| {
        s.block_read_bytes as f64
    }),
    ("berth_container_block_write_bytes", "counter", "Bytes a replica wrote to block devices.", |s| {
        s.block_write_bytes as f64
    }),
];

/// Escapes a label value for the exposition formats.
fn escaped(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The families in OpenMetrics text (without `# EOF`) for the running
/// replicas of berth instance `instance`.
pub async fn render(engine: &dyn Engine, instance: &str) -> String {
    let sampled = async {
        let Ok(replicas) = engine.list_containers(&labels::instance_labels(instance)).await else { return Vec::new() };
        let running = replicas
            .into_iter()
            .filter(|c| c.state == ContainerState::Running && c.labels.contains_key(labels::REPLICA));
        futures::stream::iter(running)
            .map(|replica| async move {
                let stats = tokio::time::timeout(PER_CONTAINER, engine.stats(&replica.id)).await;
                stats.ok().and_then(Result::ok).map(|stats| (replica, stats))
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(std::future::ready)
            .collect::<Vec<(ContainerInfo, ContainerStats)>>()
            .await
    };
    let mut samples = tokio::time::timeout(DEADLINE, sampled).await.unwrap_or_default();
    let label = |c: &ContainerInfo, key: &str| escaped(c.labels.get(key).map_or("", String::as_str));
    samples.sort_by_key(|(c, _)| (label(c, labels::NAMESPACE), label(c, labels::NAME), label(c, labels::REPLICA)));
    let mut text = String::new();
    for (family, kind, help, figure) in FAMILIES {
        let _ = writeln!(text, "# HELP {family} {help}\n# TYPE {family} {kind}");
        let suffix = if kind == "counter" { "_total" } else { "" };
        for (replica, stats) in &samples {
            let _ = writeln!(
                text,
                "{family}{suffix}{{namespace=\"{}\",name=\"{}\",replica=\"{}\"}} {}",
                label(replica, labels::NAMESPACE),
                label(replica, labels::NAME),
                label(replica, labels::REPLICA),
                figure(stats)
            );
        }
    }
    text
}

/// `openmetrics` (ending with `# EOF`) with `more` families before the end.
pub fn spliced(openmetrics: String, more: &str) -> String {
    match openmetrics.strip_suffix("# EOF\n") {
        Some(head) => format!("{head}{more}# EOF\n"),
        None => openmetrics + more,
    }
}
