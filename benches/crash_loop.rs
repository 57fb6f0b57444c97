//! A long crash loop: how big the state directory grows, and what berth
//! spends, while Containers exit as soon as they start, for an hour.
//!
//! Run:
//!
//! ```sh
//! cargo bench --bench crash_loop
//! cargo bench --bench crash_loop -- --secs 3600 --containers 10 --every 300
//! ```
//!
//! `berth serve --engine fake` (release) follows `--containers` Containers
//! of two replicas each whose process exits at once (`exit 3`, restart
//! policy Always): the fake engine restarts them after 100 ms doubling to
//! 6.4 s, and berth starts the exited ones itself no faster than its own
//! back-off (1 s doubling to 5 min). Every `--every` seconds it prints the
//! state directory's size (every file under it), berth's CPU time and its
//! log lines so far; the last row's ratios are against the first sample,
//! taken once the stack was applied, in the same run. The bound to hold is
//! the event log's retention (10,000 events) plus the objects: the size
//! must level off, not grow with time.

mod support;

use std::time::{Duration, Instant};

use support::{cpu_time, mib, ms, Args, Berth};

fn size_of(dir: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn main() {
    let args = Args::from_env();
    let secs: u64 = args.get("secs", 3600);
    let containers: usize = args.get("containers", 10);
    let every = Duration::from_secs(args.get("every", 300));
    println!("crash_loop: {containers} Containers x 2 replicas exiting at once, {secs} s, a sample every {every:?}");
    let manifests = support::temp_dir("berth-crash-manifests");
    let state = support::temp_dir("berth-crash-state");
    for i in 0..containers {
        let manifest = format!(
            "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: crash{i}\nspec:\n  image: busybox\n  replicas: 2\n  command: [sh, -c, 'echo starting; exit 3']\n"
        );
        std::fs::write(manifests.path().join(format!("crash{i}.yaml")), manifest).expect("writing a manifest");
    }
    let mut berth = Berth::serve(manifests.path(), state.path(), "fake", &[], "info");
    let started = Instant::now();
    let mut lines = 0usize;
    let mut rows: Vec<(Duration, u64, Duration, usize)> = Vec::new();
    let mut next = started + Duration::from_secs(10).min(every);
    while started.elapsed() < Duration::from_secs(secs) {
        while let Some(_line) = berth.next_line(Duration::from_millis(200)) {
            lines += 1;
            if Instant::now() >= next {
                break;
            }
        }
        if Instant::now() >= next {
            let sample = (started.elapsed(), size_of(state.path()), cpu_time(berth.pid()), lines);
            println!(
                "  {:>6.0} s: state {}, CPU {}, {} log lines",
                sample.0.as_secs_f64(),
                mib(sample.1),
                ms(sample.2),
                sample.3
            );
            rows.push(sample);
            next += every;
        }
    }
    berth.stop();
    println!();
    println!("| after | state directory | berth CPU | log lines |");
    println!("|---|---|---|---|");
    for (at, size, cpu, lines) in &rows {
        println!("| {:.0} s | {} | {} | {} |", at.as_secs_f64(), mib(*size), ms(*cpu), lines);
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let share = |cpu: Duration, at: Duration| cpu.as_secs_f64() / at.as_secs_f64().max(1e-9) * 100.0;
        println!(
            "| **last / first** | **{:.2}x** | **{:.2} % of a core** | **{:.2}x** |",
            last.1 as f64 / first.1.max(1) as f64,
            share(last.2, last.0),
            last.3 as f64 / first.3.max(1) as f64
        );
    }
}
