//! Smoke test of the real engines: each builds the busybox image from an
//! in-memory tar through its build API, runs a container from it, and
//! reports its logs and exit code.
//!
//! This is the end-to-end proof that what `berth::engine::build_context`
//! produces is accepted by Docker and Podman as-is, and that an image built
//! `FROM scratch` with busybox is enough for the later tests, which cannot
//! pull images. Whether each test runs, skips or fails without its engine is
//! decided by `support::engines` (see `BERTH_TEST_ENGINES` there).

use std::time::Instant;

use crate::support::engines::{self, busybox_tar, test_labels, unique_suffix, ContainerSpec, TestEngine};

/// Prints a marker, then proves busybox's applets were installed by the
/// image's `RUN` step (`wget` is a symlink to busybox made there).
const SCRIPT: &str = "echo berth-smoke-ok; wget --help >/dev/null 2>&1 && echo tools-ok";

#[tokio::test]
async fn docker_builds_busybox_from_in_memory_tar_and_runs_it() {
    let Some(docker) = engines::docker().await else { return };
    smoke(&docker).await;
}

#[tokio::test]
async fn podman_builds_busybox_from_in_memory_tar_and_runs_it() {
    let Some(podman) = engines::podman().await else { return };
    smoke(&podman).await;
}

/// What the smoke container left behind.
struct Run {
    logs: String,
    exit_code: i64,
}

/// Builds, runs and cleans up, then asserts. Every step before the asserts
/// returns errors instead of panicking, so the container and image are
/// removed whether the run succeeded or not (an async cleanup cannot run
/// from a `Drop` guard on the test's single-threaded runtime).
async fn smoke(engine: &impl TestEngine) {
    let kind = engine.kind();
    let suffix = unique_suffix();
    let tag = format!("berth-smoke/busybox:{suffix}");
    let name = format!("berth-smoke-{suffix}");
    let started = Instant::now();

    let mut container = None;
    let outcome = build_and_run(engine, &tag, &name, &mut container).await;
    let mut cleanup_errors = Vec::new();
    if let Some(id) = &container {
        if let Err(error) = engine.remove_container(id).await {
            cleanup_errors.push(format!("remove container {name}: {error:#}"));
        }
    }
    // Also after a failed build: the tag may exist even so.
    if let Err(error) = engine.remove_image(&tag).await {
        if outcome.is_ok() {
            cleanup_errors.push(format!("remove image {tag}: {error:#}"));
        }
    }
    eprintln!("{kind}: smoke run and cleanup took {:.2?}", started.elapsed());

    let Run { logs, exit_code } = outcome.unwrap_or_else(|error| panic!("{kind} smoke run failed: {error:#}"));
    assert!(logs.contains("berth-smoke-ok"), "{kind}: container logs lack the marker:\n{logs}");
    assert!(logs.contains("tools-ok"), "{kind}: busybox applets missing from the image:\n{logs}");
    assert_eq!(exit_code, 0, "{kind}: container exit code; logs:\n{logs}");
    assert!(cleanup_errors.is_empty(), "{kind}: cleanup failed: {cleanup_errors:#?}");
}

/// Builds the image as `tag`, runs `SCRIPT` in container `name` until it
/// exits, and returns its logs and exit code. Stores the container's id in
/// `container` as soon as it exists, for the caller's cleanup.
async fn build_and_run(
    engine: &impl TestEngine,
    tag: &str,
    name: &str,
    container: &mut Option<String>,
) -> anyhow::Result<Run> {
    let kind = engine.kind();
    let labels = test_labels("smoke");
    let mut step = Instant::now();
    let mut lap = |what: &str| {
        eprintln!("{kind}: {what} took {:.2?}", step.elapsed());
        step = Instant::now();
    };

    engine.build_image(tag, busybox_tar(), &labels).await?;
    lap("build");
    let id = engine
        .create_container(&ContainerSpec { name, image: tag, cmd: &["sh", "-c", SCRIPT], labels: &labels })
        .await?;
    *container = Some(id.clone());
    engine.start_container(&id).await?;
    let exit_code = engine.wait_container(&id).await?;
    lap("create, start and wait");
    let logs = engine.container_logs(&id).await?;
    Ok(Run { logs, exit_code })
}
