//! The real kubectl against `berth serve --engine fake` over TLS, with the
//! kubeconfig `berth kubeconfig` prints: discovery, tables (`-o wide`,
//! `-A`, `-l`), JSON and YAML output, a watch that sees a change, errors as
//! kubectl prints kube-apiserver's, and `delete` waiting for the object to
//! go; `apply` (client-side, an edit re-applied, then server-side with a
//! conflict between field managers), `edit` with an EDITOR script, `patch`
//! of both types, `apply --dry-run=server`, `describe` with berth's events,
//! and `explain` from the OpenAPI v3 document. Each step asserts kubectl's
//! output, not only its exit code.
//!
//! kubectl is required: `scripts/setup-engines.sh` installs it. Set
//! `BERTH_SKIP_KUBECTL=1` to skip these tests on a machine without it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

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
        Kube::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Kube {
        let server = ServedFake::start_with(args);
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("kubeconfig"), server.kubeconfig()).unwrap();
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

/// The examples, with the Image's build context made absolute: kubectl
/// sends objects, not files, so a relative context has nothing to be
/// relative to.
fn examples_for_kubectl(dir: &std::path::Path) -> std::path::PathBuf {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let copy = dir.join("examples");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let absolute = format!("context: {}", examples.join("busybox").display());
            std::fs::write(copy.join(path.file_name().unwrap()), text.replace("context: ./busybox", &absolute))
                .unwrap();
        }
    }
    copy
}

#[test]
fn kubectl_applies_edits_patches_describes_and_explains() {
    if !kubectl_available() {
        return;
    }
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let kube = Kube::start_with(&["--allow-host-paths", examples.to_str().unwrap()]);
    let copy = examples_for_kubectl(kube.home.path());
    let copy_arg = copy.to_str().unwrap();

    // Client-side apply of the examples: created, then an edit re-applied.
    let applied = kube.ok(&["apply", "-f", copy_arg]);
    for object in ["network.berth.dev/app created", "container.berth.dev/web created", "route.berth.dev/demo created"] {
        assert!(applied.contains(object), "{applied}");
    }
    let web_file = copy.join("04-web.yaml");
    let web = std::fs::read_to_string(&web_file).unwrap();
    assert!(web.contains("replicas: 2"), "the example changed: {web}");
    std::fs::write(&web_file, web.replace("replicas: 2", "replicas: 3")).unwrap();
    let reapplied = kube.ok(&["apply", "-f", copy_arg]);
    assert!(reapplied.contains("container.berth.dev/web configured"), "{reapplied}");
    assert!(reapplied.contains("network.berth.dev/app unchanged"), "{reapplied}");
    let replicas = |kube: &Kube| kube.ok(&["get", "ctr", "web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas(&kube), "3");

    // A server-side apply setting what client-side apply owns conflicts,
    // naming the other manager; --force-conflicts takes the field.
    let server_side = kube.home.path().join("web-ssa.yaml");
    std::fs::write(&server_side, web.replace("replicas: 2", "replicas: 5")).unwrap();
    let ssa_arg = server_side.to_str().unwrap();
    let conflict = kube.fails(&["apply", "--server-side", "-f", ssa_arg]);
    assert!(
        conflict.contains("Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\"")
            && conflict.contains(".spec.replicas")
            && conflict.contains("--force-conflicts"),
        "{conflict}"
    );
    assert_eq!(replicas(&kube), "3", "a conflicted apply wrote");
    let forced = kube.ok(&["apply", "--server-side", "--force-conflicts", "-f", ssa_arg]);
    assert!(forced.contains("container.berth.dev/web serverside-applied"), "{forced}");
    assert_eq!(replicas(&kube), "5");
    let managers =
        kube.ok(&["get", "ctr", "web", "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[*].manager}"]);
    assert!(managers.contains("kubectl-client-side-apply") && managers.contains("kubectl"), "{managers}");

    // A server dry run answers and writes nothing.
    std::fs::write(&server_side, web.replace("replicas: 2", "replicas: 9")).unwrap();
    let dry = kube.ok(&["apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", ssa_arg]);
    assert!(dry.contains("(server dry run)"), "{dry}");
    assert_eq!(replicas(&kube), "5", "a dry run wrote");

    // edit, with a script as the editor.
    let editor = kube.home.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/^  replicas: 5$/  replicas: 4/' \"$1\"\n").unwrap();
    let executable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&editor, executable).unwrap();
    let edited = kube.command().env("EDITOR", &editor).args(["edit", "ctr", "web"]).output().unwrap();
    let said = String::from_utf8_lossy(&edited.stdout).to_string() + &String::from_utf8_lossy(&edited.stderr);
    assert!(said.contains("container.berth.dev/web edited"), "{said}");
    assert_eq!(replicas(&kube), "4");

    // patch: merge and JSON; a strategic patch is refused with the way out.
    let merged =
        kube.ok(&["patch", "ctr", "web", "--type", "merge", "-p", r#"{"metadata":{"labels":{"tier":"front"}}}"#]);
    assert!(merged.contains("container.berth.dev/web patched"), "{merged}");
    let json_patch = r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#;
    kube.ok(&["patch", "ctr", "web", "--type", "json", "-p", json_patch]);
    assert_eq!(replicas(&kube), "1");
    let labels = kube.ok(&["get", "ctr", "-l", "tier=front", "-o", "name"]);
    assert_eq!(labels.trim(), "container.berth.dev/web");
    let strategic = kube.fails(&["patch", "ctr", "web", "-p", r#"{"spec":{"replicas":2}}"#]);
    assert!(strategic.contains("--type merge"), "{strategic}");

    // describe shows berth's events about the object.
    let described = kube.ok(&["describe", "ctr", "web"]);
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(events.contains("SourceChanged") && events.contains("berth"), "{described}");

    // explain reads the field docs from the OpenAPI v3 document.
    let explained = kube.ok(&["explain", "container.spec.healthCheck"]);
    assert!(explained.contains("KIND:       Container") && explained.contains("httpGet"), "{explained}");
    let unknown = kube.fails(&["explain", "container.spec.nosuch"]);
    assert!(unknown.contains("nosuch"), "{unknown}");
}
