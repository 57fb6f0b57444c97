//! What every reconciler works with: the store, the engine, this
//! controller's instance id, and helpers to record events and write status.

use std::sync::Arc;

use chrono::Utc;

use crate::api::{CommonStatus, Condition, ConditionStatus, Object, ObjectKey, Spec};
use crate::engine::reflector::Reflector;
use crate::engine::Engine;
use crate::store::{Event, Store, WriteBatch};

use super::action::{Action, ReconcileError};

/// Shared by all reconciles.
#[derive(Clone)]
pub struct Context {
    /// Desired state and status.
    pub store: Store,
    /// The engine to converge.
    pub engine: Arc<dyn Engine>,
    /// What the engine holds of this instance, followed from its events
    /// (reconcilers read observed state here, not from the engine).
    pub reflector: Reflector,
    /// This controller's instance id (`berth.dev/instance`).
    pub instance: String,
    /// What the DNS server and the proxy serve (DnsRecord and Route status).
    pub served: super::Served,
    /// Set when berth's DNS answers on the networks' gateways.
    pub network_dns: Option<super::NetworkDns>,
    /// The key secret values are hashed with ([`crate::store::Store::secret_hash_key`]).
    pub secret_key: [u8; 32],
    /// When each replica berth started may be started again.
    pub crash_loops: std::sync::Arc<super::crash_loop::CrashLoops>,
}

impl Context {
    /// A context on `store` and `engine` as unit tests want it: instance
    /// `test`, nothing served, no network DNS.
    #[cfg(test)]
    pub(super) fn for_tests(store: Store, engine: Arc<dyn Engine>) -> Self {
        Context {
            store,
            reflector: Reflector::new(engine.clone(), "test"),
            engine,
            instance: "test".into(),
            served: Default::default(),
            network_dns: None,
            secret_key: [7; 32],
            crash_loops: Default::default(),
        }
    }

    /// Appends an event about `key` to the log (durably: it is the audit
    /// trail of an engine operation that happened), and logs it.
    pub fn record(
        &self,
        key: &ObjectKey,
        action: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> Result<(), ReconcileError> {
        let message = message.into();
        // Multi-line messages (a build's output) belong to the event log;
        // the log line gets their first line.
        match message.split_once('\n') {
            Some((first, rest)) => {
                let more = rest.lines().count();
                tracing::info!(object = %key, action, reason, "{first} (+{more} lines: berth events)");
            }
            None => tracing::info!(object = %key, action, reason, "{message}"),
        }
        self.store.commit(WriteBatch::new().event(Event::about(key, action, reason, message)))?;
        Ok(())
    }

    /// Writes `status` for `object` when it differs from the stored one.
    /// Status writes do not wake the object's own reconciler.
    pub fn write_status<S: Spec>(&self, object: &Object<S>, status: S::Status) -> Result<(), ReconcileError> {
        if object.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let json = serde_json::to_value(&status).map_err(|e| ReconcileError::caused_by(&e))?;
        match self.store.commit(WriteBatch::new().status(object.key(), json).relaxed()) {
            Ok(_) => Ok(()),
            // Deleted meanwhile: nothing to report on.
            Err(crate::store::StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks a deleted object's teardown done: its record goes, but only if
    /// it is still the version this reconcile saw marked for deletion (a
    /// compare-and-swap): an object applied again meanwhile stays, and its
    /// change brings another reconcile.
    pub fn finish_deletion(&self, object: &crate::api::ObjectMeta, key: &ObjectKey) -> Result<(), ReconcileError> {
        let precondition = match object.resource_version {
            Some(version) => crate::store::Precondition::ResourceVersion(version),
            None => crate::store::Precondition::None,
        };
        let batch = WriteBatch::new()
            .op(crate::store::WriteOp::Remove { key: key.clone(), precondition })
            .event(Event::about(key, "removed", "Deleted", "teardown finished"));
        match self.store.commit(batch) {
            Ok(_) | Err(crate::store::StoreError::NotFound { .. }) | Err(crate::store::StoreError::Conflict { .. }) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A Network or Volume being deleted: wait while Containers in the store
/// still use it (they are torn down first; their removal wakes it).
/// Returns the action to return when it must wait, after saying why in its
/// status.
pub fn wait_for_users<S: Spec>(
    ctx: &Context,
    object: &Object<S>,
    status: impl FnOnce(CommonStatus) -> S::Status,
) -> Result<Option<Action>, ReconcileError> {
    let key = object.key();
    let users = super::dependents::containers_using(&ctx.store, &key)?;
    if users.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = users.iter().map(ToString::to_string).collect();
    let message = format!("being deleted: waits for {} to be removed first", names.join(", "));
    ctx.write_status(
        object,
        status(Conditions::from(object).ready(false, "WaitingForContainers", message, false).build()),
    )?;
    // Their removal wakes this key; the requeue is a safety net.
    Ok(Some(Action::requeue(std::time::Duration::from_secs(30))))
}

/// The error for an engine object berth wanted to create under a name that
/// something it does not own already uses.
pub fn name_taken(what: &str, name: &str) -> ReconcileError {
    ReconcileError::transient(format!(
        "{what} {name} already exists but is not this berth's (made by hand, or by a berth with another state \
         directory); remove it, or rename the object"
    ))
}

/// Builds a status's conditions from the previous ones, so that
/// `lastTransitionTime` only moves when a condition's truth changes.
pub struct Conditions {
    common: CommonStatus,
    generation: u64,
}

impl Conditions {
    /// Starts from the previous conditions of an object.
    pub fn from<S: Spec>(object: &Object<S>) -> Self {
        let common = object.status.as_ref().map(|s| S::status_common(s).clone()).unwrap_or_default();
        Conditions { common, generation: object.metadata.generation.unwrap_or(0) }
    }

    /// Sets one condition.
    pub fn set(mut self, kind: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        self.common.set_condition(Condition {
            kind: kind.to_string(),
            status: if status { ConditionStatus::True } else { ConditionStatus::False },
            reason: reason.to_string(),
            message: message.into(),
            last_transition_time: Utc::now(),
            observed_generation: self.generation,
        });
        self
    }

    /// `Ready` with `Progressing` and `Degraded` derived from it: ready means
    /// neither progressing nor degraded; not ready is progressing unless
    /// `degraded` says something is wrong.
    pub fn ready(self, ready: bool, reason: &str, message: impl Into<String>, degraded: bool) -> Self {
        let message = message.into();
        let progressing = !ready && !degraded;
        self.set("Ready", ready, reason, message.clone())
            .set(
                "Progressing",
                progressing,
                if progressing { reason } else { "Stable" },
                if progressing { message.clone() } else { String::new() },
            )
            .set(
                "Degraded",
                degraded,
                if degraded { reason } else { "AsExpected" },
                if degraded { message } else { String::new() },
            )
    }

    /// A suspended object: not Ready, and not on its way there either
    /// (Progressing False), nor Degraded: as it was asked to be.
    pub fn suspended(self, message: impl Into<String>) -> Self {
        let message = message.into();
        self.set("Ready", false, "Suspended", message).set("Progressing", false, "Suspended", String::new()).set(
            "Degraded",
            false,
            "AsExpected",
            String::new(),
        )
    }

    /// The finished conditions, with the generation observed.
    pub fn build(mut self) -> CommonStatus {
        self.common.observed_generation = self.generation;
        self.common
    }
}
