//! A state directory whose database was lost, next to a live engine.
//!
//! If `STATE/db` is emptied, removed or replaced while berth's containers
//! run, a new database means a new instance id: the old instance's
//! containers, networks and volumes would run on unmanaged, and applying
//! the manifests again would collide with them ("network … already exists
//! but is not this berth's"). The instance id is also recorded beside the
//! database ([`Store::lost_instance`]), so berth recognises its own
//! previous objects: it refuses to start and says how to go on, restore
//! the database or `--adopt` them (take the old id over: what the manifests
//! still declare is kept or recreated as their specs say, the rest is
//! removed as orphans, no duplicates).

use std::sync::Arc;

use crate::backoff::Reconnect;
use crate::engine::{labels, Engine};
use crate::store::Store;

/// Why berth does not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database in {dir} is new or empty, but the engine runs {containers} container(s), {networks} network(s) and \
     {volumes} volume(s) of this state directory's previous instance {previous} (label berth.dev/instance={previous}); \
     starting afresh would leave them unmanaged and collide with them. Restore {dir} from a backup, or start with \
     `berth serve --adopt` to take them over (berth keeps what the manifests declare and removes the rest)"
)]
pub struct LostStore {
    /// The database directory.
    pub dir: String,
    /// The previous instance id.
    pub previous: String,
    /// What of it the engine runs.
    pub containers: usize,
    /// Networks of it.
    pub networks: usize,
    /// Volumes of it.
    pub volumes: usize,
}

/// Checks, before the controller takes an instance id, whether the store
/// lost the one it had while the engine still runs its objects. With
/// `adopt`, the store takes the previous id over. Waits (with backoff) for
/// the engine to answer when there is something to check.
pub async fn check_lost_store(
    store: &Store,
    engine: &Arc<dyn Engine>,
    db_dir: &str,
    adopt: bool,
) -> Result<(), LostStore> {
    let Some(previous) = store.lost_instance() else { return Ok(()) };
    if adopt {
        match store.adopt_instance(&previous) {
            Ok(id) => {
                tracing::warn!(instance = %id, "--adopt: taking over the engine objects of the previous instance")
            }
            Err(e) => tracing::error!("--adopt: cannot record the previous instance id: {e}"),
        }
        return Ok(());
    }
    let ours = labels::instance_labels(&previous);
    let mut reconnect = Reconnect::new("engine (checking for a previous instance's objects)");
    let (containers, networks, volumes) = loop {
        let listed = async {
            let containers = engine.list_containers(&ours).await?;
            let networks = engine.list_networks(&ours).await?;
            let volumes = engine.list_volumes(&ours).await?;
            Ok::<_, crate::engine::EngineError>((containers.len(), networks.len(), volumes.len()))
        };
        match listed.await {
            Ok(counts) => break counts,
            Err(e) => tokio::time::sleep(reconnect.failed(&e)).await,
        }
    };
    if containers + networks + volumes == 0 {
        tracing::warn!(
            previous = %previous,
            "the database in {db_dir} is new or empty; nothing of the previous instance runs, so berth starts afresh"
        );
        return Ok(());
    }
    Err(LostStore { dir: db_dir.to_string(), previous, containers, networks, volumes })
}
