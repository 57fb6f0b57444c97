//! The host policy against a real `berth serve`: by default a manifest may
//! not mount host paths, read secret files outside the secret directory,
//! run privileged or read berth's environment; each grant flag lets exactly
//! its case through. Refusals come at the field's line and column with the
//! flag that grants it, through the API and through a watched directory,
//! and a refused edit leaves the running object as it was.

use std::path::Path;
use std::time::Duration;

use predicates::str::contains;

use crate::support::api::ServedFake;

/// A Container whose spec ends with `extra` (indented as spec fields).
fn container(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: {name}\nspec:\n  image: busybox\n  command: [sleep, '3600']\n{extra}"
    )
}

/// `berth apply --dry-run` of `manifest` against `server`: the output and
/// whether it succeeded.
fn dry_run(server: &ServedFake, manifest: &str) -> (bool, String) {
    // The CLI reads the file itself (no policy there) and places the
    // server's refusal back at the file's lines.
    let file = server.dir.path().join(format!("m{}.yaml", fastrand::u32(..)));
    std::fs::write(&file, manifest).unwrap();
    let output = server.cli().args(["apply", "--dry-run", "-f"]).arg(&file).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Each case: its manifest, the line:column and flag a default server
/// names, and the flags that grant it.
struct Case {
    what: &'static str,
    manifest: String,
    /// `:LINE:COLUMN: OBJECT: FIELD`, after the file's name.
    refused_at: &'static str,
    grant: Vec<String>,
}

fn cases(granted_dir: &Path) -> Vec<Case> {
    let data = granted_dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let secret = granted_dir.join("password");
    std::fs::write(&secret, "hunter2").unwrap();
    vec![
        Case {
            what: "hostPath",
            manifest: container(
                "mounts",
                &format!("  volumeMounts:\n    - mountPath: /data\n      hostPath: {}\n", data.display()),
            ),
            refused_at: ":10:17: Container/default/mounts: spec.volumeMounts[0].hostPath",
            grant: vec!["--allow-host-paths".into(), format!("/nonexistent,{}", granted_dir.display())],
        },
        Case {
            what: "a Volume's device",
            manifest: format!(
                "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: bound\nspec:\n  driverOpts:\n    type: none\n    o: bind\n    device: {}\n",
                data.display()
            ),
            refused_at: ":9:13: Volume/default/bound: spec.driverOpts.device",
            grant: vec!["--allow-host-paths".into(), granted_dir.display().to_string()],
        },
        Case {
            what: "secretFile",
            manifest: container(
                "secret",
                &format!("  env:\n    - name: PASSWORD\n      valueFrom:\n        secretFile: {}\n", secret.display()),
            ),
            refused_at: ":11:21: Container/default/secret: spec.env[0].valueFrom.secretFile",
            grant: vec!["--secret-dir".into(), granted_dir.display().to_string()],
        },
        Case {
            what: "privileged",
            manifest: container("root", "  securityContext:\n    privileged: true\n"),
            refused_at: ":9:17: Container/default/root: spec.securityContext.privileged",
            grant: vec!["--allow-privileged".into()],
        },
        Case {
            what: "a host-level capability",
            manifest: container("caps", "  securityContext:\n    capabilities:\n      add: [NET_ADMIN, SYS_ADMIN]\n"),
            refused_at: ":10:7: Container/default/caps: spec.securityContext.capabilities",
            grant: vec!["--allow-privileged".into()],
        },
        Case {
            what: "hostEnv",
            manifest: container("env", "  env:\n    - name: WHERE\n      valueFrom:\n        hostEnv: HOME\n"),
            refused_at: ":11:18: Container/default/env: spec.env[0].valueFrom.hostEnv",
            grant: vec!["--allow-host-env".into(), "TZ,HOME".into()],
        },
    ]
}

#[test]
fn each_policy_flag_refuses_by_default_and_grants_exactly_its_case() {
    let granted = tempfile::tempdir().unwrap();
    let cases = cases(granted.path());
    let strict = ServedFake::start();
    for case in &cases {
        let (ok, text) = dry_run(&strict, &case.manifest);
        assert!(!ok, "{} was accepted by a default server:\n{text}", case.what);
        assert!(text.contains(case.refused_at), "{}: no `{}` in:\n{text}", case.what, case.refused_at);
        assert!(text.contains(&case.grant[0]), "{}: the refusal does not name {}:\n{text}", case.what, case.grant[0]);
    }
    for (i, case) in cases.iter().enumerate() {
        let args: Vec<&str> = case.grant.iter().map(String::as_str).collect();
        let granted_server = ServedFake::start_with(&args);
        let (ok, text) = dry_run(&granted_server, &case.manifest);
        assert!(ok, "{} was refused with {args:?}:\n{text}", case.what);
        // The grant is for that case only: every other case is still refused
        // (the two privilege cases share their flag).
        for (j, other) in cases.iter().enumerate() {
            if j != i && other.grant[0] != case.grant[0] {
                assert!(!dry_run(&granted_server, &other.manifest).0, "{args:?} also let {} through", other.what);
            }
        }
    }
}

#[test]
fn a_symlink_out_of_a_granted_directory_is_refused_and_so_is_a_secret_outside_the_secret_dir() {
    let granted = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc", granted.path().join("escape")).unwrap();
    let server = ServedFake::start_with(&["--allow-host-paths", &granted.path().display().to_string()]);
    let escape = granted.path().join("escape");
    let mount =
        container("escape", &format!("  volumeMounts:\n    - mountPath: /x\n      hostPath: {}\n", escape.display()));
    let (ok, text) = dry_run(&server, &mount);
    assert!(!ok && text.contains("resolves to /etc"), "{text}");
    // The default secret directory is `secrets` in the state directory, made 0700.
    let secrets = server.state_dir().join("secrets");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777, 0o700);
    std::fs::write(secrets.join("db"), "pw").unwrap();
    let inside = container(
        "inside",
        &format!("  env:\n    - name: P\n      valueFrom:\n        secretFile: {}\n", secrets.join("db").display()),
    );
    assert!(dry_run(&server, &inside).0, "a secret in the default secret directory was refused");
    let outside = container("outside", "  env:\n    - name: P\n      valueFrom:\n        secretFile: /etc/shadow\n");
    let (ok, text) = dry_run(&server, &outside);
    assert!(!ok && text.contains("--secret-dir"), "{text}");
}

/// A watched file that starts asking for a host path is refused at its
/// line and column, and the object it declared keeps running unchanged.
#[test]
fn a_refused_edit_in_a_watched_directory_keeps_what_runs() {
    let manifests = tempfile::tempdir().unwrap();
    let file = manifests.path().join("app.yaml");
    std::fs::write(&file, container("app", "")).unwrap();
    let server = ServedFake::start_with(&["--manifests", &manifests.path().display().to_string()]);
    let ready = || {
        let output = server.cli().args(["get", "container", "app", "-o", "json"]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).ok()
    };
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !check() {
            assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("app to be stored", &|| ready().is_some());
    let before = ready().unwrap();
    std::fs::write(&file, container("app", "  volumeMounts:\n    - mountPath: /x\n      hostPath: /etc\n")).unwrap();
    let expected = format!("{}:10:17", file.canonicalize().unwrap().display());
    wait("the refusal in `berth get sources`", &|| {
        let output = server.cli().args(["get", "sources", "-o", "yaml"]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).contains("--allow-host-paths")
    });
    let sources = server.cli().args(["get", "sources", "-o", "yaml"]).assert().success();
    sources.stdout(contains(expected.as_str()));
    let after = ready().unwrap();
    assert_eq!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
    assert!(after["spec"].get("volumeMounts").is_none());
}

/// `berth apply -f` sends an Image's build context as a path of the host:
/// refused by a default server, granted when the context lies in a
/// directory the server follows with `--manifests` (or under
/// `--allow-host-paths`).
#[test]
fn a_build_context_sent_by_the_cli_needs_a_followed_or_granted_directory() {
    let examples = crate::support::repo_path("examples");
    let image = examples.join("02-image.yaml");
    // Forced: the following server's directory source owns the Image.
    let apply =
        |server: &ServedFake| server.cli().args(["apply", "--dry-run", "--force", "-f"]).arg(&image).output().unwrap();
    let refused = apply(&ServedFake::start());
    let text = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "a default server took a build context from the host");
    assert!(text.contains("02-image.yaml:") && text.contains("--allow-host-paths"), "{text}");
    let following = ServedFake::start_with(&["--manifests", examples.to_str().unwrap()]);
    let accepted = apply(&following);
    assert!(accepted.status.success(), "{}", String::from_utf8_lossy(&accepted.stderr));
}

/// Waits until `kind/name` on `server` is Ready=False with `reason`;
/// returns the condition's message.
fn wait_for_reason(server: &ServedFake, kind: &str, name: &str, reason: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let output = server.cli().args(["get", kind, name, "-o", "json"]).output().unwrap();
        let object: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let conditions = object["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let ready = conditions.into_iter().find(|c| c["type"] == "Ready");
        if let Some(ready) = ready.filter(|r| r["reason"] == reason) {
            assert_eq!(ready["status"], "False");
            return ready["message"].as_str().unwrap_or_default().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{kind}/{name} is not {reason}: {object}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An Image stored while its context was granted is not built once the
/// grant is gone, nor a Volume created whose device is no longer granted:
/// the controller checks stored objects too, and says why in their status.
#[test]
fn stored_objects_that_are_no_longer_granted_are_not_acted_on() {
    let state = tempfile::tempdir().unwrap();
    let data = state.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let state = state.path().join("state");
    let context = crate::support::repo_path("examples/busybox");
    let image = crate::support::repo_path("examples/02-image.yaml");
    let volume = state.parent().unwrap().join("volume.yaml");
    std::fs::write(
        &volume,
        format!(
            "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {{name: bound}}\nspec:\n  driverOpts: {{type: none, o: bind, device: {}}}\n",
            data.display()
        ),
    )
    .unwrap();
    let grants = format!("{},{}", context.display(), data.display());
    let granted = ServedFake::start_in(&state, &["--allow-host-paths", &grants]);
    granted.cli().args(["apply", "-f"]).arg(&image).arg("-f").arg(&volume).assert().success();
    drop(granted);
    let server = ServedFake::start_in(&state, &[]);
    for (kind, name) in [("image", "busybox"), ("volume", "bound")] {
        let message = wait_for_reason(&server, kind, name, "PolicyDenied");
        assert!(message.contains("--allow-host-paths"), "{kind}: {message}");
    }
}
