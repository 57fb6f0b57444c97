//! A private mosquitto broker on loopback (Debian's `mosquitto`, which
//! `scripts/setup-clients.sh` installs), with persistence in its own
//! directory so that a restart keeps retained messages and sessions, and
//! the `mosquitto_pub` / `mosquitto_sub` clients against it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running mosquitto.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its loopback port.
    pub port: u16,
    /// Arguments every mosquitto_pub/sub gets (TLS roots, credentials).
    pub client_args: Vec<String>,
}

fn mosquitto() -> PathBuf {
    let path = PathBuf::from("/usr/sbin/mosquitto");
    assert!(path.exists(), "mosquitto is missing: run scripts/setup-clients.sh (or set BERTH_SKIP_CLIENTS=1)");
    path
}

impl Broker {
    /// Starts one on a free port; `None` when client tests are skipped.
    pub fn start() -> Option<Broker> {
        Broker::start_with(|_| "allow_anonymous true\n".to_string())
    }

    /// Starts one whose listener settings `extra` writes (given the
    /// broker's directory, for certificate and password files).
    pub fn start_with(extra: impl FnOnce(&std::path::Path) -> String) -> Option<Broker> {
        crate::support::tools::venv_python()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "per_listener_settings false\nlistener {port} 127.0.0.1\n{}persistence true\npersistence_location {}/\n\
             log_dest file {}/mosquitto.log\nmax_packet_size 16777216\n",
            extra(dir.path()),
            dir.path().display(),
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
        let mut broker = Broker { child: None, dir, port, client_args: Vec::new() };
        broker.spawn();
        Some(broker)
    }

    fn spawn(&mut self) {
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "mosquitto did not listen:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it (SIGTERM: it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Stops it and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// `mosquitto_pub` (MQTT 3.1.1, QoS 1) with `args` added.
    pub fn publish(&self, args: &[&str]) {
        let output = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-V", "mqttv311"])
            .args(&self.client_args)
            .args(args)
            .output()
            .expect("mosquitto_pub runs");
        assert!(output.status.success(), "mosquitto_pub {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Starts `mosquitto_sub -v` (MQTT 3.1.1) on `topic` for `count`
    /// messages, waiting at most `timeout`; [`Subscription::lines`] reads
    /// them. Returns once the subscription is in place.
    pub fn subscribe(&self, topic: &str, count: usize, timeout: Duration) -> Subscription {
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-V", "mqttv311", "-v"])
            .args(&self.client_args)
            .args(["-t", topic, "-C", &count.to_string(), "-W", &timeout.as_secs().max(1).to_string()])
            .args(["-i", &format!("sub-{}", fastrand::u32(..))])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub runs");
        // mosquitto_sub has no "subscribed" signal on its output: give it
        // the moment a loopback connect and subscribe take.
        std::thread::sleep(Duration::from_millis(300));
        Subscription { child: Some(child) }
    }

    /// The retained message on `topic` (empty when there is none).
    pub fn retained(&self, topic: &str) -> String {
        let output = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-V", "mqttv311", "--retained-only"])
            .args(&self.client_args)
            .args(["-t", topic, "-C", "1", "-W", "1"])
            .output()
            .expect("mosquitto_sub runs");
        String::from_utf8_lossy(&output.stdout).trim_end().to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `mosquitto_sub` in the background.
pub struct Subscription {
    child: Option<Child>,
}

impl Subscription {
    /// What it received as `topic payload` lines, once it has its count
    /// or timed out.
    pub fn lines(mut self) -> Vec<String> {
        let output = self.child.take().unwrap().wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
