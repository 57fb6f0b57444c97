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

/// Why a reconcile failed, in words (its causes included) for the
/// object's condition and the log.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Worth retrying with backoff: the engine failed, a write conflicted.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help until the object changes (e.g. its spec cannot
    /// be realized on this engine).
    #[error("{0}")]
    Terminal(String),
}

impl ReconcileError {
    /// A transient error with this message.
    pub fn transient(message: impl std::fmt::Display) -> Self {
        ReconcileError::Transient(message.to_string())
    }

    /// A terminal error with this message.
    pub fn terminal(message: impl std::fmt::Display) -> Self {
        ReconcileError::Terminal(message.to_string())
    }

    /// A transient error caused by `error`, its causes included.
    pub fn caused_by(error: &dyn std::error::Error) -> Self {
        ReconcileError::transient(crate::error_chain::Chain(error))
    }
}

impl From<crate::engine::EngineError> for ReconcileError {
    fn from(error: crate::engine::EngineError) -> Self {
        ReconcileError::caused_by(&error)
    }
}

impl From<crate::store::StoreError> for ReconcileError {
    fn from(error: crate::store::StoreError) -> Self {
        ReconcileError::caused_by(&error)
    }
}
