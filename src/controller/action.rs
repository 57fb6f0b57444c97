//! What a reconcile returns: when to look again, or why it failed.

use std::time::Duration;

/// The outcome of a successful reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    /// Reconcile again after this long, even if nothing changes.
    pub requeue_after: Option<Duration>,
}

impl Action {
    /// Look again after `delay` (e.g. while waiting for a replica to turn healthy
    /// when no event will say so).
    pub fn requeue(delay: Duration) -> Self {
        Action { requeue_after: Some(delay) }
    }

    /// Nothing to do until something changes (the object, the engine, a dependency).
    pub fn await_change() -> Self {
        Action { requeue_after: None }
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Worth retrying with backoff: the engine failed, a write conflicted.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Retrying cannot help until the object changes (e.g. its spec cannot
    /// be realized on this engine).
    #[error("{0:#}")]
    Terminal(anyhow::Error),
}

impl ReconcileError {
    /// A transient error with this message.
    pub fn transient(message: impl std::fmt::Display + Send + Sync + 'static) -> Self {
        ReconcileError::Transient(anyhow::anyhow!("{message}"))
    }
}

impl From<crate::engine::EngineError> for ReconcileError {
    fn from(error: crate::engine::EngineError) -> Self {
        ReconcileError::Transient(error.into())
    }
}

impl From<crate::store::StoreError> for ReconcileError {
    fn from(error: crate::store::StoreError) -> Self {
        ReconcileError::Transient(error.into())
    }
}
