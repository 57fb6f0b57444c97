//! YAML written to hurt: alias bombs, merge-key bombs, 10,000 documents,
//! deep nesting and huge strings are refused with a positioned error that
//! names the limit, through every entry point (`berth validate`, `POST
//! /apply`, `PUT`, a watched file), within a small memory budget, and
//! nothing already running is touched.

use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use berth::api::ObjectKey;

use crate::support::api::{container, Api, TOKEN};
use crate::support::controller::eventually;

/// A 100 KB string anchored once and aliased 10,000 times: 130 KB of text,
/// a gigabyte expanded.
fn alias_bomb() -> String {
    let big = "x".repeat(100_000);
    let mut text = format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {{name: bomb}}\nspec:\n  image: busybox\n  command: [&big '{big}'"
    );
    for _ in 0..10_000 {
        text.push_str(", *big");
    }
    text.push_str("]\n");
    text
}

/// Nested anchors: each level aliases the one below ten times.
fn laughs() -> String {
    let mut text = String::from("apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: lol}\nspec: {}\nx:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let below = format!("*a{}", level - 1);
        text.push_str(&format!("  a{level}: &a{level} [{}]\n", vec![below; 10].join(", ")));
    }
    text
}

/// Merge keys repeating a big mapping.
fn merge_bomb() -> String {
    let mut text = String::from("base: &base\n");
    for i in 0..2_000 {
        text.push_str(&format!("  key{i}: '{}'\n", "v".repeat(100)));
    }
    for i in 0..200 {
        text.push_str(&format!("m{i}:\n  <<: *base\n"));
    }
    text
}

fn many_documents() -> String {
    (0..10_000)
        .map(|i| format!("apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {{name: v{i}}}\nspec: {{}}\n"))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn deep_nesting() -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {{name: deep}}\nspec: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    )
}

fn huge_string() -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {{name: huge}}\nspec:\n  image: busybox\n  env:\n    - name: BIG\n      value: '{}'\n",
        "y".repeat(2 << 20)
    )
}

/// Each hostile text, and what its error says.
pub(crate) fn catalogue() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("alias bomb", alias_bomb(), "expanded-size limit, --max-manifest-expanded"),
        ("billion laughs", laughs(), "expanded-size limit, --max-manifest-expanded"),
        ("merge-key bomb", merge_bomb(), "expanded-size limit, --max-manifest-expanded"),
        (
            "10,000 documents",
            many_documents(),
            "more than 1000 documents (the per-file limit, --max-manifest-documents)",
        ),
        ("deep nesting", deep_nesting(), "levels (--max-manifest-depth)"),
        ("a 2 MiB string", huge_string(), "1048576-byte limit of one value (--max-manifest-value)"),
    ]
}

/// Runs `berth validate -f file` under a small Python wrapper that reports
/// the child's peak resident set size (KiB): the measure is of that child
/// alone, not of this test process.
fn validate_peak_kib(file: &Path) -> (std::process::Output, u64) {
    let berth = assert_cmd::cargo::cargo_bin("berth");
    let wrapper = "import resource, subprocess, sys\n\
                   out = subprocess.run(sys.argv[1:], capture_output=True)\n\
                   sys.stdout.buffer.write(out.stdout); sys.stderr.buffer.write(out.stderr)\n\
                   print('PEAK_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n\
                   sys.exit(out.returncode)\n";
    let output = std::process::Command::new("python3")
        .args(["-c", wrapper])
        .arg(berth)
        .args(["validate", "-f"])
        .arg(file)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_KIB ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak reported: {stderr}"));
    (output, peak)
}

#[test]
fn berth_validate_refuses_each_within_50_mb_with_a_position_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, says) in catalogue() {
        let file = dir.path().join("hostile.yaml");
        std::fs::write(&file, &text).unwrap();
        let (output, peak_kib) = validate_peak_kib(&file);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(stderr.contains("hostile.yaml:"), "{name}: the error names the file and position: {stderr}");
        assert!(peak_kib < 50 * 1024, "{name}: validate peaked at {} MiB", peak_kib / 1024);
        eprintln!("{name}: refused, validate peaked at {:.1} MiB", peak_kib as f64 / 1024.0);
    }
}

#[test]
fn a_limit_can_be_raised_with_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.yaml");
    std::fs::write(&file, many_documents()).unwrap();
    let berth = || assert_cmd::Command::cargo_bin("berth").unwrap();
    berth().args(["validate", "-f"]).arg(&file).assert().code(1);
    berth()
        .args(["validate", "--max-manifest-documents", "20000", "-f"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicates::str::contains("10000 objects valid"));
}

#[tokio::test]
async fn the_api_refuses_each_with_422_and_changes_nothing() {
    let api = Api::start().await;
    assert_eq!(api.send_yaml("POST", "/apply", &container("web", "one")).await.status, StatusCode::OK);
    let version = api.store.resource_version();
    for (name, text, says) in catalogue() {
        for uri in ["/apply", "/apply?dryRun=true"] {
            let reply = api.call("POST", uri, Some(TOKEN), Some(("application/yaml", text.clone().into_bytes()))).await;
            let message = reply.error(StatusCode::UNPROCESSABLE_ENTITY);
            assert!(message.contains(says), "{name} via {uri}: {message}");
            assert!(reply.body.len() < 64 << 10, "{name}: a {}-byte answer", reply.body.len());
        }
        let put = "/apis/berth.dev/v1alpha1/namespaces/default/containers/bomb";
        let reply = api.call("PUT", put, Some(TOKEN), Some(("application/yaml", text.into_bytes()))).await;
        assert!(reply.error(StatusCode::UNPROCESSABLE_ENTITY).contains(says), "{name} via PUT");
    }
    assert_eq!(api.store.resource_version(), version, "a hostile body wrote to the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_file_turned_hostile_keeps_its_objects_and_records_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(&file, "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: keep}\nspec: {}\n").unwrap();
    let state = tempfile::tempdir().unwrap();
    let store = berth::store::Store::open(state.path()).unwrap();
    let source = berth::source::dir::DirSource::new(store.clone(), &[dir.path().to_path_buf()]).unwrap();
    let (shutdown, receiver) = tokio::sync::watch::channel(berth::controller::runtime::Shutdown::Running);
    let task = tokio::spawn(source.run(receiver));
    let keep = ObjectKey::parse("Volume/default/keep").unwrap();
    eventually(Duration::from_secs(10), "keep applied", || async { store.get(&keep).unwrap().map(|_| ()) }).await;
    std::fs::write(&file, alias_bomb()).unwrap();
    let errors = eventually(Duration::from_secs(10), "the limit recorded", || async {
        store.sources().unwrap().into_iter().find(|r| !r.errors.is_empty()).map(|r| r.errors)
    })
    .await;
    assert!(errors[0].contains("a.yaml:6:") && errors[0].contains("expanded-size limit"), "{errors:?}");
    tokio::time::sleep(berth::source::dir::STABLE_FOR * 2).await;
    let object = store.get(&keep).unwrap().expect("keep stays");
    assert!(object.metadata().deletion_timestamp.is_none(), "a hostile file tore its objects down");
    shutdown.send(berth::controller::runtime::Shutdown::Drain).unwrap();
    task.await.unwrap().unwrap();
}
