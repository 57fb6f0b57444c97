//! Running Podman's health checks, which Podman 4 leaves to systemd.
//!
//! Docker's daemon runs each container's check on its interval. Podman
//! schedules them with transient systemd timers instead, and without
//! systemd (a container, a CI machine, these hosts) nothing runs them: the
//! status stays `starting` forever. So the engine runs them: one task per
//! container that has a check asks libpod to run it
//! (`GET /libpod/containers/{id}/healthcheck`) every interval. libpod
//! itself applies the retries and start period, records the result
//! (`starting` → `healthy` → `unhealthy`, as Docker) and publishes the
//! `health_status` event.
//!
//! A container is supervised from the moment this engine starts it or
//! sees it running with a check (an inspect or a list), so that a
//! restarted berth picks up the containers it made before. The task keeps
//! going across the container's restarts (the check is skipped while it is
//! not running) and ends when the container is gone or the engine is
//! dropped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The shortest interval honoured, so a zero interval cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The set of supervised containers; the tasks hold it weakly.
#[derive(Debug, Default)]
pub(super) struct HealthRunner {
    supervised: Mutex<HashSet<String>>,
}

impl HealthRunner {
    /// Runs `id`'s check every `interval` unless a task already does.
    pub(super) fn supervise(self: &Arc<Self>, client: &podman_api::Podman, id: &str, interval: Duration) {
        {
            let mut supervised = self.supervised.lock().unwrap_or_else(|p| p.into_inner());
            if !supervised.insert(id.to_string()) {
                return;
            }
        }
        let runner: Weak<HealthRunner> = Arc::downgrade(self);
        let (client, id) = (client.clone(), id.to_string());
        let interval = interval.max(MIN_INTERVAL);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if runner.upgrade().is_none() {
                    return;
                }
                match client.containers().get(&id).healthcheck().await {
                    // A 404 is a removed container; other errors (not
                    // running, a busy service) wait for the next turn.
                    Err(error) if super::status_of(&error) == Some(404) => break,
                    _ => {}
                }
            }
            if let Some(runner) = runner.upgrade() {
                runner.supervised.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            }
        });
    }
}
