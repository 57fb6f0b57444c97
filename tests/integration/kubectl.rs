//! The real kubectl against `berth serve --engine fake` over TLS, with the
//! kubeconfig `berth kubeconfig` prints: discovery, tables (`-o wide`,
//! `-A`, `-l`), JSON and YAML output, a watch that sees a change, errors as
//! kubectl prints kube-apiserver's, and `delete` waiting for the object to
//! go. Each step asserts kubectl's output, not only its exit code.
//!
//! kubectl is required: `scripts/setup-engines.sh` installs it. Set
//! `BERTH_SKIP_KUBECTL=1` to skip these tests on a machine without it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::api::{container, ServedFake};

fn kubectl_available() -> bool {
    if std::env::var_os("BERTH_SKIP_KUBECTL").is_some() {
        eprintln!("BERTH_SKIP_KUBECTL is set: skipping the kubectl test");
        return false;
    }
    let found = Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
    assert!(found, "kubectl is not installed: run scripts/setup-engines.sh (or set BERTH_SKIP_KUBECTL=1)");
    true
}

/// A served berth and a kubeconfig for it.
struct Kube {
    server: ServedFake,
    home: tempfile::TempDir,
}

impl Kube {
    fn start() -> Kube {
        let server = ServedFake::start();
        let url_file = server.state_dir().join("tls/url");
        let started = Instant::now();
        while !url_file.exists() {
            assert!(started.elapsed() < Duration::from_secs(20), "no tls/url:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        let home = tempfile::tempdir().unwrap();
        let output = server.cli().args(["kubeconfig"]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        std::fs::write(home.path().join("kubeconfig"), &output.stdout).unwrap();
        Kube { server, home }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("kubectl");
        command
            .env("KUBECONFIG", self.home.path().join("kubeconfig"))
            .env("HOME", self.home.path())
            .env_remove("KUBERNETES_SERVICE_HOST");
        command
    }

    /// Runs kubectl; its stdout, or a panic with its stderr and berth's log.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed:\n{}\nberth's log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.server.log()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs kubectl expecting failure; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().unwrap();
        assert!(!output.status.success(), "kubectl {args:?} succeeded: {}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8(output.stderr).unwrap()
    }

    fn apply(&self, yaml: &str) {
        let file = self.home.path().join("manifest.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.server.cli().args(["apply", "-f"]).arg(&file).assert().success();
    }
}

#[test]
fn kubectl_discovers_lists_watches_and_deletes_berth_objects() {
    if !kubectl_available() {
        return;
    }
    let kube = Kube::start();
    let resources = kube.ok(&["api-resources", "--api-group=berth.dev"]);
    for (plural, short, kind) in [("containers", "ctr", "Container"), ("dnsrecords", "dns", "DnsRecord")] {
        let line = resources.lines().find(|l| l.starts_with(plural)).unwrap_or_else(|| panic!("{resources}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words, [plural, short, "berth.dev/v1alpha1", "true", kind], "{resources}");
    }
    assert_eq!(resources.lines().count(), 7, "a header and six kinds:\n{resources}");

    kube.apply(&container("web", "1"));
    kube.apply(&container("api", "1").replace("app: api", "app: backend"));
    let table = kube.ok(&["get", "ctr"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "REPLICAS", "REASON", "AGE"], "{table}");
    let web: Vec<&str> =
        table.lines().find(|l| l.starts_with("web ")).expect("a row for web").split_whitespace().collect();
    assert_eq!(web.len(), 5, "{table}");
    assert!(web[2].ends_with("/1"), "REPLICAS is ready/declared: {table}");
    let wide = kube.ok(&["get", "containers", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("SOURCE"), "{wide}");
    assert!(wide.contains(" api "), "the API source is named: {wide}");
    let all = kube.ok(&["get", "ctr", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.lines().any(|l| l.starts_with("default ") && l.contains(" web ")), "{all}");
    let selected = kube.ok(&["get", "ctr", "-l", "app=backend", "-o", "name"]);
    assert_eq!(selected.trim(), "container.berth.dev/api");

    let json: serde_json::Value = serde_json::from_str(&kube.ok(&["get", "ctr", "web", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "Container");
    let version = json["metadata"]["resourceVersion"].as_str().expect("resourceVersion is a string");
    assert!(version.parse::<u64>().is_ok(), "{json}");
    let yaml = kube.ok(&["get", "ctr", "web", "-o", "yaml"]);
    assert!(yaml.contains("image: busybox"), "{yaml}");
    let jsonpath = kube.ok(&["get", "ctr", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(jsonpath, "api web");

    let missing = kube.fails(&["get", "ctr", "nosuch"]);
    assert!(missing.contains("Error from server (NotFound)") && missing.contains("nosuch"), "{missing}");

    // A watch sees the current row, then the change.
    let mut watch = kube
        .command()
        .args(["get", "ctr", "web", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Should kubectl print nothing, the watchdog ends it: the reads below
    // then fail the test instead of hanging it.
    let pid = watch.id().to_string();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog_done = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if !watchdog_done.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = Command::new("kill").arg(&pid).status();
        }
    });
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next_line = || lines.next().expect("kubectl's watch printed nothing within 60 s").unwrap();
    let first = next_line();
    assert!(first.contains("EVENT") || first.contains("NAME"), "a header first: {first}");
    let added = next_line();
    assert!(added.starts_with("ADDED") && added.contains("web"), "{added}");
    kube.apply(&container("web", "2"));
    let modified = next_line();
    assert!(modified.starts_with("MODIFIED") && modified.contains("web"), "{modified}");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watch.kill();
    let _ = watch.wait();

    // delete waits (a watch on the name) until the object is gone.
    let deleted = kube.ok(&["delete", "ctr", "web", "--timeout=60s"]);
    assert_eq!(deleted.trim(), "container.berth.dev \"web\" deleted");
    let gone = kube.fails(&["get", "ctr", "web"]);
    assert!(gone.contains("NotFound"), "{gone}");
    let rest = kube.ok(&["get", "ctr", "-o", "name"]);
    assert_eq!(rest.trim(), "container.berth.dev/api");
}
