//! Keeping the event log within its retention while the daemon runs.

use std::time::Duration;

use crate::store::{Retention, Store, PRUNE_EVERY};

/// Keeps the event log within `retention`: shortly after start, then every
/// [`PRUNE_EVERY`], until `stop`.
pub(super) async fn prune_events(store: Store, retention: Retention, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut next = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Cancel-safe: both arms only wait.
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.prune_events(&retention)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "event log pruned"),
            Ok(Err(e)) => tracing::warn!("pruning the event log failed: {e}"),
            Err(e) => tracing::warn!("pruning the event log failed: {e}"),
        }
        next = tokio::time::Instant::now() + PRUNE_EVERY;
    }
}
