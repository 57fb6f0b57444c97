//! A dockerd of the test's own, which the test may stop and start again.
//!
//! The outage test takes its engine away. The system dockerd serves every
//! other engine test running in parallel, so the test starts a daemon of its
//! own as a child and stops that one. Everything it has is its own, under
//! one short directory in `/tmp` (unix socket paths are limited to 108
//! bytes, and containerd's sockets sit under the exec root):
//!
//! - `--host unix://DIR/docker.sock`, `--data-root DIR/data`,
//!   `--exec-root DIR/exec`, `--pidfile DIR/docker.pid`;
//! - `--config-file DIR/daemon.json` (`{}`), so a host's
//!   `/etc/docker/daemon.json` cannot add `live-restore` or a shared
//!   containerd;
//! - no `--containerd`: the daemon runs a containerd of its own under its
//!   exec root and stops it when it stops. Its namespaces are named after
//!   the directory anyway, in case a host points it at a shared one;
//! - a network namespace of its own (`unshare --net`): a dockerd started
//!   with `--bridge=none` deletes the host's `docker0` (the system daemon's
//!   default bridge, which every other Docker test needs), and any bridge
//!   it made would share the host's address space. In its own namespace
//!   nothing it does to interfaces touches the host; its socket is a file,
//!   reachable from anywhere;
//! - `--bridge=none`: containers run without networks (the test needs
//!   none);
//! - `--iptables=false --ip6tables=false --ip-masq=false
//!   --userland-proxy=false`: the host's firewall rules are the system
//!   daemon's, and this one publishes no ports;
//! - no `--live-restore` (the default): a stopped daemon stops its
//!   containers, as an engine outage does on most hosts.
//!
//! [`PrivateDockerd::stop`] sends SIGTERM and waits for the exit, and
//! [`PrivateDockerd::start_again`] starts the daemon on the same data root,
//! where its containers (and their restart policies) survive. Dropping it
//! removes its containers, stops it (killing it and its containerd if it
//! will not stop), unmounts whatever it left mounted under its directory,
//! and removes the directory; on a failing test its log's tail is printed.
//!
//! The fixture speaks HTTP/1.0 to the socket itself (one request per
//! connection, the answer ends at close): it needs only a ping and two
//! cleanup calls, and `drop` cannot use an async client.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long a start may take before it counts as failed: a first start
/// creates the data root, and the machine may be busy with parallel tests.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the daemon gets to stop after SIGTERM (it stops its containers
/// first, each within its own stop timeout).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request to the socket may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of the daemon's log quoted when it fails to start, or the test fails.
const LOG_TAIL: usize = 30;

/// A running (or stopped) dockerd with its own socket, data and exec root.
pub struct PrivateDockerd {
    /// `/tmp/bdXXXXXX`: socket, pidfile, config, log, data and exec roots.
    root: tempfile::TempDir,
    /// The daemon while it runs.
    child: Option<Child>,
}

impl PrivateDockerd {
    /// Starts a daemon on a fresh directory and waits until it answers
    /// `_ping`. Fails (with the daemon's last log lines) when `dockerd` is
    /// missing, is not allowed to run (it needs root), or does not answer
    /// within [`START_TIMEOUT`].
    pub fn start() -> anyhow::Result<PrivateDockerd> {
        // /tmp rather than TMPDIR: the socket paths must stay short.
        let root = tempfile::Builder::new().prefix("bd").tempdir_in("/tmp").context("a directory in /tmp")?;
        fs::write(root.path().join("daemon.json"), "{}\n").context("writing daemon.json")?;
        let mut dockerd = PrivateDockerd { root, child: None };
        dockerd.start_again()?;
        Ok(dockerd)
    }

    /// The daemon's address, as `DOCKER_HOST` takes it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.root.path().join("docker.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("dockerd.log")
    }

    /// Starts the (stopped) daemon again on the same data root and waits
    /// until it answers `_ping`.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        assert!(self.child.is_none(), "the private dockerd is already running");
        let dir = self.root.path();
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).context("dockerd's log")?;
        // Named after the directory, so they are unique per test.
        let namespace = format!("berth-test-{}", dir.file_name().unwrap_or_default().to_string_lossy());
        let path = std::env::var("PATH").unwrap_or_default();
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .args(["--containerd-namespace", &namespace, "--containerd-plugins-namespace", &format!("{namespace}-p")])
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .args(["--userland-proxy=false", "--log-level=info"])
            // dockerd starts `containerd` and `runc` from PATH; a test
            // runner's PATH may lack the system directories.
            .env("PATH", format!("{path}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("dockerd's log")?)
            .stderr(log)
            .spawn()
            .context("spawning dockerd (is docker.io installed? scripts/setup-engines.sh installs it)")?;
        self.child = Some(child);
        let started = Instant::now();
        while !self.ping() {
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                bail!("dockerd exited with {status} before answering\n{}", self.log_tail());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("dockerd did not answer _ping within {START_TIMEOUT:?}\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether the daemon answers `_ping` with `OK`.
    pub fn ping(&self) -> bool {
        matches!(self.request("GET", "/_ping"), Ok((200, body)) if body == "OK")
    }

    /// Stops the daemon with SIGTERM and waits for it to exit; returns how
    /// long that took.
    pub fn stop(&mut self) -> anyhow::Result<Duration> {
        let mut child = self.child.take().context("the private dockerd is not running")?;
        let started = Instant::now();
        signal(&child, libc::SIGTERM);
        while started.elapsed() < STOP_TIMEOUT {
            if child.try_wait()?.is_some() {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        bail!("dockerd did not stop within {STOP_TIMEOUT:?} of SIGTERM\n{}", self.log_tail())
    }

    /// One request on a connection of its own: (status, body).
    fn request(&self, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = UnixStream::connect(self.socket())?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer.split_once("\r\n\r\n").context("an HTTP answer")?;
        let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).context("a status line")?;
        Ok((status, body.to_string()))
    }

    /// The last lines of the daemon's log.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
        format!("--- last {LOG_TAIL} lines of {} ---\n{tail}", self.log_path().display())
    }

    /// Removes every container, so the stop that follows need not wait out
    /// their stop timeouts and leaves nothing mounted.
    fn remove_containers(&self) -> anyhow::Result<()> {
        let (status, body) = self.request("GET", "/containers/json?all=1")?;
        anyhow::ensure!(status == 200, "listing containers: {status} {body}");
        let containers: Vec<serde_json::Value> = serde_json::from_str(&body).context("the container list")?;
        for id in containers.iter().filter_map(|c| c["Id"].as_str()) {
            let (status, body) = self.request("DELETE", &format!("/containers/{id}?force=1&v=1"))?;
            anyhow::ensure!(status == 204 || status == 404, "removing container {id}: {status} {body}");
        }
        Ok(())
    }

    /// Kills a daemon that would not stop, and the containerd it started
    /// (which outlives a killed dockerd), by their process ids.
    fn kill(&mut self, mut child: Child) {
        let containerd = self.root.path().join("exec/containerd/containerd.pid");
        let _ = child.kill();
        let _ = child.wait();
        let pid = fs::read_to_string(containerd).ok().and_then(|pid| pid.trim().parse::<libc::pid_t>().ok());
        if let Some(pid) = pid.filter(|pid| *pid > 1) {
            // SAFETY: kill has no memory preconditions. The pid is the one
            // our daemon's containerd wrote; it is not reaped by us, so it
            // could in theory be reused, but only within this test's run.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("private dockerd at {}\n{}", self.host(), self.log_tail());
        }
        if self.child.is_some() {
            if let Err(error) = self.remove_containers() {
                eprintln!("private dockerd: cleanup: {error:#}");
            }
            if let Err(error) = self.stop() {
                eprintln!("private dockerd: {error:#}; killing it");
                if let Some(child) = self.child.take() {
                    self.kill(child);
                }
            }
        }
        unmount_under(self.root.path());
    }
}

/// Sends `signal` to our unreaped child.
fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill has no memory preconditions; `pid` is our unreaped child,
    // so it cannot have been reused by another process.
    unsafe { libc::kill(pid, signal) };
}

/// Unmounts (lazily, deepest first) every mount point under `dir` that a
/// daemon which did not shut down cleanly left behind, so the directory can
/// be removed.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else { return };
    // The fifth field is the mount point, with spaces and the like octal-escaped.
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in points {
        let Ok(path) = CString::new(point) else { continue };
        // SAFETY: `path` is a valid NUL-terminated string for the call's duration.
        if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!("private dockerd: unmounting {point}: {}", std::io::Error::last_os_error());
        }
    }
}
