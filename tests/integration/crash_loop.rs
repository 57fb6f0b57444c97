//! A crash-looping Container leaves bounded traces: berth does not start a
//! replica faster than the engine's own restart back-off allows, status
//! writes during the loop are rate-limited, and the state directory stays
//! under a fixed size however long the loop runs (the event log's
//! retention bounds the rest). The fake engine's container exits at once
//! and the fake reports it exited during its own restart delay, the worst
//! case for berth: without the back-off, berth started it 14,638 times in
//! 20 s (9.4 MB of state); with it, a dozen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::engine::fake::FakeEngine;
use berth::store::Store;

use crate::support::controller::{apply, Running};

/// How long the loop runs in CI (`BERTH_CRASH_LOOP_SECS` to change).
const LOOP_SECS: u64 = 30;

/// Bytes of every file under `dir`.
fn size_of(dir: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_container_leaves_bounded_state() {
    let seconds = std::env::var("BERTH_CRASH_LOOP_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(LOOP_SECS);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fake = FakeEngine::new();
    fake.preload_image("busybox");
    let crashing = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: crashing}\nspec:\n  image: busybox\n  replicas: 2\n  command: [sh, -c, 'echo starting; exit 3']\n";
    apply(&store, [berth::manifest::load_text(crashing, "test", None).unwrap().remove(0).object]);
    let running = Running::start(&store, Arc::new(fake.clone()));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let starts = fake.calls().iter().filter(|c| c.op == "start_container").count();
    let writes = store.resource_version();
    let events = store.events(None, 0, 1_000_000).unwrap().len();
    let restarts: u32 = fake.containers().iter().map(|c| c.restart_count).sum();
    running.stop().await;
    let size = size_of(dir.path());
    eprintln!(
        "crash loop {elapsed:.0} s: berth starts {starts}, engine restarts {restarts}, store writes {writes}, \
         events {events}, state dir {size} bytes"
    );
    // Each replica: created, then started again at most once per back-off
    // step (1 s, 2 s, 4 s, … up to 5 min): about log2(seconds) + 2 times.
    let steps = (seconds as f64).log2().ceil() as usize + 2;
    assert!(starts <= 2 * (steps + 1), "{starts} starts in {elapsed:.0} s: the loop is not backed off");
    assert!(events <= 2 * (steps + 2), "{events} events in {elapsed:.0} s");
    assert!(writes <= 40 * steps as u64, "{writes} store writes in {elapsed:.0} s");
    assert!(size < 4 << 20, "the state directory grew to {size} bytes");
    assert!(restarts + starts as u32 > 4, "the container did not crash-loop at all");
}
