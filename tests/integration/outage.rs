//! An engine outage, end to end: the `berth serve` binary on a private
//! dockerd (see `support::private_dockerd`) that the test stops, keeps away
//! for [`OUTAGE`] and starts again on the same data root.
//!
//! The bounds, asserted as stated, over the outage (from the
//! SIGTERM that stops the engine, whose shutdown stops the containers, to
//! the engine's first `_ping` after its start):
//!
//! - berth's API answers throughout: every [`PROBE_EVERY`], `/healthz` and
//!   a list answer 200 within [`ANSWER`]; while the daemon is down,
//!   `/readyz` answers 503 naming the engine and its socket;
//! - the outage costs berth under 5 % of a core (`/proc/PID/stat`) beyond
//!   what serving the same probes costs it with the engine up, measured
//!   over [`BASELINE`] just before in the same run. The probes, six fresh
//!   connections a second to a debug build, cost 2–3 % of a core alone on
//!   an idle machine and twice that when the rest of the suite shares the
//!   two cores, so an absolute bound measured the neighbours more than
//!   berth; the outage's own cost is about 1 %. A hot loop would cost a
//!   whole core and still fails the test, and so does anything over
//!   [`MAX_CPU_PERCENT_IN_ALL`] whatever the baseline;
//! - berth writes under 100 log lines;
//! - the stack converges within 5 s of the engine's return. So that the
//!   engine's own restart policy cannot meet this alone, one replica is
//!   removed by hand as soon as the engine is back: berth has to notice,
//!   replace it, report both replicas in its status and be ready again.
//!
//! Setup (a daemon start, an image build, the first convergence) gets
//! generous timeouts, since the whole suite shares two cores; only the
//! issue's bounds are strict. The figures are printed for the record.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use berth::client::Client;
use berth::engine::docker::DockerEngine;
use berth::engine::{labels, ContainerInfo, ContainerState, Engine, Labels};
use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::watch;

use crate::support::api::ServedFake;
use crate::support::controller::poll_until;
use crate::support::engines::{started, EngineKind};
use crate::support::private_dockerd::PrivateDockerd;
use crate::support::repo_path;

/// How long the engine stays away once it has stopped.
const OUTAGE: Duration = Duration::from_secs(15);
/// Time between rounds of API probes during the outage.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Longest one probe may take to be answered.
const ANSWER: Duration = Duration::from_secs(1);
/// Most of a core the outage may cost berth beyond the probes, in percent.
const MAX_CPU_PERCENT: f64 = 5.0;
/// Most of a core berth may use over the outage, probes included, in percent.
const MAX_CPU_PERCENT_IN_ALL: f64 = 20.0;
/// How long the probes run with the engine up, for the baseline.
const BASELINE: Duration = Duration::from_secs(8);
/// Log lines berth must stay under over the outage.
const MAX_LOG_LINES: usize = 100;
/// Longest the stack may take to converge after the engine's return.
const CONVERGE_AFTER_RETURN: Duration = Duration::from_secs(5);
/// Longest the first convergence (an image build included) may take.
const SETUP: Duration = Duration::from_secs(120);

const NAMESPACE: &str = "outage";
const CONTAINER: &str = "sleeper";

/// The stack: the busybox image, built by berth (there is no registry), and
/// two replicas that sleep. No networks: the private daemon has none.
fn manifest() -> String {
    let context = repo_path("examples/busybox");
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Image\nmetadata:\n  name: busybox\n  namespace: {NAMESPACE}\n\
         spec:\n  tag: berth.local/{NAMESPACE}/busybox:latest\n  build:\n    context: {context}\n\
         ---\n\
         apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: {CONTAINER}\n  namespace: {NAMESPACE}\n\
         spec:\n  imageRef: busybox\n  replicas: 2\n  command: [sleep, '3600']\n  stopGracePeriod: 1s\n",
        context = context.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_rides_out_an_engine_outage_and_converges_when_it_returns() {
    let Some(mut dockerd) = started(EngineKind::Docker, "a private dockerd", PrivateDockerd::start) else { return };
    let host = dockerd.host();
    let manifests = tempfile::tempdir().expect("temporary directory");
    fs::write(manifests.path().join("stack.yaml"), manifest()).expect("writing the manifest");
    let manifests_arg = manifests.path().to_str().expect("a UTF-8 path");
    // The build context is the repository's busybox directory: granted.
    let context = repo_path("examples/busybox");
    let context = context.to_str().expect("a UTF-8 path");
    let berth = ServedFake::start_docker(&host, &["--manifests", manifests_arg, "--allow-host-paths", context]);
    let _log_on_failure = LogOnFailure(&berth);
    let token = fs::read_to_string(berth.state_dir().join("token")).expect("berth's token");
    let api = Client::new(&berth.url, Some(token.trim().to_string())).expect("a client");
    let engine = DockerEngine::connect(Some(&host)).await.expect("the private dockerd");

    let first = poll_until(SETUP, || converged(&api, &engine)).await;
    let before = first.unwrap_or_else(|| panic!("the stack did not converge within {SETUP:?}"));

    // The baseline: the same probes, the engine up.
    let ticks_before = cpu_ticks(berth.pid());
    let baseline_started = Instant::now();
    let (phase, phases) = watch::channel(Phase::Stopping);
    let prober = tokio::spawn(probe(api.clone(), host.clone(), phases));
    tokio::time::sleep(BASELINE).await;
    phase.send_replace(Phase::Done);
    let baseline_probes = prober.await.expect("the prober");
    assert!(baseline_probes.failures.is_empty(), "berth's API failed:\n{}", baseline_probes.failures.join("\n"));
    let baseline_cpu = (cpu_ticks(berth.pid()) - ticks_before) as f64 / clock_ticks_per_second();
    let baseline_percent = 100.0 * baseline_cpu / baseline_started.elapsed().as_secs_f64();

    // The outage, from SIGTERM to the engine's return, probed throughout.
    let ticks_before = cpu_ticks(berth.pid());
    let lines_before = berth.log().lines().count();
    let outage_started = Instant::now();
    let (phase, phases) = watch::channel(Phase::Stopping);
    let prober = tokio::spawn(probe(api.clone(), host.clone(), phases));
    let (mut dockerd, stopped) = blocking(move || {
        let stopped = dockerd.stop();
        (dockerd, stopped)
    })
    .await;
    let stopping = stopped.expect("stopping the private dockerd");
    phase.send_replace(Phase::Down);
    tokio::time::sleep(OUTAGE).await;
    phase.send_replace(Phase::Starting);
    let (dockerd, restarted) = blocking(move || {
        let restarted = dockerd.start_again();
        (dockerd, restarted)
    })
    .await;
    restarted.expect("starting the private dockerd again");
    let back = Instant::now();
    let outage = back - outage_started;
    let cpu = (cpu_ticks(berth.pid()) - ticks_before) as f64 / clock_ticks_per_second();
    let cpu_percent = 100.0 * cpu / outage.as_secs_f64();
    let log_lines = berth.log().lines().count() - lines_before;
    phase.send_replace(Phase::Done);
    let probes = prober.await.expect("the prober");

    // Back: one replica goes by hand at once; berth must replace it, and
    // say it is ready again.
    let removed = before[&0].id.clone();
    engine.remove_container(&removed).await.expect("removing a replica by hand");
    let after = poll_until(CONVERGE_AFTER_RETURN * 3, || async {
        let replicas = converged(&api, &engine).await.filter(|replicas| replicas[&0].id != removed)?;
        api.send(Method::GET, "/readyz", None).await.ok().map(|_| replicas)
    })
    .await;
    let converge = back.elapsed();

    eprintln!(
        "outage: engine stopped in {stopping:.1?}, away {outage:.1?} from SIGTERM to ping; berth used {cpu:.3} s \
         of CPU ({cpu_percent:.2} % of a core, against {baseline_percent:.2} % serving the same probes with the \
         engine up: {:.2}x) and wrote {log_lines} log lines; {} probe rounds ({} while down), {} failed; \
         converged {converge:.2?} after the engine's return",
        cpu_percent / baseline_percent,
        probes.rounds,
        probes.rounds_down,
        probes.failures.len(),
    );
    // Cleaned up (containers removed, daemon stopped) before the verdict.
    drop(dockerd);
    assert!(probes.failures.is_empty(), "berth's API failed during the outage:\n{}", probes.failures.join("\n"));
    assert!(probes.rounds_down >= 10, "only {} probe rounds while the engine was down", probes.rounds_down);
    assert!(
        cpu_percent - baseline_percent < MAX_CPU_PERCENT,
        "the outage cost berth {:.2} % of a core beyond the probes ({cpu_percent:.2} % against {baseline_percent:.2} %)",
        cpu_percent - baseline_percent
    );
    assert!(cpu_percent < MAX_CPU_PERCENT_IN_ALL, "berth used {cpu_percent:.2} % of a core during the outage");
    assert!(log_lines < MAX_LOG_LINES, "berth wrote {log_lines} log lines during the outage");
    let late = CONVERGE_AFTER_RETURN * 3;
    assert!(after.is_some(), "the stack did not converge at all within {late:?} of the engine's return");
    assert!(
        converge <= CONVERGE_AFTER_RETURN,
        "the stack converged {converge:.2?} after the engine's return, over {CONVERGE_AFTER_RETURN:?}"
    );
}

/// Runs `step` (a blocking step of the private dockerd) off the runtime's
/// threads, so the prober keeps its pace meanwhile.
async fn blocking<T: Send + 'static>(step: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(step).await.expect("a step of the private dockerd")
}

/// The replicas by index when the stack has converged: exactly replicas 0
/// and 1 of the Container, running on the engine, and berth's status saying
/// Ready with both, naming exactly those containers as running.
async fn converged(api: &Client, engine: &DockerEngine) -> Option<BTreeMap<u32, ContainerInfo>> {
    let selector = Labels::from([
        (labels::NAMESPACE.to_string(), NAMESPACE.to_string()),
        (labels::NAME.to_string(), CONTAINER.to_string()),
    ]);
    let containers = engine.list_containers(&selector).await.ok()?;
    let replicas: BTreeMap<u32, ContainerInfo> =
        containers.into_iter().filter_map(|c| Some((c.labels.get(labels::REPLICA)?.parse().ok()?, c))).collect();
    let running = replicas.keys().eq([0, 1].iter()) && replicas.values().all(|c| c.state == ContainerState::Running);
    if !running {
        return None;
    }
    let path = format!("/apis/berth.dev/v1alpha1/namespaces/{NAMESPACE}/containers/{CONTAINER}");
    let object: Value = api.json(Method::GET, &path, None).await.ok()?;
    let status = &object["status"];
    let ready = status["conditions"].as_array()?.iter().any(|c| {
        c["type"] == "Ready" && c["status"] == "True" && c["observedGeneration"] == object["metadata"]["generation"]
    });
    let reported: BTreeMap<u32, (&str, &str)> = status["replicas"]
        .as_array()?
        .iter()
        .filter_map(|r| {
            Some((u32::try_from(r["index"].as_u64()?).ok()?, (r["containerId"].as_str()?, r["state"].as_str()?)))
        })
        .collect();
    let actual: BTreeMap<u32, (&str, &str)> = replicas.iter().map(|(i, c)| (*i, (c.id.as_str(), "running"))).collect();
    (ready && status["readyReplicas"] == 2 && reported == actual).then_some(replicas)
}

/// Where the outage is, for the prober.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// SIGTERM sent, the daemon not yet gone.
    Stopping,
    /// The daemon has exited.
    Down,
    /// The daemon is starting again, not yet answering.
    Starting,
    /// The daemon answers: probing ends.
    Done,
}

/// What the probes during the outage found.
struct Probes {
    /// Rounds of probes made.
    rounds: usize,
    /// Of those, rounds made while the daemon was down.
    rounds_down: usize,
    /// Each failed probe, described.
    failures: Vec<String>,
}

/// Probes berth's API every [`PROBE_EVERY`] until the phase is `Done`:
/// `/healthz` and a list must answer 200 within [`ANSWER`]; while the daemon
/// is down, `/readyz` must answer 503 within it, naming the engine and its
/// socket (while it stops or starts, either answer is right).
async fn probe(api: Client, docker_host: String, phases: watch::Receiver<Phase>) -> Probes {
    let socket = docker_host.trim_start_matches("unix://");
    let list = format!("/apis/berth.dev/v1alpha1/namespaces/{NAMESPACE}/containers");
    let started = Instant::now();
    let mut probes = Probes { rounds: 0, rounds_down: 0, failures: Vec::new() };
    let mut timer = tokio::time::interval(PROBE_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let phase = *phases.borrow();
        if phase == Phase::Done {
            return probes;
        }
        probes.rounds += 1;
        let at = started.elapsed();
        let mut fail = |what: String| probes.failures.push(format!("{at:.1?} ({phase:?}) {what}"));
        for path in ["/healthz", list.as_str()] {
            match tokio::time::timeout(ANSWER, api.send(Method::GET, path, None)).await {
                Ok(Ok(response)) if response.status() == StatusCode::OK => {}
                Ok(Ok(response)) => fail(format!("GET {path}: {}", response.status())),
                Ok(Err(error)) => fail(format!("GET {path}: {error}")),
                Err(_) => fail(format!("GET {path}: no answer within {ANSWER:?}")),
            }
        }
        let ready = tokio::time::timeout(ANSWER, api.send(Method::GET, "/readyz", None)).await;
        // Only a phase that held for the whole request says what is right.
        if phase != Phase::Down || *phases.borrow() != Phase::Down {
            if ready.is_err() {
                fail(format!("GET /readyz: no answer within {ANSWER:?}"));
            }
            continue;
        }
        probes.rounds_down += 1;
        match ready {
            Ok(Err(error)) if error.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => {
                let message = error.to_string();
                if !(message.contains("engine:") && message.contains(socket)) {
                    fail(format!("GET /readyz: 503 without naming the engine: {message}"));
                }
            }
            Ok(Ok(response)) => fail(format!("GET /readyz: {} while the engine is down", response.status())),
            Ok(Err(error)) => fail(format!("GET /readyz: {error}")),
            Err(_) => fail(format!("GET /readyz: no answer within {ANSWER:?}")),
        }
    }
}

/// The CPU time `pid` has used so far (user and system, all its threads),
/// in clock ticks: fields 14 and 15 of `/proc/PID/stat`, counted after the
/// command name, which may itself hold spaces and parentheses.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("berth's /proc/PID/stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("a command name").1.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are 11 and 12.
    let field = |index: usize| fields[index].parse::<u64>().expect("a tick count");
    field(11) + field(12)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(ticks > 0, "sysconf(_SC_CLK_TCK) failed");
    ticks as f64
}

/// Prints berth's log when the test fails (the private dockerd prints its own).
struct LogOnFailure<'a>(&'a ServedFake);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- berth's log ---\n{}", self.0.log());
        }
    }
}
