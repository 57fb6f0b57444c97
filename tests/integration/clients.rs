//! Other people's clients against berth: the Python `kubernetes` client
//! (`CustomObjectsApi`, `DynamicClient`) over TLS with the generated
//! kubeconfig, `promtool check metrics` on `/metrics`,
//! openapi-spec-validator on berth's OpenAPI documents, a client that
//! openapi-python-client generates from `/openapi.json` listing containers,
//! and check-jsonschema
//! validating the examples with `crds/schemas/all.json`, offline.
//!
//! `scripts/setup-clients.sh` installs them under `$BERTH_TOOLS` (default
//! `~/.cache/berth-tools`); a missing tool fails the test with that advice.
//! Set `BERTH_SKIP_CLIENTS=1` to skip these tests on a machine without them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::api::{Api, ServedFake};

/// Where the setup script put the tools, or `None` when skipped.
pub(crate) fn tools() -> Option<PathBuf> {
    if std::env::var_os("BERTH_SKIP_CLIENTS").is_some() {
        eprintln!("BERTH_SKIP_CLIENTS is set: skipping the client tests");
        return None;
    }
    let dir = match std::env::var_os("BERTH_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/berth-tools"),
    };
    let ready = dir.join("venv/bin/python").exists() && dir.join("bin/promtool").exists();
    assert!(
        ready,
        "the client tools are not in {}: run scripts/setup-clients.sh (or set BERTH_SKIP_CLIENTS=1)",
        dir.display()
    );
    Some(dir)
}

/// Runs `program` with `args`; its stdout, or a panic with both outputs.
fn run(program: &Path, args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{} {args:?} failed:\n{said}", program.display());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_python_kubernetes_client_creates_patches_watches_applies_and_deletes() {
    let Some(tools) = tools() else { return };
    let server = ServedFake::start();
    let kubeconfig = server.dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_kubernetes.py");
    let output = Command::new(tools.join("venv/bin/python")).arg(&script).arg(&kubeconfig).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim_end().ends_with("ok"), "{said}\nberth's log:\n{}", server.log());
}

#[tokio::test]
async fn promtool_and_openapi_spec_validator_accept_what_berth_serves() {
    let Some(tools) = tools() else { return };
    let api = Api::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A reconcile has run, so every family has series.
    let object = crate::support::api::container("web", "1");
    api.send_yaml("PUT", "/apis/berth.dev/v1alpha1/namespaces/default/containers/web", &object).await;
    let metrics = crate::support::controller::eventually(Duration::from_secs(10), "a reconcile counted", || async {
        let text = api.get("/metrics").await.text();
        text.contains("controller_runtime_reconcile_total{").then_some(text)
    })
    .await;
    let metrics_file = dir.path().join("metrics.txt");
    std::fs::write(&metrics_file, &metrics).unwrap();
    let promtool = Command::new(tools.join("bin/promtool"))
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics_file).unwrap())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&promtool.stdout), String::from_utf8_lossy(&promtool.stderr));
    assert!(promtool.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{metrics}");

    let validator = tools.join("venv/bin/openapi-spec-validator");
    for uri in ["/openapi.json", "/openapi/v3/apis/berth.dev/v1alpha1", "/openapi/v2"] {
        let document = api.get(uri).await;
        assert_eq!(document.status, axum::http::StatusCode::OK, "{uri}");
        let file = dir.path().join(format!("{}.json", uri.replace('/', "_")));
        std::fs::write(&file, document.text()).unwrap();
        let said = run(&validator, &[file.as_os_str()]);
        assert!(said.contains(": OK"), "{uri}: {said}");
    }
    let operations = api.get("/openapi.json").await.json();
    let list = &operations["paths"]["/apis/berth.dev/v1alpha1/namespaces/{namespace}/{plural}"]["get"];
    assert_eq!(list["operationId"], "listNamespaced", "{list}");
}

#[test]
fn a_client_generated_from_the_openapi_document_lists_containers() {
    let Some(tools) = tools() else { return };
    let server = ServedFake::start();
    server.cli().args(["apply", "-f", "-"]).write_stdin(crate::support::api::container("web", "1")).assert().success();
    let dir = tempfile::tempdir().unwrap();
    let token = std::fs::read_to_string(server.state_dir().join("token")).unwrap();
    let document = Command::new("curl")
        .args([
            "-fsS",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            &format!("{}/openapi.json", server.url),
        ])
        .output()
        .unwrap();
    assert!(document.status.success(), "{}", String::from_utf8_lossy(&document.stderr));
    let document_file = dir.path().join("openapi.json");
    std::fs::write(&document_file, &document.stdout).unwrap();
    let generated = Command::new(tools.join("venv/bin/openapi-python-client"))
        .args(["generate", "--meta", "none", "--output-path", "berth_client", "--path"])
        .arg(&document_file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&generated.stdout).to_string() + &String::from_utf8_lossy(&generated.stderr);
    assert!(dir.path().join("berth_client/api/default/list_namespaced.py").exists(), "not generated:\n{said}");
    let script = format!(
        "import sys\nsys.path.insert(0, {dir:?})\n\
         from berth_client import AuthenticatedClient\n\
         from berth_client.api.default import list_namespaced\n\
         client = AuthenticatedClient(base_url={url:?}, token={token:?})\n\
         listed = list_namespaced.sync_detailed(namespace='default', plural='containers', client=client)\n\
         assert listed.status_code == 200, listed\n\
         print(' '.join(item.metadata.name for item in listed.parsed.items))\n",
        dir = dir.path().display().to_string(),
        url = server.url,
        token = token.trim(),
    );
    let listed = run(&tools.join("venv/bin/python"), &["-c".as_ref(), script.as_ref()]);
    assert_eq!(listed.trim(), "web");
}

#[test]
fn check_jsonschema_validates_manifests_with_the_schemas_offline() {
    let Some(tools) = tools() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema = root.join("crds/schemas/all.json");
    let check = tools.join("venv/bin/check-jsonschema");
    // Offline: no proxy reaches anything, so a remote $ref would fail.
    let offline = |args: &[&std::ffi::OsStr]| {
        Command::new(&check)
            .args(["--schemafile".as_ref(), schema.as_os_str()])
            .args(args)
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    for name in ["00-network.yaml", "01-volume.yaml", "02-image.yaml", "03-api.yaml", "04-web.yaml", "06-route.yaml"] {
        let file = root.join("examples").join(name);
        let output = offline(&[file.as_os_str()]);
        let said = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && said.contains("validation done"), "{name}: {said}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: x}\nspec: {image: a, replicaz: 1}\n",
    )
    .unwrap();
    let output = offline(&[bad.as_os_str()]);
    assert!(!output.status.success(), "a misspelt field passed: {}", String::from_utf8_lossy(&output.stdout));
}
