//! A private `dbus-daemon` (Debian's) on a socket in its own directory:
//! either permissive (a session-like bus) or with the system bus's
//! default-deny rules and berth's shipped policy
//! (`dist/dbus/dev.berth.Controller1.conf`) included.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo_path;

/// A running bus.
pub struct Bus {
    child: Child,
    dir: tempfile::TempDir,
}

const HEADER: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">"#;

const PERMISSIVE: &str = r#"<policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>"#;

/// The default rules of Debian's /usr/share/dbus-1/system.conf.
const SYSTEM: &str = r#"<policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>"#;

impl Bus {
    /// A bus anyone may own names on and call; `None` when client tests are skipped.
    pub fn permissive() -> Option<Bus> {
        crate::support::tools::venv_python()?;
        Some(Bus::start("session", PERMISSIVE))
    }

    /// A bus with the system bus's rules and berth's shipped policy.
    pub fn system_policy() -> Option<Bus> {
        crate::support::tools::venv_python()?;
        let policy = repo_path("dist/dbus/dev.berth.Controller1.conf");
        Some(Bus::start("system", &format!("{SYSTEM}\n  <include>{}</include>", policy.display())))
    }

    fn start(kind: &str, rules: &str) -> Bus {
        assert!(
            PathBuf::from("/usr/bin/dbus-daemon").exists(),
            "dbus-daemon is missing: run scripts/setup-clients.sh (or set BERTH_SKIP_CLIENTS=1)"
        );
        let dir = tempfile::tempdir().unwrap();
        // Other users (the policy test's `nobody`) reach the socket too.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let socket = dir.path().join("bus");
        let config = format!(
            "{HEADER}\n<busconfig>\n  <type>{kind}</type>\n  <listen>unix:path={}</listen>\n  \
             <auth>EXTERNAL</auth>\n  {rules}\n</busconfig>\n",
            socket.display()
        );
        std::fs::write(dir.path().join("bus.conf"), config).unwrap();
        let child = Bus::spawn(dir.path());
        Bus { child, dir }
    }

    fn spawn(dir: &std::path::Path) -> Child {
        let socket = dir.join("bus");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", dir.join("bus.conf").display()))
            .args(["--nofork", "--nopidfile"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
            .spawn()
            .expect("dbus-daemon starts");
        let started = Instant::now();
        while !socket.exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "dbus-daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Kills the bus and starts it again at the same address: every
    /// connection to it is lost, as when the system bus restarts.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Bus::spawn(self.dir.path());
    }

    /// Its address, `unix:path=...`.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("bus").display())
    }

    /// `busctl --address=... --json=short call dev.berth.Controller1 ...
    /// METHOD SIGNATURE ARGS...`: (success, stdout, stderr).
    pub fn busctl(&self, method: &str, signature: &str, args: &[&str]) -> (bool, String, String) {
        self.busctl_as(None, method, signature, args)
    }

    /// Like [`Bus::busctl`], run as `user` (through runuser) when given.
    pub fn busctl_as(
        &self,
        user: Option<&str>,
        method: &str,
        signature: &str,
        args: &[&str],
    ) -> (bool, String, String) {
        let mut command = match user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--", "busctl"]);
                command
            }
            None => Command::new("busctl"),
        };
        let output = command
            .arg(format!("--address={}", self.address()))
            .args(["--json=short", "call", "dev.berth.Controller1", "/dev/berth/Controller1", "dev.berth.Controller1"])
            .args([method, signature])
            .args(args)
            .output()
            .expect("busctl runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `gdbus call` of `method` with `args` (GVariant text): its output.
    pub fn gdbus(&self, method: &str, args: &[&str]) -> (bool, String) {
        let output = Command::new("gdbus")
            .args(["call", "--address", &self.address(), "--dest", "dev.berth.Controller1"])
            .args(["--object-path", "/dev/berth/Controller1", "--method", &format!("dev.berth.Controller1.{method}")])
            .args(args)
            .output()
            .expect("gdbus runs");
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), said)
    }

    /// `gdbus monitor` of berth's name, in the background.
    pub fn monitor(&self) -> Monitor {
        let out = self.dir.path().join(format!("monitor-{}", fastrand::u32(..)));
        let child = Command::new("gdbus")
            .args(["monitor", "--address", &self.address(), "--dest", "dev.berth.Controller1"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("gdbus monitor runs");
        Monitor { child, out }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `gdbus monitor` writing to a file.
pub struct Monitor {
    child: Child,
    out: PathBuf,
}

impl Monitor {
    /// Waits until its output contains `text`; the output.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let said = std::fs::read_to_string(&self.out).unwrap_or_default();
            if said.contains(text) {
                return said;
            }
            assert!(started.elapsed() < timeout, "no `{text}` from gdbus monitor:\n{said}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
