//! The client commands against a real `berth serve` on a real port: on the
//! fake engine for the whole command set and its errors, and on real Docker
//! for `apply --wait`, `get`, `describe`, `diff` and `logs`.

use std::fs;

use predicates::prelude::*;
use predicates::str::contains;

use crate::support::api::{cli, ServedFake};
use crate::support::engines::EngineKind;
use crate::support::repo_path;
use crate::support::serve::Stack;

#[test]
fn the_client_commands_work_against_a_served_fake_engine() {
    let examples = repo_path("examples");
    // `berth apply` sends the Image's build context as a path of the host.
    let server = ServedFake::start_with(&["--allow-host-paths", examples.to_str().unwrap()]);
    // The plan first: everything is new.
    server
        .cli()
        .args(["diff", "-f"])
        .arg(&examples)
        .assert()
        .success()
        .stdout(contains("+ container/web create"))
        .stdout(contains("Plan: 8 to create"));
    // What berth runs gets Ready; this server runs without DNS
    // (`--dns-listen off`), so DNS records are not served, and --wait says so,
    // naming them.
    let runnable =
        ["00-network.yaml", "01-volume.yaml", "02-image.yaml", "03-api.yaml", "04-web.yaml"].map(|f| examples.join(f));
    server
        .cli()
        .args(["apply", "--wait", "--timeout", "60s"])
        .args(runnable.iter().flat_map(|f| [std::ffi::OsStr::new("-f"), f.as_os_str()]))
        .assert()
        .success()
        .stdout(contains("container/web created"))
        .stdout(contains("network/app created"))
        .stdout(contains("5 object(s) ready"));
    server
        .cli()
        .args(["apply", "--wait", "--timeout", "2s", "-f"])
        .arg(examples.join("05-dns.yaml"))
        .assert()
        .code(1)
        .stderr(contains("not ready after 2s").and(contains("dnsrecord/web: Ready=False NotServed")));
    server.cli().args(["apply", "-f"]).arg(&examples).assert().success().stdout(contains("container/web unchanged"));
    server
        .cli()
        .args(["get", "containers"])
        .assert()
        .success()
        .stdout(contains("NAME").and(contains("REPLICAS")))
        .stdout(contains("web").and(contains("2/2")).and(contains("True")));
    server
        .cli()
        .args(["get", "ctr", "-A", "-o", "wide"])
        .assert()
        .success()
        .stdout(contains("NAMESPACE").and(contains("SOURCE")).and(contains("api")));
    server
        .cli()
        .args(["get", "container", "web", "-o", "yaml"])
        .assert()
        .success()
        .stdout(contains("kind: Container").and(contains("readyReplicas: 2")));
    server
        .cli()
        .args(["get", "containers", "-l", "app=api", "-o", "json"])
        .assert()
        .success()
        .stdout(contains("\"name\": \"api\"").and(contains("\"name\": \"web\"").not()));
    server.cli().args(["describe", "container", "web"]).assert().success().stdout(
        contains("Replicas:").and(contains("Conditions:")).and(contains("Events:")).and(contains("Source:       api")),
    );
    server.cli().args(["events"]).assert().success().stdout(contains("applied"));
    server
        .cli()
        .args(["events", "container", "api"])
        .assert()
        .success()
        .stdout(contains("Container/default/api").and(contains("Container/default/web").not()));
    server.cli().args(["logs", "api"]).assert().success();
    server.cli().args(["logs", "api", "--replica", "4"]).assert().code(1).stderr(contains("has no replica 4"));

    // A changed env: the plan names the recreate and its reason.
    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("api.yaml");
    fs::write(&changed, fs::read_to_string(examples.join("03-api.yaml")).unwrap().replace("hello from berth", "hi"))
        .unwrap();
    server
        .cli()
        .args(["apply", "--dry-run", "-f"])
        .arg(&changed)
        .assert()
        .success()
        .stdout(contains("~ container/api update (spec.env[0].value)"))
        .stdout(contains("→ recreate replica 0  (spec changed: env)"))
        .stdout(contains("-   value: hello from berth").and(contains("+   value: hi")));

    // An invalid file is reported at its own position, and nothing is sent.
    let broken = dir.path().join("broken.yaml");
    fs::write(&broken, "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: Bad\nspec:\n  image: x\n")
        .unwrap();
    server
        .cli()
        .args(["apply", "-f"])
        .arg(&broken)
        .assert()
        .code(1)
        .stderr(contains(format!("{}:4:9", broken.display())));

    // Deletion, by name and by file.
    server.cli().args(["delete", "container", "web"]).assert().success().stdout(contains("container/web deleted"));
    server
        .cli()
        .args(["delete", "-f"])
        .arg(examples.join("05-dns.yaml"))
        .assert()
        .success()
        .stdout(contains("dnsrecord/"));
    server
        .cli()
        .args(["get", "container", "nope"])
        .assert()
        .code(1)
        .stderr(contains("Container/default/nope not found"));
    server.cli().args(["get", "pods"]).assert().code(1).stderr(contains("unknown kind `pods`"));

    // Without the token, the server's message says where it is; no server: a clear error.
    cli(&server.url, dir.path()).args(["get", "containers"]).assert().code(1).stderr(contains("Authorization: Bearer"));
    cli("http://127.0.0.1:1", dir.path())
        .args(["get", "containers"])
        .assert()
        .code(1)
        .stderr(contains("is `berth serve` running?"));
    server.cli().args(["completion", "bash"]).assert().success().stdout(contains("berth"));
    server.cli().args(["get"]).assert().code(2);
}

#[test]
fn refusals_speak_in_flags_the_cli_has() {
    let manifests = tempfile::tempdir().unwrap();
    let volume = "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: data}\nspec: {}\n";
    fs::write(manifests.path().join("data.yaml"), volume).unwrap();
    let server = ServedFake::start_with(&["--manifests", manifests.path().to_str().unwrap()]);
    let mine = tempfile::tempdir().unwrap();
    let edited = mine.path().join("data.yaml");
    fs::write(&edited, volume.replace("spec: {}", "spec: {reclaimPolicy: Delete}")).unwrap();
    let attempt = || server.cli().args(["apply", "-f"]).arg(&edited).assert();
    // The directory may still be applying when the first attempt lands.
    for _ in 0..50 {
        if attempt().try_code(1).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    attempt()
        .code(1)
        .stderr(contains("volume/default/data").or(contains("Volume/default/data")))
        .stderr(contains("rerun with --force"))
        .stderr(contains("?force").not().and(contains("query parameter").not()));
    server.cli().args(["apply", "--force", "-f"]).arg(&edited).assert().success();
}

#[test]
fn the_api_serves_on_a_unix_socket_for_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = ServedFake::start_on(|dir| format!("unix:{}", dir.join("api.sock").display()), &[]);
    assert!(server.url.starts_with("unix:"), "{}", server.url);
    let socket = server.url.trim_start_matches("unix:");
    let mode = fs::metadata(socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is open to others");
    server
        .cli()
        .args(["apply", "-f"])
        .arg(repo_path("examples/00-network.yaml"))
        .assert()
        .success()
        .stdout(contains("network/app created"));
    server.cli().args(["get", "networks"]).assert().success().stdout(contains("app"));
}

#[tokio::test]
async fn apply_wait_get_describe_and_logs_on_real_docker() {
    let Some(mut stack) = Stack::examples(EngineKind::Docker).await else { return };
    stack.start_api_only();
    let url = stack.server_url().await;
    let state = stack.state_dir();
    let ns = stack.namespace.clone();
    let manifests = stack.manifests();
    let run = move |args: Vec<String>| {
        let (url, state) = (url.clone(), state.clone());
        async move { tokio::task::spawn_blocking(move || cli(&url, &state).args(args).assert()).await.expect("the CLI ran") }
    };
    // The whole stack, DNS records and the Route included (DNS and the proxy
    // run on free ports): everything gets Ready.
    let args = vec![
        "apply".into(),
        "--wait".into(),
        "--timeout".into(),
        "120s".into(),
        "-f".into(),
        manifests.display().to_string(),
    ];
    run(args)
        .await
        .success()
        .stdout(contains(format!("container/web -n {ns} created")))
        .stdout(contains(format!("route/demo -n {ns} created")))
        .stdout(contains("8 object(s) ready"));
    let replicas = stack.replicas("web").await;
    assert_eq!(replicas.len(), 2, "apply --wait returned before both web replicas ran");
    run(vec!["get".into(), "containers".into(), "-n".into(), ns.clone()]).await.success().stdout(contains("2/2"));
    run(vec!["describe".into(), "container".into(), "api".into(), "-n".into(), ns.clone()])
        .await
        .success()
        .stdout(contains("running").and(contains("healthy")));
    // The api's health check requests its httpd, which logs each one.
    let logs = run(vec!["logs".into(), "api".into(), "-n".into(), ns.clone()]).await.success();
    let output = String::from_utf8_lossy(&logs.get_output().stdout).to_string();
    assert!(!output.trim().is_empty(), "no logs from the api replica");
    run(vec!["logs".into(), "web".into(), "-n".into(), ns.clone(), "--replica".into(), "5".into()])
        .await
        .code(1)
        .stderr(contains("has no replica 5"));
}
