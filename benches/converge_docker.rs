//! Converging a stack on Docker: berth against direct bollard calls.
//!
//! Run (needs Docker on `DOCKER_HOST` or `/var/run/docker.sock`, and a
//! static `/bin/busybox`):
//!
//! ```sh
//! cargo bench --bench converge_docker
//! cargo bench --bench converge_docker -- --reps 9 --sweep 2,4,8,16 --sweep-reps 5
//! ```
//!
//! Options: `--containers N` (20), `--concurrency N` (8, berth's default),
//! `--reps N` (5), `--sweep LIST` (1,2,4,8,16),
//! `--sweep-reps N` (3; 0 skips the sweep).
//!
//! The stack is 1 Network, 1 Volume and 20 Containers (busybox `sleep` and
//! `httpd`, each on the network and mounting the volume, 1 s grace), built
//! from an image the benchmark builds once through berth's engine build API.
//!
//! - **berth**: from spawning the release `berth serve` on an empty state
//!   directory to the 20th container `start` event (watched through Docker's
//!   event stream, filtered by berth's labels for the bench namespace).
//! - **direct**: from the first call to the 20th `start` event, for the
//!   network, the volume and create + start of each container by bollard,
//!   at berth's concurrency.
//!
//! The two alternate, `--reps` times each, with everything removed in
//! between; medians and their ratio are printed (goal: berth within 1.10x).
//! Then berth alone at each `--sweep` concurrency, to choose its default.
//! Only objects of the bench namespace and of the baseline's label are
//! removed: other berths may share the daemon.

mod support;

use std::time::{Duration, Instant};

use support::docker::{self, IMAGE};
use support::{median, ms, ratio, Args, Berth};

/// The bench namespace: berth names its objects `berth-bench-…`.
const NAMESPACE: &str = "bench";
/// Longest a convergence may take before the run is declared failed.
const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() {
    let args = Args::from_env();
    let containers: usize = args.get("containers", 20);
    let reps: usize = args.get("reps", 5);
    let concurrency: usize = args.get("concurrency", 8);
    let sweep: Vec<usize> = args.list("sweep", &[1, 2, 4, 8, 16]);
    let sweep_reps: usize = args.get("sweep-reps", 3);

    let docker = docker::client();
    docker::build_image().await;
    docker::remove_berth_namespace(&docker, NAMESPACE).await;
    docker::remove_direct_stack(&docker).await;
    println!(
        "converge_docker: 1 Network, 1 Volume, {containers} Containers; {reps} reps each, alternating; \
         concurrency {concurrency}"
    );

    let mut berth_times = Vec::new();
    let mut direct_times = Vec::new();
    for rep in 0..reps {
        // Alternate which goes first, so neither always meets a warmer daemon.
        for berth_first in [rep.is_multiple_of(2), !rep.is_multiple_of(2)] {
            if berth_first {
                let took = converge_berth(&docker, containers, concurrency).await;
                println!("  rep {rep}: berth  {}", ms(took));
                berth_times.push(took);
            } else {
                let took = converge_direct(&docker, containers, concurrency).await;
                println!("  rep {rep}: direct {}", ms(took));
                direct_times.push(took);
            }
        }
    }
    let (berth, direct) = (median(&berth_times), median(&direct_times));
    println!();
    println!("| {containers} containers, concurrency {concurrency} | median | min | max |");
    println!("|---|---|---|---|");
    for (name, times) in [("direct bollard (baseline)", &direct_times), ("berth serve", &berth_times)] {
        let (min, max) = (times.iter().min().expect("samples"), times.iter().max().expect("samples"));
        println!("| {name} | {} | {} | {} |", ms(median(times)), ms(*min), ms(*max));
    }
    println!("| **berth / direct** | **{}** | | |", ratio(berth, direct));

    if sweep.is_empty() || sweep_reps == 0 {
        return;
    }
    println!();
    println!("berth at each concurrency ({sweep_reps} reps, interleaved):");
    let mut by_concurrency: Vec<(usize, Vec<Duration>)> = sweep.iter().map(|&c| (c, Vec::new())).collect();
    for _ in 0..sweep_reps {
        for (c, times) in by_concurrency.iter_mut() {
            times.push(converge_berth(&docker, containers, *c).await);
        }
    }
    println!("| concurrency | median | samples | vs concurrency {} |", sweep[0]);
    println!("|---|---|---|---|");
    let first = median(&by_concurrency[0].1);
    for (c, times) in &by_concurrency {
        let samples: Vec<String> = times.iter().map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0)).collect();
        println!("| {c} | {} | {} ms | {} |", ms(median(times)), samples.join(", "), ratio(median(times), first));
    }
    let (best, times) = by_concurrency.iter().min_by_key(|(_, t)| median(t)).expect("a sweep point");
    println!("fastest: concurrency {best} ({})", ms(median(times)));
}

/// One berth run: spawn on an empty state directory, time to all started,
/// then stop it and remove what it made.
async fn converge_berth(docker: &bollard::Docker, containers: usize, concurrency: usize) -> Duration {
    let manifests = support::temp_dir("berth-bench-manifests-");
    let state = support::temp_dir("berth-bench-state-");
    support::write_docker_stack(manifests.path(), NAMESPACE, containers, IMAGE);
    let watch = docker::StartWatch::new(docker, &docker::berth_labels(NAMESPACE), containers);
    let concurrency = concurrency.to_string();
    let mut berth = Berth::serve(manifests.path(), state.path(), "docker", &["--concurrency", &concurrency], "info");
    let started = berth.started;
    let Some(done) = watch.wait(TIMEOUT).await else {
        panic!("berth did not start every container within {TIMEOUT:?}; its log:\n{}", berth.unread())
    };
    tokio::task::spawn_blocking(move || berth.stop()).await.expect("stopping berth");
    docker::remove_berth_namespace(docker, NAMESPACE).await;
    done - started
}

/// One baseline run: the same stack by direct bollard calls.
async fn converge_direct(docker: &bollard::Docker, containers: usize, concurrency: usize) -> Duration {
    let watch = docker::StartWatch::new(docker, &[format!("{}=1", docker::DIRECT_LABEL)], containers);
    let started = Instant::now();
    docker::create_direct_stack(docker, containers, concurrency).await;
    let done = watch.wait(TIMEOUT).await.expect("the direct stack started");
    docker::remove_direct_stack(docker).await;
    done - started
}
