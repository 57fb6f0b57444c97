//! What the benchmarks share: running the release `berth` binary and reading
//! its JSON log as it comes, reading a process's CPU time and peak memory
//! from `/proc`, summary statistics, and the manifest stacks.
//!
//! Each benchmark uses part of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod docker;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `berth` binary cargo built for this benchmark (with the bench
/// profile, which inherits `release`), or the one `BERTH_BENCH_BIN` names:
/// an older build, measured by the same benchmark in the same run for a
/// before/after ratio.
pub fn berth_bin() -> PathBuf {
    std::env::var_os("BERTH_BENCH_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth")), PathBuf::from)
}

/// Command-line options of a benchmark: `--name value` pairs. `cargo bench`
/// adds `--bench`, which is ignored like every flag not asked for.
pub struct Args(Vec<String>);

impl Args {
    /// The process arguments.
    pub fn from_env() -> Self {
        Args(std::env::args().skip(1).collect())
    }

    /// The value after `--name`, parsed, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        let flag = format!("--{name}");
        let value = self.0.iter().position(|a| *a == flag).and_then(|i| self.0.get(i + 1));
        match value {
            Some(value) => value.parse().unwrap_or_else(|_| panic!("--{name}: cannot parse `{value}`")),
            None => default,
        }
    }

    /// A comma-separated list after `--name`, or `default`.
    pub fn list<T: std::str::FromStr + Clone>(&self, name: &str, default: &[T]) -> Vec<T> {
        let text: String = self.get(name, String::new());
        if text.is_empty() {
            return default.to_vec();
        }
        text.split(',').map(|v| v.trim().parse().unwrap_or_else(|_| panic!("--{name}: cannot parse `{v}`"))).collect()
    }
}

/// One line of berth's `--log-format json` output, with the moment it was read.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// When the benchmark read it.
    pub at: Instant,
    /// `fields.message`, or the raw line when it is not JSON.
    pub message: String,
    /// `fields` (`object`, `action`, `written`, …).
    pub fields: serde_json::Value,
}

impl LogLine {
    /// A string field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(|v| v.as_str())
    }

    /// An integer field.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.fields.get(name).and_then(|v| v.as_u64())
    }
}

/// `berth serve` flags for a free API port and no DNS or proxy: a berth
/// already running on this machine must not matter.
pub const FREE_PORTS: [&str; 8] =
    ["--listen", "127.0.0.1:0", "--tls-listen", "off", "--dns-listen", "off", "--proxy-listen", "off"];

/// A running `berth serve`, its log read line by line on a thread.
pub struct Berth {
    child: Child,
    lines: mpsc::Receiver<LogLine>,
    /// Lines read by [`Berth::next_line`] callers that looked ahead.
    pending: VecDeque<LogLine>,
    /// When the process was spawned.
    pub started: Instant,
}

impl Berth {
    /// Spawns `berth --log-format json serve <args>` with `RUST_LOG=rust_log`.
    pub fn spawn(args: &[&str], rust_log: &str) -> Self {
        let mut command = Command::new(berth_bin());
        command
            .args(["--log-format", "json", "serve"])
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawning {}: {e}", berth_bin().display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                let parsed: Option<serde_json::Value> = serde_json::from_str(&line).ok();
                let fields = parsed.as_ref().and_then(|v| v.get("fields")).cloned().unwrap_or_default();
                let message = fields.get("message").and_then(|m| m.as_str()).map_or(line.clone(), str::to_string);
                if tx.send(LogLine { at, message, fields }).is_err() {
                    break;
                }
            }
        });
        Berth { child, lines, pending: VecDeque::new(), started }
    }

    /// The process id.
    /// Starts `berth serve` on `manifests` with its state in `state`, on
    /// `engine`, with `extra` flags.
    pub fn serve(
        manifests: &std::path::Path,
        state: &std::path::Path,
        engine: &str,
        extra: &[&str],
        rust_log: &str,
    ) -> Self {
        let mut args = vec![
            "--manifests",
            manifests.to_str().expect("utf-8 path"),
            "--engine",
            engine,
            "--state-dir",
            state.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(&FREE_PORTS);
        args.extend_from_slice(extra);
        Self::spawn(&args, rust_log)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next log line, waiting at most `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<LogLine> {
        if let Some(line) = self.pending.pop_front() {
            return Some(line);
        }
        self.lines.recv_timeout(timeout).ok()
    }

    /// Reads lines until one satisfies `wanted`; panics after `timeout`
    /// (printing the last lines read, for the reason).
    pub fn wait_for(&mut self, timeout: Duration, mut wanted: impl FnMut(&LogLine) -> bool) -> LogLine {
        let deadline = Instant::now() + timeout;
        let mut recent: VecDeque<String> = VecDeque::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if wanted(&line) => return line,
                Some(line) => {
                    recent.push_back(format!("{} {}", line.message, line.fields));
                    if recent.len() > 20 {
                        recent.pop_front();
                    }
                }
                None => {
                    let exited = self.child.try_wait().ok().flatten();
                    panic!(
                        "berth log: nothing wanted within {timeout:?} (exited: {exited:?}); last lines:\n{}",
                        recent.into_iter().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
    }

    /// Discards lines until none arrives for `quiet`; returns how many.
    pub fn drain_until_quiet(&mut self, quiet: Duration) -> Vec<LogLine> {
        let mut drained = Vec::new();
        while let Some(line) = self.next_line(quiet) {
            drained.push(line);
        }
        drained
    }

    /// The last 30 lines written and not consumed yet, as text (for a
    /// failure's reason).
    pub fn unread(&mut self) -> String {
        let lines = self.drain_until_quiet(Duration::ZERO);
        let tail = &lines[lines.len().saturating_sub(30)..];
        tail.iter().map(|l| format!("{} {}", l.message, l.fields)).collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s).
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        // A panicking benchmark must not leave berth running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/<pid>/stat");
    // Fields after the `(comm)`, which may contain spaces: state is field 3,
    // utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / per_second)
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/<pid>/status");
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).expect("field in /proc/<pid>/status");
    line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).expect("kB value") * 1024
}

/// Median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    assert!(n > 0, "median of nothing");
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

/// The `p`th percentile (nearest rank).
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Mebibytes with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `a / b` as `1.23x`.
pub fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64().max(1e-9))
}

/// A fresh temporary directory, removed on drop.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().expect("temporary directory")
}

/// Writes the Docker stack of the benchmarks into `dir`: one Network, one
/// Volume and `containers` Containers (busybox `sleep` and `httpd`
/// alternately, image `image`, 1 s grace, each on the network and mounting
/// the volume), one file per object, all in `namespace`.
pub fn write_docker_stack(dir: &Path, namespace: &str, containers: usize, image: &str) {
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("writing a manifest");
    write(
        "network.yaml",
        format!("apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata:\n  name: net\n  namespace: {namespace}\nspec: {{}}\n"),
    );
    write(
        "volume.yaml",
        format!("apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: data\n  namespace: {namespace}\nspec: {{}}\n"),
    );
    for i in 0..containers {
        write(&format!("c{i:02}.yaml"), docker_container_manifest(namespace, i, image));
    }
}

/// The manifest of container `i` of [`write_docker_stack`].
pub fn docker_container_manifest(namespace: &str, i: usize, image: &str) -> String {
    let command =
        if i.is_multiple_of(2) { r#"["sleep", "3600"]"# } else { r#"["httpd", "-f", "-p", "8080", "-h", "/data"]"# };
    format!(
        "apiVersion: berth.dev/v1alpha1
kind: Container
metadata:
  name: c{i:02}
  namespace: {namespace}
spec:
  image: {image}
  command: {command}
  stopGracePeriod: 1s
  volumeMounts:
    - volume: data
      mountPath: /data
  networks:
    - name: net
"
    )
}

/// The manifest of a Container the fake engine can run: `image: busybox`
/// (the fake's pulls succeed).
pub fn fake_container_manifest(name: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1
kind: Container
metadata:
  name: {name}
spec:
  image: busybox
  command: [\"sleep\", \"3600\"]
  stopGracePeriod: 1s
"
    )
}
