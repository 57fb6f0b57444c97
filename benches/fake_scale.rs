//! berth at scale on the in-memory fake engine: 10,000 Containers against
//! a 1,000-Container baseline in the same run.
//!
//! Run:
//!
//! ```sh
//! cargo bench --bench fake_scale
//! cargo bench --bench fake_scale -- --sizes 1000,10000 --idle-secs 30
//! ```
//!
//! For each size, the benchmark writes the Containers as files of 100
//! documents each (`image: busybox`: the fake engine's pulls succeed) and
//! runs the release `berth serve --engine fake` on an empty state directory.
//!
//! - **converge**: from spawn to the first `reconcile queue idle` debug line
//!   (controller runtime) after the log has shown a `created` event for
//!   every Container. A replica is Ready as soon as it runs (no health
//!   check), so that is every Container Ready with its status written.
//! - **CPU to converge**: the process's user + system time at that moment.
//! - **peak RSS**: `VmHWM` from `/proc/<pid>/status`, at convergence and
//!   after the idle period.
//! - **idle CPU**: user + system time used over `--idle-secs` after
//!   convergence (goal: near zero), and the log lines written meanwhile.
//!
//! Ratios (largest size / smallest) show how each grows: 10.00x is linear.

mod support;

use std::time::{Duration, Instant};

use support::{cpu_time, mib, ms, proc_status_bytes, Args, Berth};

/// Documents per manifest file.
const PER_FILE: usize = 100;
/// Longest a convergence may take.
const TIMEOUT: Duration = Duration::from_secs(240);

struct Figures {
    containers: usize,
    converge: Duration,
    converge_cpu: Duration,
    peak_rss_converged: u64,
    peak_rss_after_idle: u64,
    idle_cpu: Duration,
    idle_lines: usize,
    idle_marks: usize,
}

fn main() {
    let args = Args::from_env();
    let sizes: Vec<usize> = args.list("sizes", &[1000, 10_000]);
    let idle = Duration::from_secs(args.get("idle-secs", 30));
    println!("fake_scale: sizes {sizes:?}, {PER_FILE} Containers per file, idle {idle:?}");
    let figures: Vec<Figures> = sizes.iter().map(|&n| run(n, idle)).collect();

    println!();
    println!(
        "| containers | converge | per container | CPU to converge | peak RSS (converged) | peak RSS (after idle) \
         | CPU while idle {}s | log lines while idle |",
        idle.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {} | {:.0} µs | {} | {} | {} | {} | {} |",
            f.containers,
            ms(f.converge),
            f.converge.as_secs_f64() * 1e6 / f.containers as f64,
            ms(f.converge_cpu),
            mib(f.peak_rss_converged),
            mib(f.peak_rss_after_idle),
            ms(f.idle_cpu),
            f.idle_lines,
        );
    }
    if let (Some(small), Some(large)) = (figures.first(), figures.last()) {
        if figures.len() > 1 {
            let r = |a: f64, b: f64| format!("{:.2}x", a / b.max(1e-9));
            println!(
                "| **{} / {}** | **{}** | | **{}** | **{}** | **{}** | {} | |",
                large.containers,
                small.containers,
                r(large.converge.as_secs_f64(), small.converge.as_secs_f64()),
                r(large.converge_cpu.as_secs_f64(), small.converge_cpu.as_secs_f64()),
                r(large.peak_rss_converged as f64, small.peak_rss_converged as f64),
                r(large.peak_rss_after_idle as f64, small.peak_rss_after_idle as f64),
                r(large.idle_cpu.as_secs_f64(), small.idle_cpu.as_secs_f64()),
            );
        }
    }
    for f in &figures {
        println!("{} containers: the queue went idle {} times before converging", f.containers, f.idle_marks);
    }
}

fn run(containers: usize, idle: Duration) -> Figures {
    let manifests = support::temp_dir("berth-bench-manifests-");
    let state = support::temp_dir("berth-bench-state-");
    for file in 0..containers.div_ceil(PER_FILE) {
        let names = (file * PER_FILE..((file + 1) * PER_FILE).min(containers)).map(|i| format!("c{i:05}"));
        let docs: Vec<String> = names.map(|name| support::fake_container_manifest(&name)).collect();
        std::fs::write(manifests.path().join(format!("f{file:03}.yaml")), docs.join("---\n")).expect("manifest");
    }
    let mut berth =
        Berth::serve(manifests.path(), state.path(), "fake", &[], "berth=info,berth::controller::runtime=debug");
    let mut created = 0;
    let mut idle_marks = 0;
    let converged = berth.wait_for(TIMEOUT, |line| {
        if line.field("action") == Some("created") && line.field("object").is_some_and(|o| o.starts_with("Container/"))
        {
            created += 1;
            return false;
        }
        if line.message == "reconcile queue idle" {
            idle_marks += 1;
            return created >= containers;
        }
        false
    });
    let pid = berth.pid();
    let converge = converged.at - berth.started;
    let converge_cpu = cpu_time(pid);
    let peak_rss_converged = proc_status_bytes(pid, "VmHWM");
    println!(
        "  {containers}: converged in {} (CPU {}, peak RSS {}); idling {idle:?}",
        ms(converge),
        ms(converge_cpu),
        mib(peak_rss_converged)
    );
    let idle_start = Instant::now();
    let mut idle_lines = 0;
    while let Some(left) = idle.checked_sub(idle_start.elapsed()) {
        if berth.next_line(left).is_some() {
            idle_lines += 1;
        }
    }
    let idle_cpu = cpu_time(pid).saturating_sub(converge_cpu);
    let peak_rss_after_idle = proc_status_bytes(pid, "VmHWM");
    berth.stop();
    Figures {
        containers,
        converge,
        converge_cpu,
        peak_rss_converged,
        peak_rss_after_idle,
        idle_cpu,
        idle_lines,
        idle_marks: idle_marks - 1,
    }
}
