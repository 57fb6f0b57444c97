//! The D-Bus transport against a private Debian `dbus-daemon` and other
//! people's clients: `busctl` and `gdbus` call Apply, Plan, Get, Status,
//! Delete and ApplyBytes (protobuf and encrypted payloads made by the
//! Python peer), `gdbus monitor` sees `Changed`, and the shipped system
//! bus policy lets root in and keeps `nobody` out.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::api::ServedFake;
use crate::support::bus::Bus;
use crate::support::ingress::{example_stack, exists, file_with, keyring, EXAMPLE_OBJECTS};
use crate::support::repo_path;
use crate::support::tools::venv_python;

fn berth_on(bus: &Bus, extra: &[&str]) -> ServedFake {
    let examples = repo_path("examples");
    let address = bus.address();
    let mut args = vec!["--dbus", address.as_str(), "--allow-host-paths", examples.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = ServedFake::start_with(&args);
    let started = std::time::Instant::now();
    while !server.log().contains("D-Bus dev.berth.Controller1") {
        assert!(started.elapsed().as_secs() < 30, "the D-Bus transport did not start:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// The one string a `busctl --json=short` reply carries, as JSON.
fn string_reply(stdout: &str) -> Value {
    let reply: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let text = reply["data"][0].as_str().unwrap_or_else(|| panic!("a string: {stdout}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A payload made by the Python peer (`peer.py request ...`): its bytes.
fn payload(python: &Path, dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = dir.join(format!("payload-{}", fastrand::u32(..)));
    let output = Command::new(python)
        .arg(repo_path("tests/clients/peer.py"))
        .arg("request")
        .args(args)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(out).unwrap()
}

/// ApplyBytes through busctl (`ay` as decimal bytes); the reply bytes.
fn apply_bytes(bus: &Bus, bytes: &[u8], content_type: &str) -> Vec<u8> {
    let mut args = vec![bytes.len().to_string()];
    args.extend(bytes.iter().map(u8::to_string));
    args.push(content_type.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = bus.busctl("ApplyBytes", "ays", &args);
    assert!(ok, "ApplyBytes: {stderr}");
    let reply: Value = serde_json::from_str(&stdout).unwrap();
    reply["data"][0].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect()
}

/// The Python peer's reading of reply bytes.
fn read_reply(python: &Path, dir: &Path, bytes: &[u8], content_type: &str, keyring: Option<&Path>) -> Value {
    let input = file_with(dir, &format!("reply-{}", fastrand::u32(..)), "");
    std::fs::write(&input, bytes).unwrap();
    let mut command = Command::new(python);
    command.arg(repo_path("tests/clients/peer.py")).args(["reply", "-i"]).arg(&input).args(["--type", content_type]);
    if let Some(keyring) = keyring {
        command.arg("--keyring").arg(keyring);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn busctl_and_gdbus_apply_get_plan_and_delete_and_gdbus_monitor_sees_changed() {
    let Some(bus) = Bus::permissive() else { return };
    let server = berth_on(&bus, &[]);
    let monitor = bus.monitor();
    std::thread::sleep(Duration::from_millis(300));

    let stack = example_stack();
    let (ok, stdout, stderr) = bus.busctl("Apply", "ss", &[&stack, ""]);
    assert!(ok, "Apply: {stderr}");
    let plan = string_reply(&stdout);
    assert_eq!(plan["items"].as_array().unwrap().len(), EXAMPLE_OBJECTS, "{plan}");
    let signals = monitor.wait_for("'Container/default/web', 'Added'", Duration::from_secs(10));
    assert!(signals.contains("dev.berth.Controller1.Changed"), "{signals}");

    let (ok, said) = bus.gdbus("Get", &["Container", "default", "web"]);
    assert!(ok && said.contains(r#""name":"web""#), "{said}");
    let (ok, said) = bus.gdbus("Status", &["", "", ""]);
    assert!(ok && said.contains("Container/default/api"), "{said}");

    // A plan of an edit writes nothing; a dry-run option is refused if misspelt.
    let edited = stack.replace("hello from berth", "hello again");
    let (ok, stdout, stderr) = bus.busctl("Plan", "ss", &[&edited, ""]);
    assert!(ok, "Plan: {stderr}");
    let plan = string_reply(&stdout);
    assert_eq!(plan["dryRun"], true, "{plan}");
    let (ok, _, stderr) = bus.busctl("Apply", "ss", &[&edited, "dryrun=true"]);
    assert!(!ok && stderr.contains("not one berth reads"), "{stderr}");

    // An invalid manifest: a D-Bus error named for it, with line and column.
    let bad = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: x\nspec:\n  imgae: busybox\n";
    let (ok, _, stderr) = bus.busctl("Apply", "ss", &[bad, ""]);
    assert!(!ok, "an invalid manifest was accepted");
    assert!(stderr.contains("imgae") && stderr.contains(r#"\"line\":6"#) || stderr.contains("\"line\":6"), "{stderr}");
    let (ok, said) = bus.gdbus("Apply", &[bad, ""]);
    assert!(!ok && said.contains("dev.berth.Controller1.Error.Invalid"), "{said}");

    let (ok, said) = bus.gdbus("Delete", &["Route", "", "demo"]);
    assert!(ok, "{said}");
    monitor.wait_for("'Route/default/demo', 'Modified'", Duration::from_secs(10));
    let (ok, said) = bus.gdbus("Get", &["Container", "default", "nope"]);
    assert!(!ok && said.contains("Error.NotFound"), "{said}");

    let events = server.cli().args(["events", "container", "web"]).output().unwrap();
    let events = String::from_utf8_lossy(&events.stdout).into_owned();
    assert!(events.contains("apply over dbus from D-Bus peer :"), "audited with the caller: {events}");
    assert!(events.contains("(uid "), "{events}");
}

#[test]
fn apply_bytes_takes_protobuf_and_encrypted_payloads_and_refuses_plaintext_when_told() {
    let Some(bus) = Bus::permissive() else { return };
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(dir.path());
    let server = berth_on(&bus, &["--keyring", keys.to_str().unwrap(), "--require-encryption", "dbus"]);
    let stack = file_with(dir.path(), "stack.yaml", &example_stack());
    let stack = stack.to_str().unwrap();

    let (ok, _, stderr) = bus.busctl("Apply", "ss", &[&example_stack(), ""]);
    assert!(!ok && stderr.contains("plaintext is refused"), "{stderr}");
    let plain = payload(&python, dir.path(), &["--verb", "apply", "-f", stack, "--protobuf"]);
    let reply = read_reply(
        &python,
        dir.path(),
        &apply_bytes(&bus, &plain, "application/x-protobuf"),
        "application/x-protobuf",
        None,
    );
    assert_eq!(reply["code"], 403, "{reply}");
    assert!(!exists(&server, "container", "web"));

    for algorithm in ["aes-256-gcm", "chacha20-poly1305"] {
        let keys = keys.to_str().unwrap();
        let sealed = payload(
            &python,
            dir.path(),
            &[
                "--verb",
                "apply",
                "-f",
                stack,
                "--protobuf",
                "--keyring",
                keys,
                "--channel",
                "dbus:ApplyBytes",
                "--algorithm",
                algorithm,
            ],
        );
        let answer = apply_bytes(&bus, &sealed, "");
        let reply = read_reply(&python, dir.path(), &answer, "", Some(Path::new(keys)));
        assert_eq!(reply["encrypted"], true, "{reply}");
        assert_eq!(reply["ok"], true, "{algorithm}: {reply}");
        assert_eq!(reply["items"].as_array().unwrap().len(), EXAMPLE_OBJECTS, "{reply}");
        // The same envelope again is a replay, refused in plain JSON (it
        // could not be opened, so there is no request to seal a reply to).
        let again = read_reply(&python, dir.path(), &apply_bytes(&bus, &sealed, ""), "", Some(Path::new(keys)));
        assert_eq!(again["json"]["code"], 403, "{again}");
        assert!(again["json"]["message"].as_str().unwrap().contains("replayed"), "{again}");
    }
    assert!(exists(&server, "container", "web"));

    // Tampered, stale, an unknown key: refused, in plain JSON, nothing applied.
    let keys = keys.to_str().unwrap();
    let never = file_with(dir.path(), "never.yaml", &crate::support::api::container("never", "1"));
    for (extra, expected) in [("--tamper", "authenticate"), ("--stale", "ago"), ("--key-id=k9", "k9")] {
        let args = [
            "--verb",
            "apply",
            "-f",
            never.to_str().unwrap(),
            "--keyring",
            keys,
            "--channel",
            "dbus:ApplyBytes",
            extra,
        ];
        let sealed = payload(&python, dir.path(), &args);
        let reply = read_reply(&python, dir.path(), &apply_bytes(&bus, &sealed, ""), "", None);
        assert_eq!(reply["json"]["code"], 403, "{extra}: {reply}");
        assert!(reply["json"]["message"].as_str().unwrap().contains(expected), "{extra}: {reply}");
    }
    assert!(!exists(&server, "container", "never"), "a refused request applied something");
}

#[test]
fn the_shipped_system_bus_policy_lets_root_in_and_keeps_others_out() {
    let Some(bus) = Bus::system_policy() else { return };
    assert_eq!(unsafe { libc::geteuid() }, 0, "the policy test runs berth as root and a caller as nobody: run as root");
    let _server = berth_on(&bus, &[]);
    let (ok, stdout, stderr) = bus.busctl("Status", "sss", &["", "", ""]);
    assert!(ok, "root is refused: {stderr}");
    assert!(string_reply(&stdout)["items"].is_array(), "{stdout}");
    let (ok, _, stderr) = bus.busctl_as(Some("nobody"), "Status", "sss", &["", "", ""]);
    assert!(!ok && stderr.contains("ccess denied"), "nobody got through: {stderr}");
}

#[test]
fn a_restarted_bus_is_reconnected_and_the_name_served_again() {
    let Some(mut bus) = Bus::permissive() else { return };
    let server = berth_on(&bus, &[]);
    bus.restart();
    let started = std::time::Instant::now();
    loop {
        let (ok, stdout, _) = bus.busctl("Status", "sss", &["", "", ""]);
        if ok {
            assert!(string_reply(&stdout)["items"].is_array(), "{stdout}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "berth did not come back on the bus:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.log().contains("D-Bus: connected again"), "{}", server.log());
}
