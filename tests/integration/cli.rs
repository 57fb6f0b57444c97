//! The `berth` binary's offline commands: output and exit codes.

use assert_cmd::Command;
use predicates::prelude::*;

use crate::support::repo_path;

fn berth() -> Command {
    Command::cargo_bin("berth").expect("the berth binary is built")
}

#[test]
fn validate_prints_the_object_count_for_the_examples() {
    berth().args(["validate", "-f"]).arg(repo_path("examples")).assert().success().stdout("8 objects valid\n");
}

#[test]
fn validate_prints_every_error_with_its_position_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  replicas: 5000\n  ports: [{containerPort: 0}]\n").unwrap();
    let shown = broken.display().to_string();
    berth()
        .args(["validate", "-f"])
        .arg(&broken)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "{shown}:7:13: Container/default/web: spec.replicas: replicas 5000 is out of range; use 0-1000"
        )))
        .stderr(predicate::str::contains(format!(
            "{shown}:8:27: Container/default/web: spec.ports[0].containerPort: port 0 is out of range"
        )))
        .stderr(predicate::str::ends_with("2 errors\n"));
}

#[test]
fn validate_reads_standard_input() {
    berth()
        .args(["validate", "-f", "-"])
        .write_stdin("apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: app}\nspec: {}\n")
        .assert()
        .success()
        .stdout("1 objects valid\n");
}

#[test]
fn validate_of_a_missing_path_names_it() {
    berth()
        .args(["validate", "-f", "/no/such/manifests"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("/no/such/manifests:1:1: cannot read: No such file or directory"));
}

#[test]
fn usage_errors_exit_2() {
    berth().arg("validate").assert().code(2);
    berth().arg("frobnicate").assert().code(2);
}

#[test]
fn crds_writes_six_crds_and_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    berth().args(["crds", "--out"]).arg(dir.path()).assert().success();
    for plural in ["containers", "volumes", "networks", "images", "dnsrecords", "routes"] {
        let crd = std::fs::read_to_string(dir.path().join(format!("{plural}.berth.dev.yaml"))).unwrap();
        assert!(crd.contains(&format!("name: {plural}.berth.dev")), "{plural}");
    }
    assert!(dir.path().join("schemas/all.json").is_file());
}

#[test]
fn version_prints_the_version() {
    berth()
        .arg("version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!("berth {}", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn serve_refuses_a_manifests_path_that_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    berth()
        .args(["serve", "--engine", "fake", "--manifests", "/no/such/dir", "--state-dir"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--manifests /no/such/dir: not a directory"));
    assert!(dir.path().join("format").is_file(), "serve prepared the state directory");
}

#[test]
fn serve_refuses_dns_on_networks_without_the_dns_server() {
    let dir = tempfile::tempdir().unwrap();
    berth()
        .args(["serve", "--engine", "fake", "--listen", "127.0.0.1:0", "--tls-listen", "off", "--proxy-listen", "off"])
        .args(["--dns-listen", "off", "--dns-on-networks", "--state-dir"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--dns-on-networks needs the DNS server"));
}
