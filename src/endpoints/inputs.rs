//! What the DNS server and the proxy rebuild from: the objects of one kind
//! and the endpoint set, and a wait for either to change.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::api::{AnyObject, Kind};
use crate::store::{Change, Store};

use super::{EndpointSet, Endpoints};

/// The inputs of one server's rebuilds.
pub(crate) struct Inputs {
    store: Store,
    kind: Kind,
    /// Subscribed before the first listing, so no change falls in between.
    changes: broadcast::Receiver<Change>,
    endpoints: Endpoints,
}

impl Inputs {
    /// Follows the objects of `kind` in `store`, and `endpoints`.
    pub(crate) fn new(store: Store, kind: Kind, endpoints: Endpoints) -> Self {
        let changes = store.watch();
        Inputs { store, kind, changes, endpoints }
    }

    /// The objects of the kind now (none, with a warning, when the store
    /// fails) and the endpoint set now.
    pub(crate) fn current(&mut self) -> (Vec<AnyObject>, Arc<EndpointSet>) {
        let objects = self.store.list(Some(self.kind), None).unwrap_or_else(|e| {
            tracing::warn!("listing {}s failed: {e:#}", self.kind);
            Vec::new()
        });
        (objects, self.endpoints.borrow_and_update().clone())
    }

    /// Returns `true` once an object of the kind (more than its status) or
    /// the endpoint set changed, or the watch fell behind; `false` when a
    /// source is gone.
    ///
    /// Cancel-safe: each arm is (broadcast `recv` keeps its place, `changed`
    /// marks the value seen only when it returns), and nothing else is held.
    pub(crate) async fn changed(&mut self) -> bool {
        loop {
            tokio::select! {
                change = self.changes.recv() => match change {
                    Ok(change) if change.object.kind() == self.kind && !change.status_only => return true,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(broadcast::error::RecvError::Closed) => return false,
                },
                changed = self.endpoints.changed() => return changed.is_ok(),
            }
        }
    }
}

/// Sends `value` unless it equals what `sender` holds (receivers wake only
/// for a real change).
pub(crate) fn publish<T: PartialEq>(sender: &watch::Sender<Arc<T>>, value: T) {
    sender.send_if_modified(|current| {
        if **current == value {
            return false;
        }
        *current = Arc::new(value);
        true
    });
}
