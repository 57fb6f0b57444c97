//! Re-applying an unchanged manifest to a converged berth on Docker.
//!
//! Run (needs Docker and a static `/bin/busybox`):
//!
//! ```sh
//! cargo bench --bench reapply_docker
//! cargo bench --bench reapply_docker -- --samples 20
//! ```
//!
//! berth serves the stack of `converge_docker` (1 Network, 1 Volume, 20
//! Containers) and converges. Then one container's manifest file is, in
//! turn:
//!
//! - **rewritten with identical bytes**: timed to berth's debug line
//!   `manifest directory synced` (the rescan found nothing new);
//! - **touched** (mtime only): timed to the same line;
//! - **rewritten with a different comment** (same objects): timed to the
//!   same line, which must say `written=0 deleted=0`.
//!
//! Time runs from just before the write to the moment the benchmark reads
//! the line from berth's JSON log. After each write the benchmark watches
//! the log a little longer and counts the reconciles the write caused (the
//! answer should be none).
//!
//! Baseline, same run and interleaved: the equivalent no-op check done
//! directly, listing the stack's containers by label through the Docker
//! API; and, for scale, a list with an inspect of each container (what
//! berth's engine does to observe containers).

mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use berth::engine::docker::DockerEngine;
use berth::engine::Engine;
use bollard::query_parameters::ListContainersOptionsBuilder;
use support::docker::{self, IMAGE};
use support::{median, ms, percentile, ratio, Args, Berth, LogLine};

const NAMESPACE: &str = "bench-reapply";
const CONTAINERS: usize = 20;
/// The file rewritten.
const FILE: &str = "c07.yaml";
/// How long to keep watching the log after a write for the work it caused.
const SETTLE: Duration = Duration::from_millis(400);

#[derive(Clone, Copy, PartialEq)]
enum Write {
    Identical,
    Touch,
    Comment,
}

impl Write {
    fn describe(self) -> &'static str {
        match self {
            Write::Identical => "berth: identical rewrite -> `manifest directory synced`",
            Write::Touch => "berth: touch (mtime) -> `manifest directory synced`",
            Write::Comment => "berth: comment-only change -> `manifest directory synced` written=0 deleted=0",
        }
    }

    fn signal(self, line: &LogLine) -> bool {
        line.message == "manifest directory synced"
    }

    /// Changes the file as this kind of write does; `round` makes each
    /// comment differ from the last.
    fn perform(self, path: &Path, round: usize) {
        match self {
            Write::Identical => {
                let bytes = std::fs::read(path).expect("reading the manifest");
                std::fs::write(path, bytes).expect("rewriting the manifest");
            }
            Write::Touch => {
                let file = std::fs::File::options().write(true).open(path).expect("opening the manifest");
                file.set_modified(SystemTime::now()).expect("touching the manifest");
            }
            Write::Comment => {
                let text = std::fs::read_to_string(path).expect("reading the manifest");
                let body = text.split("\n# rev ").next().unwrap_or(&text).trim_end().to_string();
                std::fs::write(path, format!("{body}\n# rev {round}\n")).expect("rewriting the manifest");
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::from_env();
    let samples: usize = args.get("samples", 12);

    let client = docker::client();
    docker::build_image().await;
    docker::remove_berth_namespace(&client, NAMESPACE).await;
    let manifests = support::temp_dir("berth-bench-manifests-");
    let state = support::temp_dir("berth-bench-state-");
    support::write_docker_stack(manifests.path(), NAMESPACE, CONTAINERS, IMAGE);
    let labels = docker::berth_labels(NAMESPACE);
    let watch = docker::StartWatch::new(&client, &labels, CONTAINERS);
    let mut berth = Berth::serve(manifests.path(), state.path(), "docker", &[], "berth=debug");
    let Some(converged) = watch.wait(Duration::from_secs(120)).await else {
        panic!("berth did not start every container within 120 s; its log:\n{}", berth.unread())
    };
    let quiet = berth.drain_until_quiet(Duration::from_secs(2)).len();
    println!(
        "reapply_docker: berth converged on {CONTAINERS} containers in {} ({quiet} log lines until 2 s of quiet); \
         {samples} samples per measure",
        ms(converged - berth.started)
    );

    let engine = DockerEngine::connect(None).await.expect("connecting to Docker");
    let filters = std::collections::HashMap::from([("label".to_string(), labels.clone())]);
    let engine_labels: berth::engine::Labels =
        labels.iter().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();

    let path = manifests.path().join(FILE);
    let writes = [Write::Identical, Write::Touch, Write::Comment];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); writes.len()];
    let mut list_times = Vec::new();
    let mut inspect_times = Vec::new();
    // Per kind of write: reconciles it caused, rescans beyond the one timed.
    let mut reconciles_caused = vec![0; writes.len()];
    let mut extra_rescans = vec![0; writes.len()];
    for round in 0..samples {
        for (i, write) in writes.iter().enumerate() {
            berth.drain_until_quiet(Duration::ZERO);
            let before = Instant::now();
            write.perform(&path, round);
            let line = berth.wait_for(Duration::from_secs(5), |line| write.signal(line));
            if *write == Write::Comment {
                let (written, deleted) = (line.number("written"), line.number("deleted"));
                assert_eq!((written, deleted), (Some(0), Some(0)), "a comment-only change wrote or deleted objects");
            }
            times[i].push(line.at - before);
            for after in berth.drain_until_quiet(SETTLE) {
                reconciles_caused[i] += usize::from(after.message == "reconciled");
                extra_rescans[i] += usize::from(after.message == "manifest directory synced");
            }
        }
        // Baselines, between berth's samples.
        let before = Instant::now();
        let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let listed = client.list_containers(Some(options)).await.expect("listing containers");
        list_times.push(before.elapsed());
        assert_eq!(listed.len(), CONTAINERS, "the stack's containers");
        let before = Instant::now();
        let inspected = engine.list_containers(&engine_labels).await.expect("listing and inspecting containers");
        inspect_times.push(before.elapsed());
        assert_eq!(inspected.len(), CONTAINERS);
    }
    berth.stop();
    docker::remove_berth_namespace(&client, NAMESPACE).await;

    let baseline = median(&list_times);
    println!();
    println!("| measure | n | median | p90 | median vs direct list | reconciles caused | extra rescans |");
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, samples: &[Duration], after: String| {
        println!(
            "| {name} | {} | {} | {} | {} | {after} |",
            samples.len(),
            ms(median(samples)),
            ms(percentile(samples, 90.0)),
            ratio(median(samples), baseline)
        );
    };
    row("direct: list containers by label (baseline)", &list_times, "- | -".into());
    row("direct: list + inspect each (berth's engine list)", &inspect_times, "- | -".into());
    for (i, write) in writes.iter().enumerate() {
        row(write.describe(), &times[i], format!("{} | {}", reconciles_caused[i], extra_rescans[i]));
    }
    println!();
    let debounce = berth::source::dir::DEBOUNCE;
    for (write, samples) in writes.iter().zip(&times) {
        let work = median(samples).saturating_sub(debounce);
        println!(
            "{}: {} of it after the {} debounce ({} the baseline)",
            write.describe(),
            ms(debounce),
            ms(work),
            ratio(work, baseline)
        );
    }
    println!(
        "berth rescans only after {} without a change event (source/dir.rs DEBOUNCE): the floor of every berth row",
        ms(debounce)
    );
}
